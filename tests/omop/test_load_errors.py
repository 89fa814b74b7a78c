"""Bad exports fail with a CdmLoadError naming file, line and column, and leave the store as it was."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from phds.errors import CdmLoadError
from phds.omop.load import load_cdm
from phds.omop.store import CdmStore, open_store

PERSON_HEADER = (
    "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,"
    "race_concept_id,ethnicity_concept_id,person_source_value"
)
PERSONS = [
    "1,8507,2015,4,9,2015-04-09 00:00:00,8527,38003564,a",
    '2,8532,2014,10,22,2014-10-22 00:00:00,8527,38003564,"two\nlines"',
    "3,8532,2022,1,5,2022-01-05 00:00:00,8527,38003564,c",
]
PERIOD_HEADER = (
    "observation_period_id,person_id,observation_period_start_date,observation_period_end_date,"
    "period_type_concept_id"
)
PERIODS = ["1,1,2015-04-09,2022-09-30,44814724", "2,2,2014-10-22,2021-10-13,44814724"]


def write_export(folder: Path, persons: list[str] | None = None, periods: list[str] | None = None) -> Path:
    """A tiny CDM export: PERSON.csv (row 2 holds a quoted newline) and OBSERVATION_PERIOD.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    if persons is not None:
        (folder / "PERSON.csv").write_text("\n".join([PERSON_HEADER, *persons]) + "\n", encoding="utf-8")
    (folder / "OBSERVATION_PERIOD.csv").write_text(
        "\n".join([PERIOD_HEADER, *(PERIODS if periods is None else periods)]) + "\n", encoding="utf-8"
    )
    return folder


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CdmStore]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path}/cdm.duckdb"
    else:
        url = request.getfixturevalue("pg_schema_url")
    with open_store(url) as s:
        yield s


@pytest.fixture
def loaded(store: CdmStore, tmp_path: Path) -> dict[str, int]:
    """The store after a good load; a failed load must leave exactly these row counts."""
    load_cdm(write_export(tmp_path / "good", PERSONS), store)
    counts = store.row_counts()
    assert counts["person"] == 3
    assert counts["observation_period"] == 2
    return counts


# Each case: (persons, periods, message fragment, line, column). Line 1 is the header; PERSONS[1]
# spans lines 3-4, so PERSONS[2] starts on physical line 5.
BAD_CASES = {
    "misspelt column": (
        [PERSON_HEADER.replace("gender_concept_id", "gender_concpet_id"), *PERSONS[:1]],
        None,
        "did you mean 'gender_concept_id'",
        1,
        "gender_concpet_id",
    ),
    "non-numeric concept_id": (
        [PERSON_HEADER, *PERSONS[:2], PERSONS[2].replace("8532", "female", 1)],
        None,
        "'female' is not a whole number",
        5,
        "gender_concept_id",
    ),
    "fractional concept_id": (
        [PERSON_HEADER, *PERSONS[:2], PERSONS[2].replace("8532", "8532.5", 1)],
        None,
        "'8532.5' is not a whole number",
        5,
        "gender_concept_id",
    ),
    "malformed datetime": (
        [PERSON_HEADER, *PERSONS[:2], PERSONS[2].replace("2022-01-05 00:00:00", "2022-13-45")],
        None,
        "'2022-13-45' is not a date-time",
        5,
        "birth_datetime",
    ),
    "malformed date": (
        [PERSON_HEADER, *PERSONS],
        [PERIODS[0], "2,2,22/10/2014,2021-10-13,44814724"],
        "'22/10/2014' is not a date",
        3,
        "observation_period_start_date",
    ),
    "required value empty": (
        [PERSON_HEADER, *PERSONS[:2], PERSONS[2].replace("2022,1,5", ",1,5")],
        None,
        "a value is required",
        5,
        "year_of_birth",
    ),
    "too many fields": (
        [PERSON_HEADER, *PERSONS[:2], PERSONS[2] + ",extra"],
        None,
        "10 fields where the header has 9",
        5,
        None,
    ),
}


def _write_bad(tmp_path: Path, case: str) -> Path:
    persons, periods, *_ = BAD_CASES[case]
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "PERSON.csv").write_text("\n".join(persons) + "\n", encoding="utf-8")
    (folder / "OBSERVATION_PERIOD.csv").write_text(
        "\n".join([PERIOD_HEADER, *(PERIODS if periods is None else periods)]) + "\n", encoding="utf-8"
    )
    return folder


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_value_names_file_line_and_column_and_loads_nothing(
    store: CdmStore, loaded: dict[str, int], tmp_path: Path, case: str
) -> None:
    _, periods, fragment, line, column = BAD_CASES[case]
    folder = _write_bad(tmp_path, case)
    with pytest.raises(CdmLoadError, match=fragment) as caught:
        load_cdm(folder, store, replace=True)
    error = caught.value
    assert error.file == ("OBSERVATION_PERIOD.csv" if periods else "PERSON.csv")
    assert (error.line, error.column) == (line, column)
    assert store.row_counts() == loaded


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_failed_first_load_leaves_an_empty_store_empty(store: CdmStore, tmp_path: Path, case: str) -> None:
    with pytest.raises(CdmLoadError):
        load_cdm(_write_bad(tmp_path, case), store)
    assert store.existing_tables() == set()


def test_bytes_that_are_not_utf8(store: CdmStore, loaded: dict[str, int], tmp_path: Path) -> None:
    folder = write_export(tmp_path / "latin1", PERSONS)
    text = "\n".join([PERSON_HEADER, *PERSONS, PERSONS[0].replace(",a", ",Jos\u00e9")]) + "\n"
    (folder / "PERSON.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(CdmLoadError, match="not valid UTF-8") as caught:
        load_cdm(folder, store, replace=True)
    assert caught.value.line == 6
    assert store.row_counts() == loaded


def test_missing_person_table(store: CdmStore, loaded: dict[str, int], tmp_path: Path) -> None:
    folder = write_export(tmp_path / "noperson")
    with pytest.raises(CdmLoadError, match="required CDM table person is missing") as caught:
        load_cdm(folder, store, replace=True)
    assert caught.value.file == str(folder)
    assert store.row_counts() == loaded


def test_missing_required_column(store: CdmStore, loaded: dict[str, int], tmp_path: Path) -> None:
    header = PERSON_HEADER.replace("year_of_birth,", "")
    rows = [p.replace(",2015,", ",", 1) for p in PERSONS[:1]]
    folder = write_export(tmp_path / "nocol", PERSONS)
    (folder / "PERSON.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(CdmLoadError, match="required column 'year_of_birth'") as caught:
        load_cdm(folder, store, replace=True)
    assert (caught.value.line, caught.value.column) == (1, "year_of_birth")
    assert store.row_counts() == loaded


def test_two_files_for_one_table(store: CdmStore, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "dup", PERSONS)
    (folder / "person.parquet").write_bytes(b"")
    with pytest.raises(CdmLoadError, match="two files for CDM table person"):
        load_cdm(folder, store)


def test_integers_written_with_a_zero_fraction_load(store: CdmStore, tmp_path: Path) -> None:
    persons = [PERSONS[0].replace("8507", "8507.0", 1), *PERSONS[1:]]
    load_cdm(write_export(tmp_path / "pandas", persons), store)
    genders = store.table("person").gender_concept_id.execute().tolist()
    assert sorted(genders) == [8507, 8532, 8532]


def test_yyyymmdd_dates_and_lower_case_names_load(store: CdmStore, tmp_path: Path) -> None:
    folder = tmp_path / "athena"
    folder.mkdir()
    (folder / "person.csv").write_text("\n".join([PERSON_HEADER.upper(), *PERSONS]) + "\n", encoding="utf-8")
    (folder / "observation_period.csv").write_text(
        f"{PERIOD_HEADER}\n1,1,20150409,20220930,44814724\n", encoding="utf-8"
    )
    load_cdm(folder, store)
    period = store.table("observation_period").to_pyarrow().to_pylist()
    assert period[0]["observation_period_start_date"] == date(2015, 4, 9)
    sources = store.table("person").person_source_value.execute().tolist()
    assert sorted(sources) == ["a", "c", "two\nlines"]


def test_athena_vocabulary_folder_loads_without_person(store: CdmStore, tmp_path: Path) -> None:
    folder = tmp_path / "athena-vocab"
    folder.mkdir()
    header = "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\t"
    header += "concept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason"
    row = '4180628\tDisorder of "body" system\tCondition\tSNOMED\tClinical Finding\tS\t362965005\t'
    row += "20020131\t20991231\t"
    (folder / "CONCEPT.csv").write_text(f"{header}\n{row}\n", encoding="utf-8")
    report = load_cdm(folder, store)
    assert report.counts() == {"concept": 1}
    concept = store.table("concept").to_pyarrow().to_pylist()[0]
    assert concept["concept_name"] == 'Disorder of "body" system'
    assert concept["valid_start_date"] == date(2002, 1, 31)


def test_parquet_folder_loads_and_bad_parquet_names_the_row(store: CdmStore, tmp_path: Path) -> None:
    csv_folder = write_export(tmp_path / "csv", PERSONS)
    folder = tmp_path / "parquet"
    folder.mkdir()
    con = duckdb.connect()
    for name in ("PERSON", "OBSERVATION_PERIOD"):
        src, dst = csv_folder / f"{name}.csv", folder / f"{name.lower()}.parquet"
        con.execute(f"COPY (SELECT * FROM read_csv('{src}', all_varchar = true)) TO '{dst}' (FORMAT parquet)")
    report = load_cdm(folder, store)
    assert report.counts() == {"observation_period": 2, "person": 3}
    bad, staged = folder / "observation_period.parquet", tmp_path / "staged.parquet"
    con.execute(
        f"COPY (SELECT * REPLACE ('soon' AS observation_period_end_date) FROM '{bad}') TO '{staged}' "
        "(FORMAT parquet)"
    )
    con.close()
    staged.replace(bad)
    with pytest.raises(CdmLoadError, match="row 1: 'soon' is not a date") as caught:
        load_cdm(folder, store, replace=True)
    assert caught.value.column == "observation_period_end_date"
    assert store.row_counts()["person"] == 3


def test_cli_error_exit_code_and_message(tmp_path: Path) -> None:
    folder = _write_bad(tmp_path, "non-numeric concept_id")
    url = f"duckdb:///{tmp_path}/cli.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "phds.cli.main", "omop", "load", str(folder), "--into", url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "file PERSON.csv, line 5, column gender_concept_id" in " ".join(done.stderr.split())
