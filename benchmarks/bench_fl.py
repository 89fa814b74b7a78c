"""Federated learning: time per round at N nodes, with and without secure aggregation; rounds to AUROC.

**Per round, over real processes.** For each N in ``PHDS_BENCH_FL_NODES`` (default 3, 5, 10) a hub and
N node processes run on loopback (:class:`phds.demo.network.LocalNetwork`); each node serves
``PHDS_BENCH_FL_ROWS`` (default 100,000) rows of an IID hospital from the documented generator
(:mod:`phds.demo.case_mix`, ``skew=0``). One ``learning.fedavg`` logistic study of
``PHDS_BENCH_FL_ROUNDS`` (default 6) training rounds runs in the clear and one under secure
aggregation, ``PHDS_BENCH_FL_REPEATS`` times each (default 2: the machine's 2 cores limit the default
run to about 10 minutes, so repetitions are cut rather than sizes). A round's time is read from the
hub's task table: from the creation of round r's tasks to that of round r + 1's (the combine of round r
is inside it). The first training round is left out (it checks the design once and builds the node's
caches); the medians are over the other training rounds of every repetition. Platform overhead per
round = round time − the slowest node's own compute in that round (``TaskResult.compute_seconds``;
DESIGN.md, "Measuring"): on 2 shared cores N node processes contend, so the end-to-end figure grows
with N for reasons a real network of hospitals would not have. The target (issue 12): secure / clear
≤ 1.5× per round.

**Rounds to AUROC, in process** (real node runtimes, :mod:`phds.analyses.testing`): FedAvg on
DataSHIELD's CNSIM1–3 against scikit-learn's unpenalised pooled fit on the same training rows; after
each round the benchmark scores the round's global model on the pooled training rows and records its
AUROC and its largest coefficient difference from the pooled fit: the convergence curve
(``docs/img/fl-cnsim-convergence.png``). Then the non-IID check: synthetic hospitals with different
case mixes and one hospital with its own lactate effect, FedAvg against FedProx (μ = 0.1 and 1.0), on
a held-out set pooled over hospitals, for ``PHDS_BENCH_FL_SEEDS`` (default 3) seeds.

    PHDS_BENCH_FL_NODES=2 PHDS_BENCH_FL_ROWS=2000 PHDS_BENCH_FL_ROUNDS=3 .venv/bin/python -m benchmarks.run fl
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from benchmarks.common import write_result
from benchmarks.federation import env_int, env_ints, load_average, study_spec
from phds.demo.case_mix import FEATURES, CaseMix, write_hospitals

NODES = env_ints("PHDS_BENCH_FL_NODES", [3, 5, 10], [2])
ROWS = env_int("PHDS_BENCH_FL_ROWS", 100_000, 2000)
ROUNDS = env_int("PHDS_BENCH_FL_ROUNDS", 6, 3)
REPEATS = env_int("PHDS_BENCH_FL_REPEATS", 2, 1)
SEEDS = env_int("PHDS_BENCH_FL_SEEDS", 3, 1)
CNSIM_ROUNDS = env_int("PHDS_BENCH_FL_CNSIM_ROUNDS", 40, 10)
REPO = Path(__file__).resolve().parents[1]
CNSIM = REPO.parent / "shared" / "data" / "tabular" / "datashield" / "CNSIM"
CNSIM_NUMERIC = ["LAB_TSC", "LAB_TRIG", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"]


def fl_params(rounds: int) -> dict[str, Any]:
    return {
        "table": {"dataset": "mix"},
        "outcome": "outcome",
        "features": {"numeric": list(FEATURES), "categorical": {"sex": ["0", "1"]}},
        "rounds": rounds,
        "local_epochs": 1,
        "learning_rate": 1.0,
        "batch_size": 0,
        "clip_norm": 10.0,
        # No risk-bin counts: the same held-out rows are evaluated by every study, and the overlap guard
        # refuses a later study's bin counts beside an earlier one's (learning_eval's docstring).
        "eval_bins": [],
    }


def node_computes(node_dbs: list[Path], study_id: str) -> dict[str, float]:
    """Each task's compute seconds as the node stored its answer (``task_outcomes`` in ``node.db``): in a
    secure round the node posts its answer after the session has summed the round, so the hub's results
    table does not hold it."""
    import sqlite3

    out: dict[str, float] = {}
    for db in node_dbs:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT task_id, result_json FROM task_outcomes WHERE study_id = ?", (study_id,)
            )
            for task_id, body in rows.fetchall():
                out[str(task_id)] = float(json.loads(body).get("compute_seconds") or 0.0)
        finally:
            con.close()
    return out


def round_times(db_url: str, study_id: str, computes: dict[str, float]) -> list[dict[str, Any]]:
    """Per round of one study: its duration (task creation to the next round's) and the slowest node's
    compute (*computes*: task id → seconds, from the nodes)."""
    import uuid

    from phds.hub.store import HubStore
    from phds.hub.store.study_models import StudyRow, TaskRow

    store = HubStore.open(db_url, migrate=False)
    try:
        with store.unit() as uow:
            sid = uuid.UUID(study_id)
            tasks = uow.session.execute(
                select(TaskRow.round, TaskRow.created_at, TaskRow.id).where(TaskRow.study_id == sid)
            ).all()
            finished = uow.session.execute(
                select(StudyRow.finished_at).where(StudyRow.id == sid)
            ).scalar_one()
    finally:
        store.close()
    starts: dict[int, Any] = {}
    compute: dict[int, float] = {}
    for round_no, created, task_id in tasks:
        starts[round_no] = min(starts.get(round_no, created), created)
        compute[round_no] = max(compute.get(round_no, 0.0), computes.get(str(task_id), 0.0))
    order = sorted(starts)
    ends = [*(starts[r] for r in order[1:]), finished]
    return [
        {"round": r, "seconds": (end - starts[r]).total_seconds(), "slowest_compute": compute[r]}
        for r, end in zip(order, ends, strict=True)
    ]


def network_rounds(n: int, data: Path) -> dict[str, Any]:
    """Clear and secure studies over a hub and *n* node processes (module docstring)."""
    from phds.demo.network import DemoHospital, LocalNetwork

    paths = write_hospitals(CaseMix(hospitals=n, rows=ROWS, seed=11), data / f"n{n}")
    demo = [DemoHospital(name, name.title(), tabular={"mix": p}) for name, p in paths.items()]
    out: dict[str, Any] = {"nodes": n, "rows_per_node": ROWS, "training_rounds": ROUNDS}
    hub_env = {"PHDS_HUB_SECAGG_STAGE_SECONDS": "120", "PHDS_HUB_TASK_LEASE_SECONDS": "120"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalNetwork(Path(tmp), demo, hub_env=hub_env, node_args=("--poll-wait", "5")) as network,
        network.client() as client,
    ):
        names = [h.name for h in demo]
        warm = study_spec(names, "learning.fedavg", fl_params(1), service_type="research", title="warm-up")
        client.results(client.submit(warm).id, wait=True)  # loads each node's file into its DuckDB
        for mode in ("clear", "secure"):
            rounds: list[dict[str, Any]] = []
            totals = []
            for rep in range(REPEATS):
                spec = study_spec(
                    names,
                    "learning.fedavg",
                    fl_params(ROUNDS),
                    service_type="research",
                    title=f"fl {mode} {rep}",
                )
                spec["deadline_seconds"] = 3600
                if mode == "secure":
                    spec["secure_aggregation"] = True
                start = time.perf_counter()
                result = client.results(client.submit(spec).id, wait=True)
                totals.append(time.perf_counter() - start)
                if result.study.state.value != "completed":
                    raise RuntimeError(f"{mode} study ended {result.study.state.value}: {result.raw}")
                dbs = [node.folder / "state" / "node.db" for node in network.nodes.values()]
                times = round_times(network.db_url, result.study.id, node_computes(dbs, result.study.id))
                rounds.extend(times[2 : 1 + ROUNDS])  # training rounds after the first (1: moments)
            per = [r["seconds"] for r in rounds]
            over = [r["seconds"] - r["slowest_compute"] for r in rounds]
            out[mode] = {
                "round_median_ms": round(statistics.median(per) * 1e3, 1),
                "overhead_median_ms": round(statistics.median(over) * 1e3, 1),
                "slowest_compute_median_ms": round(
                    statistics.median(r["slowest_compute"] for r in rounds) * 1e3, 1
                ),
                "study_end_to_end_median_s": round(statistics.median(totals), 2),
                "rounds_measured": len(rounds),
                "rounds": rounds,
            }
    out["secure_vs_clear_round"] = round(
        out["secure"]["round_median_ms"] / out["clear"]["round_median_ms"], 3
    )
    out["secure_vs_clear_overhead"] = round(
        out["secure"]["overhead_median_ms"] / out["clear"]["overhead_median_ms"], 3
    )
    out["load_average"] = load_average()
    return out


def cnsim_convergence() -> dict[str, Any]:
    """FedAvg on CNSIM1–3 vs scikit-learn's pooled fit on the same training rows, round by round."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from phds.analyses.learning_frame import held_out_mask
    from phds.analyses.testing import run_federation

    params = {
        "table": {"dataset": "cnsim"},
        "outcome": "DIS_DIAB",
        "features": {"numeric": CNSIM_NUMERIC, "categorical": {"GENDER": ["0", "1"]}},
        "rounds": CNSIM_ROUNDS,
        "local_epochs": 25,
        "learning_rate": 4.0,
        "batch_size": 0,
        "clip_norm": 50.0,
    }
    tables = {f"site{i}": {"cnsim": CNSIM / f"CNSIM{i}.csv"} for i in (1, 2, 3)}
    start = time.perf_counter()
    run = run_federation("learning.fedavg", params, tables)
    seconds = time.perf_counter() - start
    if run.result is None:
        raise RuntimeError(f"the CNSIM study failed: {run.error} {run.refused}")
    parts = []
    for path in tables.values():
        df = pd.read_csv(path["cnsim"]).rename(columns=str.strip)
        df["row"] = np.arange(len(df))
        df = df[[*CNSIM_NUMERIC, "GENDER", "DIS_DIAB", "row"]].dropna()
        parts.append(df[~held_out_mask(df["row"].to_numpy(), 0, 0.2)])
    rows = pd.concat(parts)
    x, y = rows[[*CNSIM_NUMERIC, "GENDER"]].to_numpy(float), rows["DIS_DIAB"].to_numpy(float)
    ref = LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10).fit(x, y)
    ref_coef = np.r_[ref.intercept_, ref.coef_[0]]
    ref_auc = float(roc_auc_score(y, ref.predict_proba(x)[:, 1]))
    std = run.result["model"]["standardisation"]
    mean, sd = np.array(list(std["mean"].values())), np.array(list(std["sd"].values()))
    curve = []
    for entry in run.result["curve"]:
        w = np.asarray(entry["weights"])
        beta = w[1:].copy()
        beta[:5] /= sd
        coef = np.r_[w[0] - np.sum(w[1:6] * mean / sd), beta]
        auc = float(roc_auc_score(y, x @ coef[1:] + coef[0]))
        curve.append(
            {
                "round": entry["round"],
                "loss": entry["loss"],
                "auroc": auc,
                "max_abs_coef_diff": float(np.max(np.abs(coef - ref_coef))),
            }
        )
    within = [c["round"] for c in curve if abs(c["auroc"] - ref_auc) <= 0.01]
    return {
        "rounds": CNSIM_ROUNDS,
        "seconds_in_process": round(seconds, 2),
        "pooled_auroc": ref_auc,
        "pooled_coefficients": dict(
            zip(["(Intercept)", *CNSIM_NUMERIC, "GENDER[1]"], ref_coef.tolist(), strict=True)
        ),
        "federated_coefficients": run.result["coefficients"],
        "final_auroc": curve[-1]["auroc"],
        "final_max_abs_coef_diff": curve[-1]["max_abs_coef_diff"],
        "rounds_to_auroc_within_0.01": within[0] if within else None,
        "pooled_held_out_metrics": run.result["metrics"]["pooled"],
        "curve": curve,
    }


def non_iid(seed: int) -> dict[str, Any]:
    """FedAvg vs FedProx on hospitals with different case mixes (module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from phds.analyses.learning_frame import held_out_mask
    from phds.analyses.testing import run_federation

    mix = CaseMix(
        hospitals=3, rows=1500, skew=1.5, interaction=1.5, surgical=(2,), sizes=(0.4, 1.0, 2.0), seed=seed
    )
    feats = [*FEATURES, "sex"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_hospitals(mix, Path(tmp))
        frames = [pd.read_csv(p) for p in paths.values()]
        test = pd.concat([f[held_out_mask(np.arange(len(f)), 0, 0.2)] for f in frames])
        train = pd.concat([f[~held_out_mask(np.arange(len(f)), 0, 0.2)] for f in frames])
        ref = LogisticRegression(C=np.inf, max_iter=10_000).fit(train[feats], train["outcome"])
        ref_coef = np.r_[ref.intercept_, ref.coef_[0]]
        out: dict[str, Any] = {
            "seed": seed,
            "pooled_test_auroc": float(roc_auc_score(test["outcome"], ref.predict_proba(test[feats])[:, 1])),
        }
        for label, name, mu in (
            ("fedavg", "learning.fedavg", 0.0),
            ("fedprox_mu0.1", "learning.fedprox", 0.1),
            ("fedprox_mu1", "learning.fedprox", 1.0),
        ):
            params = {
                "table": {"dataset": "mix"},
                "outcome": "outcome",
                "features": {"numeric": list(FEATURES), "categorical": {"sex": ["0", "1"]}},
                "rounds": 20,
                "local_epochs": 20,
                "learning_rate": 0.1,
                "batch_size": 32,
                "mu": mu,
                "clip_norm": 100.0,
            }
            run = run_federation(name, params, {h: {"mix": p} for h, p in paths.items()})
            if run.result is None:
                raise RuntimeError(f"{label} failed: {run.error} {run.refused}")
            c = run.result["coefficients"]
            coef = np.r_[c["(Intercept)"], [c[f] for f in FEATURES], c["sex[1]"]]
            p = 1 / (1 + np.exp(-(test[feats].to_numpy() @ coef[1:] + coef[0])))
            out[label] = {
                "test_auroc": float(roc_auc_score(test["outcome"], p)),
                "distance_to_pooled": float(np.linalg.norm(coef - ref_coef)),
                "final_train_loss": run.result["curve"][-1]["loss"],
            }
    return out


def plot_convergence(cnsim: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    rounds = [c["round"] for c in cnsim["curve"]]
    left.semilogy(rounds, [c["max_abs_coef_diff"] for c in cnsim["curve"]], marker=".")
    left.set_xlabel("round")
    left.set_ylabel("max |β_fed − β_pooled|")
    left.set_title("FedAvg on CNSIM1–3: coefficients")
    right.plot(rounds, [c["auroc"] for c in cnsim["curve"]], marker=".", label="FedAvg (global model)")
    right.axhline(cnsim["pooled_auroc"], color="grey", linestyle="--", label="scikit-learn, pooled rows")
    right.set_xlabel("round")
    right.set_ylabel("AUROC on the pooled training rows")
    right.legend(loc="lower right")
    fig.savefig(path, dpi=120)


def main() -> dict[str, Any]:
    summary: dict[str, Any] = {
        "sizes": {"nodes": NODES, "rows_per_node": ROWS, "training_rounds": ROUNDS, "repeats": REPEATS}
    }
    cnsim = cnsim_convergence()
    plot_convergence(cnsim, REPO / "docs" / "img" / "fl-cnsim-convergence.png")
    summary["cnsim"] = cnsim
    summary["non_iid"] = [non_iid(seed) for seed in range(SEEDS)]
    with tempfile.TemporaryDirectory() as data:
        summary["network"] = [network_rounds(n, Path(data)) for n in NODES]
    summary["targets"] = {
        "secure_within_1.5x_per_round": {
            str(r["nodes"]): r["secure_vs_clear_round"] <= 1.5 for r in summary["network"]
        },
        "cnsim_auroc_within_0.01": abs(cnsim["final_auroc"] - cnsim["pooled_auroc"]) <= 0.01,
    }
    write_result("fl", summary)
    return {k: v for k, v in summary.items() if k != "cnsim"} | {
        "cnsim": {k: v for k, v in cnsim.items() if k != "curve"}
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=str))
