"""Named OMOP standard concepts of the paediatric vocabulary subset, with a small typed registry.

Every id, name and code here was checked against a real OHDSI source (the OMOP samples in
``../shared/data/omop`` or public OHDSI/OMOP code); ``provenance.csv`` beside this module names the
source of each concept and ``PROVENANCE.md`` explains the source keys. Names are the OMOP
``concept_name`` verbatim; RxNorm ingredient names use the current lower-case spelling.

    from phds.omop.vocabulary import concepts as c
    c.ASTHMA                       # 317009
    c.REGISTRY[c.ASTHMA].name      # 'Asthma'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Concept:
    """One row of the OMOP CONCEPT table, as shipped in ``concept.csv``."""

    concept_id: int
    name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    concept_code: str
    standard_concept: str | None = "S"
    valid_start_date: str = "1970-01-01"
    valid_end_date: str = "2099-12-31"


# --- Conditions (SNOMED, standard) ---------------------------------------------------------------
ASTHMA = 317009
CHILDHOOD_ASTHMA = 4051466
ALLERGIC_ASTHMA = 4191479
EXERCISE_INDUCED_ASTHMA = 443801
COUGH_VARIANT_ASTHMA = 313236
INTRINSIC_ASTHMA = 4145497
BRONCHIOLITIS = 4165112
ACUTE_BRONCHITIS = 260139
PNEUMONIA = 255848
OTITIS_MEDIA = 372328
ACUTE_OTITIS_MEDIA = 4150372
SINUSITIS = 4283893
VIRAL_SINUSITIS = 40481087
ACUTE_VIRAL_PHARYNGITIS = 4112343
FEVER = 437663
TYPE_1_DIABETES_MELLITUS = 201254
SEIZURE_DISORDER = 4029498
EPILEPSY = 380378
ADHD = 438409
CHILD_ATTENTION_DEFICIT_DISORDER = 440086
OBESITY = 433736
CONGENITAL_HEART_DISEASE = 312723
TETRALOGY_OF_FALLOT = 320835
VENTRICULAR_SEPTAL_DEFECT = 434462
CYSTIC_FIBROSIS = 441267
PREMATURITY_OF_INFANT = 36675035
GASTROENTERITIS = 4101468
ATOPIC_DERMATITIS = 133834
URINARY_TRACT_INFECTION = 81902
RECURRENT_URINARY_TRACT_INFECTION = 4056621
E_COLI_URINARY_TRACT_INFECTION = 4116491
ACUTE_BRONCHIOLITIS = 260125
ACUTE_VIRAL_BRONCHIOLITIS = 4052544
RSV_BRONCHIOLITIS = 4237921  # "Respiratory syncytial virus bronchiolitis"
ACUTE_RSV_BRONCHIOLITIS = 254058  # "Acute bronchiolitis due to respiratory syncytial virus"
ACUTE_LYMPHOBLASTIC_LEUKAEMIA = 134305  # OMOP name "Acute lymphoid leukemia"
ACUTE_LYMPHOID_LEUKEMIA = ACUTE_LYMPHOBLASTIC_LEUKAEMIA
SEPSIS = 132797

# --- Drugs (RxNorm ingredients, standard) ----------------------------------------------------------
ALBUTEROL = 1154343  # salbutamol
SALBUTAMOL = ALBUTEROL
BUDESONIDE = 939259
FLUTICASONE = 1149380
INSULIN_GLARGINE = 1502905
LEVETIRACETAM = 711584
METHYLPHENIDATE = 705944
AMOXICILLIN = 1713332
METHOTREXATE = 1305058
DORNASE_ALFA = 1125443
ACETAMINOPHEN = 1125315  # paracetamol
PARACETAMOL = ACETAMINOPHEN
IBUPROFEN = 1177480
MERCAPTOPURINE = 1436650
PREDNISOLONE = 1550557
VALPROATE = 745466  # not 19010963 "valproic acid", a different RxNorm concept

# --- Measurements (LOINC unless noted) -------------------------------------------------------------
BODY_WEIGHT = 3025315
BODY_HEIGHT = 3036277
BMI = 3038553
BMI_PERCENTILE = 40762638
HEAD_CIRCUMFERENCE = 3000053  # occipital-frontal
HBA1C = 3004410
HAEMOGLOBIN = 3000963
GLUCOSE_BLOOD = 3000483
LEUKOCYTES = 3000905
FEV1_FVC = 3011505
BODY_TEMPERATURE = 3020891
HEART_RATE = 3027018
RESPIRATORY_RATE = 3024171
SYSTOLIC_BLOOD_PRESSURE = 3004249
C_REACTIVE_PROTEIN = 3020460  # mass/volume in serum or plasma
LACTATE_BLOOD = 3047181  # moles/volume in blood
OXYGEN_SATURATION_PULSE_OXIMETRY = 40762499
SPIROMETRY = 4133840  # SNOMED, Measurement domain
CF_SWEAT_TEST = 4314290  # SNOMED, Measurement domain

# --- Procedures (SNOMED) -------------------------------------------------------------------------
ECHOCARDIOGRAPHY = 4230911
OXYGEN_ADMINISTRATION_BY_MASK = 4162736
NEBULIZER_THERAPY = 4206920
CHEMOTHERAPY = 4273629

# --- Units (UCUM) --------------------------------------------------------------------------------
UNIT_KG = 9529
UNIT_CM = 8582
UNIT_KG_PER_M2 = 9531
UNIT_PERCENT = 8554
UNIT_G_PER_DL = 8713
UNIT_MG_PER_DL = 8840
UNIT_MMOL_PER_L = 8753
UNIT_PER_MINUTE = 8541
UNIT_DEGREE_CELSIUS = 586323
UNIT_THOUSAND_PER_UL = 8848
UNIT_MM_HG = 8876
UNIT_MG_PER_L = 8751

# --- Visits, gender, type and metadata concepts ----------------------------------------------------
INPATIENT_VISIT = 9201
OUTPATIENT_VISIT = 9202
EMERGENCY_ROOM_VISIT = 9203
INTENSIVE_CARE_VISIT = 32037
MALE = 8507
FEMALE = 8532
TYPE_EHR = 32817  # record type for EHR-derived rows (visits, conditions, drugs, measurements, death)
TYPE_EHR_EPISODE_RECORD = 32828  # observation period type
CDM_VERSION_5_4 = 756265  # cdm_source.cdm_version_concept_id
NO_MATCHING_CONCEPT = 0  # race/ethnicity and unmapped source values; not a standard concept

_SN, _RX, _LN, _UC = "SNOMED", "RxNorm", "LOINC", "UCUM"
_CF, _CO, _LT = "Clinical Finding", "Clinical Observation", "Lab Test"


def _condition(concept_id: int, name: str, code: str) -> Concept:
    return Concept(concept_id, name, "Condition", _SN, _CF, code)


def _ingredient(concept_id: int, name: str, code: str) -> Concept:
    return Concept(concept_id, name, "Drug", _RX, "Ingredient", code)


def _measurement(concept_id: int, name: str, code: str, klass: str = _CO, vocab: str = _LN) -> Concept:
    return Concept(concept_id, name, "Measurement", vocab, klass, code)


def _unit(concept_id: int, name: str, code: str) -> Concept:
    return Concept(concept_id, name, "Unit", _UC, "Unit", code)


_CONCEPTS: tuple[Concept, ...] = (
    _condition(ASTHMA, "Asthma", "195967001"),
    _condition(CHILDHOOD_ASTHMA, "Childhood asthma", "233678006"),
    _condition(ALLERGIC_ASTHMA, "Allergic asthma", "389145006"),
    _condition(EXERCISE_INDUCED_ASTHMA, "Exercise-induced asthma", "31387002"),
    _condition(COUGH_VARIANT_ASTHMA, "Cough variant asthma", "409663006"),
    _condition(INTRINSIC_ASTHMA, "Intrinsic asthma", "266361008"),
    _condition(BRONCHIOLITIS, "Bronchiolitis", "4120002"),
    _condition(ACUTE_BRONCHITIS, "Acute bronchitis", "10509002"),
    _condition(PNEUMONIA, "Pneumonia", "233604007"),
    _condition(OTITIS_MEDIA, "Otitis media", "65363002"),
    _condition(ACUTE_OTITIS_MEDIA, "Acute otitis media", "3110003"),
    _condition(SINUSITIS, "Sinusitis", "36971009"),
    _condition(VIRAL_SINUSITIS, "Viral sinusitis", "444814009"),
    _condition(ACUTE_VIRAL_PHARYNGITIS, "Acute viral pharyngitis", "195662009"),
    _condition(FEVER, "Fever", "386661006"),
    _condition(TYPE_1_DIABETES_MELLITUS, "Type 1 diabetes mellitus", "46635009"),
    _condition(SEIZURE_DISORDER, "Seizure disorder", "128613002"),
    _condition(EPILEPSY, "Epilepsy", "84757009"),
    _condition(ADHD, "Attention deficit hyperactivity disorder", "406506008"),
    _condition(CHILD_ATTENTION_DEFICIT_DISORDER, "Child attention deficit disorder", "192127007"),
    _condition(OBESITY, "Obesity", "414916001"),
    _condition(CONGENITAL_HEART_DISEASE, "Congenital heart disease", "13213009"),
    _condition(TETRALOGY_OF_FALLOT, "Tetralogy of Fallot", "86299006"),
    _condition(VENTRICULAR_SEPTAL_DEFECT, "Ventricular septal defect", "30288003"),
    _condition(CYSTIC_FIBROSIS, "Cystic fibrosis", "190905008"),
    _condition(PREMATURITY_OF_INFANT, "Prematurity of infant", "771299009"),
    _condition(GASTROENTERITIS, "Gastroenteritis", "25374005"),
    _condition(ATOPIC_DERMATITIS, "Atopic dermatitis", "24079001"),
    _condition(URINARY_TRACT_INFECTION, "Urinary tract infectious disease", "68566005"),
    _condition(RECURRENT_URINARY_TRACT_INFECTION, "Recurrent urinary tract infection", "197927001"),
    _condition(E_COLI_URINARY_TRACT_INFECTION, "Escherichia coli urinary tract infection", "301011002"),
    _condition(ACUTE_BRONCHIOLITIS, "Acute bronchiolitis", "5505005"),
    _condition(ACUTE_VIRAL_BRONCHIOLITIS, "Acute viral bronchiolitis", "233602006"),
    _condition(RSV_BRONCHIOLITIS, "Respiratory syncytial virus bronchiolitis", "57089007"),
    _condition(
        ACUTE_RSV_BRONCHIOLITIS, "Acute bronchiolitis due to respiratory syncytial virus", "195739001"
    ),
    _condition(ACUTE_LYMPHOBLASTIC_LEUKAEMIA, "Acute lymphoid leukemia", "91857003"),
    _condition(SEPSIS, "Sepsis", "91302008"),
    _ingredient(ALBUTEROL, "albuterol", "435"),
    _ingredient(BUDESONIDE, "budesonide", "19831"),
    _ingredient(FLUTICASONE, "fluticasone", "41126"),
    _ingredient(INSULIN_GLARGINE, "insulin glargine", "274783"),
    _ingredient(LEVETIRACETAM, "levetiracetam", "114477"),
    _ingredient(METHYLPHENIDATE, "methylphenidate", "6901"),
    _ingredient(AMOXICILLIN, "amoxicillin", "723"),
    _ingredient(METHOTREXATE, "methotrexate", "6851"),
    _ingredient(DORNASE_ALFA, "dornase alfa", "337623"),
    _ingredient(ACETAMINOPHEN, "acetaminophen", "161"),
    _ingredient(IBUPROFEN, "ibuprofen", "5640"),
    _ingredient(MERCAPTOPURINE, "mercaptopurine", "103"),
    _ingredient(PREDNISOLONE, "prednisolone", "8638"),
    _ingredient(VALPROATE, "valproate", "40254"),
    _measurement(BODY_WEIGHT, "Body weight", "29463-7"),
    _measurement(BODY_HEIGHT, "Body height", "8302-2"),
    _measurement(BMI, "Body mass index (BMI) [Ratio]", "39156-5"),
    _measurement(BMI_PERCENTILE, "Body mass index (BMI) [Percentile] Per age and sex", "59576-9"),
    _measurement(HEAD_CIRCUMFERENCE, "Head Occipital-frontal circumference", "9843-4"),
    _measurement(HBA1C, "Hemoglobin A1c/Hemoglobin.total in Blood", "4548-4", _LT),
    _measurement(HAEMOGLOBIN, "Hemoglobin [Mass/volume] in Blood", "718-7", _LT),
    _measurement(GLUCOSE_BLOOD, "Glucose [Mass/volume] in Blood", "2339-0", _LT),
    _measurement(LEUKOCYTES, "Leukocytes [#/volume] in Blood by Automated count", "6690-2", _LT),
    _measurement(FEV1_FVC, "FEV1/FVC", "19926-5"),
    _measurement(BODY_TEMPERATURE, "Body temperature", "8310-5"),
    _measurement(HEART_RATE, "Heart rate", "8867-4"),
    _measurement(RESPIRATORY_RATE, "Respiratory rate", "9279-1"),
    _measurement(SYSTOLIC_BLOOD_PRESSURE, "Systolic blood pressure", "8480-6"),
    _measurement(C_REACTIVE_PROTEIN, "C reactive protein [Mass/volume] in Serum or Plasma", "1988-5", _LT),
    _measurement(LACTATE_BLOOD, "Lactate [Moles/volume] in Blood", "32693-4", _LT),
    _measurement(
        OXYGEN_SATURATION_PULSE_OXIMETRY, "Oxygen saturation in Arterial blood by Pulse oximetry", "59408-5"
    ),
    _measurement(SPIROMETRY, "Spirometry", "127783003", "Procedure", _SN),
    _measurement(CF_SWEAT_TEST, "Cystic fibrosis sweat test", "86964003", "Procedure", _SN),
    Concept(ECHOCARDIOGRAPHY, "Echocardiography", "Procedure", _SN, "Procedure", "40701008"),
    Concept(
        OXYGEN_ADMINISTRATION_BY_MASK,
        "Oxygen administration by mask",
        "Procedure",
        _SN,
        "Procedure",
        "371908008",
    ),
    Concept(NEBULIZER_THERAPY, "Nebulizer therapy", "Procedure", _SN, "Procedure", "56251003"),
    Concept(CHEMOTHERAPY, "Chemotherapy", "Procedure", _SN, "Procedure", "367336001"),
    _unit(UNIT_KG, "kilogram", "kg"),
    _unit(UNIT_CM, "centimeter", "cm"),
    _unit(UNIT_KG_PER_M2, "kilogram per square meter", "kg/m2"),
    _unit(UNIT_PERCENT, "percent", "%"),
    _unit(UNIT_G_PER_DL, "gram per deciliter", "g/dL"),
    _unit(UNIT_MG_PER_DL, "milligram per deciliter", "mg/dL"),
    _unit(UNIT_MMOL_PER_L, "millimole per liter", "mmol/L"),
    _unit(UNIT_PER_MINUTE, "per minute", "/min"),
    _unit(UNIT_DEGREE_CELSIUS, "degree Celsius", "Cel"),
    _unit(UNIT_THOUSAND_PER_UL, "thousand per microliter", "10*3/uL"),
    _unit(UNIT_MM_HG, "millimeter mercury column", "mm[Hg]"),
    _unit(UNIT_MG_PER_L, "milligram per liter", "mg/L"),
    Concept(INPATIENT_VISIT, "Inpatient Visit", "Visit", "Visit", "Visit", "IP"),
    Concept(OUTPATIENT_VISIT, "Outpatient Visit", "Visit", "Visit", "Visit", "OP"),
    Concept(EMERGENCY_ROOM_VISIT, "Emergency Room Visit", "Visit", "Visit", "Visit", "ER"),
    Concept(INTENSIVE_CARE_VISIT, "Intensive Care", "Visit", "Visit", "Visit", "OMOP4822460"),
    Concept(MALE, "MALE", "Gender", "Gender", "Gender", "M"),
    Concept(FEMALE, "FEMALE", "Gender", "Gender", "Gender", "F"),
    Concept(
        TYPE_EHR,
        "EHR",
        "Type Concept",
        "Type Concept",
        "Type Concept",
        "OMOP4976890",
        valid_start_date="2020-08-20",
    ),
    Concept(
        TYPE_EHR_EPISODE_RECORD,
        "EHR episode record",
        "Type Concept",
        "Type Concept",
        "Type Concept",
        "OMOP4976901",
    ),
    Concept(
        CDM_VERSION_5_4,
        "OMOP CDM Version 5.4.0",
        "Metadata",
        "CDM",
        "CDM",
        "CDM v5.4.0",
        valid_start_date="2021-09-25",
    ),
    Concept(
        NO_MATCHING_CONCEPT,
        "No matching concept",
        "Metadata",
        "None",
        "Undefined",
        "No matching concept",
        standard_concept=None,
    ),
)

#: Every shipped concept by id.
REGISTRY: dict[int, Concept] = {c.concept_id: c for c in _CONCEPTS}

#: The asthma concepts a generator may record; all are descendants of ASTHMA in concept_ancestor.
ASTHMA_SUBTYPES: tuple[int, ...] = (
    CHILDHOOD_ASTHMA,
    ALLERGIC_ASTHMA,
    EXERCISE_INDUCED_ASTHMA,
    COUGH_VARIANT_ASTHMA,
    INTRINSIC_ASTHMA,
)
#: Inhaled corticosteroid ingredients shipped.
INHALED_CORTICOSTEROIDS: tuple[int, ...] = (BUDESONIDE, FLUTICASONE)


def concept(concept_id: int) -> Concept:
    """The shipped concept with this id; ``KeyError`` names ids the subset does not hold."""
    try:
        return REGISTRY[concept_id]
    except KeyError:
        raise KeyError(f"concept {concept_id} is not in the PHDS vocabulary subset") from None


def in_domain(domain_id: str) -> list[Concept]:
    """Shipped concepts of one OMOP domain, in id order."""
    return sorted((c for c in REGISTRY.values() if c.domain_id == domain_id), key=lambda c: c.concept_id)


if len(REGISTRY) != len(_CONCEPTS):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("duplicate concept id in phds.omop.vocabulary.concepts")
