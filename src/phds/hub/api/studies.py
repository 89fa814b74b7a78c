"""``/api/v1/studies``: requesters submit studies and follow them; stewards and admins look.

Scoping (:func:`phds.hub.auth.study_scope`): a requester sees its organisation's studies, a steward the
studies that target its hospital, an admin all; anything else answers 404. ``/wait`` is a long poll that
returns as soon as the study's version passes the caller's.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from phds.analyses import get_analysis
from phds.errors import DisclosureRefused, NotFound
from phds.hub import wire
from phds.hub.auth import (
    AnyUser,
    Notifications,
    Principal,
    RequesterCaller,
    Runner,
    Settings,
    Store,
    ensure_sees_study,
    redact_for,
    study_scope,
)
from phds.hub.runner import Requester, study_id_of
from phds.hub.store import HubStore
from phds.protocol.secagg import SessionView
from phds.protocol.studies import StudySpec, StudyView
from phds.protocol.trust import ReleaseEnvelope, SignedSpec

router = APIRouter(prefix="/studies", tags=["studies"])

MAX_WAIT_SECONDS = 60.0


@router.post("", response_model=StudyView, status_code=201)
def submit_study(spec: StudySpec, caller: RequesterCaller, runner: Runner) -> StudyView:
    """Submit a study for the caller's organisation; round-1 tasks are queued at once."""
    requester = Requester(caller.id, caller.organisation_id, caller.organisation_name)
    return runner.submit(requester, spec)


class CancelRequest(BaseModel):
    """Why the requester cancels (shown to the hospitals and kept with the study)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


@router.post("/{study_id}/cancel", response_model=StudyView)
def cancel_study(
    study_id: str, caller: RequesterCaller, runner: Runner, body: CancelRequest | None = None
) -> StudyView:
    """Cancel one of the caller's organisation's unfinished studies; its open tasks are cancelled and
    the nodes skip them. Cancelling again returns the study; a finished study answers 409."""
    requester = Requester(caller.id, caller.organisation_id, caller.organisation_name)
    return runner.cancel(requester, study_id_of(study_id), body.reason if body else None)


@router.get("", response_model=list[StudyView])
def list_studies(caller: AnyUser, store: Store) -> list[StudyView]:
    """The studies visible to the caller, newest first."""
    requesting, targeted = study_scope(caller)
    with store.unit(read_only=True) as uow:
        rows = uow.studies.list(organisation_id=requesting, target_organisation_id=targeted)
        return [redact_for(caller, wire.study(row)) for row in rows]


def _view(store: HubStore, caller: Principal, study_id: str, sid: uuid.UUID) -> StudyView:
    with store.unit(read_only=True) as uow:
        row = uow.studies.get(sid)
        if row is None:
            raise NotFound(f"no study {study_id} visible to you")
        ensure_sees_study(caller, row.organisation_id, {t.organisation_id for t in row.targets}, study_id)
        return redact_for(caller, wire.study(row))


@router.get("/{study_id}", response_model=StudyView)
def get_study(study_id: str, caller: AnyUser, store: Store) -> StudyView:
    """One study, if visible to the caller."""
    return _view(store, caller, study_id, study_id_of(study_id))


@router.get("/{study_id}/wait", response_model=StudyView)
async def wait_for_study(
    study_id: str,
    caller: AnyUser,
    store: Store,
    settings: Settings,
    notifier: Notifications,
    after_version: Annotated[int, Query(ge=0, description="Return once the version exceeds this")] = 0,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait at most")] = 30.0,
    final: Annotated[
        bool, Query(description="Return only once the study is in a final state (or at the timeout)")
    ] = False,
) -> StudyView:
    """Long poll: the study as soon as its ``version`` exceeds ``after_version`` (and, with ``final``, it
    has finished), else after ``timeout``."""
    sid = study_id_of(study_id)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    async with notifier.subscribe(sid) as subscription:
        while True:
            view = await anyio.to_thread.run_sync(_view, store, caller, study_id, sid)
            remaining = give_up - loop.time()
            changed = view.version > after_version and (not final or view.state.is_final)
            if changed or remaining <= 0 or notifier.closed:
                return view
            await subscription.wait(min(remaining, settings.poll_recheck_seconds))


@router.post("/signed", response_model=StudyView, status_code=201)
def submit_signed_study(signed: SignedSpec, caller: RequesterCaller, runner: Runner) -> StudyView:
    """Submit a study specification signed by the requester's key with its organisation's attestation.

    Every node verifies the signature and the attestation itself; the hub checks they are consistent
    and relays them with each task, so it cannot change what the requester asked for."""
    requester = Requester(caller.id, caller.organisation_id, caller.organisation_name)
    return runner.submit_signed(requester, signed)


@router.get("/{study_id}/secagg", response_model=list[SessionView])
def study_sessions(study_id: str, caller: AnyUser, store: Store, runner: Runner) -> list[SessionView]:
    """The transcripts of the study's finished secure-aggregation sessions (signed keys, masked inputs
    and unmask answers): ``phds study verify`` recomputes each round's network sum from them."""
    sid = study_id_of(study_id)
    _view(store, caller, study_id, sid)
    return runner.secure.transcripts(sid)


@router.get("/{study_id}/releases", response_model=list[ReleaseEnvelope])
def study_releases(study_id: str, caller: AnyUser, store: Store) -> list[ReleaseEnvelope]:
    """Every signed release of the study, by round: what ``phds study verify`` recomputes the result from."""
    sid = study_id_of(study_id)
    view = _view(store, caller, study_id, sid)  # the same visibility as the study itself
    analysis = get_analysis(view.spec.analysis.name, view.spec.analysis.version)
    if analysis.pseudonymises_hospitals and (view.result or {}).get("names_disclosed") is not True:
        # Each envelope names its node and carries its n and O: they would map every pseudonym back.
        raise DisclosureRefused(
            f"the releases of this {analysis.name} study are withheld: its result shows hospitals under "
            "pseudonyms, which the per-hospital releases would reveal"
        )
    with store.unit(read_only=True) as uow:
        return [ReleaseEnvelope.model_validate(e) for e in uow.results.envelopes(sid)]
