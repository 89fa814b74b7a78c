"""Family 4: tables (level names, complementary suppression, zeros beside small cells, linked tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attack_kit import (
    CVA_CASES,
    attempt,
    exact,
    federation,
    make_site,
    mappings,
    planted_frame,
    strings,
)

from phds.analyses.testing import Federation, FederationRun

TABLE = {"dataset": "cnsim"}
RARE = "ZEBRA_SYNDROME"


def diag_site(tmp_path: Path) -> Any:
    """A text column DIAG: 'asthma' / 'eczema' for everyone, RARE for the target alone."""
    frame = planted_frame()
    frame["DIAG"] = ["asthma" if i % 2 else "eczema" for i in range(len(frame))]
    frame.loc[0, "DIAG"] = RARE
    return make_site(tmp_path, frame, "diag.csv")


def leaked_names(run: FederationRun, name: str) -> bool:
    return any(name in s for s in strings(run))


def cells_of(run: FederationRun) -> list[dict[str, Any]]:
    """Every released breakdown (total and cells) in the payloads."""
    return [m for m in mappings(run.releases) if m.get("type") == "breakdown"]


def complement(breakdown: dict[str, Any]) -> list[int]:
    """Suppressed cells recoverable as total − the other cells (when exactly one is suppressed)."""
    cells = breakdown["cells"]
    total = exact(breakdown.get("total"))
    hidden = [k for k, c in cells.items() if exact(c) is None]
    if total is None or len(hidden) != 1:
        return []
    return [total - sum(exact(c) or 0 for k, c in cells.items() if k != hidden[0])]


def test_undeclared_rare_text_level_name(tmp_path: Path) -> None:
    """stats.table of DIAG without declared levels: the name ZEBRA_SYNDROME (one patient) must not leave."""
    with federation(tmp_path, {"site1": diag_site(tmp_path)}) as fed:
        run = attempt(fed, "stats.table", {"table": TABLE, "rows": "DIAG"})
    assert not leaked_names(run, RARE)


def test_undeclared_rare_numeric_level_name(fed_one: Federation) -> None:
    """stats.table of PM_BMI_CATEGORICAL: level '4' (the target alone) must not be published as a level."""
    run = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "PM_BMI_CATEGORICAL"})
    levels = [k for b in cells_of(run) for k in b["cells"]]
    levels += [str(x) for x in (run.result or {}).get("row_levels", [])]
    assert not any(str(k).split(":")[0] in {"4", "4.0"} for k in levels), levels


def test_characterisation_rare_level_name(tmp_path: Path) -> None:
    """Table 1 categorical DIAG, undeclared: the rare level name must not leave."""
    with federation(tmp_path, {"site1": diag_site(tmp_path)}) as fed:
        params = {"cohorts": [{"label": "a", "table": TABLE}], "categorical": ["DIAG"], "quantiles": False}
        run = attempt(fed, "stats.characterisation", params)
    assert not leaked_names(run, RARE)


def test_glm_factor_rare_level_name(tmp_path: Path) -> None:
    """GLM with C(DIAG): the design round lists level names; the rare one must not leave."""
    with federation(tmp_path, {"site1": diag_site(tmp_path)}) as fed:
        run = attempt(fed, "stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ C(DIAG)"})
    assert not leaked_names(run, RARE)


def test_cox_factor_rare_level_name(tmp_path: Path) -> None:
    """Cox with categorical DIAG (LAB_TSC / MEDI_LPD as stand-ins): the rare name must not leave."""
    with federation(tmp_path, {"site1": diag_site(tmp_path)}) as fed:
        params = {"table": TABLE, "duration": "LAB_TSC", "event": "MEDI_LPD", "covariates": ["DIAG"],
                  "categorical": ["DIAG"]}  # fmt: skip
        run = attempt(fed, "survival.cox", params)
    assert not leaked_names(run, RARE)


def test_declared_rare_level_complementary_suppression(fed_one: Federation) -> None:
    """Declared levels 1..4 of PM_BMI_CATEGORICAL: cell '4' is hidden, but total − the others is 1."""
    levels = {"PM_BMI_CATEGORICAL": ["1", "2", "3", "4"]}
    run = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "PM_BMI_CATEGORICAL", "levels": levels})
    recovered = [v for b in cells_of(run) for v in complement(b)]
    assert 1 not in recovered, recovered
    for cell in (run.result or {}).get("cells", []):
        if cell["row"] == "4":
            assert not (cell["exact"] and cell["lower"] == 1), cell


def test_zeros_beside_small_cell(tmp_path: Path) -> None:
    """GENDER × DIS_CVA where the 3 CVA cases are all GENDER = 1: cell (0, 1) is an exact 0 beside the
    suppressed (1, 1) = 3; with the exact total, total − the other three cells = 3."""
    frame = planted_frame()
    frame.loc[0:2, "GENDER"] = 1
    site = make_site(tmp_path, frame)
    with federation(tmp_path, {"site1": site}) as fed:
        run = attempt(fed, "stats.table", {"table": TABLE, "rows": "GENDER", "columns": "DIS_CVA"})
    recovered = [v for b in cells_of(run) for v in complement(b)]
    assert CVA_CASES not in recovered, recovered
    for cell in (run.result or {}).get("cells", []):
        if (cell["row"], cell["column"]) == ("1", "1"):
            assert not (cell["exact"] and cell["lower"] == CVA_CASES), cell


def test_linked_tables_margin_difference(fed_one: Federation) -> None:
    """One-way GENDER, then GENDER × DIS_CVA: n(GENDER = 1) − cell(1, 0) = the CVA cases among GENDER = 1."""
    truth = int(((fed_one_frame := planted_frame())["GENDER"] == 1).mul(fed_one_frame["DIS_CVA"] == 1).sum())
    one = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "GENDER"})
    two = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "GENDER", "columns": "DIS_CVA"})

    def cell(run: FederationRun, row: str, col: str | None) -> int | None:
        for c in (run.result or {}).get("cells", []):
            if c["row"] == row and c["column"] == col and c["exact"]:
                return int(c["lower"])
        return None

    n1, n10 = cell(one, "1", None), cell(two, "1", "0")
    estimate = n1 - n10 if n1 is not None and n10 is not None else None
    assert not (estimate == truth and 1 <= truth <= 4), (n1, n10, truth)


def test_continuous_values_as_level_names(tmp_path: Path) -> None:
    """stats.table of a continuous column with few distinct values (HDL rounded to 0.5) plus the target's
    9.87: the exact value must not be published as a level name."""
    frame = planted_frame()
    frame["LAB_HDL"] = (frame["LAB_HDL"] * 2).round() / 2
    frame.loc[0, "LAB_HDL"] = 9.87
    site = make_site(tmp_path, frame)
    with federation(tmp_path, {"site1": site}) as fed:
        run = attempt(fed, "stats.table", {"table": TABLE, "rows": "LAB_HDL", "max_levels": 200})
    assert not leaked_names(run, "9.87")


def test_guessed_level_probe(fed_one: Federation) -> None:
    """Declared levels are guesses: the guessed level '4' must not count an exact 1."""
    run = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "PM_BMI_CATEGORICAL",
                                           "levels": {"PM_BMI_CATEGORICAL": ["4"]}})  # fmt: skip
    found = [exact(c) for b in cells_of(run) for k, c in b["cells"].items() if str(k).startswith("4")]
    assert 1 not in found, found
