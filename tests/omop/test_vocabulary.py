"""The shipped vocabulary subset: consistent CSVs, real ids, closed ancestry, loadable on every store."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from phds.errors import Conflict
from phds.omop.store import CdmStore, open_store
from phds.omop.vocabulary import VOCABULARY_VERSION, build, load_vocabulary, vocabulary_tables
from phds.omop.vocabulary import concepts as c
from phds.omop.vocabulary.hierarchy import LINKS, Link, ancestor_rows

PACKAGE = resources.files("phds.omop.vocabulary")


def _tsv(name: str) -> list[dict[str, str]]:
    text = PACKAGE.joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def test_shipped_csvs_are_the_build_output() -> None:
    for table, rows in build.build_rows().items():
        shipped = PACKAGE.joinpath(f"{table}.csv").read_text(encoding="utf-8")
        assert shipped == build.csv_text(table, rows), f"{table}.csv is stale: python -m phds.omop.vocabulary"


def test_concept_ids_unique_standard_and_referenced() -> None:
    tables = {name: t.to_pylist() for name, t in vocabulary_tables().items()}
    ids = [r["concept_id"] for r in tables["concept"]]
    assert len(ids) == len(set(ids)) == len(c.REGISTRY)
    assert set(ids) == set(c.REGISTRY)
    vocabularies = {r["vocabulary_id"] for r in tables["vocabulary"]}
    domains = {r["domain_id"] for r in tables["domain"]}
    classes = {r["concept_class_id"] for r in tables["concept_class"]}
    for row in tables["concept"]:
        expected = "S" if row["concept_id"] != c.NO_MATCHING_CONCEPT else None
        assert row["standard_concept"] == expected, row
        assert row["concept_code"]
        assert row["concept_name"] == c.REGISTRY[row["concept_id"]].name
        assert row["vocabulary_id"] in vocabularies
        assert row["domain_id"] in domains
        assert row["concept_class_id"] in classes
    version = {r["vocabulary_id"]: r["vocabulary_version"] for r in tables["vocabulary"]}["None"]
    assert version == VOCABULARY_VERSION


def test_named_constants_resolve_to_the_right_domain() -> None:
    assert c.concept(c.ASTHMA).name == "Asthma"
    assert c.SALBUTAMOL == c.ALBUTEROL
    assert {k.concept_id for k in c.in_domain("Visit")} == {9201, 9202, 9203, 32037}
    assert {k.vocabulary_id for k in c.in_domain("Drug")} == {"RxNorm"}
    assert all(c.REGISTRY[i].concept_class_id == "Ingredient" for i in c.INHALED_CORTICOSTEROIDS)
    for unit in (c.UNIT_KG, c.UNIT_CM, c.UNIT_KG_PER_M2, c.UNIT_PERCENT, c.UNIT_G_PER_DL):
        assert c.REGISTRY[unit].domain_id == "Unit"
    with pytest.raises(KeyError, match="not in the PHDS vocabulary subset"):
        c.concept(4110487)


def test_every_concept_has_a_documented_source() -> None:
    rows = _tsv("provenance.csv")
    assert {int(r["concept_id"]) for r in rows} == set(c.REGISTRY)
    table = PACKAGE.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    keys = re.findall(r"^\| `([a-z-]+?)(-<set>)?` \|", table, re.MULTILINE)
    exact = {k for k, family in keys if not family}
    families = tuple(f"{k}-" for k, family in keys if family)
    assert {"syn", "eun", "pl"} <= exact
    assert families == ("pedsnet-",)
    for row in rows:
        assert row["concept_name"] == c.REGISTRY[int(row["concept_id"])].name
        for key in row["sources"].split(";"):
            assert key in exact or key.startswith(families), (row["concept_id"], key)


def test_ancestry_is_reflexive_closed_and_verified() -> None:
    rows = {
        (r["ancestor_concept_id"], r["descendant_concept_id"]): r
        for r in vocabulary_tables()["concept_ancestor"].to_pylist()
    }
    for k in c.REGISTRY.values():
        if k.standard_concept == "S":
            assert rows[(k.concept_id, k.concept_id)]["max_levels_of_separation"] == 0
    for (a, b), first in rows.items():
        assert a in c.REGISTRY
        assert b in c.REGISTRY
        assert first["min_levels_of_separation"] <= first["max_levels_of_separation"]
        for (b2, d), second in rows.items():
            if b2 == b and a != b and b != d:
                closed = rows[(a, d)]
                total = first["min_levels_of_separation"] + second["min_levels_of_separation"]
                assert closed["min_levels_of_separation"] <= total
                longest = first["max_levels_of_separation"] + second["max_levels_of_separation"]
                assert closed["max_levels_of_separation"] >= longest
    for link in LINKS:
        assert rows[(link.ancestor, link.descendant)]["min_levels_of_separation"] == link.min_levels


def test_closure_sums_levels_along_chains_and_diamonds() -> None:
    links = [
        Link(3, 2, 1, 1, True, "t"),
        Link(2, 1, 1, 2, True, "t"),
        Link(3, 4, 1, 1, True, "t"),
        Link(4, 1, 2, 2, False, "t"),
    ]
    rows = {(a, d): (lo, hi) for a, d, lo, hi in ancestor_rows(links, standard=[1, 2, 3, 4])}
    assert rows[(1, 1)] == (0, 0)
    assert rows[(1, 2)] == (1, 2)
    assert rows[(1, 3)] == (2, 3)  # via 2: 1+1..1+2, via 4: 1+2; min 2, max 3
    with pytest.raises(ValueError, match="cycle"):
        ancestor_rows([Link(1, 2, 1, 1, True, "t"), Link(2, 1, 1, 1, True, "t")], standard=[])


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CdmStore]:
    url = (
        f"duckdb:///{tmp_path}/cdm.duckdb"
        if request.param == "duckdb"
        else request.getfixturevalue("pg_schema_url")
    )
    with open_store(url) as s:
        yield s


def test_load_into_store_and_query_asthma_descendants(store: CdmStore) -> None:
    with pytest.raises(Conflict, match="lacks vocabulary tables"):
        load_vocabulary(store)
    store.create_tables()
    counts = load_vocabulary(store)
    assert counts["concept"] == len(c.REGISTRY)
    assert counts["concept_ancestor"] > len(c.REGISTRY)
    assert {k: v for k, v in store.row_counts().items() if k in counts} == counts

    ancestor, concept = store.table("concept_ancestor"), store.table("concept")
    asthma = ancestor.filter(ancestor.ancestor_concept_id == c.ASTHMA).join(
        concept, ancestor.descendant_concept_id == concept.concept_id
    )
    found = asthma.select("concept_id", "concept_name").execute()
    assert set(found["concept_id"]) == {c.ASTHMA, *c.ASTHMA_SUBTYPES}
    assert "Childhood asthma" in set(found["concept_name"])
    visits = concept.filter(concept.domain_id == "Visit").count().execute()
    assert int(visits) == 4  # inpatient, outpatient, emergency, intensive care

    with pytest.raises(Conflict, match="already holds"):
        load_vocabulary(store)
    assert store.row_counts()["concept"] == len(c.REGISTRY)


def _sample_concepts(path: Path) -> dict[int, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [{k.lower(): v for k, v in r.items()} for r in csv.DictReader(f)]
    return {int(r["concept_id"]): r for r in rows}


# Eunomia's 2019 release names some LOINC lab tests differently (3000963 is "Hemoglobin" there).
@pytest.mark.parametrize(
    ("sample", "minimum", "names_unchecked"),
    [("synthea27nj/CONCEPT.csv", 50, set()), ("eunomia-gibleed/CONCEPT.csv", 25, {"LOINC"})],
)
def test_shipped_concepts_agree_with_real_sample_vocabularies(
    shared_data: Path, sample: str, minimum: int, names_unchecked: set[str]
) -> None:
    real = _sample_concepts(shared_data / "omop" / sample)
    shared = sorted(set(real) & set(c.REGISTRY))
    assert len(shared) >= minimum
    for concept_id in shared:
        ours, theirs = c.REGISTRY[concept_id], real[concept_id]
        if ours.vocabulary_id == "RxNorm":  # RxNorm ingredient names were capitalised before 2020
            assert ours.name.lower() == theirs["concept_name"].lower(), concept_id
        elif ours.vocabulary_id not in names_unchecked:
            assert ours.name == theirs["concept_name"], concept_id
        assert ours.concept_code == theirs["concept_code"], concept_id
        assert (ours.domain_id, ours.vocabulary_id, ours.concept_class_id) == (
            theirs["domain_id"],
            theirs["vocabulary_id"],
            theirs["concept_class_id"],
        ), concept_id
        assert (ours.standard_concept or "") == theirs["standard_concept"], concept_id
