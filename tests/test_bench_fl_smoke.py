"""A smoke run of ``benchmarks/bench_fl.py`` on tiny sizes over real hub and node processes (slow tier).

No time is asserted: the test checks that the clear and secure studies complete, that each measured
round has a duration and a node compute, and that ``main`` is not called (real results are kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # ``benchmarks`` is a top-level package of the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_fl  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_fl_benchmark_runs_on_tiny_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench_fl, "ROWS", 600)
    monkeypatch.setattr(bench_fl, "ROUNDS", 3)
    monkeypatch.setattr(bench_fl, "REPEATS", 1)
    out = bench_fl.network_rounds(2, tmp_path)
    for mode in ("clear", "secure"):
        rounds = out[mode]["rounds"]
        assert [r["round"] for r in rounds] == [3, 4], "the training rounds after the first"
        assert all(r["seconds"] > 0 and r["slowest_compute"] > 0 for r in rounds)
    assert out["secure_vs_clear_round"] > 0
