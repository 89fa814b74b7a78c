"""``make bench``: run every ``benchmarks/bench_*.py`` module's ``main()`` and print a summary.

``python -m benchmarks.run [NAME ...]`` runs only the named benchmarks (e.g. ``load synth``).
Each module writes its own JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}", flush=True)
        summary = module.main()
        print(json.dumps(summary, indent=2, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
