"""``/api/v1/nodes``: a node reads itself and publishes its catalogue entry; admins and stewards look."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from phds.errors import NotFound
from phds.hub import services, wire
from phds.hub.auth import (
    AdminOrSteward,
    AnyUser,
    NodeCaller,
    Notifications,
    Principal,
    Settings,
    Store,
    allow,
    ensure_sees_organisation,
    organisation_scope,
)
from phds.hub.store.models import utcnow
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.common import Slug
from phds.protocol.nodes import NodeInfo
from phds.protocol.trust import SignedAuditHead

router = APIRouter(prefix="/nodes", tags=["nodes"])

NodeViewer = Annotated[Principal, allow("admin", "steward", "node")]


@router.get("", response_model=list[NodeInfo])
def list_nodes(caller: AdminOrSteward, store: Store, notifier: Notifications) -> list[NodeInfo]:
    """Every node for admins; a steward's own hospital's node."""
    with store.unit() as uow:
        rows = uow.nodes.list(organisation_id=organisation_scope(caller))
        return [wire.node(row, notifier.waiting_since(row.id)) for row in rows]


@router.get("/me", response_model=NodeInfo)
def my_node(caller: NodeCaller, store: Store) -> NodeInfo:
    """The calling node as the hub sees it."""
    with store.unit() as uow:
        row = uow.nodes.get(caller.id)
        if row is None:
            raise NotFound("the calling node no longer exists")
        return wire.node(row)


@router.put("/me/catalogue", response_model=CatalogueEntry)
def publish_catalogue(
    profile: Annotated[dict[str, Any], Body(description="A dataset profile (phds.omop.profile) as JSON.")],
    caller: NodeCaller,
    store: Store,
    settings: Settings,
) -> CatalogueEntry:
    """Publish the node's dataset profile as its hospital's newest catalogue entry (a JSON object)."""
    with store.unit() as uow:
        row = services.publish_catalogue(
            uow, node_id=caller.id, profile=profile, max_bytes=settings.catalogue_max_bytes, now=utcnow()
        )
        return wire.catalogue_entry(row)


@router.get("/keys", response_model=dict[str, str])
def node_keys(caller: AnyUser, store: Store) -> dict[str, str]:
    """Each hospital's node public key as pinned at enrolment (hospital → key), for requesters to pin."""
    with store.unit() as uow:
        return {
            wire.node(r).hospital: r.public_key for r in uow.nodes.list(organisation_id=None) if r.public_key
        }


@router.post("/me/audit-head", status_code=204)
def report_audit_head(head: SignedAuditHead, caller: NodeCaller, store: Store) -> None:
    """A node reports its signed audit head; a head that goes backwards is refused and logged (409)."""
    with store.unit() as uow:
        services.record_audit_head(uow, node_id=caller.id, head=head, now=utcnow())


@router.get("/{hospital}/audit-heads", response_model=list[SignedAuditHead])
def node_audit_heads(hospital: Slug, caller: NodeViewer, store: Store) -> list[SignedAuditHead]:
    """The signed audit heads a hospital's node reported, newest first (its steward, the operator)."""
    with store.unit() as uow:
        row = services.get_organisation(uow, hospital)
        scope = organisation_scope(caller)
        if scope is not None and scope != row.id:
            raise NotFound(f"no node for hospital {hospital!r}")
        return services.audit_heads(uow, organisation_id=row.id)


@router.get("/{hospital}", response_model=NodeInfo)
def get_node(hospital: Slug, caller: NodeViewer, store: Store, notifier: Notifications) -> NodeInfo:
    """A hospital's node: admins any, a steward or node only its own hospital's (404 otherwise)."""
    with store.unit() as uow:
        org = uow.organisations.by_name(hospital)
        node = uow.nodes.by_organisation(org.id) if org is not None else None
        if org is None or node is None:
            raise NotFound(f"no node for hospital {hospital!r}")
        ensure_sees_organisation(caller, org.id, f"node for hospital {hospital!r}")
        return wire.node(node, notifier.waiting_since(node.id))
