"""Secure aggregation over the hub: nodes post each stage's signed message and long-poll the session.

``POST /secagg/{study_id}/{round}/{stage}`` takes one node's message for a stage (``keys``, ``shares``,
``masked``, ``unmask``); posting the same message again is acknowledged, not stored twice.
``GET /secagg/{study_id}/{round}?after=N&wait=S`` answers once the session is past stage N (or after S
seconds): what the closed stages decided, the shares addressed to the caller, and, when the session is
done, who contributed; with ``transcript=true``, also every signed masked input and unmask answer and
the sum, from which a node recomputes the sum itself before it acts on it.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request

from phds.errors import NotFound
from phds.hub.auth import NodeCaller, Notifications, Runner, Settings
from phds.hub.runner import study_id_of
from phds.hub.secagg import STAGES
from phds.protocol.secagg import SessionView

router = APIRouter(tags=["secure aggregation"])

MAX_WAIT_SECONDS = 60.0


@router.post("/secagg/{study_id}/{round_no}/{stage}")
def post_stage(
    study_id: str, round_no: int, stage: str, caller: NodeCaller, runner: Runner, body: Annotated[Any, Body()]
) -> dict[str, bool]:
    """One node's signed message for one stage of the round's session."""
    if stage not in STAGES:
        raise NotFound(f"no stage {stage!r}; the stages are {', '.join(STAGES)}")
    fresh = runner.secure.post(caller.id, study_id_of(study_id), round_no, STAGES.index(stage), body)
    return {"accepted": True, "duplicate": not fresh}


@router.get("/secagg/{study_id}/{round_no}", response_model=SessionView)
async def get_session(
    request: Request,
    study_id: str,
    round_no: int,
    caller: NodeCaller,
    runner: Runner,
    settings: Settings,
    notifier: Notifications,
    after: Annotated[int, Query(ge=-1, le=5, description="Answer once the stage is past this")] = -1,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait")] = 0.0,
    transcript: Annotated[bool, Query(description="When done: the signed masked inputs and the sum")] = False,
) -> SessionView:
    """The session as the caller may see it, once it is past stage *after* (or *wait* seconds passed)."""
    sid = study_id_of(study_id)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    view = partial(runner.secure.view, caller.id, sid, round_no, transcript=transcript)
    async with notifier.subscribe(sid) as subscription:
        found = await anyio.to_thread.run_sync(view)  # also checks the caller takes part
        while True:
            remaining = give_up - loop.time()
            if found.stage > after or remaining <= 0 or notifier.closed:
                return found
            woken = await subscription.wait(min(remaining, settings.poll_recheck_seconds))
            if not woken and await request.is_disconnected():
                return found
            # Every post of the study wakes every waiter: re-read the stage alone, the view once it moved.
            if await anyio.to_thread.run_sync(runner.secure.stage, sid, round_no) > after:
                found = await anyio.to_thread.run_sync(view)
