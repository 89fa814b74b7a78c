"""The CDM v5.4 table definitions PHDS creates."""

from __future__ import annotations

from phds.omop.schema import VOCABULARY_TABLES, cdm_tables, table_spec

ISSUE_TABLES = {
    "person", "observation_period", "visit_occurrence", "visit_detail", "condition_occurrence",
    "drug_exposure", "procedure_occurrence", "device_exposure", "measurement", "observation", "death",
    "note", "specimen", "location", "care_site", "provider", "cdm_source", "metadata", "condition_era",
    "drug_era", "dose_era", "concept", "concept_ancestor", "concept_relationship", "concept_synonym",
    "vocabulary", "domain", "concept_class", "relationship", "drug_strength",
}  # fmt: skip


def test_all_tables_the_analyses_need_are_defined() -> None:
    assert ISSUE_TABLES <= set(cdm_tables())
    assert set(VOCABULARY_TABLES) <= set(cdm_tables())


def test_column_types_and_constraints_follow_the_ddl() -> None:
    person = table_spec("PERSON")
    assert person.column_names[:3] == ["person_id", "gender_concept_id", "year_of_birth"]
    assert person.column("person_id").type == "i" and person.column("person_id").required
    assert person.column("birth_datetime").type == "t" and not person.column("birth_datetime").required
    assert table_spec("concept_ancestor").column("descendant_concept_id").type == "i"
    assert table_spec("measurement").column("value_as_number").type == "n"
    sql = table_spec("note_nlp").create_sql("postgres", "cdm")
    assert '"offset" TEXT' in sql and sql.startswith('CREATE TABLE IF NOT EXISTS "cdm"."note_nlp"')
