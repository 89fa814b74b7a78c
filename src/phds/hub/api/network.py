"""``/api/v1/network``: the network trust material the hub relays but cannot forge.

The operator signs revocation lists with the network trust key, off the hub (``phds network revoke``),
and publishes them here (``PUT``); nodes fetch the newest (``GET``) and accept it only if a key they pin
signed it and it is newer than the one they hold.
"""

from __future__ import annotations

from fastapi import APIRouter

from phds.errors import NotFound
from phds.hub import services
from phds.hub.auth import Admin, Caller, Store
from phds.hub.store.models import utcnow
from phds.protocol.trust import RevocationList

router = APIRouter(prefix="/network", tags=["network"])


@router.put("/revocations", status_code=204)
def publish_revocations(revocations: RevocationList, caller: Admin, store: Store) -> None:
    """Publish a revocation list the operator signed off the hub."""
    with store.unit() as uow:
        services.publish_revocations(uow, revocations, utcnow())


@router.get("/revocations", response_model=RevocationList)
def latest_revocations(caller: Caller, store: Store) -> RevocationList:
    """The newest published revocation list (404 when none was published)."""
    with store.unit() as uow:
        found = services.latest_revocations(uow)
    if found is None:
        raise NotFound("no revocation list has been published")
    return found
