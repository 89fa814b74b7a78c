"""Requesters sign what they ask and check what they get: study signing keys, and result verification.

:func:`verify_study` is ``phds study verify``: every release of a study must come in an envelope signed
by its node's pinned key; the releases of each round must have been computed at the round state the
previous round's releases produce; and the analysis's own ``combine``, run here on the signed payloads
alone, must give exactly the result the hub reports. A hub that alters a payload, a round state, the
set of answering hospitals or the result is caught; one that drops a hospital's release is caught when
the recomputed result differs (the attribution names who answered).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phds.analyses import Final, NextRound, get_analysis
from phds.analyses.base import released_budgets
from phds.errors import InputError, PhdsError, SignatureInvalid
from phds.protocol.canonical import canonical_hash
from phds.protocol.secagg import PROTOCOL
from phds.protocol.studies import StudyView
from phds.protocol.trust import OrganisationAttestation, ReleaseEnvelope
from phds.trust.envelopes import open_envelope
from phds.trust.keys import KeyPair

log = logging.getLogger(__name__)

KEY_ENV, ATTESTATION_ENV = "PHDS_REQUESTER_KEY", "PHDS_ATTESTATION"


def requester_signer(
    key: KeyPair | str | Path | None, attestation: OrganisationAttestation | str | Path | None
) -> tuple[KeyPair, OrganisationAttestation] | None:
    """The requester key and attestation to sign studies with: given, or from ``PHDS_REQUESTER_KEY`` and
    ``PHDS_ATTESTATION``; None when neither is set (studies are then submitted unsigned)."""
    key = key if key is not None else os.environ.get(KEY_ENV) or None
    attestation = attestation if attestation is not None else os.environ.get(ATTESTATION_ENV) or None
    if key is None and attestation is None:
        return None
    if key is None or attestation is None:
        missing = "key" if key is None else "attestation"
        raise InputError(f"signing needs both a requester key and an attestation; the {missing} is missing",
                         field=missing)  # fmt: skip
    pair = key if isinstance(key, KeyPair) else KeyPair.load(Path(key))
    if not isinstance(attestation, OrganisationAttestation):
        path = Path(attestation)
        try:
            attestation = OrganisationAttestation.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the attestation: {exc}", file=str(path)) from None
    return pair, attestation


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_study` checked."""

    study_id: str
    rounds: int
    releases: int
    hospitals: tuple[str, ...]
    secure_rounds: int = 0  # rounds whose network sum was recomputed from a signed session transcript

    def __str__(self) -> str:
        sums = (
            f" and {self.secure_rounds} secure sums recomputed from their transcripts"
            if self.secure_rounds
            else ""
        )
        return (
            f"study {self.study_id}: {self.releases} signed releases{sums} from {', '.join(self.hospitals)} "
            f"over {self.rounds} round(s) verified; the result recomputed from them equals the hub's"
        )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _secure_round(
    view: StudyView,
    analysis: Any,
    params: Any,
    round_no: int,
    state: Mapping[str, Any],
    session: Mapping[str, Any],
    pinned: Mapping[str, str],
) -> tuple[Final | NextRound, dict[str, Any]]:
    """A secure round from its transcript: the network sum recomputed from the nodes' signed messages,
    then the analysis's ``combine_secure``; and the round's attribution as the result must state it."""
    from phds.secagg import KeysMessage, MaskedInput, SessionConfig, UnmaskMessage, aggregate
    from phds.secagg.messages import round_session_id
    from phds.trust.keys import PublicKey

    config = SessionConfig.model_validate(session["config"])
    layout = analysis.secure_layout(params, round_no, state)
    if config.session_id != round_session_id(view.id, round_no) or layout is None or (
        config.vector_length, config.scale, config.clip) != (layout.length, layout.scale, layout.clip
    ) or not set(config.participants) <= set(view.spec.hospitals):  # fmt: skip
        raise SignatureInvalid(f"round {round_no}'s secure-aggregation session is not this study's")
    keys = {name: PublicKey.from_b64(pinned[name]) for name in config.participants if name in pinned}
    try:
        result = aggregate(
            config, [KeysMessage.model_validate(m) for m in session["keys"]],
            [MaskedInput.model_validate(m) for m in session["masked"]],
            [UnmaskMessage.model_validate(m) for m in session["unmasks"]], verify_keys=keys,
        )  # fmt: skip
    except PhdsError as exc:
        raise SignatureInvalid(f"round {round_no}'s secure sum does not verify: {exc.message}") from None
    sums = layout.unflatten(config.decode(result.total))
    outcome = analysis.combine_secure(params, round_no, state, sums, list(result.contributors))
    attribution = {
        "round": round_no,
        "contributors": list(result.contributors),
        "dropped_before_input": list(result.dropped_before_input),
        "dropped_after_input": list(result.dropped_after_input),
        "threshold": config.threshold,
    }
    return outcome, attribution


def verify_study(
    view: StudyView,
    envelopes: Sequence[ReleaseEnvelope],
    pinned: Mapping[str, str],
    sessions: Sequence[Mapping[str, Any]] = (),
) -> Verification:
    """Verify *view*'s result from its signed *envelopes* and, for secure rounds, the transcripts of its
    *sessions*, with the *pinned* node keys (module docstring)."""
    if view.result is None:
        raise InputError(f"study {view.id} has no result to verify", field="study_id")
    spec = view.spec.analysis
    analysis = get_analysis(spec.name, spec.version)
    params = analysis.parse_params(spec.params)
    by_round: dict[int, dict[str, ReleaseEnvelope]] = {}
    for env in envelopes:
        open_envelope(env, pinned)
        if env.study_id != view.id or env.analysis != analysis.name:
            raise SignatureInvalid(f"a release signed by {env.hospital} belongs to another study or analysis")
        if env.hospital in by_round.setdefault(env.round, {}):
            raise SignatureInvalid(f"{env.hospital} has two releases in round {env.round}")
        by_round[env.round][env.hospital] = env
    secure = {int(str(m["round"])): m for m in sessions}
    secure_rounds: list[dict[str, Any]] = []
    state: Mapping[str, Any] = {}
    round_no = 1
    answers: dict[str, ReleaseEnvelope] = {}
    while True:
        if round_no in secure:
            outcome, attribution = _secure_round(
                view, analysis, params, round_no, state, secure[round_no], pinned
            )
            secure_rounds.append(attribution)
            answers = {}
            if isinstance(outcome, Final):
                break
            state, round_no = outcome.state, round_no + 1
            continue
        answers = by_round.get(round_no, {})
        if not answers:
            raise SignatureInvalid(f"round {round_no} has no signed release, but the study went on")
        expected = canonical_hash(dict(state))
        for hospital, env in sorted(answers.items()):
            if env.state_hash != expected:
                raise SignatureInvalid(
                    f"{hospital} answered round {round_no} at a state other than the one the signed releases "
                    "of the rounds before produce: the hub changed it"
                )
        outcome = analysis.combine(
            params, round_no, state, {h: e.payload for h, e in sorted(answers.items())}
        )
        if isinstance(outcome, Final):
            break
        assert isinstance(outcome, NextRound)
        state, round_no = outcome.state, round_no + 1
    if any(r > round_no for r in by_round) or any(r > round_no for r in secure):
        raise SignatureInvalid(f"releases after the final round {round_no}")
    reported = {k: v for k, v in view.result.items() if k != "attribution"}
    recomputed = {**outcome.result, "notes": list(outcome.notes)}
    if secure_rounds:
        recomputed["secure_aggregation"] = {"rounds": secure_rounds, "protocol": PROTOCOL}
    budgets = released_budgets({h: e.payload for h, e in answers.items()})
    if budgets:
        recomputed["dp_budget"] = budgets
    if _plain(reported) != _plain(recomputed):
        raise SignatureInvalid("the hub's result differs from the one recomputed from the signed releases")
    hospitals = tuple(sorted({e.hospital for e in envelopes}))
    log.info("study %s verified: %d releases, %d rounds", view.id, len(envelopes), round_no)
    return Verification(view.id, round_no, len(envelopes), hospitals, len(secure_rounds))


__all__ = ["ATTESTATION_ENV", "KEY_ENV", "Verification", "requester_signer", "verify_study"]
