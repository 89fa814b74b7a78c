"""Store rows to wire models (``phds.protocol``); read them while their unit of work is open."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from phds.hub.store.models import ApiTokenRow, CatalogueEntryRow, NodeRow, OrganisationRow, UserRow
from phds.hub.store.secagg_models import SecAggSessionRow
from phds.hub.store.study_models import StudyRow, TaskRow
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.nodes import NodeInfo, NodeMetadata
from phds.protocol.organisations import Organisation, OrganisationKind, RequesterCategory
from phds.protocol.studies import HospitalState, HospitalStatus, StudySpec, StudyState, StudyView
from phds.protocol.tasks import Task, TaskRequester
from phds.protocol.tokens import PrincipalKind, TokenInfo
from phds.protocol.trust import SignedSpec
from phds.protocol.users import Role, User


def organisation(row: OrganisationRow) -> Organisation:
    """An organisation on the wire."""
    return Organisation(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        kind=OrganisationKind(row.kind),
        country=row.country,
        category=RequesterCategory(row.category) if row.category else None,
        created_at=row.created_at,
    )


def user(row: UserRow) -> User:
    """A person on the wire."""
    return User(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        role=Role(row.role),
        organisation=row.organisation.name,
        created_at=row.created_at,
    )


def token(row: ApiTokenRow) -> TokenInfo:
    """A token's metadata on the wire (never its secret or hash)."""
    return TokenInfo(
        id=row.id,
        name=row.name,
        purpose=row.purpose,
        principal_kind=PrincipalKind.USER if row.user_id is not None else PrincipalKind.NODE,
        user_id=row.user_id,
        node_id=row.node_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def node(row: NodeRow, polling_since: datetime | None = None) -> NodeInfo:
    """A node on the wire; its name is its hospital's slug."""
    return NodeInfo(
        id=row.id,
        name=row.organisation.name,
        hospital=row.organisation.name,
        metadata=NodeMetadata.model_validate(row.node_metadata),
        enrolled_at=row.enrolled_at,
        last_seen_at=row.last_seen_at,
        public_key=row.public_key,
        polling_since=polling_since,
    )


def catalogue_entry(row: CatalogueEntryRow) -> CatalogueEntry:
    """A catalogue entry on the wire."""
    return CatalogueEntry(
        id=row.id,
        hospital=row.organisation.name,
        display_name=row.organisation.display_name,
        country=row.organisation.country,
        node_id=row.node_id,
        published_at=row.published_at,
        profile=row.profile,
    )


def study(row: StudyRow) -> StudyView:
    """A study as its requester (and the targeted hospitals' stewards) see it."""
    return StudyView(
        id=str(row.id),
        spec=StudySpec.model_validate(row.spec),
        state=StudyState(row.state),
        round=row.round,
        version=row.version,
        hospitals=[
            HospitalStatus(
                hospital=t.organisation.name,
                state=HospitalState(t.state),
                reason=t.reason,
                updated_at=t.updated_at,
            )
            for t in row.targets
        ],
        submitted_at=row.submitted_at,
        finished_at=row.finished_at,
        result=row.result,
        error=row.error,
    )


def task(row: TaskRow, state: dict[str, Any], session: SecAggSessionRow | None = None) -> Task:
    """A task as its node receives it: its round's *state* (stored once per round, see
    :class:`~phds.hub.store.study_models.StudyRoundRow`) and secure-aggregation session, if any."""
    spec = row.study.spec
    assert row.lease_expires_at is not None, "only leased tasks are delivered"
    return Task(
        id=str(row.id),
        study_id=str(row.study_id),
        study_title=spec["title"],
        study_purpose=spec["purpose"],
        service_type=spec["service_type"],
        requester=TaskRequester(
            organisation=row.study.organisation.name, category=row.study.requester_category
        ),
        hospital=row.organisation.name,
        analysis=row.study.analysis,
        analysis_version=row.study.analysis_version,
        params=row.params,
        round=row.round,
        state=state,
        attempt=row.attempt,
        lease_expires_at=row.lease_expires_at,
        signed_spec=SignedSpec.model_validate(row.study.signed_spec) if row.study.signed_spec else None,
        dp=spec.get("dp"),
        secure_aggregation=bool(spec.get("secure_aggregation", False)),
        application_id=spec.get("application_id"),
        secagg=session.config if session is not None else None,
    )
