"""Secure aggregation against the plaintext sum over real processes: N = 3, 5, 10 nodes, 1 to 100,000 values.

A hub (``phds hub serve``, SQLite) and N node processes run on loopback
(:class:`phds.demo.network.LocalNetwork`). Each study is ``system.noop`` with ``vector_length`` L: every
node's gate releases L pseudo-random numbers drawn from the hospital's public seed (no data; the hub
recomputes the exact sum and states the error), summed in the clear or with ``secure_aggregation:
true`` (keys, shares, masked input, unmask through the hub). Clear and secure studies alternate on the
same network, ``PHDS_BENCH_SECAGG_NET_REPEATS`` times each (default 3) after one warm-up of each.

* **Time end to end**: submit → result at the SDK. The nodes compute nothing, so the platform overhead
  (DESIGN.md, "Measuring": end to end − the slowest node's compute) is nearly all of it.
* **Time per stage**: from the round's tasks to the close of each stage (its last message at the hub),
  then from the unmask close to the result.
* **Bytes on the wire**: every byte the loopback interface carried during the study (HTTP, TCP/IP
  headers, the requester's result download). Run as root, the benchmark re-runs itself in a network
  namespace of its own (``ip netns``), so that count is this network's traffic and nothing else's;
  otherwise the host's loopback counts and the JSON says so.
* **Dropout**: at N = 10 and 100,000 values, 30% of the nodes are killed (SIGKILL, fault injection)
  right after posting their masked input; the survivors' shares recover the sum (threshold 6 of 10).
  Reported: its end-to-end time and what it adds to the secure study's median. The hub's stage deadline
  is what the others wait for the killed nodes' unmask answers, so the figure is mostly that deadline.

Targets (issue 8): secure ≤ 1.2× the plaintext bytes, and ≤ 1.5× the plaintext time at 100,000 values
and N = 10. ``python -m benchmarks.run secagg_network`` writes ``benchmarks/results/secagg_network.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.common import RESULTS, write_result
from benchmarks.federation import env_int, env_ints, load_average, study_spec
from phds.demo.network import DemoHospital, LocalNetwork
from phds.hub.store import HubStore
from phds.hub.store.secagg_models import SecAggMessageRow
from phds.hub.store.study_models import TaskRow
from phds.node.secure_round import FAULT_EXIT_AFTER
from phds.sdk import Client

NODES = env_ints("PHDS_BENCH_SECAGG_NET_NODES", [3, 5, 10], [3])
LENGTHS = env_ints("PHDS_BENCH_SECAGG_NET_LENGTHS", [1, 100, 100_000], [1, 1000])
REPEATS = env_int("PHDS_BENCH_SECAGG_NET_REPEATS", 3, 1)
DROPOUT = env_int("PHDS_BENCH_SECAGG_NET_DROPOUT", 1, 0)
STAGE_SECONDS = 10.0  # the hub's stage deadline: how long survivors wait for a dropped node
STAGES = ("keys", "shares", "masked", "unmask")
IN_NAMESPACE = "PHDS_BENCH_IN_NETNS"


def loopback_bytes() -> int:
    """Bytes received on the loopback interface so far (each byte on loopback is received once)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[0])
    raise RuntimeError("no loopback interface in /proc/net/dev")


def stage_times(db_url: str, study_id: str) -> dict[str, float]:
    """Seconds from the round's tasks to each stage's close (its last message), from the hub's tables."""
    sid = uuid.UUID(study_id)
    store = HubStore.open(db_url, migrate=False)
    try:
        with store.unit() as uow:
            start = uow.session.execute(select(TaskRow.created_at).where(TaskRow.study_id == sid)).scalars()
            opened = min(start)
            rows = uow.session.execute(
                select(SecAggMessageRow.stage, SecAggMessageRow.received_at).where(
                    SecAggMessageRow.study_id == sid
                )
            ).all()
    finally:
        store.close()
    closes: dict[str, float] = {}
    for stage, name in enumerate(STAGES):
        times = [at for s, at in rows if s == stage]
        if times:
            closes[name] = round((max(times) - opened).total_seconds(), 4)
    return closes


def one_study(client: Client, spec: dict[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """Submit *spec* and wait for its result: seconds, bytes on the wire, who answered, the sum's error."""
    before, start = loopback_bytes(), time.perf_counter()
    study = client.submit(spec)
    result = client.results(study.id, wait=True)
    seconds = time.perf_counter() - start
    wire = loopback_bytes() - before
    state = result.study.state.value
    if complete and state != "completed":
        reasons = {h.hospital: (h.state.value, h.reason) for h in result.study.hospitals if h.reason}
        raise RuntimeError(f"study {study.id} ended {state}: {reasons}")
    vector = result.raw["vector"]
    return {
        "study_id": study.id,
        "state": state,
        "seconds": round(seconds, 4),
        "bytes": wire,
        "answered": sorted(result.attribution.answered),
        "secure_rounds": (result.raw.get("secure_aggregation") or {}).get("rounds"),
        "max_abs_error": vector.get("max_abs_error"),
        "error_bound": vector.get("error_bound"),
    }


def _spec(names: list[str], length: int, secure: bool) -> dict[str, Any]:
    title = f"{'secure' if secure else 'clear'} sum of {length} values"
    spec = study_spec(
        names, "system.noop", {"vector_length": length}, service_type="feasibility", title=title
    )
    if secure:
        spec["secure_aggregation"] = True
    return spec


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "end_to_end_median_ms": round(1000 * statistics.median(r["seconds"] for r in runs), 1),
        "bytes_median": int(statistics.median(r["bytes"] for r in runs)),
        "max_abs_error": max(r["max_abs_error"] or 0.0 for r in runs),
        "runs": runs,
    }


def measure_network(workdir: Path, n: int, lengths: list[int], repeats: int, dropout: bool) -> dict[str, Any]:
    """Every length on one network of *n* nodes: clear and secure alternately, then the dropout run."""
    hospitals = [DemoHospital(f"sum-{i + 1:02d}", f"Summing hospital {i + 1}") for i in range(n)]
    names = [h.name for h in hospitals]
    hub_env = {"PHDS_HUB_SECAGG_STAGE_SECONDS": str(STAGE_SECONDS)}
    out: dict[str, Any] = {"nodes": n, "load_average_before": load_average(), "lengths": []}
    with LocalNetwork(workdir, hospitals, hub_env=hub_env) as network, network.client() as client:
        for length in lengths:
            runs: dict[str, list[dict[str, Any]]] = {"clear": [], "secure": []}
            for i in range(repeats + 1):  # the first of each is a warm-up
                for mode in ("clear", "secure"):
                    run = one_study(client, _spec(names, length, mode == "secure"))
                    if mode == "secure":
                        run["stages"] = stage_times(network.db_url, run["study_id"])
                    if i:
                        runs[mode].append(run)
            clear, secure = _summary(runs["clear"]), _summary(runs["secure"])
            print(
                f"N={n} L={length}: clear {clear['end_to_end_median_ms']} ms, secure "
                f"{secure['end_to_end_median_ms']} ms",
                file=sys.stderr,
                flush=True,
            )
            raw = n * length * 8  # the N vectors as bare float64, no HTTP, no JSON
            out["lengths"].append(
                {
                    "length": length,
                    "clear": clear,
                    "secure": secure,
                    "time_ratio": round(secure["end_to_end_median_ms"] / clear["end_to_end_median_ms"], 3),
                    "bytes_ratio": round(secure["bytes_median"] / clear["bytes_median"], 3),
                    "raw_float64_bytes": raw,
                    "secure_bytes_vs_raw_float64": round(secure["bytes_median"] / raw, 3),
                    "stage_close_median_s": {
                        s: round(statistics.median(r["stages"][s] for r in runs["secure"]), 4) for s in STAGES
                    },
                }
            )
        if dropout:
            out["dropout"] = _dropout(network, client, names, lengths[-1], out["lengths"][-1])
    out["load_average_after"] = load_average()
    return out


def _dropout(
    network: LocalNetwork, client: Client, names: list[str], length: int, baseline: dict[str, Any]
) -> dict[str, Any]:
    """Kill 30% of the nodes right after their masked input; the others recover the sum."""
    killed = names[: max(1, round(0.3 * len(names)))]
    for name in killed:
        network.stop_node(name)
        network.start_node(name, extra_env={FAULT_EXIT_AFTER: "masked"})
    for name in killed:
        network.wait_for_node(name)
    one_study(client, _spec(names, length, False))  # warm the restarted nodes (no session: no fault)
    run = one_study(client, _spec(names, length, True), complete=False)
    run["stages"] = stage_times(network.db_url, run["study_id"])
    secure_ms = baseline["secure"]["end_to_end_median_ms"]
    return {
        "length": length,
        "killed_after_masked_input": killed,
        "run": run,
        "recovered": run["answered"] == sorted(names) and 0 <= run["max_abs_error"] <= run["error_bound"],
        "added_ms": round(1000 * run["seconds"] - secure_ms, 1),
        "stage_deadline_s": STAGE_SECONDS,
    }


def measure_all(workdir: Path) -> dict[str, Any]:
    networks = []
    for n in NODES:
        dropout = bool(DROPOUT) and n == max(NODES)
        try:
            networks.append(measure_network(workdir / f"n{n}", n, LENGTHS, REPEATS, dropout))
        except RuntimeError:
            kept = Path(tempfile.gettempdir()) / f"phds-bench-secagg-net-logs-n{n}"
            shutil.copytree(workdir / f"n{n}" / "logs", kept, dirs_exist_ok=True)
            print(f"the processes' logs are kept in {kept}", file=sys.stderr)
            raise
    return {"networks": networks}


def _in_own_namespace(workdir: Path) -> dict[str, Any] | None:
    """Run :func:`measure_all` again inside a fresh network namespace; None when that is not possible."""
    ip = shutil.which("ip")
    if os.environ.get(IN_NAMESPACE) or ip is None or os.geteuid() != 0:
        return None
    name = f"phds-bench-{os.getpid()}"
    if subprocess.run([ip, "netns", "add", name], capture_output=True).returncode != 0:
        return None
    out = workdir / "measured.json"
    code = (
        "import json, pathlib, sys\n"
        "from benchmarks.bench_secagg_network import measure_all\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "(folder / 'measured.json').write_text(json.dumps(measure_all(folder)))\n"
    )
    try:
        subprocess.run([ip, "netns", "exec", name, ip, "link", "set", "lo", "up"], check=True)
        command = [ip, "netns", "exec", name, sys.executable, "-c", code, str(workdir)]
        env = {**os.environ, IN_NAMESPACE: name}
        subprocess.run(command, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
        return dict(json.loads(out.read_text(encoding="utf-8")))
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def _target(measured: float, target: float) -> dict[str, Any]:
    return {"measured": measured, "target": target, "pass": measured <= target}


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="phds-bench-secagg-net-") as tmp:
        measured = _in_own_namespace(Path(tmp))
        counter = "loopback of the benchmark's own network namespace (only this network's traffic)"
        if measured is None:
            measured = measure_all(Path(tmp))
            counter = "loopback of the host: includes any other loopback traffic during the run"
    biggest = max(measured["networks"], key=lambda r: r["nodes"])
    at = max(biggest["lengths"], key=lambda r: r["length"])
    targets = {
        "bytes_le_1.2x_plaintext": _target(at["bytes_ratio"], 1.2),
        "time_le_1.5x_plaintext": _target(at["time_ratio"], 1.5),
        "at": {"nodes": biggest["nodes"], "length": at["length"]},
    }
    payload = {
        "what": (__doc__ or "").split("\n\n")[0],
        "bytes_counter": counter,
        "repeats": REPEATS,
        **measured,
        "targets": targets,
    }
    write_result("secagg_network", payload)
    table = {}
    for network in measured["networks"]:
        for x in network["lengths"]:
            table[f"N={network['nodes']} L={x['length']}"] = {
                "time_ratio": x["time_ratio"],
                "bytes_ratio": x["bytes_ratio"],
                "bytes_vs_raw_float64": x["secure_bytes_vs_raw_float64"],
                "secure_ms": x["secure"]["end_to_end_median_ms"],
                "clear_ms": x["clear"]["end_to_end_median_ms"],
            }
    return {
        "by_nodes_and_length": table,
        "dropout": {k: v for k, v in biggest.get("dropout", {}).items() if k != "run"},
        "targets": {k: v["pass"] for k, v in targets.items() if "pass" in v},
        "results": str(RESULTS / "secagg_network.json"),
    }


if __name__ == "__main__":
    print(main())
