"""Helpers shared by the benchmarks: repeated timing with medians, machine facts, JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run *fn* once; return (seconds, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of *repeats* runs of *fn*, and every run's time."""
    runs = [timed(fn)[0] for _ in range(repeats)]
    return statistics.median(runs), runs


def machine() -> dict[str, Any]:
    """Facts about the machine a result was measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's result to ``benchmarks/results/<name>.json`` and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(), "machine": machine()}
    record.update(payload)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return path
