"""The hub and the SDK load no node code and no DuckDB (DESIGN.md's layout rules), in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import {module}
{extra}
loaded = sorted(m for m in sys.modules if m == "duckdb" or m.startswith(("duckdb.", "phds.node")))
print(",".join(loaded))
"""


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        (
            "phds.hub.app",
            "from phds.analyses.registry import available_analyses; available_analyses()",
        ),
        ("phds.sdk", "from phds.sdk import Client"),
        ("phds.analyses", "from phds.analyses.registry import available_analyses; available_analyses()"),
    ],
)
def test_module_loads_no_node_code_and_no_duckdb(module: str, extra: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, extra=extra)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "", f"{module} loaded {done.stdout.strip()}"
