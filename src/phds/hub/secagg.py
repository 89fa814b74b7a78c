"""The hub's side of secure aggregation: it relays the stages and computes only the network sum.

For a study with ``secure_aggregation: true``, every round whose analysis has a secure layout
(:meth:`~phds.analyses.base.Analysis.secure_layout`) is one session of Bonawitz et al. (2017) in the
stages of Flower's SecAgg+ (:mod:`phds.secagg`): 0 keys, 1 encrypted shares, 2 masked inputs, 3 unmask.
Nodes post their signed messages (verified here against each node's pinned key) and long-poll the
session for the next stage. A stage closes when every expected node has posted, or at its deadline
(``secagg_stage_seconds``) with those that did: a node that drops out is left behind, and the round
continues as long as at least the threshold t remain. Stage 3's close sums the masked inputs, removes
the masks from the survivors' shares, and hands the decoded sum to the analysis's
:meth:`~phds.analyses.base.Analysis.combine_secure` (:func:`phds.hub.runner_rounds.complete_secure_round`).

Every change happens in one transaction with the study row locked, like the rest of the runner.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from phds.errors import Conflict, InputError, NotFound, PermissionDenied, PhdsError, SignatureInvalid
from phds.hub.store import UnitOfWork
from phds.hub.store.secagg_models import STAGE_DONE, STAGE_FAILED, SecAggSessionRow
from phds.hub.store.study_models import StudyRow
from phds.protocol.secagg import SessionView
from phds.secagg import (
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    SessionConfig,
    UnmaskMessage,
    aggregate,
    collect_keys,
    collect_masked,
    route_shares,
    unmask_request,
)
from phds.secagg.messages import round_session_id
from phds.secagg.protocol import verify
from phds.trust.keys import PublicKey

log = logging.getLogger(__name__)

STAGES = ("keys", "shares", "masked", "unmask")


def _message(stage: int, body: Any) -> KeysMessage | MaskedInput | UnmaskMessage:
    if stage == 0:
        return KeysMessage.model_validate(body)
    if stage == 2:
        return MaskedInput.model_validate(body)
    return UnmaskMessage.model_validate(body)


def session_keys(uow: UnitOfWork, study: StudyRow | None, row: SecAggSessionRow) -> dict[str, PublicKey]:
    """The participants' node keys as the session recorded them when it opened (every message of the
    session is checked against these), or as pinned now for a session opened before they were kept."""
    kept = (row.request or {}).get("node_keys")
    if kept:
        return {name: PublicKey.from_b64(key) for name, key in kept.items()}
    if study is None:
        study = uow.studies.get(row.study_id)
        assert study is not None, "a session belongs to a study"
    return pinned_keys(uow, study, _config(row).participants)


def participant_of(row: SecAggSessionRow, node_id: str) -> str | None:
    """The hospital whose node *node_id* takes part in the session (None: none, or not recorded)."""
    ids = (row.request or {}).get("node_ids") or {}
    return next((hospital for hospital, node in ids.items() if node == node_id), None)


def pinned_keys(uow: UnitOfWork, study: StudyRow, names: list[str]) -> dict[str, PublicKey]:
    """The participants' node keys the hub pinned at enrolment."""
    keys: dict[str, PublicKey] = {}
    for target in study.targets:
        name = target.organisation.name
        if name in names:
            node = uow.nodes.get(target.node_id)
            key = node.public_key if node is not None else None
            if key is None:
                raise InputError(f"hospital {name}'s node has no pinned key", field="secure_aggregation")
            keys[name] = PublicKey.from_b64(str(key))
    return keys


def open_session(
    uow: UnitOfWork, study: StudyRow, participants: list[str], now: datetime, stage_seconds: float
) -> SessionConfig | None:
    """Open the round's session when the study asks for secure aggregation and the round has a layout."""
    if not study.spec.get("secure_aggregation"):
        return None
    from phds.analyses import get_analysis

    analysis = get_analysis(study.analysis, study.analysis_version)
    params = analysis.parse_params(study.spec["analysis"]["params"])
    layout = analysis.secure_layout(params, study.round, uow.studies.round_state(study))
    if layout is None:
        return None
    config = SessionConfig(
        session_id=round_session_id(study.id, study.round),
        participants=sorted(participants),
        vector_length=layout.length,
        scale=layout.scale,
        clip=layout.clip,
    )
    keys = {name: key.b64 for name, key in pinned_keys(uow, study, config.participants).items()}
    nodes = {t.organisation.name: str(t.node_id) for t in study.targets if t.organisation.name in keys}
    uow.secagg.add(
        SecAggSessionRow(
            study_id=study.id, round=study.round, config=config.model_dump(mode="json"), stage=0,
            stage_deadline=now + timedelta(seconds=stage_seconds), updated_at=now,
            request={"node_keys": keys, "node_ids": nodes},  # what every stage checks, kept once
        )
    )  # fmt: skip
    log.info(
        "study %s round %d: secure aggregation over %d hospitals", study.id, study.round, len(participants)
    )
    return config


def _config(row: SecAggSessionRow) -> SessionConfig:
    return SessionConfig.model_validate(row.config)


def _stored(uow: UnitOfWork, row: SecAggSessionRow, stage: int) -> list[Any]:
    out: list[Any] = []
    for m in uow.secagg.messages(row.study_id, row.round, stage):
        if stage == 1:
            out.extend(EncryptedShare.model_validate(s) for s in m.body)
        else:
            out.append(_message(stage, m.body))
    return out


def receive(
    uow: UnitOfWork, study: StudyRow, row: SecAggSessionRow, hospital: str, stage: int, body: Any
) -> bool:
    """Take one node's message for *stage*; False for a repeat of what it already posted."""
    config = _config(row)
    if hospital not in config.participants:
        raise PermissionDenied(f"hospital {hospital} takes no part in session {config.session_id}")
    if not 0 <= stage <= 3:
        raise NotFound(f"no stage {stage}")
    repeat = uow.secagg.messages(row.study_id, row.round, stage, sender=hospital)
    if repeat:
        if repeat[0].body == body:
            return False
        raise Conflict(f"{hospital} already posted a different {STAGES[stage]} message")
    if row.stage != stage:
        state = "failed" if row.stage == STAGE_FAILED else ("closed" if row.stage > stage else "not open yet")
        raise Conflict(f"the {STAGES[stage]} stage of session {config.session_id} is {state}")
    pinned = session_keys(uow, study, row)
    messages = _parse(stage, body)
    for message in messages:
        if message.sender != hospital:
            raise PermissionDenied(f"a message signed as {message.sender!r} cannot come from {hospital}")
        verify(message, config, {hospital: pinned[hospital]})
    uow.secagg.add_message(row.study_id, row.round, stage, hospital, body)
    return True


def _parse(stage: int, body: Any) -> list[Any]:
    try:
        if stage == 1:
            if not isinstance(body, list):
                raise InputError("stage 1 takes a list of encrypted shares", field="body")
            return [EncryptedShare.model_validate(s) for s in body]
        return [_message(stage, body)]
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(err["msg"], field=".".join(str(p) for p in err["loc"]) or "body") from None


def expected(uow: UnitOfWork, row: SecAggSessionRow) -> set[str]:
    """Who must still post for the open stage before it closes early."""
    config, sets = _config(row), row.request or {}
    wanted = {
        0: config.participants,
        1: sets.get("u1", []),
        2: sets.get("u2", []),
        3: sets.get("survivors", []),
    }
    return set(wanted.get(row.stage, [])) - uow.secagg.senders(row.study_id, row.round, row.stage)


def close_stage(
    uow: UnitOfWork, study: StudyRow, row: SecAggSessionRow, now: datetime, stage_seconds: float
) -> bool:
    """Close the open stage with the messages it has; True when the session is done (sum ready).

    A stage that leaves fewer than the threshold fails the session (``row.error`` says why)."""
    config = _config(row)
    pinned = session_keys(uow, study, row)
    sets = dict(row.request or {})
    try:
        keys = _stored(uow, row, 0)
        if row.stage == 0:
            sets["u1"] = list(collect_keys(config, pinned, keys))
        elif row.stage == 1:
            sets["u2"] = _share_senders(config, pinned, keys, _stored(uow, row, 1))
        elif row.stage == 2:
            masked = collect_masked(config, pinned, keys, _stored(uow, row, 2))
            sets["survivors"], sets["dropped"] = unmask_request(config, masked)
        else:
            result = aggregate(config, keys, _stored(uow, row, 2), _stored(uow, row, 3), verify_keys=pinned)
            row.outcome = {
                "sums": [float(v) for v in config.decode(result.total)],
                "contributors": list(result.contributors),
                "dropped_before_input": list(result.dropped_before_input),
                "dropped_after_input": list(result.dropped_after_input),
                "threshold": config.threshold,
                "participants": list(config.participants),
            }
    except (PhdsError, SignatureInvalid) as exc:
        row.stage, row.error, row.updated_at = (
            STAGE_FAILED,
            f"{STAGES[min(row.stage, 3)]}: {exc.message}",
            now,
        )
        log.warning("session %s failed: %s", config.session_id, row.error)
        return False
    row.request = sets
    row.stage += 1
    row.stage_deadline = now + timedelta(seconds=stage_seconds)
    row.updated_at = now
    return row.stage == STAGE_DONE


def _share_senders(
    config: SessionConfig, pinned: dict[str, PublicKey], keys: list[Any], shares: list[Any]
) -> list[str]:
    """U2: the senders whose shares reached every party of U1."""
    routed = route_shares(config, pinned, keys, shares)
    senders: set[str] = set()
    for received in routed.values():
        senders |= {s.sender for s in received}
    return config.ordered(list(senders))


def view(
    uow: UnitOfWork,
    study: StudyRow | None,
    row: SecAggSessionRow,
    hospital: str | None,
    *,
    transcript: bool = False,
) -> SessionView:
    """The session as *hospital* (None: anyone allowed to see the transcript) may see it.

    Once done, a participant sees who contributed; the *transcript* (every masked input and unmask
    answer, and the sum) only when it asks for it, which a node does before it acts on the sum
    (:func:`phds.node.secure_round.verify_last_sum`), so a last round costs no node N masked inputs."""
    config = _config(row)
    sets = row.request or {}
    pinned = session_keys(uow, study, row)
    out = SessionView(
        session_id=config.session_id, study_id=str(row.study_id), round=row.round, stage=row.stage,
        error=row.error, config=row.config, node_keys={n: k.b64 for n, k in pinned.items()},
    )  # fmt: skip
    if row.stage >= 1:
        u1 = set(sets.get("u1", []))
        out.keys = [m.body for m in uow.secagg.messages(row.study_id, row.round, 0) if m.sender in u1]
    if row.stage >= 2 and hospital is not None:
        u2 = set(sets.get("u2", []))
        out.shares = [s for m in uow.secagg.messages(row.study_id, row.round, 1) if m.sender in u2
                      for s in m.body if s.get("recipient") == hospital]  # fmt: skip
    if row.stage >= 3:
        out.survivors, out.dropped = list(sets.get("survivors", [])), list(sets.get("dropped", []))
    if row.stage == STAGE_DONE and (transcript or hospital is None):
        out.masked = [m.body for m in uow.secagg.messages(row.study_id, row.round, 2)]
        out.unmasks = [m.body for m in uow.secagg.messages(row.study_id, row.round, 3)]
        out.outcome = row.outcome
    elif row.stage == STAGE_DONE:
        out.outcome = {k: v for k, v in (row.outcome or {}).items() if k != "sums"}
    return out


__all__ = [
    "STAGES",
    "SessionView",
    "close_stage",
    "expected",
    "open_session",
    "receive",
    "view",
]
