"""``phds billing simulate``: the table, the documented JSON, the charts and the side-by-side comparison."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from phds.cli import billing
from phds.errors import InputError, NotFound

runner = CliRunner()
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")
YEAR_KEYS = {
    "year",
    "revenue",
    "costs",
    "net",
    "cash_end",
    "payout_per_hospital_mean",
    "payout_per_hospital_min",
}


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Stand-in for the phds root."""

    root.add_typer(billing.app, name="billing")
    return root


def _json(app: typer.Typer, *args: str) -> Any:
    result = runner.invoke(app, ["billing", "simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_has_the_documented_schema_with_decimal_strings(app: typer.Typer) -> None:
    data = _json(app, "pharma-heavy")
    assert len(data["years"]) == data["horizon_years"] == 10
    assert isinstance(data["break_even_month"], int) and data["break_even_month"] >= 1
    assert data["hospitals_below_viability"] == [y["hospitals_below_viability"] for y in data["years"]]
    assert data["bands"] is None and data["runs"] == 1 and data["currency"] == "EUR"
    assert data["viability_line"] == {
        "amount": "60000.00",
        "currency": "USD",
        "eur_per_unit": "0.8519",
        "converted": "51114.00",
    }
    for year in data["years"]:
        assert YEAR_KEYS <= set(year)
        for key in YEAR_KEYS - {"year"}:
            assert AMOUNT.match(year[key]), (key, year[key])
        assert all(AMOUNT.match(v) for v in year["revenue_by_stream"].values())
    month = data["months"][0]
    assert {"month", "label", "revenue", "costs", "net", "cash", "revenue_by_stream"} <= set(month)
    assert month["month"] == 1 and month["label"] == "2027-01"


def test_runs_add_bands_reproducibly(app: typer.Typer) -> None:
    first = _json(app, "trinetx-like", "--runs", "25", "--seed", "3")
    assert first == _json(app, "trinetx-like", "--runs", "25", "--seed", "3")
    bands = first["bands"]
    assert bands["runs"] == 25 and len(bands["months"]) == 120 and len(bands["years"]) == 10
    cash = bands["years"][-1]["cash_end"]
    assert Decimal(cash["p5"]) <= Decimal(cash["p50"]) <= Decimal(cash["p95"])
    assert set(bands["break_even"]) == {"share_of_runs", "month"}


def test_plot_writes_png_and_svg(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["billing", "simulate", "grant-funded-start", "--runs", "10", "--plot", str(tmp_path / "charts")]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert written == sorted(
        f"grant-funded-start-{c}.{e}" for c in ("cash", "payouts", "revenue") for e in ("png", "svg")
    )
    assert (tmp_path / "charts" / "grant-funded-start-cash.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "charts" / "grant-funded-start-cash.svg").read_text(encoding="utf-8")
    assert "Break-even" in result.output and "wrote 6 charts" in result.output


def test_compare_puts_scenarios_side_by_side(app: typer.Typer) -> None:
    result = runner.invoke(app, ["billing", "simulate", "pharma-heavy", "--compare", "academic-heavy"])
    assert result.exit_code == 0, result.output
    assert "pharma-heavy" in result.output and "academic-heavy" in result.output
    assert "break-even month" in result.output
    data = _json(app, "pharma-heavy", "--compare", "academic-heavy", "--compare", "trinetx-like")
    assert [d["scenario"] for d in data] == ["pharma-heavy", "academic-heavy", "trinetx-like"]
    assert data[1]["break_even_month"] is None


def test_the_table_names_break_even_and_viability(app: typer.Typer) -> None:
    result = runner.invoke(app, ["billing", "simulate", "academic-heavy", "--runs", "10"])
    assert result.exit_code == 0, result.output
    for says in ("Break-even", "none within the horizon", "Viability line: EUR 51,114", "Monte Carlo"):
        assert says in result.output


def test_a_scenario_path_works_and_errors_are_phds_errors(app: typer.Typer, tmp_path: Path) -> None:
    shipped = Path(billing.__file__).parents[1] / "billing" / "scenarios" / "pharma-heavy.yaml"
    assert _json(app, str(shipped))["scenario"] == "pharma-heavy"
    missing = runner.invoke(app, ["billing", "simulate", str(tmp_path / "nope.yaml")])
    assert isinstance(missing.exception, NotFound)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'name: bad\nstart: "2027-13"\nhorizon_years: 1\nhospitals: {initial: 1}\n', encoding="utf-8"
    )
    failed = runner.invoke(app, ["billing", "simulate", str(bad)])
    assert isinstance(failed.exception, InputError) and failed.exception.line == 2


def test_phds_billing_simulate_is_registered() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "phds.cli.main", "billing", "simulate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--compare" in done.stdout, done.stderr
