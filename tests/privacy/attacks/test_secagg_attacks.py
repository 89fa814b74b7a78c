"""Family 10: a malicious hub against secure aggregation (in-process nodes, the real protocol and gate).

The hub relays every message of the protocol and sends each round's state. These attacks try to make a
node release outside the protocol, into a session it should not trust, or at a state the hub chose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attack_kit import cnsim_path

from phds.analyses.testing import Federation, everything_auto
from phds.protocol.tasks import Task

GLM = {"table": {"dataset": "cnsim"}, "formula": "DIS_DIAB ~ GENDER + LAB_HDL", "family": "binomial"}


def _fed(tmp_path: Path) -> Federation:
    tables = {f"site{i}": {"cnsim": cnsim_path(i)} for i in (1, 2, 3)}
    return Federation(tables, policy=everything_auto(), folder=tmp_path, signed=True)


def test_hub_cannot_choose_beta(tmp_path: Path) -> None:
    """From the second secure round on, site1 gets a β the hub moved: site1 recomputed the last network
    sum itself and refuses a state that does not follow from it; the others answer."""

    def move_beta(task: Task) -> Task | None:
        if task.hospital == "site1" and task.round == 3 and task.state.get("beta"):
            state = dict(task.state)
            state["beta"] = [b + 0.25 for b in state["beta"]]
            return task.model_copy(update={"state": state})
        return None

    with _fed(tmp_path) as fed:
        run = fed.run("stats.glm", GLM, secure_aggregation=True, tamper=move_beta)
    assert "does not follow from the last network sum" in run.refused["site1"], run.refused


def test_hub_cannot_send_a_secure_round_in_the_clear(tmp_path: Path) -> None:
    """The hub strips the session from a secure round: the node would release its XᵀWX to the hub."""

    def strip(task: Task) -> Task | None:
        return task.model_copy(update={"secagg": None}) if task.secagg is not None else None

    with _fed(tmp_path) as fed:
        run = fed.run("stats.glm", GLM, secure_aggregation=True, tamper=strip)
    assert run.result is None
    assert all("without a session" in why for why in run.refused.values()), run.refused


def test_hub_cannot_drop_the_secure_option(tmp_path: Path) -> None:
    """The hub clears the task's secure_aggregation flag: the node reads the signed one."""

    def clear(task: Task) -> Task | None:
        return task.model_copy(update={"secure_aggregation": False, "secagg": None})

    with _fed(tmp_path) as fed:
        run = fed.run("stats.glm", GLM, secure_aggregation=True, tamper=clear)
    assert run.result is None and all("without a session" in r for r in run.refused.values()), run.refused


def test_hub_cannot_invent_participants(tmp_path: Path) -> None:
    """A session with a participant that is no hospital of the signed study (a hub-run Sybil, whose
    secrets the hub would know) is refused before anything is computed."""

    def sybil(task: Task) -> Task | None:
        if task.secagg is None:
            return None
        config: Any = task.secagg.model_copy(
            update={"participants": [*task.secagg.participants, "hub-sybil"]}
        )
        return task.model_copy(update={"secagg": config})

    with _fed(tmp_path) as fed:
        run = fed.run("stats.glm", GLM, secure_aggregation=True, tamper=sybil)
    assert all("not hospitals of the signed study" in r for r in run.refused.values()), run.refused


def test_policy_can_require_secure_aggregation(tmp_path: Path) -> None:
    """A hospital requires secure aggregation for GLMs of industry requesters: the plain study is declined,
    saying why; the secure one runs; an academic's plain GLM still runs."""
    from phds.node.policy import StudyMatch

    policy = everything_auto().model_copy(
        update={
            "secure_aggregation": [
                StudyMatch(name="industry GLMs", analyses=["stats.glm"], categories=["industry"])
            ]
        }
    )
    tables = {f"site{i}": {"cnsim": cnsim_path(i)} for i in (1, 2, 3)}
    with Federation(tables, policy=policy, folder=tmp_path, signed=True) as fed:
        plain = fed.run("stats.glm", GLM, requester="pharma", category="industry")
        secure = fed.run("stats.glm", GLM, requester="pharma", category="industry", secure_aggregation=True)
        academic = fed.run("stats.glm", GLM, requester="uni", category="academic")
    assert plain.result is None
    assert all("only under secure aggregation" in why for why in plain.refused.values()), plain.refused
    assert secure.result is not None and academic.result is not None
