"""Tabular datasets and OMOP stores as a node serves them to analyses."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from phds.errors import ConfigError, InputError
from phds.sources import NodeData


def _cnsim(shared_data: Path, site: int) -> Path:
    return shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{site}.csv"


def test_cnsim_headers_are_stripped_and_missing_fields_are_null(shared_data: Path) -> None:
    path = _cnsim(shared_data, 1)
    data = NodeData({}, {"cnsim": path})
    table = data.tabular("cnsim")
    assert "LAB_TSC" in table.columns and "LAB_HDL" in table.columns
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    glucose = [r["LAB_GLUC_ADJUSTED  "] for r in rows]
    expected_missing = sum(1 for v in glucose if v == "")
    assert table.count().execute() == len(rows)
    assert table.LAB_GLUC_ADJUSTED.isnull().sum().execute() == expected_missing
    present = [float(v) for v in glucose if v != ""]
    assert math.isclose(table.LAB_GLUC_ADJUSTED.mean().execute(), sum(present) / len(present))
    data.close()


def test_unknown_dataset_names_the_field_and_the_known_ones(shared_data: Path) -> None:
    data = NodeData({}, {"cnsim": _cnsim(shared_data, 2)})
    with pytest.raises(InputError, match=r"analysis\.params\.dataset.*no dataset 'nope'.*cnsim"):
        data.tabular("nope")
    with pytest.raises(InputError, match="serves no OMOP CDM"):
        data.omop()
    data.close()


def test_dataset_names_cannot_smuggle_sql(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be letters"):
        NodeData({}, {'x"; DROP TABLE person; --': tmp_path / "a.csv"})


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    data = NodeData({}, {"gone": tmp_path / "gone.csv"})
    with pytest.raises(ConfigError, match=r"gone\.csv does not exist"):
        data.tabular("gone")
    data.close()
