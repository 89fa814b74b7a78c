"""The OMOP concept ids the generator writes, by the generator's own short keys.

Every id comes from :mod:`phds.omop.vocabulary.concepts`, so the generator writes only concepts that
the shipped vocabulary subset holds. A concept the subset does not (yet) hold maps to ``None`` and the
generator leaves that drug or procedure out; :data:`MISSING` lists them.
"""

from __future__ import annotations

from phds.omop.vocabulary import concepts as v


def _opt(name: str) -> int | None:
    value = getattr(v, name, None)
    return int(value) if value is not None else None


# Person, visit and record-provenance concepts.
MALE = v.MALE
FEMALE = v.FEMALE
INPATIENT = v.INPATIENT_VISIT
OUTPATIENT = v.OUTPATIENT_VISIT
EMERGENCY = v.EMERGENCY_ROOM_VISIT
INTENSIVE_CARE = v.INTENSIVE_CARE_VISIT
#: The PICU ground truth's outcome (picu_truth), recorded at the PICU visit.
SEPSIS = v.SEPSIS
EHR = v.TYPE_EHR
OBSERVATION_PERIOD_TYPE = v.TYPE_EHR_EPISODE_RECORD
CDM_VERSION_CONCEPT = v.CDM_VERSION_5_4

#: Condition key (casemix table) -> standard SNOMED condition concept.
_CONDITION_NAMES = {
    "asthma": "ASTHMA",
    "bronchiolitis": "RSV_BRONCHIOLITIS",
    "otitis_media": "ACUTE_OTITIS_MEDIA",
    "type1_diabetes": "TYPE_1_DIABETES_MELLITUS",
    "epilepsy": "EPILEPSY",
    "adhd": "ADHD",
    "obesity": "OBESITY",
    "all": "ACUTE_LYMPHOBLASTIC_LEUKAEMIA",
    "chd": "CONGENITAL_HEART_DISEASE",
    "cystic_fibrosis": "CYSTIC_FIBROSIS",
    "prematurity": "PREMATURITY_OF_INFANT",
}
#: Drug key -> standard RxNorm ingredient concept.
_DRUG_NAMES = {
    "salbutamol": "SALBUTAMOL",
    "prednisolone": "PREDNISOLONE",
    "insulin": "INSULIN_GLARGINE",
    "levetiracetam": "LEVETIRACETAM",
    "valproate": "VALPROATE",
    "methylphenidate": "METHYLPHENIDATE",
    "amoxicillin": "AMOXICILLIN",
    "methotrexate": "METHOTREXATE",
    "mercaptopurine": "MERCAPTOPURINE",
    "dornase_alfa": "DORNASE_ALFA",
    "furosemide": "FUROSEMIDE",
    "caffeine": "CAFFEINE",
}
#: Procedure key -> standard procedure concept.
_PROCEDURE_NAMES = {
    "bone_marrow_aspiration": "BONE_MARROW_ASPIRATION",
    "chemotherapy": "CHEMOTHERAPY",
    "echocardiography": "ECHOCARDIOGRAPHY",
    "cardiac_surgery": "CARDIAC_SURGERY",
    "oxygen_therapy": "OXYGEN_ADMINISTRATION_BY_MASK",
    "nebuliser": "NEBULIZER_THERAPY",
}

CONDITION: dict[str, int | None] = {k: _opt(n) for k, n in _CONDITION_NAMES.items()}
DRUG: dict[str, int | None] = {k: _opt(n) for k, n in _DRUG_NAMES.items()}
PROCEDURE: dict[str, int | None] = {k: _opt(n) for k, n in _PROCEDURE_NAMES.items()}

#: The inhaled corticosteroids a child with asthma may be started on (the ground truth's "ICS use").
ICS: tuple[int, ...] = tuple(v.INHALED_CORTICOSTEROIDS)

#: Measurement key -> (measurement concept, UCUM unit concept). The sweat test is a SNOMED procedure in
#: the Measurement domain, recorded with its sweat chloride in mmol/L.
MEASUREMENT: dict[str, tuple[int, int]] = {
    "weight": (v.BODY_WEIGHT, v.UNIT_KG),
    "height": (v.BODY_HEIGHT, v.UNIT_CM),
    "bmi": (v.BMI, v.UNIT_KG_PER_M2),
    "ofc": (v.HEAD_CIRCUMFERENCE, v.UNIT_CM),
    "hba1c": (v.HBA1C, v.UNIT_PERCENT),
    "sweat_test": (v.CF_SWEAT_TEST, v.UNIT_MMOL_PER_L),
    # PICU admission values (picu_truth.MEASURED)
    "heart_rate": (v.HEART_RATE, v.UNIT_PER_MINUTE),
    "respiratory_rate": (v.RESPIRATORY_RATE, v.UNIT_PER_MINUTE),
    "temperature": (v.BODY_TEMPERATURE, v.UNIT_DEGREE_CELSIUS),
    "systolic_bp": (v.SYSTOLIC_BLOOD_PRESSURE, v.UNIT_MM_HG),
    "lactate": (v.LACTATE_BLOOD, v.UNIT_MMOL_PER_L),
    "wbc": (v.LEUKOCYTES, v.UNIT_THOUSAND_PER_UL),
    "crp": (v.C_REACTIVE_PROTEIN, v.UNIT_MG_PER_L),
}

#: Vocabulary constant names the generator would use but the shipped subset lacks.
MISSING: tuple[str, ...] = tuple(
    sorted(
        n
        for names in (_CONDITION_NAMES, _DRUG_NAMES, _PROCEDURE_NAMES)
        for n in names.values()
        if _opt(n) is None
    )
)


def all_concept_ids() -> set[int]:
    """Every concept id the generator can write (the tests check each is in the shipped vocabulary)."""
    ids = {
        MALE,
        FEMALE,
        INPATIENT,
        OUTPATIENT,
        EMERGENCY,
        INTENSIVE_CARE,
        SEPSIS,
        EHR,
        OBSERVATION_PERIOD_TYPE,
    }
    ids.add(CDM_VERSION_CONCEPT)
    for table in (CONDITION, DRUG, PROCEDURE):
        ids |= {c for c in table.values() if c is not None}
    ids |= set(ICS)
    for concept, unit in MEASUREMENT.values():
        ids |= {concept, unit}
    return ids
