"""A node recomputes the last secure round's sum from its signed transcript before it acts on it.

The session runs for real (:class:`.conftest.Network`: keys, shares, masked inputs, unmask, through
JSON); the hub's side of the wire is the session view the hub serves (``phds.hub.secagg.view``), held
here by :class:`TranscriptHub`, which an attack test then alters as a compromised hub would. Attacks:
a hub that reports another sum, or edits a masked input, is caught before the next round, and the node
then refuses that round (:func:`~phds.node.secure_round.check_secure_task`).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from phds.analyses import get_analysis
from phds.analyses.context import DictMemory
from phds.errors import DisclosureRefused, SecAggError
from phds.node.secure_round import check_secure_task, verify_last_sum
from phds.protocol.tasks import Task
from phds.secagg import MaskedInput, SessionConfig
from phds.secagg.messages import round_session_id
from phds.secagg.protocol import sign
from phds.trust.keys import KeyPair

from .conftest import Network

STUDY = "0f5e0c1e-7a3b-4a57-9d3c-5b3b6f0c2a11"
NAMES = ["h1", "h2", "h3"]


class TranscriptHub:
    """What the hub serves of a done session: the participant's view, or the transcript on request."""

    def __init__(self, done: dict[str, Any]) -> None:
        self.done = done
        self.calls: list[dict[str, Any]] = []

    def secagg_session(
        self, study_id: str, round_no: int, *, after: int, wait: float, transcript: bool = False
    ) -> dict[str, Any]:
        self.calls.append({"round": round_no, "transcript": transcript})
        return copy.deepcopy(self.done)

    def secagg_post(self, study_id: str, round_no: int, stage: str, body: Any) -> Any:
        raise AssertionError("verifying posts nothing")


def _session() -> tuple[dict[str, Any], list[float]]:
    signing = {name: KeyPair.generate() for name in NAMES}
    config = SessionConfig(
        session_id=round_session_id(STUDY, 1), participants=NAMES, vector_length=4, scale=2**20, clip=10.0
    )
    net = Network(config, signing, {n: k.public_key for n, k in signing.items()})
    vectors = {n: np.array([1.5, -2.0, 0.25, i], dtype=float) for i, n in enumerate(NAMES)}
    result = net.run({n: config.encode(v) for n, v in vectors.items()})
    sums = [float(x) for x in config.decode(result.total)]
    done = {
        "session_id": config.session_id, "study_id": STUDY, "round": 1, "stage": 4, "error": None,
        "config": config.model_dump(mode="json"),
        "node_keys": {n: k.public_key_b64 for n, k in signing.items()},
        "keys": [m.model_dump(mode="json") for m in net.keys],
        "masked": [m.model_dump(mode="json") for m in net.masked],
        "unmasks": [m.model_dump(mode="json") for m in net.unmasks],
        "outcome": {"sums": sums, "contributors": list(result.contributors)},
    }  # fmt: skip
    return done, sums


def _next_task(hospital: str) -> Task:
    return Task.model_validate(
        {
            "id": "t-2", "study_id": STUDY, "study_title": "t", "study_purpose": "p",
            "service_type": "analytical_study", "requester": {"organisation": "acme", "category": "academic"},
            "hospital": hospital, "analysis": "system.noop", "analysis_version": "1",
            "params": {"vector_length": 4}, "round": 2, "attempt": 1,
            "lease_expires_at": datetime.now(UTC) + timedelta(minutes=5),
        }
    )  # fmt: skip


def _memory_after_round_one(done: dict[str, Any]) -> DictMemory:
    """A node's study memory as take_part leaves it: the session it took part in, not yet verified."""
    memory = DictMemory()
    memory.remember("secagg:1:state", {})
    pending = {"round": 1, "config": copy.deepcopy(done["config"]), "node_keys": dict(done["node_keys"])}
    memory.remember("secagg:pending", pending)
    return memory


def test_the_node_recomputes_the_sum_once_and_keeps_it_for_the_next_round() -> None:
    done, sums = _session()
    hub, memory, audited = TranscriptHub(done), _memory_after_round_one(done), []
    task = _next_task("h2")
    assert verify_last_sum(task, memory, hub, audited.append)
    assert hub.calls == [{"round": 1, "transcript": True}]
    last = memory.recall("secagg:last")
    assert last["round"] == 1 and last["sums"] == sums and last["contributors"] == NAMES
    assert np.allclose(sums, [4.5, -6.0, 0.75, 3.0], atol=3 * 2**-21)
    assert audited[-1]["stage"] == "summed" and audited[-1]["contributors"] == NAMES
    assert not verify_last_sum(task, memory, hub, audited.append)  # already verified
    assert len(hub.calls) == 1


def test_without_a_pending_sum_nothing_is_fetched() -> None:
    done, _ = _session()
    hub = TranscriptHub(done)
    assert not verify_last_sum(_next_task("h1"), DictMemory(), hub, lambda _: None)
    assert hub.calls == []


def _tamper_sum(done: dict[str, Any]) -> None:
    done["outcome"]["sums"][0] += 1.0


def _tamper_masked(done: dict[str, Any]) -> None:
    vector = done["masked"][0]["vector"]
    done["masked"][0]["vector"] = ("B" if vector[0] == "A" else "A") + vector[1:]


def _tamper_signer(done: dict[str, Any]) -> None:
    """A masked input re-signed by a key the hub holds, in place of h1's."""
    impostor = KeyPair.generate()
    forged = MaskedInput.model_validate(done["masked"][0])
    done["masked"][0] = sign(forged.model_copy(update={"signature": ""}), impostor).model_dump(mode="json")


def _tamper_scale(done: dict[str, Any]) -> None:
    done["config"]["scale"] = 2**10  # the same words decode to a sum 1,024 times larger


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_sum, "differs"),
        (_tamper_masked, "does not verify"),
        (_tamper_signer, "does not verify"),
        (_tamper_scale, "not of the session this node took part in"),
    ],
)
def test_attack_a_hub_that_alters_the_sum_is_caught_and_the_next_round_refused(
    tamper: Any, reason: str
) -> None:
    done, _ = _session()
    memory = _memory_after_round_one(done)
    tamper(done)
    task = _next_task("h1")
    with pytest.raises(SecAggError, match=reason):
        verify_last_sum(task, memory, TranscriptHub(done), lambda _: None)
    assert memory.recall("secagg:last") is None
    analysis = get_analysis("system.noop")
    with pytest.raises(DisclosureRefused, match="could not be verified"):
        check_secure_task(task, analysis, analysis.parse_params(task.params), tuple(NAMES), memory)


def test_attack_a_transcript_of_another_round_is_refused() -> None:
    done, _ = _session()
    memory = _memory_after_round_one(done)
    done["config"]["session_id"] = round_session_id(STUDY, 7)
    with pytest.raises(SecAggError, match="not of the session this node took part in"):
        verify_last_sum(_next_task("h1"), memory, TranscriptHub(done), lambda _: None)
