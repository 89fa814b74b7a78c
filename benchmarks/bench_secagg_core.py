"""Secure aggregation's cryptographic core (``phds.secagg``) in one process: time per stage, bytes.

For N = 3, 5, 10 participants and vectors of 1, 100 and 100,000 values, a whole session runs in
memory (fresh keys each run; no network, no database):

* **client**: each participant's time per stage (advertise, share keys, masked input, unmask): the
  median over participants and runs;
* **server**: the hub's time per stage: checking the stage's messages on arrival and closing it
  (collect keys, route shares, collect masked inputs, aggregate), median over runs;
* **bytes**: every message as JSON (``model_dump_json``): uplink (each participant's messages) and
  downlink (the keys broadcast to each of U1, the routed shares, the unmask request to each survivor),
  against the *plaintext* baseline the task asked for: N × (length × 8 + the same JSON envelope), i.e.
  what N float64 vectors cost sent bare, with the same session, sender and signature around them.
  ``plaintext_b64_bytes`` is that baseline as JSON can actually carry it (base64url, × 4/3);
* **time against the plaintext sum**: the same N vectors signed at the nodes (Ed25519, base64url
  float64 in JSON) and verified and added at the hub; ``time_ratio`` compares the critical paths (one
  node's stages, which run in parallel at their hospitals, plus the hub's) of the two;
* **dropout**: 30% of the participants (rounded up; never more than n − t) drop out *after* their
  masked input (they send no unmask answer: their self-masks come back from the others' shares) or
  *before* it (after sharing keys: the hub rebuilds their s keys and removes their pairwise masks with
  every survivor). ``added_server_ms`` is the server's median total minus the no-dropout one, and
  ``added_aggregate_ms`` the same for the aggregate stage alone. Dropping before the masked input
  also spares the server those inputs (fewer vectors to check, fewer self-masks to rebuild), so the
  added time can be negative: it is the net cost of recovery, not the cost of the recovery steps.

``python -m benchmarks.run secagg_core`` writes ``benchmarks/results/secagg_core.json``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from benchmarks.common import write_result
from phds.secagg import (
    AggregateResult,
    Aggregator,
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    Participant,
    SessionConfig,
    default_threshold,
)
from phds.trust.keys import KeyPair, PublicKey

SIZES = (3, 5, 10)
LENGTHS = (1, 100, 100_000)
REPEATS = {1: 9, 100: 9, 100_000: 5}
DROPOUT = 0.3
CLIENT_STAGES = ("advertise", "share_keys", "masked_input", "unmask")
SERVER_STAGES = ("collect_keys", "route_shares", "collect_masked", "aggregate")
T = TypeVar("T")


def _timed(fn: Callable[[], T], into: list[float]) -> T:
    start = time.perf_counter()
    result = fn()
    into.append(time.perf_counter() - start)
    return result


def _size(message: Any) -> int:
    return len(message.model_dump_json().encode("utf-8"))


def _session(
    n: int, length: int, *, before: frozenset[str] = frozenset(), after: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """One session; *before*/*after*: who drops out before their masked input / before unmasking."""
    names = [f"hospital-{i:02d}" for i in range(n)]
    signing = {name: KeyPair.generate() for name in names}
    pinned: dict[str, PublicKey] = {name: key.public_key for name, key in signing.items()}
    config = SessionConfig(session_id="study-0001/round-1", participants=names, vector_length=length,
                           scale=2**24, clip=1e6)  # fmt: skip
    rng = np.random.default_rng(n * 1000 + length)
    values = {name: rng.normal(0, 10, length) for name in names}
    nodes = {name: Participant(config, name, signing[name], pinned) for name in names}
    hub = Aggregator(config, pinned)
    client: dict[str, list[float]] = {stage: [] for stage in CLIENT_STAGES}
    server: dict[str, list[float]] = {stage: [] for stage in SERVER_STAGES}
    up = down = 0

    def collect_keys() -> dict[str, KeysMessage]:
        for k in keys:
            hub.receive_keys(k)
        return hub.keys()

    def route() -> dict[str, list[EncryptedShare]]:
        for batch in sent:
            hub.receive_shares(batch)
        return hub.route()

    def collect_masked() -> tuple[list[str], list[str]]:
        for m in masked:
            hub.receive_masked(m)
        return hub.unmask_request()

    def aggregate() -> AggregateResult:
        for a in answers:
            hub.receive_unmask(a)
        return hub.aggregate()

    keys = [_timed(nodes[v].advertise, client["advertise"]) for v in names]
    up += sum(map(_size, keys))
    broadcast = _timed(collect_keys, server["collect_keys"])
    down += n * len(json.dumps([k.model_dump(mode="json") for k in broadcast.values()]))

    sent = [_timed(lambda v=v: nodes[v].share_keys(broadcast), client["share_keys"]) for v in names]
    up += sum(_size(s) for batch in sent for s in batch)
    routed = _timed(route, server["route_shares"])
    down += sum(_size(s) for shares in routed.values() for s in shares)

    masked: list[MaskedInput] = []
    for v in names:
        if v not in before:
            x = config.encode(values[v])
            masked.append(
                _timed(lambda v=v, x=x: nodes[v].masked_input(x, routed[v]), client["masked_input"])
            )
    up += sum(map(_size, masked))
    survivors, dropped = _timed(collect_masked, server["collect_masked"])
    down += len(survivors) * len(json.dumps({"survivors": survivors, "dropped": dropped}))

    answers = [_timed(lambda v=v: nodes[v].unmask(survivors, dropped), client["unmask"])
               for v in survivors if v not in after]  # fmt: skip
    up += sum(map(_size, answers))
    result = _timed(aggregate, server["aggregate"])

    expected = np.sum([values[v] for v in survivors], axis=0)
    error = float(np.max(np.abs(config.decode(result.total) - expected)))
    assert error <= config.fixed_point.max_error(n) + 1e-6 * float(np.max(np.abs(expected))), error
    bare = {"session_id": config.session_id, "sender": names[0], "signature": keys[0].signature, "vector": ""}
    envelope = len(json.dumps(bare, separators=(",", ":")))
    return {
        "client": {stage: statistics.median(runs) for stage, runs in client.items()},
        "server": {stage: runs[0] for stage, runs in server.items()},
        "uplink_bytes": up,
        "downlink_bytes": down,
        "plaintext_bytes": n * (envelope + 8 * length),
        "plaintext_b64_bytes": n * (envelope + math.ceil(8 * length * 4 / 3)),
        "max_abs_error": error,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def _plaintext(n: int, length: int, repeats: int) -> dict[str, float]:
    """The baseline a secure sum replaces: each node signs its float64 vector (base64url in JSON, as a
    release envelope carries it) and the hub verifies every one, decodes and adds them."""
    from phds.trust.keys import b64decode, b64encode, signed_content

    keys = [KeyPair.generate() for _ in range(n)]
    vectors = [np.random.default_rng(i).normal(size=length) for i in range(n)]
    client, server = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        bodies = []
        for key, vector in zip(keys, vectors, strict=True):
            body = {"vector": b64encode(vector.astype("<f8").tobytes())}
            bodies.append((body, key.sign(signed_content("phds.bench.plain.v1", body))))
        client.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        total = np.zeros(length)
        for (body, signature), key in zip(bodies, keys, strict=True):
            PublicKey.from_b64(key.public_key_b64).verify(
                signed_content("phds.bench.plain.v1", body), signature
            )
            total += np.frombuffer(b64decode(body["vector"], length=8 * length, what="v"), dtype="<f8")
        server.append(time.perf_counter() - start)
    return {
        "client_ms_per_participant": _ms(statistics.median(client)),
        "server_ms": _ms(statistics.median(server)),
    }


def _case(n: int, length: int, repeats: int, **drop: frozenset[str]) -> dict[str, Any]:
    runs = [_session(n, length, **drop) for _ in range(repeats)]
    server_total = [sum(r["server"].values()) for r in runs]
    first = runs[0]
    total_bytes = first["uplink_bytes"] + first["downlink_bytes"]
    return {
        "client_ms_per_participant": {
            s: _ms(statistics.median(r["client"][s] for r in runs)) for s in CLIENT_STAGES
        },
        "server_ms": {s: _ms(statistics.median(r["server"][s] for r in runs)) for s in SERVER_STAGES},
        "server_total_ms": _ms(statistics.median(server_total)),
        "server_total_runs_ms": [_ms(t) for t in server_total],
        "bytes": {
            "uplink": first["uplink_bytes"],
            "downlink": first["downlink_bytes"],
            "total": total_bytes,
            "plaintext": first["plaintext_bytes"],
            "ratio": round(total_bytes / first["plaintext_bytes"], 3),
            "uplink_ratio": round(first["uplink_bytes"] / first["plaintext_bytes"], 3),
            "plaintext_b64": first["plaintext_b64_bytes"],
            "ratio_to_b64": round(total_bytes / first["plaintext_b64_bytes"], 3),
        },
        "max_abs_error": max(r["max_abs_error"] for r in runs),
    }


def main() -> dict[str, Any]:
    def added(case: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
        total, agg = case["server_total_ms"], case["server_ms"]["aggregate"]
        return {
            "server_total_ms": total,
            "added_server_ms": round(total - base["server_total_ms"], 3),
            "aggregate_ms": agg,
            "added_aggregate_ms": round(agg - base["server_ms"]["aggregate"], 3),
        }

    cases = []
    started = time.perf_counter()
    for n in SIZES:
        threshold = default_threshold(n)
        k = min(math.ceil(DROPOUT * n), n - threshold)
        gone = frozenset(f"hospital-{i:02d}" for i in range(n - k, n))
        for length in LENGTHS:
            repeats = REPEATS[length]
            base = _case(n, length, repeats)
            plain = _plaintext(n, length, repeats)
            # Nodes run in parallel at their hospitals: the session's critical path is one node's stages
            # plus the hub's; the baseline's is one node's signing plus the hub's verify-and-add.
            secure_path = sum(base["client_ms_per_participant"].values()) + base["server_total_ms"]
            plain_path = plain["client_ms_per_participant"] + plain["server_ms"]
            base["plaintext_time"] = {**plain, "critical_path_ms": round(plain_path, 3)}
            base["critical_path_ms"] = round(secure_path, 3)
            base["time_ratio"] = round(secure_path / plain_path, 2) if plain_path > 0 else None
            after = _case(n, length, repeats, after=gone)
            before = _case(n, length, repeats, before=gone)
            dropout = {"dropped": k, "after_masked_input": added(after, base),
                       "before_masked_input": added(before, base)}  # fmt: skip
            cases.append({"n": n, "threshold": threshold, "length": length, "repeats": repeats, **base,
                          "dropout": dropout})  # fmt: skip
    summary = {
        "scale": 2**24,
        "clip": 1e6,
        "cases": cases,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_result("secagg_core", summary)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
