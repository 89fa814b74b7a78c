"""The demo's statistics: any study file on the local network, and the regression after the feasibility count.

A study file's ``hospitals`` and ``organisation`` name a real network's; on the demo network they are
replaced by the demo's hospitals and requester (and the demo says so). Tabular files given with
``--hospital NAME=FILE`` are registered at every node under one dataset name (``--dataset``), so a study
whose table names another dataset is refused before it is submitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from phds.analyses.omop_table import GROUND_TRUTH_TABLE
from phds.demo.network import REQUESTER_ORG, LocalNetwork
from phds.errors import InputError
from phds.protocol.studies import HospitalState, StudyView
from phds.sdk import load_study
from phds.sdk.results import StudyResult

GROUND_TRUTH_FORMULA = "admitted ~ age_years + male + bmi_sds + ics"


def ground_truth_glm() -> dict[str, Any]:
    """The binomial GLM of the synthetic hospitals' planted model (docs/ground-truth.md)."""
    return {
        "name": "stats.glm",
        "params": {"table": GROUND_TRUTH_TABLE, "formula": GROUND_TRUTH_FORMULA, "family": "binomial"},
    }


def tabular_glm(dataset: str, columns: list[str]) -> dict[str, Any] | None:
    """A GLM over a tabular dataset: DataSHIELD's CNSIM diabetes model when its columns are there."""
    wanted = {"DIS_DIAB", "GENDER", "PM_BMI_CONTINUOUS", "LAB_HDL"}
    if not wanted <= set(columns):
        return None
    formula = "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL"
    return {
        "name": "stats.glm",
        "params": {"table": {"dataset": dataset}, "formula": formula, "family": "binomial"},
    }


def spec_for_demo(
    path: Path, network: LocalNetwork, dataset: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """The study file at *path* as a spec for the demo network, whose hospitals and requester replace the
    file's."""
    spec = load_study(path).model_dump(mode="json", exclude_none=True)
    hospitals = [h.name for h in network.hospitals]
    if spec["hospitals"] != hospitals or spec["organisation"] != REQUESTER_ORG:
        say(
            f"   The study file names hospitals {', '.join(spec['hospitals'])} and organisation"
            f" {spec['organisation']}; on the demo network they are replaced by {', '.join(hospitals)}"
            f" and {REQUESTER_ORG}."
        )
    spec.update(hospitals=hospitals, organisation=REQUESTER_ORG)
    check_dataset(spec["analysis"].get("params") or {}, dataset, any(h.tabular for h in network.hospitals))
    return spec


def check_dataset(params: Mapping[str, Any], dataset: str, tabular: bool) -> None:
    """Refuse a study whose tables name another dataset than the --hospital files are registered as."""
    named = _datasets(params)
    if tabular and named - {dataset}:
        raise InputError(
            f"the study reads dataset {', '.join(sorted(named))}, but the --hospital files are registered"
            f" as {dataset!r}; pass --dataset {sorted(named)[0]}",
            field="--dataset",
        )


def _datasets(params: Mapping[str, Any]) -> set[str]:
    """Every ``table.dataset`` the parameters name (also inside characterisation cohorts)."""
    found: set[str] = set()
    table = params.get("table")
    if isinstance(table, Mapping) and table.get("dataset"):
        found.add(str(table["dataset"]))
    for cohort in params.get("cohorts") or []:
        if isinstance(cohort, Mapping):
            found |= _datasets(cohort)
    return found


def print_typed(console: Console, result: StudyResult) -> None:
    """A statistics result's printable summary (plain text: brackets are not markup; lines not wrapped)."""
    summary = getattr(result, "summary", None)
    text = summary() if callable(summary) else str(result)
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def rounds_printer(console: Console) -> Callable[[StudyView], None]:
    """Print a multi-round study's progress once per state or round: hospitals answered of those asked."""
    seen: set[tuple[str, int]] = set()

    def show(view: StudyView) -> None:
        answered = sum(1 for h in view.hospitals if h.state == HospitalState.ANSWERED)
        waiting = [h.hospital for h in view.hospitals if h.state == HospitalState.AWAITING_APPROVAL]
        key = (view.state.value + ",".join(waiting), view.round)
        if key not in seen:
            seen.add(key)
            done = f": {answered} of {len(view.hospitals)} hospitals answered" if view.state.is_final else ""
            more = f"; awaiting approval at {', '.join(waiting)}" if waiting else ""
            console.print(f"  study {view.state.value}, round {view.round}{done}{more}", highlight=False)

    return show


def secure_comparison(plain: StudyResult, secure: StudyResult) -> list[str]:
    """How the GLM under secure aggregation compares with the plain one: coefficients and rounds."""
    first = {str(c["term"]): float(c["estimate"]) for c in plain.raw.get("coefficients") or []}
    second = {str(c["term"]): float(c["estimate"]) for c in secure.raw.get("coefficients") or []}
    gap = max((abs(second[t] - v) for t, v in first.items() if t in second), default=float("nan"))
    rounds = (secure.raw.get("secure_aggregation") or {}).get("rounds") or []
    contributors = ", ".join(rounds[-1]["contributors"]) if rounds else "none"
    return [
        f"{len(rounds)} secure round(s) summed over {contributors}; the hub stored no hospital's sums",
        f"largest coefficient difference from the plain fit: {gap:.1e} (fixed-point quantisation)",
    ]


def ground_truth_lines(result: StudyResult) -> list[str]:
    """Each planted coefficient beside the estimate and whether its 95% interval covers it."""
    from phds.omop.simulator.truth import COEFFICIENTS

    rows = {str(c["term"]).lower(): c for c in result.raw.get("coefficients") or []}
    lines = ["Against the generator's ground truth (docs/ground-truth.md):"]
    for name, truth in COEFFICIENTS.items():
        c = rows.get(name)
        if c is None:
            continue
        covered = "inside" if c["ci_lower"] <= truth <= c["ci_upper"] else "OUTSIDE"
        lines.append(
            f"  {name:<10} true {truth:+.2f}   estimate {c['estimate']:+.3f}"
            f"   95% CI [{c['ci_lower']:+.3f}, {c['ci_upper']:+.3f}]  {covered}"
        )
    return lines
