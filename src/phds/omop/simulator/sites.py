"""The per-hospital rows: location, care sites and cdm_source."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from phds.omop.schema import CDM_VERSION
from phds.omop.simulator import codes
from phds.omop.simulator.casemix import HospitalProfile
from phds.omop.simulator.chunk import CARE_SITE_BY_VISIT, arrow_table
from phds.omop.simulator.population import day_number
from phds.omop.vocabulary import VOCABULARY_VERSION

_CARE_SITE_NAMES = {
    codes.OUTPATIENT: "Outpatient clinics",
    codes.EMERGENCY: "Children's emergency department",
    codes.INPATIENT: "Children's wards",
    codes.INTENSIVE_CARE: "Paediatric intensive care unit",
}


def site_tables(
    profile: HospitalProfile, *, seed: int, patients: int, reference: date
) -> dict[str, pa.Table]:
    """location, care_site and cdm_source of one synthetic hospital."""
    sites = list(CARE_SITE_BY_VISIT.items())
    ref = np.array([day_number(reference)])
    return {
        "location": arrow_table(
            "location",
            {
                "location_id": np.array([1]),
                "city": [profile.city],
                "country_source_value": ["synthetic"],
                "location_source_value": [profile.slug],
            },
        ),
        "care_site": arrow_table(
            "care_site",
            {
                "care_site_id": np.array([cid for _, cid in sites]),
                "care_site_name": [f"{profile.name}: {_CARE_SITE_NAMES[v]}" for v, _ in sites],
                "place_of_service_concept_id": np.array([v for v, _ in sites]),
                "location_id": np.ones(len(sites), dtype=np.int64),
                "care_site_source_value": [f"{profile.slug}/{cid}" for _, cid in sites],
            },
        ),
        "cdm_source": arrow_table(
            "cdm_source",
            {
                "cdm_source_name": [f"{profile.name} (synthetic)"],
                "cdm_source_abbreviation": [profile.slug],
                "cdm_holder": ["PHDS synthetic paediatric hospital generator (no real patients)"],
                "source_description": [
                    f"{profile.description} {patients} synthetic children aged 0-17 on {reference}, "
                    f"seed {seed}. Ground truths (asthma admissions, PICU sepsis): docs/ground-truth.md."
                ],
                "source_documentation_reference": ["docs/howto/simulate-hospitals.md"],
                "cdm_etl_reference": ["phds simulate"],
                "source_release_date": ref,
                "cdm_release_date": ref,
                "cdm_version": [CDM_VERSION],
                "cdm_version_concept_id": np.array([codes.CDM_VERSION_CONCEPT]),
                "vocabulary_version": [VOCABULARY_VERSION],
            },
        ),
    }
