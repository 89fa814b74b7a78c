"""The organisations and people of a local network, created through the hub's service layer.

An operator with its admin, the requesting company with one researcher, and per hospital its
organisation and data steward; everyone's portal password is :data:`DEMO_PASSWORD`, as the admin
commands of ``phds hub`` would set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from phds.demo.hospital import DemoHospital
from phds.hub import services
from phds.hub.passwords import set_password
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.protocol.organisations import OrganisationCreate
from phds.protocol.users import UserCreate

REQUESTER_ORG = "acme-pharma"
REQUESTER_CATEGORY = "industry"
DEMO_PASSWORD = "paediatric-demo-2026"
"""Every person's portal password in a local network (admin@phds.local, researcher@acme.example,
steward@<hospital>.example). For demonstrations and tests on loopback only."""


@dataclass
class NetworkPeople:
    """The API tokens of the people created: admin, requester, and each hospital's steward."""

    admin_token: str
    requester_token: str
    steward_tokens: dict[str, str] = field(default_factory=dict)


def create_people(store: HubStore, hospitals: list[DemoHospital], expires: datetime) -> NetworkPeople:
    """Create the operator, the requester and every hospital with its steward, in one transaction."""
    with store.unit() as uow:
        operator = OrganisationCreate(name="operator", display_name="PHDS operator", kind="operator")
        admin_token, admin = services.bootstrap_admin(
            uow, operator=operator, email="admin@phds.local", display_name="Admin", expires_at=expires
        )
        set_password(admin, DEMO_PASSWORD, utcnow())
        company = OrganisationCreate(
            name=REQUESTER_ORG,
            display_name="Acme Paediatric Pharma",
            kind="requester",
            category=REQUESTER_CATEGORY,
        )
        services.create_organisation(uow, company)
        researcher = UserCreate(
            email="researcher@acme.example",
            display_name="A. Researcher",
            role="requester",
            organisation=REQUESTER_ORG,
        )
        requester = services.create_user(uow, researcher)
        requester_token, _ = services.issue_token(uow, user_id=requester.id, expires_at=expires)
        set_password(requester, DEMO_PASSWORD, utcnow())
        people = NetworkPeople(admin_token, requester_token)
        for hospital in hospitals:
            services.create_organisation(
                uow,
                OrganisationCreate(
                    name=hospital.name,
                    display_name=hospital.display_name,
                    kind="hospital",
                    country=hospital.country,
                ),
            )
            steward = services.create_user(
                uow,
                UserCreate(
                    email=f"steward@{hospital.name}.example",
                    display_name=f"Data steward, {hospital.display_name}",
                    role="steward",
                    organisation=hospital.name,
                ),
            )
            people.steward_tokens[hospital.name], _ = services.issue_token(
                uow, user_id=steward.id, expires_at=expires
            )
            set_password(steward, DEMO_PASSWORD, utcnow())
    return people
