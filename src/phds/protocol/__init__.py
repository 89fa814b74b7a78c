"""Wire models shared by the hub, the node and the SDK (pydantic v2), one module per topic.

Studies and tasks live in ``studies.py`` and ``tasks.py`` (not re-exported here yet).
"""

from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.enrolment import EnrolmentTokenCreate, EnrolmentTokenIssued, EnrolRequest, EnrolResponse
from phds.protocol.errors import ErrorBody, ErrorDetail
from phds.protocol.health import Health
from phds.protocol.nodes import NodeInfo, NodeMetadata
from phds.protocol.organisations import Organisation, OrganisationCreate, OrganisationKind, RequesterCategory
from phds.protocol.principals import Me
from phds.protocol.tokens import PrincipalKind, TokenCreate, TokenInfo, TokenIssued
from phds.protocol.users import Role, User, UserCreate

__all__ = [
    "CatalogueEntry",
    "EnrolRequest",
    "EnrolResponse",
    "EnrolmentTokenCreate",
    "EnrolmentTokenIssued",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "Me",
    "NodeInfo",
    "NodeMetadata",
    "Organisation",
    "OrganisationCreate",
    "OrganisationKind",
    "PrincipalKind",
    "RequesterCategory",
    "Role",
    "TokenCreate",
    "TokenInfo",
    "TokenIssued",
    "User",
    "UserCreate",
]
