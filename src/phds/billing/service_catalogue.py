"""The service catalogue: what the network sells, and the units it prices them in.

Not the dataset catalogue (``phds.protocol.catalogue``: which hospitals hold which data). The services
are the study service types (``phds.protocol.studies.ServiceType``) plus the fees around studies.
"""

from __future__ import annotations

from enum import StrEnum

from phds.protocol.organisations import RequesterCategory
from phds.protocol.studies import ServiceType


class BillableService(StrEnum):
    """A priced service: each study service type, plus application fees, synthetic data and hours."""

    FEASIBILITY = ServiceType.FEASIBILITY.value
    ANALYTICAL_STUDY = ServiceType.ANALYTICAL_STUDY.value
    RESEARCH = ServiceType.RESEARCH.value
    CLINICAL_TRIAL_SUPPORT = ServiceType.CLINICAL_TRIAL_SUPPORT.value
    INNOVATION = ServiceType.INNOVATION.value
    APPLICATION_FEE = "application_fee"
    SYNTHETIC_DATASET = ServiceType.SYNTHETIC_DATASET.value
    ANALYST_HOURS = "analyst_hours"
    PROJECT_MONTH = "project_month"


class PriceUnit(StrEnum):
    """What one unit of a price is."""

    PER_APPLICATION = "per_application"
    PER_STUDY = "per_study"
    PER_HOSPITAL = "per_hospital"  # each hospital that answered a study
    PER_QUERY = "per_query"  # each feasibility query, after the month's free allowance
    PER_HOUR = "per_hour"
    PER_MONTH = "per_month"  # each month a project is active


#: UN/ECE Recommendation 20 unit codes, as an EN 16931 invoice line names its unit (BT-130).
UNECE_UNIT_CODES: dict[PriceUnit, str] = {
    PriceUnit.PER_APPLICATION: "C62",
    PriceUnit.PER_STUDY: "C62",
    PriceUnit.PER_HOSPITAL: "C62",
    PriceUnit.PER_QUERY: "C62",
    PriceUnit.PER_HOUR: "HUR",
    PriceUnit.PER_MONTH: "MON",
}

#: Services a study's own ``service_type`` bills, metered from the node-signed receipts of its tasks.
STUDY_SERVICES = frozenset(BillableService(s.value) for s in ServiceType)

CATEGORIES: tuple[RequesterCategory, ...] = tuple(RequesterCategory)


def service_for(service_type: ServiceType | str) -> BillableService:
    """The billable service of a study's service type."""
    return BillableService(ServiceType(service_type).value)
