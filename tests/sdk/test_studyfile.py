"""Study files: the documented example loads; every mistake names the file and the field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from phds.errors import InputError
from phds.protocol.studies import ServiceType
from phds.sdk import load_study
from phds.sdk.studyfile import study_from_mapping

DATA = Path(__file__).parent / "data"
EXAMPLE = DATA / "asthma-feasibility.yaml"
DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "requester.md"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the example study and its cohort file, to edit."""
    for name in ("asthma-feasibility.yaml", "asthma-salbutamol.yaml"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def _edit(folder: Path, old: str, new: str) -> Path:
    path = folder / "asthma-feasibility.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return path


def test_documented_example_loads_with_the_cohort_file_read_in() -> None:
    spec = load_study(EXAMPLE)
    assert spec.service_type is ServiceType.FEASIBILITY
    assert spec.hospitals == ["north-general", "central-tertiary", "west-respiratory"]
    assert "cohort_file" not in spec.analysis.params
    assert spec.analysis.params["cohort"] == (DATA / "asthma-salbutamol.yaml").read_text()
    assert spec.analysis.params["breakdowns"] == ["sex", "age_group"]


def test_the_howto_shows_the_tested_example() -> None:
    doc = DOC.read_text()
    for line in EXAMPLE.read_text().splitlines()[1:]:
        assert line in doc, line


def test_json_study_file_loads() -> None:
    spec = load_study(DATA / "noop.json")
    assert (spec.analysis.name, spec.deadline_seconds) == ("system.noop", 600)


def test_inline_cohort_is_kept(folder: Path) -> None:
    cohort = (folder / "asthma-salbutamol.yaml").read_text()
    indented = "\n".join("      " + line for line in cohort.splitlines())
    path = _edit(folder, "cohort_file: asthma-salbutamol.yaml", f"cohort: |\n{indented}")
    assert load_study(path).analysis.params["cohort"].strip() == cohort.strip()


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "says"),
    [
        ("purpose:", "purpos:", "purpos", 3, "unknown key 'purpos' (did you mean 'purpose'?)"),
        ("service_type: feasibility", "service_type: survey", "service_type", 5, "'analytical_study'"),
        ("title: Asthma and salbutamol in children 2-11\n", "", "title", None, "Field required"),
        ("west-respiratory]", "north-general]", "hospitals", 6, "north-general named more than once"),
        ("breakdowns: [sex, age_group]", "breakdowns: [sex, region]", "analysis.params.breakdowns.1", 11,
         "'sex', 'age_group' or 'year'"),
        ("  name: feasibility.count", "  name: feasibility.count\n  engine: spark", "analysis.engine", 9,
         "unknown key 'engine'; allowed here: name, params, version"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_the_field_and_the_line(
    folder: Path, old: str, new: str, field: str, line: int | None, says: str
) -> None:
    path = _edit(folder, old, new)
    with pytest.raises(InputError) as caught:
        load_study(path)
    error = caught.value
    assert (error.file, error.field) == (str(path), field)
    if line is not None:
        assert error.line == line
    assert says in error.message
    assert error.message.startswith(f"file {path}")


def test_unreadable_cohort_file_names_the_study_file_and_the_field(folder: Path) -> None:
    path = _edit(folder, "cohort_file: asthma-salbutamol.yaml", "cohort_file: missing/asthma.yaml")
    with pytest.raises(InputError, match=r"cannot read cohort file .*missing/asthma\.yaml") as caught:
        load_study(path)
    assert (caught.value.file, caught.value.field, caught.value.line) == (
        str(path),
        "analysis.params.cohort_file",
        10,
    )


def test_cohort_and_cohort_file_together_are_refused(folder: Path) -> None:
    path = _edit(folder, "    breakdowns:", "    cohort: '{}'\n    breakdowns:")
    with pytest.raises(InputError, match="either cohort or cohort_file") as caught:
        load_study(path)
    assert caught.value.field == "analysis.params.cohort_file"


def test_a_broken_cohort_file_is_named_with_its_own_line(folder: Path) -> None:
    cohort = folder / "asthma-salbutamol.yaml"
    cohort.write_text(cohort.read_text().replace("age: {min: 2, max: 11}", "age: {min: 2, max: [11"))
    with pytest.raises(InputError) as caught:
        load_study(folder / "asthma-feasibility.yaml")
    assert caught.value.file == str(cohort)
    assert caught.value.line is not None


def test_malformed_yaml_and_json_give_line_and_column(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "s.yaml"
    bad_yaml.write_text("title: x\nhospitals: [a, b\n")
    with pytest.raises(InputError, match="not valid YAML") as caught:
        load_study(bad_yaml)
    assert caught.value.file == str(bad_yaml) and caught.value.line is not None
    bad_json = tmp_path / "s.json"
    bad_json.write_text('{"title": "x",\n "hospitals": [}')
    with pytest.raises(InputError, match="not valid JSON") as caught:
        load_study(bad_json)
    assert (caught.value.line, caught.value.column) == (2, "16")


def test_missing_file_and_non_mapping_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"file {tmp_path / 'nope.yaml'}: cannot read")):
        load_study(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_study(listing)


def test_mapping_studies_are_checked_too() -> None:
    with pytest.raises(InputError, match="field organisation") as caught:
        study_from_mapping(
            {
                "title": "t",
                "purpose": "p",
                "service_type": "feasibility",
                "hospitals": ["a"],
                "analysis": {"name": "system.noop"},
            }
        )
    assert caught.value.file is None
