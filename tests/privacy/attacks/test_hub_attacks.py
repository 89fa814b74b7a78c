"""Family 6: a malicious hub (signed studies + the tamper harness rewriting each task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from attack_kit import (
    TARGET_TSC,
    attempt,
    cnsim_path,
    exact,
    federation,
    load_csv,
    make_site,
    planted_frame,
    recovers,
)

from phds.analyses.testing import FederationRun
from phds.node.executor import execute_task
from phds.node.policy import Policy, PolicyRule
from phds.protocol.tasks import ResultStatus, Task
from phds.trust import sign_spec

TABLE = {"dataset": "cnsim"}
BUMP = "LAB_TSC ~ I(np.exp(-1e6 * (LAB_HDL - 9.87) ** 2))"
MEAN = {"dataset": "cnsim", "variable": "LAB_TSC"}


def swap(task: Task, **update: Any) -> Task:
    return task.model_copy(update=update)


def released_anything(run: FederationRun) -> bool:
    return any(run.releases.get(h) for h in run.releases)


def manual_glm_policy() -> Policy:
    return Policy(rules=[PolicyRule(name="glm", analyses=["stats.glm"], approval="manual"),
                         PolicyRule(name="rest", analyses=["*"], approval="auto")])  # fmt: skip


def test_swap_params_after_approval_unsigned(tmp_path: Path, planted: Any) -> None:
    """Steward approves a routine GLM; the hub re-sends the parked task with the bump formula (same study)."""
    parked: list[Task] = []
    with federation(tmp_path, {"site1": planted}, policy=manual_glm_policy()) as fed:
        run = fed.run("stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ GENDER"},
                      tamper=lambda t: parked.append(t) or t)  # fmt: skip
        assert run.result is None
        runtime = fed.runtimes["site1"]
        runtime.approvals.approve(parked[0].study_id, steward="s")
        evil = swap(parked[0], id="evil-1", params={"table": TABLE, "formula": BUMP})
        answer = execute_task(evil, runtime, resumed=True)
    assert answer.status is not ResultStatus.OK, answer.payload


def test_swap_analysis_after_approval_signed(tmp_path: Path, planted: Any) -> None:
    """Signed study of stats.glm, approved; the hub swaps in stats.mean_variance with new params."""
    parked: list[Task] = []
    with federation(tmp_path, {"site1": planted}, policy=manual_glm_policy(), signed=True) as fed:
        fed.run(
            "stats.glm",
            {"table": TABLE, "formula": "LAB_TSC ~ GENDER"},
            tamper=lambda t: parked.append(t) or t,
        )
        runtime = fed.runtimes["site1"]
        runtime.approvals.approve(parked[0].study_id, steward="s")
        evil = swap(parked[0], id="evil-2", analysis="stats.mean_variance", params=MEAN)
        answer = execute_task(evil, runtime, resumed=True)
    assert answer.status is not ResultStatus.OK, answer.payload


def test_swap_params_signed_study(tmp_path: Path, planted: Any) -> None:
    """Signed study; the hub rewrites the params of every task to the bump formula."""
    with federation(tmp_path, {"site1": planted}, signed=True) as fed:
        run = fed.run("stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ GENDER"},
                      tamper=lambda t: swap(t, params={"table": TABLE, "formula": BUMP}))  # fmt: skip
    assert not released_anything(run), run.releases


def test_category_upgrade_signed(tmp_path: Path, planted: Any) -> None:
    """Policy denies industry; the hub relabels an industry requester as academic."""
    deny = PolicyRule(name="no-industry", effect="deny", analyses=["*"], categories=["industry"])
    policy = Policy(rules=[deny,
                           PolicyRule(name="rest", analyses=["*"], approval="auto")])  # fmt: skip
    with federation(tmp_path, {"site1": planted}, policy=policy, signed=True) as fed:

        def relabel(t: Task) -> Task:
            return swap(t, requester=t.requester.model_copy(update={"category": "academic"}))

        run = fed.run("stats.mean_variance", MEAN, requester="pharma", category="industry", tamper=relabel)
    assert not released_anything(run), run.releases


def test_forged_spec_params(tmp_path: Path, planted: Any) -> None:
    """The hub edits the signed spec's params (and the task's) to the bump formula, keeping the signature."""
    evil = {"table": TABLE, "formula": BUMP}
    with federation(tmp_path, {"site1": planted}, signed=True) as fed:

        def forge(t: Task) -> Task:
            spec = dict(t.signed_spec.spec)
            spec["analysis"] = {**spec["analysis"], "params": evil}
            return swap(t, params=evil, signed_spec=t.signed_spec.model_copy(update={"spec": spec}))

        run = fed.run("stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ GENDER"}, tamper=forge)
    assert not released_anything(run), run.releases


def test_stripped_spec(tmp_path: Path, planted: Any) -> None:
    """The hub strips the signature and sends different params unsigned."""
    with federation(tmp_path, {"site1": planted}, signed=True) as fed:
        run = fed.run("stats.mean_variance", MEAN, tamper=lambda t: swap(t, signed_spec=None, params=MEAN | {
            "variable": "LAB_HDL"}))  # fmt: skip
    assert not released_anything(run), run.releases


def test_hospital_outside_signed_study(tmp_path: Path, planted: Any) -> None:
    """The requester signed a study for site1 only; the hub also sends it to site2."""
    with federation(tmp_path, {"site1": planted, "site2": cnsim_path(2)}, signed=True) as fed:
        assert fed.trust is not None

        def narrow(t: Task) -> Task:
            attested = fed.trust.requester(t.requester.organisation, t.requester.category)  # type: ignore[union-attr]
            spec = {**t.signed_spec.spec, "hospitals": ["site1"]}  # type: ignore[union-attr]
            return swap(t, signed_spec=sign_spec(spec, attested.key, attested.attestation))

        run = fed.run("stats.mean_variance", MEAN, tamper=narrow)
    assert not run.releases.get("site2"), run.releases["site2"]


def _beta_site(tmp_path: Path) -> tuple[Any, float]:
    frame = (
        load_csv(cnsim_path(1))
        .dropna(subset=["LAB_TSC", "LAB_HDL", "DIS_DIAB"])
        .head(300)
        .reset_index(drop=True)
    )
    top = frame["LAB_TSC"].idxmax()
    frame.loc[top, "LAB_TSC"] = frame["LAB_TSC"].max() + 0.5  # a clear maximum, not an outlier in HDL
    return make_site(tmp_path, frame, "beta.csv"), float(frame.loc[top, "LAB_HDL"])


def test_hub_chosen_beta_concentrates_weight(tmp_path: Path) -> None:
    """Binomial DIS_DIAB ~ LAB_TSC + LAB_HDL; the hub sets β so that η = c (TSC − max TSC): only the patient
    with the largest TSC keeps IRLS weight, and XᵀWX[0, 2] / XᵀWX[0, 0] of the released QR factor is that
    patient's HDL."""
    site, truth = _beta_site(tmp_path)
    tsc_max = float(site.frame["LAB_TSC"].max())
    c = 60.0

    def set_beta(t: Task) -> Task:
        if t.state.get("phase") == "irls":
            return swap(t, state={**t.state, "beta": [-c * tsc_max, c, 0.0]})
        return t

    with federation(tmp_path, {"site1": site}, signed=True) as fed:
        params = {"table": TABLE, "formula": "DIS_DIAB ~ LAB_TSC + LAB_HDL", "family": "binomial"}
        run = fed.run("stats.glm", params,
                      tamper=set_beta)  # fmt: skip
    estimates = []
    for p in run.releases.get("site1", []):
        r = p.get("values", {}).get("glm", {}).get("values", {}).get("main/r")
        if r is not None:
            r11 = np.asarray(r, dtype=float)[:, :3]
            g = r11.T @ r11
            estimates.append(g[0, 2] / g[0, 0])
    assert not any(recovers(e, truth, 1e-4) for e in estimates), (estimates, truth)
    # The design round was released; the round at the hub's β was refused by the admissibility check.
    assert run.releases["site1"] and "proposed coefficients" in run.refused["site1"], run.refused


def test_hub_chosen_beta_cox(tmp_path: Path) -> None:
    """Stratified Cox on rossi; the hub sets β = 50 on prio so risk sets are dominated by the top-prio person;
    the node must not answer at an extreme hub β (|η| far beyond any fit)."""
    from attack_kit import ROSSI

    def set_beta(t: Task) -> Task:
        if "beta" in t.state and t.state.get("beta") is not None:
            return swap(t, state={**t.state, "beta": [0.0, 50.0]})
        return t

    with federation(tmp_path, {"site1": ROSSI}, signed=True) as fed:
        run = fed.run("survival.cox", {"table": TABLE, "duration": "week", "event": "arrest",
                                       "covariates": ["age", "prio"]}, tamper=set_beta)  # fmt: skip
    data = load_csv(ROSSI)
    top_age = float(data.loc[data["prio"].idxmax(), "age"])
    leaked = []
    for p in run.releases.get("site1", [])[1:]:
        step = p.get("values", {}).get("cox_step", {}).get("values", {})
        if step.get("loglik") is not None and abs(step["loglik"]) > 1e3:
            leaked.append(step["loglik"])
    assert not leaked, (leaked, top_age)
    assert run.releases["site1"] and "proposed coefficients" in run.refused["site1"], run.refused


def test_relabel_rounds_past_cap(tmp_path: Path, planted: Any) -> None:
    """mean_variance has 2 rounds; after the study the hub sends round 3 (and rounds 1, 2 again under new task
    ids) with
    a new mean, asking for more sums."""
    sent: list[Task] = []
    with federation(tmp_path, {"site1": planted}, signed=True) as fed:
        fed.run("stats.mean_variance", MEAN, tamper=lambda t: sent.append(t) or t)
        runtime = fed.runtimes["site1"]
        last = sent[-1]
        extra = [swap(last, id="r3", round=3, state={**last.state, "mean": 0.0}),
                 swap(sent[0], id="r1-again", round=1),
                 swap(last, id="r2-again", round=2, state={**last.state, "mean": 1.0})]  # fmt: skip
        answers = [execute_task(t, runtime) for t in extra]
    assert all(a.status is not ResultStatus.OK for a in answers), [a.status for a in answers]


def test_summary_threshold_history_rewrite(tmp_path: Path, planted: Any) -> None:
    """stats.summary: the hub rewrites the proposal history to thresholds just below and above the target's
    HDL (9.87 ± 1e-9) and k to 1: the bins would count exactly one person."""

    def rewrite(t: Task) -> Task:
        if t.round >= 2:
            return swap(t, state={**t.state, "proposals": [[9.87 - 1e-9, 9.87 + 1e-9]], "k": 1})
        return t

    with federation(tmp_path, {"site1": planted}, signed=True) as fed:
        run = fed.run(
            "stats.summary", {"table": TABLE, "variable": "LAB_HDL", "quantiles": [0.5]}, tamper=rewrite
        )
    ones = []
    for p in run.releases.get("site1", []):
        bins = p.get("values", {}).get("bins")
        if bins:
            ones += [k for k, c in bins["cells"].items() if exact(c) is not None and 1 <= exact(c) <= 4]
    assert not ones, ones


def test_km_inflated_k_in_state(tmp_path: Path) -> None:
    """KM: the hub lowers k in the round state to 1 (the node must use its own policy's k)."""
    from attack_kit import ROSSI

    def lower_k(t: Task) -> Task:
        return swap(t, state={**t.state, "k": 1, "min_count": 1}) if t.round >= 2 else t

    with federation(tmp_path, {"site1": ROSSI}, signed=True) as fed:
        run = attempt(
            fed, "survival.km", {"table": TABLE, "duration": "week", "event": "arrest"}, tamper=lower_k
        )
    small = [exact(c) for p in run.releases.get("site1", []) for b in [p.get("values", {}).get("bins")] if b
             for c in b["cells"].values() if exact(c) is not None and 1 <= exact(c) <= 4]  # fmt: skip
    assert not small, small


def test_misdelivered_hospital(tmp_path: Path) -> None:
    """The hub delivers site1's task to site2 (hospital field rewritten to site2 only for site1's task)."""
    frame = planted_frame()
    site = make_site(tmp_path, frame)
    with federation(tmp_path, {"site1": site, "site2": cnsim_path(2)}) as fed:
        runtime = fed.runtimes["site2"]
        sent: list[Task] = []
        fed.run("stats.mean_variance", MEAN, tamper=lambda t: sent.append(t) or t)
        mine = next(t for t in sent if t.hospital == "site1")
        answer = execute_task(swap(mine, id="wrong-door"), runtime)
    assert answer.status is not ResultStatus.OK
    assert pd.notna(TARGET_TSC)
