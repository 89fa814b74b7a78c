"""Nodes pull tasks (``GET /nodes/me/tasks``, a long poll) and answer them (``POST /tasks/{id}/result``).

A node sees and answers only its own hospital's tasks: any other task id answers 404.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from phds.hub.auth import NodeCaller, Notifications, Runner, Settings
from phds.protocol.tasks import Task, TaskIds, TaskResult, TaskStates

router = APIRouter(tags=["tasks"])

MAX_WAIT_SECONDS = 60.0


class ResultAck(BaseModel):
    """The hub's answer to a posted result."""

    accepted: bool
    duplicate: bool
    cancelled: bool = False


@router.get("/nodes/me/tasks", response_model=list[Task])
async def my_tasks(
    request: Request,
    caller: NodeCaller,
    runner: Runner,
    settings: Settings,
    notifier: Notifications,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for work")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=100, description="Most tasks to lease at once")] = 10,
) -> list[Task]:
    """Lease the node's queued tasks; with none queued, wait up to ``wait`` seconds for one."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    async with notifier.subscribe(caller.id) as subscription:
        while True:
            tasks = await anyio.to_thread.run_sync(runner.lease, caller.id, limit)
            remaining = give_up - loop.time()
            if tasks or remaining <= 0 or notifier.closed:
                return tasks
            woken = await subscription.wait(min(remaining, settings.poll_recheck_seconds))
            if not woken and await request.is_disconnected():
                return []


@router.post("/tasks/{task_id}/result", response_model=ResultAck)
def post_result(task_id: str, result: TaskResult, caller: NodeCaller, runner: Runner) -> ResultAck:
    """A node's answer to one of its tasks; a second answer to the same task is acknowledged, not stored."""
    ack = runner.post_result(caller.id, task_id, result)
    return ResultAck(accepted=ack.accepted, duplicate=ack.duplicate, cancelled=ack.cancelled)


@router.post("/nodes/me/tasks/states", response_model=TaskStates)
def my_task_states(body: TaskIds, caller: NodeCaller, runner: Runner) -> TaskStates:
    """The hub's state of some of the node's own tasks (another node's ids are left out): a node asks
    before running a task it parked for its steward, and skips one whose study was cancelled."""
    return TaskStates(states=runner.task_states(caller.id, body.task_ids))
