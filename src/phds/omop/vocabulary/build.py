"""Build the subset's vocabulary CSV files from :mod:`concepts` and :mod:`hierarchy`.

The CSVs beside this module are generated; edit the Python tables and regenerate them with
``python -m phds.omop.vocabulary``. A test fails when the shipped files and this build differ.
Files are tab-separated (as Athena's), with a header row of CDM v5.4 column names, dates as
``YYYY-MM-DD`` and NULL as an empty field.

The rows of VOCABULARY, DOMAIN, CONCEPT_CLASS and RELATIONSHIP are copied from Eunomia GiBleed's tables
where it has them (see PROVENANCE.md); ``concept_class_concept_id`` is 0 where no source was found.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from phds.omop.schema import table_spec
from phds.omop.vocabulary import concepts as c
from phds.omop.vocabulary.hierarchy import LINKS, ancestor_rows

#: Written to the ``None`` vocabulary row and meant for ``cdm_source.vocabulary_version``.
VOCABULARY_VERSION = "PHDS paediatric subset 2026-11 (OMOP v5.0 ids)"

#: The vocabulary tables shipped, in load order.
FILES: tuple[str, ...] = (
    "vocabulary",
    "domain",
    "concept_class",
    "relationship",
    "concept",
    "concept_relationship",
    "concept_ancestor",
)

Row = tuple[object, ...]
_OMOP = "OMOP generated"

# vocabulary_id -> (vocabulary_name, vocabulary_reference, vocabulary_concept_id)
_VOCABULARIES: dict[str, tuple[str, str, int]] = {
    "None": ("OMOP Standardized Vocabularies", _OMOP, 44819096),
    "SNOMED": (
        "Systematic Nomenclature of Medicine - Clinical Terms (IHTSDO)",
        "http://www.nlm.nih.gov/research/umls/licensedcontent/umlsknowledgesources.html",
        44819097,
    ),
    "RxNorm": (
        "RxNorm (NLM)",
        "http://www.nlm.nih.gov/research/umls/rxnorm/docs/rxnormfiles.html",
        44819104,
    ),
    "LOINC": (
        "Logical Observation Identifiers Names and Codes (Regenstrief Institute)",
        "http://loinc.org/downloads/loinc",
        44819102,
    ),
    "UCUM": (
        "Unified Code for Units of Measure (Regenstrief Institute)",
        "http://aurora.regenstrief.org/~ucum/ucum.html#section-Alphabetic-Index",
        44819107,
    ),
    "Visit": ("OMOP Visit", _OMOP, 44819119),
    "Gender": ("OMOP Gender", _OMOP, 44819108),
    "Type Concept": ("OMOP Type Concept", _OMOP, 32808),
    "CDM": ("OMOP Common DataModel", "https://github.com/OHDSI/CommonDataModel", 32485),
}

_DOMAINS: dict[str, int] = {
    "Gender": 2,
    "Metadata": 7,
    "Visit": 8,
    "Procedure": 10,
    "Drug": 13,
    "Unit": 16,
    "Condition": 19,
    "Measurement": 21,
    "Type Concept": 58,
}

# concept_class_id -> (concept_class_name, concept_class_concept_id; 0 = not verified)
_CONCEPT_CLASSES: dict[str, tuple[str, int]] = {
    "Clinical Finding": ("Clinical Finding", 44818997),
    "Ingredient": ("Ingredient", 44818981),
    "Gender": ("Gender", 44819086),
    "Visit": ("OMOP Visit", 44819023),
    "Undefined": ("Undefined", 44819044),
    "Clinical Observation": ("Clinical Observation", 0),
    "Lab Test": ("Lab Test", 0),
    "Procedure": ("Procedure", 0),
    "Unit": ("Unit", 0),
    "Type Concept": ("Type Concept", 0),
    "CDM": ("CDM", 0),
}

_RELATIONSHIPS: tuple[Row, ...] = (
    ("Is a", "Is a", "1", "0", "Subsumes", 44818821),
    ("Maps to", "Non-standard to Standard map (OMOP)", "0", "0", "Mapped from", 44818977),
    ("Mapped from", "Standard to Non-standard map (OMOP)", "0", "0", "Maps to", 44818976),
    ("Subsumes", "Subsumes", "1", "1", "Is a", 44818723),
)

_VALID = ("1970-01-01", "2099-12-31", None)


def build_rows() -> dict[str, list[Row]]:
    """Every shipped vocabulary table as rows in CDM column order, sorted."""
    concepts = sorted(c.REGISTRY.values(), key=lambda k: k.concept_id)
    used = {k.vocabulary_id for k in concepts}, {k.domain_id for k in concepts}
    classes = {k.concept_class_id for k in concepts}
    vocabularies = [
        (vid, name, ref, VOCABULARY_VERSION if vid == "None" else None, cid)
        for vid, (name, ref, cid) in _VOCABULARIES.items()
        if vid in used[0]
    ]
    relationships: list[Row] = []
    for k in concepts:
        if k.standard_concept == "S":
            relationships += [
                (k.concept_id, k.concept_id, rel, *_VALID) for rel in ("Maps to", "Mapped from")
            ]
    for link in LINKS:
        if link.direct:
            relationships.append((link.descendant, link.ancestor, "Is a", *_VALID))
            relationships.append((link.ancestor, link.descendant, "Subsumes", *_VALID))
    return {
        "vocabulary": sorted(vocabularies, key=lambda r: str(r[0])),
        "domain": sorted((d, d, cid) for d, cid in _DOMAINS.items() if d in used[1]),
        "concept_class": sorted((k, n, cid) for k, (n, cid) in _CONCEPT_CLASSES.items() if k in classes),
        "relationship": list(_RELATIONSHIPS),
        "concept": [
            (
                k.concept_id,
                k.name,
                k.domain_id,
                k.vocabulary_id,
                k.concept_class_id,
                k.standard_concept,
                k.concept_code,
                k.valid_start_date,
                k.valid_end_date,
                None,
            )
            for k in concepts
        ],
        "concept_relationship": sorted(relationships, key=lambda r: (r[0], r[1], str(r[2]))),
        "concept_ancestor": [tuple(r) for r in ancestor_rows()],
    }


def csv_text(table: str, rows: list[Row]) -> str:
    """One table as the shipped tab-separated text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(table_spec(table).column_names)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def write_csvs(directory: Path) -> list[Path]:
    """Write every table's CSV into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table, rows in build_rows().items():
        path = directory / f"{table}.csv"
        path.write_text(csv_text(table, rows), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    """Regenerate the CSVs in this package's folder."""
    for path in write_csvs(Path(__file__).parent):
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
