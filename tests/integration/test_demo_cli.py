"""``phds demo --hospital NAME=CSV_DIR --cohort FILE --json`` on the real OHDSI samples, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from phds.cohorts import count_cohort, parse_cohort
from phds.omop.load import load_cdm
from phds.omop.store import open_store

COHORT = Path(__file__).resolve().parents[1] / "cohorts" / "data" / "sinusitis_atlas.json"


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_counts_a_given_cohort_on_given_omop_folders(shared_data: Path, tmp_path: Path) -> None:
    synthea = shared_data / "omop" / "synthea27nj"
    gibleed = shared_data / "omop" / "eunomia-gibleed"
    done = subprocess.run(
        [sys.executable, "-m", "phds.cli.main", "demo", "--hospital", f"nj={synthea}",
         "--hospital", f"gibleed={gibleed}", "--cohort", str(COHORT), "--json",
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)["feasibility"]

    # The same cohort counted directly on the same data, outside the network.
    with open_store(f"duckdb:///{tmp_path / 'direct.duckdb'}") as store:
        load_cdm(synthea, store)
        expected = count_cohort(store, parse_cohort(COHORT.read_text(encoding="utf-8"))).total
    nj = result["hospitals"]["nj"]["persons"]
    if expected >= 5:
        assert nj["value"] == expected
    else:
        assert nj["value"] is None and nj["display"] == "<5"
    assert result["hospitals"]["gibleed"]["persons"]["value"] == 0  # eunomia has no condition_occurrence
    assert sorted(result["attribution"]["answered"]) == ["gibleed", "nj"]
    assert "approved study" in done.stderr  # gibleed's steward approved by hand, as the demo shows

    # The money path over the same real processes: each node's steward signed its participation with the
    # node CLI, the nodes signed a receipt per task, and both invoices verify against the node keys.
    billing = json.loads(done.stdout)["billing"]
    assert sorted(i["organisation"] for i in billing["invoices"]) == ["acme-pharma", "uni-research"]
    assert billing["verifications"] and set(billing["verifications"].values()) == {"ok"}
    for invoice in billing["invoices"]:
        assert invoice["lines"] and all(line["receipt_ids"] for line in invoice["lines"])
        for line in invoice["lines"]:  # the revenue shares reconcile to the cent
            assert sum(Decimal(v) for v in line["shares"].values()) == Decimal(line["net_amount"])
    paid = sum(Decimal(s["payable"]) for s in billing["statements"])
    operator = sum(
        Decimal(line["shares"].get("operator", "0")) for i in billing["invoices"] for line in i["lines"]
    )
    assert paid + operator == sum(Decimal(i["net_total"]) for i in billing["invoices"])
