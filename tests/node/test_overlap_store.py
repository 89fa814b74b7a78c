"""The overlap guard's persistence in node.db (phds.node.overlap_store)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from phds.errors import DisclosureRefused
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.overlap_store import OverlapGuard
from phds.privacy.overlap import REASON

K = 5
U = "tabular:cnsim"


def _guard(tmp_path: Path) -> tuple[NodeDatabase, OverlapGuard]:
    db = NodeDatabase(tmp_path / "node.db")
    return db, OverlapGuard(db)


def test_history_survives_reopening(tmp_path: Path) -> None:
    """Stops differencing across restarts: the second count is refused by a reopened node."""
    db, guard = _guard(tmp_path)
    guard.guard(U, [("A", range(100))], K, study_id="s1", task_id="t1")
    db.close()
    db, guard = _guard(tmp_path)
    assert guard.stored(U) == 1
    with pytest.raises(DisclosureRefused) as exc:
        guard.guard(U, [("A minus 1", range(1, 100))], K, study_id="s2", task_id="t2")
    assert exc.value.message == REASON
    guard.guard(U, [("A", range(100))], K, study_id="s3", task_id="t3")  # the same set again passes
    guard.guard("omop:cdm", [("A minus 1", range(1, 100))], K, study_id="s4", task_id="t4")
    assert guard.stored(U) == 1
    db.close()


def test_partition_attack_across_requesters(tmp_path: Path) -> None:
    """Stops collusion: a cohort released for one study, a breakdown of a smaller one for another."""
    db, guard = _guard(tmp_path)
    guard.guard(U, [("A", range(100))], K, study_id="org1", task_id="t1")
    smaller = range(2, 100)
    cells = [("F", [i for i in smaller if i % 2]), ("M", [i for i in smaller if not i % 2])]
    with pytest.raises(DisclosureRefused):
        guard.guard(U, cells, K, study_id="org2", task_id="t2")
    db.close()


def test_violation_rolls_back_nothing_else(tmp_path: Path) -> None:
    """A refusal inside the caller's transaction writes nothing, and the caller's own writes stay."""
    db, guard = _guard(tmp_path)
    audit = AuditLog(db)
    guard.guard(U, [("A", range(100))], K, study_id="s", task_id="t1")
    with db.transaction():
        audit.append("query_run", study_id="s", task_id="t2")
        with pytest.raises(DisclosureRefused):
            guard.guard(U, [("ok", range(500, 600)), ("bad", range(1, 100))], K, study_id="s", task_id="t2")
    assert [e.kind for e in audit.entries()] == ["query_run"]
    assert guard.stored(U) == 1  # "ok" was not recorded either: the release is all or nothing

    def caller_fails_after_the_guard() -> None:
        with db.transaction():
            guard.guard(U, [("B", range(200, 300))], K, study_id="s", task_id="t3")
            raise RuntimeError("the caller fails after the guard")

    with pytest.raises(RuntimeError):
        caller_fails_after_the_guard()
    assert guard.stored(U) == 1  # rolled back with the caller
    assert audit.verify().ok
    db.close()


def test_salt_never_leaves(tmp_path: Path) -> None:
    """Stops re-identification by hashing known ids: nothing released carries or reveals the salt."""
    db, guard = _guard(tmp_path)
    salt, band = db.con.execute("SELECT salt, band FROM overlap_secret").fetchone()
    assert len(salt) == 32 and salt != band
    guard.guard(U, [("A", range(100))], K, study_id="s", task_id="t1")
    with pytest.raises(DisclosureRefused) as exc:
        guard.guard(U, [("B", range(1, 100))], K, study_id="s", task_id="t2")
    assert salt.hex() not in exc.value.message and salt.hex() not in repr(exc.value.args)
    other = OverlapGuard(NodeDatabase(tmp_path / "other" / "node.db"))
    assert not np.array_equal(other.keys(range(10)), guard.keys(range(10)))  # salt differs per node
    assert OverlapGuard(db).keys(range(10)).tolist() == guard.keys(range(10)).tolist()  # stored once
    db.close()


def test_band_is_deterministic_per_pair(tmp_path: Path) -> None:
    db, guard = _guard(tmp_path)
    from phds.privacy.overlap import ReleasedSet

    a, b = ReleasedSet("a", guard.keys(range(10))), ReleasedSet("b", guard.keys(range(1, 11)))
    band = guard.band_for(K)
    assert band(a, b) == band(b, a)
    assert K <= band(a, b) < 2 * K
    values = {band(a, ReleasedSet("x", guard.keys(range(i, i + 20)))) for i in range(200)}
    assert values == set(range(K, 2 * K))
    db.close()


@pytest.mark.slow  # ~25 s, a cost figure printed for the record
def test_cost_100k_against_50_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cost, printed not asserted: record 50 sets, then check and record a 100,000-person set."""
    db, guard = _guard(tmp_path)
    rng = np.random.default_rng(0)
    population = np.arange(300_000)
    t0 = time.perf_counter()
    for j in range(50):  # cohorts of 20k-100k persons, each a shifted window or a breakdown cell
        start = int(rng.integers(0, 200_000))
        size = int(rng.integers(20_000, 100_000))
        guard.guard(U, [(f"c{j}", population[start : start + size])], K, study_id="s", task_id=f"t{j}")
    t_record = (time.perf_counter() - t0) / 50
    new = population[100_000:200_000]
    t1 = time.perf_counter()
    keys = guard.keys(new)
    t_hash = time.perf_counter() - t1
    t2 = time.perf_counter()
    guard.guard(U, [("new", new)], K, study_id="s", task_id="new")
    t_check = time.perf_counter() - t2
    mb = (tmp_path / "node.db").stat().st_size / 1e6
    with capsys.disabled():
        print(
            f"\noverlap cost: record (check+store) one 20k-100k set among <=50: {t_record * 1e3:.0f} ms; "
            f"hash 100,000 ids {t_hash * 1e3:.0f} ms; check+record 100,000 against 50 stored "
            f"{t_check * 1e3:.0f} ms; node.db {mb:.1f} MB for 51 sets"
        )
    assert keys.size == 100_000
    db.close()
