"""The node's side of a secure round: check the session, contribute a masked vector, verify the state.

For a study with ``secure_aggregation: true`` (part of what the requester signed), the node

1. checks the round's session before it computes (:func:`check_secure_task`): the session id is this
   study's round, the participants are hospitals of the signed study and include this one, the vector
   length, encoding and threshold are what the analysis's layout says — and, from the second secure
   round on, that the round state the hub sent is exactly what the analysis's ``combine_secure``
   makes of the last network sum, which this node recomputed itself from the signed transcript. A hub
   therefore cannot choose a GLM's β, nor send a secure study's round in the clear;
2. releases through the gate as always (the ``value_released`` audit entry holds the plaintext, which
   never leaves), and turns the release into the layout's vector in the same transaction
   (:func:`secure_contribution`); the task's stored answer is a receipt without data;
3. takes part in the session over the hub (:func:`take_part`): keys, shares, masked input, unmask, each
   audited (``secagg`` entries: the masked vector's hash, which shares it revealed, who contributed);
4. before it acts on a network sum, i.e. before the next round of the study, fetches the session's
   signed transcript and recomputes the sum itself (:func:`verify_last_sum`). Only then: a study's last
   sum changes no node's state (the requester verifies it, ``phds study verify``), so a one-round secure
   sum costs each node its masked input and nothing more on the wire, not the N masked inputs of all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from phds.analyses import NextRound
from phds.analyses.base import Analysis
from phds.errors import DisclosureRefused, PhdsError, SecAggError
from phds.protocol.canonical import canonical_hash
from phds.protocol.tasks import Task
from phds.secagg import (
    EncryptedShare,
    KeysMessage,
    Participant,
    SessionConfig,
    aggregate,
    collect_masked,
    default_threshold,
    unmask_request,
)
from phds.secagg.messages import MaskedInput, UnmaskMessage, round_session_id
from phds.trust.keys import KeyPair, PublicKey

log = logging.getLogger(__name__)

STAGE_DONE, STAGE_FAILED = 4, 5
FAULT_EXIT_AFTER = "PHDS_FAULT_SECAGG_EXIT_AFTER"
"""Fault injection for the dropout tests: the node process kills itself (SIGKILL) right after it
posted this stage (``start`` — before anything; ``keys``, ``shares``, ``masked``, ``unmask``)."""


def _fault_point(stage: str) -> None:
    if os.environ.get(FAULT_EXIT_AFTER) == stage:
        log.warning("fault injection: the node dies after the %s stage", stage)
        os.kill(os.getpid(), signal.SIGKILL)


SESSION_PATIENCE_SECONDS = 15 * 60.0  # the longest a node waits for one secure round's session


class Memory(Protocol):
    def recall(self, key: str, default: Any = None) -> Any: ...

    def remember(self, key: str, value: Any) -> None: ...


def check_secure_task(
    task: Task, analysis: Analysis[Any], params: Any, hospitals: tuple[str, ...], memory: Memory
) -> None:
    """Refuse a secure study's task whose session or state the node cannot accept (module docstring)."""
    last = memory.recall("secagg:last")
    pending = memory.recall("secagg:pending")
    verified = last is not None and int(last["round"]) == task.round - 1
    if pending is not None and int(pending["round"]) == task.round - 1 and not verified:
        raise DisclosureRefused("the last network sum could not be verified from its signed transcript")
    layout = analysis.secure_layout(params, task.round, task.state)
    config = task.secagg
    if config is None:
        if layout is not None:
            raise DisclosureRefused(
                "the study asks for secure aggregation, but this round came without a session"
            )
        return
    if layout is None:
        raise DisclosureRefused("this round of the analysis is released in the clear, not securely")
    problems = []
    if config.session_id != round_session_id(task.study_id, task.round):
        problems.append("the session is not this study's round")
    # An unsigned study (development only) names no hospitals the node could check the session against.
    known = set(hospitals) if task.signed_spec is not None else set(config.participants)
    if task.hospital not in config.participants or not set(config.participants) <= known:
        problems.append("the participants are not hospitals of the signed study")
    if (config.vector_length, config.scale, config.clip) != (layout.length, layout.scale, layout.clip):
        problems.append("the vector or its encoding is not the analysis's")
    if config.threshold < default_threshold(len(config.participants)):
        problems.append("the threshold is below a majority of the participants")
    if problems:
        raise DisclosureRefused(f"secure aggregation session refused: {'; '.join(problems)}")
    if last is not None and int(last["round"]) == task.round - 1:
        before = analysis.secure_layout(params, int(last["round"]), last["state"])
        assert before is not None
        expected = analysis.combine_secure(
            params,
            int(last["round"]),
            last["state"],
            before.unflatten(last["sums"]),
            list(last["contributors"]),
        )
        if not isinstance(expected, NextRound) or canonical_hash(expected.state) != canonical_hash(
            task.state
        ):
            raise DisclosureRefused("the round state the hub sent does not follow from the last network sum")


def secure_contribution(
    task: Task, analysis: Analysis[Any], params: Any, payload: Mapping[str, Any], memory: Memory
) -> dict[str, Any]:
    """The release as the layout's vector, kept at the node; the receipt that replaces the payload."""
    layout = analysis.secure_layout(params, task.round, task.state)
    assert layout is not None and task.secagg is not None
    vector = layout.flatten(analysis.secure_summands(params, task.round, task.state, payload))
    memory.remember(f"secagg:{task.round}:vector", vector)
    memory.remember(f"secagg:{task.round}:state", dict(task.state))
    return {"secure_aggregation": {"session_id": task.secagg.session_id, "length": layout.length}}


class SessionClient(Protocol):
    """What :func:`take_part` needs of the hub client."""

    def secagg_post(self, study_id: str, round_no: int, stage: str, body: Any) -> Any: ...

    def secagg_session(
        self, study_id: str, round_no: int, *, after: int, wait: float, transcript: bool = False
    ) -> dict[str, Any]: ...


def take_part(
    task: Task,
    key: KeyPair,
    memory: Memory,
    client: SessionClient,
    audit: Callable[[dict[str, Any]], None],
    *,
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Run the four stages for *task*'s session; returns the session's outcome (the network sum)."""
    config = task.secagg
    assert config is not None
    vector = memory.recall(f"secagg:{task.round}:vector")
    if vector is None:
        raise SecAggError("this node holds no contribution for the round (was it released?)")
    sid, r = task.study_id, task.round

    def wait_past(stage: int) -> dict[str, Any]:
        give_up = time.monotonic() + SESSION_PATIENCE_SECONDS
        while not stop() and time.monotonic() < give_up:
            seen = client.secagg_session(sid, r, after=stage, wait=20.0)
            if int(seen["stage"]) == STAGE_FAILED:
                raise SecAggError(f"the session failed: {seen.get('error')}")
            if int(seen["stage"]) > stage:
                return seen
        raise SecAggError("the session did not move on in time")

    _fault_point("start")
    first = client.secagg_session(sid, r, after=-1, wait=0)
    pinned = {name: PublicKey.from_b64(k) for name, k in first["node_keys"].items()}
    if pinned.get(task.hospital) is None or pinned[task.hospital].b64 != key.public_key_b64:
        raise SecAggError("the hub does not list this node's own key for the session")
    me = Participant(config, task.hospital, key, pinned)
    client.secagg_post(sid, r, "keys", me.advertise().model_dump(mode="json"))
    _fault_point("keys")
    seen = wait_past(0)
    keys = {m["sender"]: KeysMessage.model_validate(m) for m in seen["keys"]}
    shares = me.share_keys(keys)
    client.secagg_post(sid, r, "shares", [s.model_dump(mode="json") for s in shares])
    _fault_point("shares")
    seen = wait_past(1)
    mine = [EncryptedShare.model_validate(s) for s in seen["shares"]]
    masked = me.masked_input(config.encode(np.asarray(vector, dtype=float)), mine)
    body = masked.model_dump(mode="json")
    digest = hashlib.sha256(masked.vector.encode()).hexdigest()
    audit({"stage": "masked", "session_id": config.session_id, "masked_sha256": digest,
           "share_senders": masked.share_senders})  # fmt: skip
    client.secagg_post(sid, r, "masked", body)
    _fault_point("masked")
    seen = wait_past(2)
    answer = me.unmask(seen["survivors"], seen["dropped"])
    audit({"stage": "unmask", "session_id": config.session_id, "revealed_self_masks_of": seen["survivors"],
           "revealed_mask_keys_of": seen["dropped"]})  # fmt: skip
    client.secagg_post(sid, r, "unmask", answer.model_dump(mode="json"))
    _fault_point("unmask")
    done = wait_past(3)
    if int(done["stage"]) != STAGE_DONE or done.get("outcome") is None:
        raise SecAggError("the session ended without a sum")
    outcome = dict(done["outcome"])
    # What the sum is verified against later: this session's configuration and keys, as the node took part.
    pending = {"round": r, "config": config.model_dump(mode="json"), "node_keys": first["node_keys"]}
    memory.remember("secagg:pending", pending)
    audit({"stage": "done", "session_id": config.session_id, "contributors": outcome.get("contributors"),
           "verified": False})  # fmt: skip
    return outcome


def verify_last_sum(
    task: Task, memory: Memory, client: SessionClient, audit: Callable[[dict[str, Any]], None]
) -> bool:
    """Before round r of a secure study: recompute round r − 1's sum from its signed transcript (once).

    Returns True when a sum was verified now. A transcript that does not verify raises
    :class:`~phds.errors.SecAggError`; :func:`check_secure_task` then refuses the round."""
    pending = memory.recall("secagg:pending")
    last = memory.recall("secagg:last")
    previous = task.round - 1
    if pending is None or int(pending["round"]) != previous:
        return False
    if last is not None and int(last["round"]) == previous:
        return False
    done = client.secagg_session(task.study_id, previous, after=3, wait=0, transcript=True)
    if int(done["stage"]) != STAGE_DONE or done.get("outcome") is None:
        raise SecAggError("the last session ended without a sum")
    config = SessionConfig.model_validate(pending["config"])  # the session as this node took part in it
    if done.get("config") != pending["config"] or config.session_id != round_session_id(
        task.study_id, previous
    ):
        raise SecAggError("the transcript is not of the session this node took part in")
    pinned = {name: PublicKey.from_b64(k) for name, k in pending["node_keys"].items()}
    _verify_outcome(config, pinned, done, memory, audit, previous)
    return True


def _verify_outcome(
    config: SessionConfig,
    pinned: dict[str, PublicKey],
    done: dict[str, Any],
    memory: Memory,
    audit: Callable[[dict[str, Any]], None],
    round_no: int,
) -> None:
    """Recompute round *round_no*'s sum from its signed transcript; keep it to check the next round."""
    keys = [KeysMessage.model_validate(m) for m in done["keys"]]
    masked = [MaskedInput.model_validate(m) for m in done["masked"]]
    unmasks = [UnmaskMessage.model_validate(m) for m in done["unmasks"]]
    try:
        result = aggregate(config, keys, masked, unmasks, verify_keys=pinned)
    except PhdsError as exc:
        raise SecAggError(f"the session's transcript does not verify: {exc.message}") from None
    sums = [float(v) for v in config.decode(result.total)]
    outcome = done["outcome"]
    if sums != [float(v) for v in outcome["sums"]] or list(result.contributors) != list(
        outcome["contributors"]
    ):
        raise SecAggError("the hub's network sum differs from the sum of the signed masked inputs")
    remember_sum(memory, round_no, sums, list(result.contributors))
    audit({"stage": "summed", "session_id": config.session_id, "contributors": list(result.contributors),
           "dropped_before_input": list(result.dropped_before_input),
           "sums_sha256": canonical_hash(sums)})  # fmt: skip


def remember_sum(memory: Memory, round_no: int, sums: list[float], contributors: list[str]) -> None:
    """Keep a round's network sum (recomputed by this node) to check the next round's state against."""
    state = memory.recall(f"secagg:{round_no}:state", {})
    memory.remember(
        "secagg:last", {"round": round_no, "state": state, "sums": sums, "contributors": contributors}
    )
    memory.remember(f"secagg:{round_no}:vector", None)  # the contribution is spent; forget it


def sum_in_process(
    config: SessionConfig, parties: Mapping[str, tuple[KeyPair, Memory]], round_no: int
) -> tuple[list[float], list[str]]:
    """Run one session's four stages among in-process nodes (the in-process federation's hub): the
    real protocol and encoding, without HTTP. Each party's vector is the one its gate stored."""
    pinned = {name: PublicKey.from_b64(key.public_key_b64) for name, (key, _) in parties.items()}
    people = {name: Participant(config, name, key, pinned) for name, (key, _) in parties.items()}
    keys = {name: p.advertise() for name, p in people.items()}
    shares = [share for p in people.values() for share in p.share_keys(keys)]
    masked = []
    for name, p in people.items():
        vector = parties[name][1].recall(f"secagg:{round_no}:vector")
        mine = [s for s in shares if s.recipient == name]
        masked.append(p.masked_input(config.encode(np.asarray(vector, dtype=float)), mine))
    survivors, dropped = unmask_request(config, collect_masked(config, pinned, list(keys.values()), masked))
    unmasks = [people[name].unmask(survivors, dropped) for name in survivors]
    result = aggregate(config, list(keys.values()), masked, unmasks, verify_keys=pinned)
    sums = [float(v) for v in config.decode(result.total)]
    for _, memory in parties.values():
        remember_sum(memory, round_no, sums, list(result.contributors))
    return sums, list(result.contributors)


__all__ = [
    "check_secure_task",
    "remember_sum",
    "secure_contribution",
    "sum_in_process",
    "take_part",
    "verify_last_sum",
]
