"""Wire models for studies: the study file a requester submits and the study as the hub reports it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from phds.protocol.privacy import DpRequest


class ServiceType(StrEnum):
    """What a requester buys; the billing catalogue prices each type."""

    FEASIBILITY = "feasibility"
    ANALYTICAL_STUDY = "analytical_study"
    RESEARCH = "research"
    CLINICAL_TRIAL_SUPPORT = "clinical_trial_support"
    INNOVATION = "innovation"
    SYNTHETIC_DATASET = "synthetic_dataset"  # a DP synthetic dataset (synthetic.mst), priced per study


class StudyState(StrEnum):
    """A study's lifecycle: draft → submitted → awaiting approval → running → a final state."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the requester cancelled it before it finished

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STUDY_STATES


_FINAL_STUDY_STATES = {
    StudyState.COMPLETED,
    StudyState.PARTIALLY_COMPLETED,
    StudyState.REJECTED,
    StudyState.FAILED,
    StudyState.CANCELLED,
}


class HospitalState(StrEnum):
    """One target hospital's state within a study."""

    PENDING = "pending"  # tasks queued, the node has not answered yet
    AWAITING_APPROVAL = "awaiting_approval"  # the node's steward must decide
    RUNNING = "running"  # approved (or auto) and computing
    ANSWERED = "answered"  # every round answered
    DECLINED = "declined"  # policy or steward said no
    FAILED = "failed"  # the node reported an error
    TIMED_OUT = "timed_out"  # no answer before the study's deadline
    CANCELLED = "cancelled"  # the requester cancelled the study before this hospital answered

    @property
    def is_final(self) -> bool:
        return self in {self.ANSWERED, self.DECLINED, self.FAILED, self.TIMED_OUT, self.CANCELLED}


class AnalysisSpec(BaseModel):
    """Which vetted analysis to run, and its parameters (validated by the analysis's Params model)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.]*$")
    version: str | None = Field(default=None, max_length=20)
    params: dict[str, Any] = Field(default_factory=dict)


class StudySpec(BaseModel):
    """A study file: what a requester asks the network to compute."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=4000)
    organisation: str = Field(min_length=1, max_length=100, description="The requesting organisation")
    service_type: ServiceType
    hospitals: list[str] = Field(min_length=1, max_length=200, description="Target hospital names")
    analysis: AnalysisSpec
    deadline_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=30 * 24 * 3600,
        description="Hospitals that have not answered this long after submission are marked timed out",
    )
    dp: DpRequest | None = Field(
        default=None,
        description="Ask for differential privacy; each node applies the stricter of this and its policy",
    )
    secure_aggregation: bool = Field(
        default=False,
        description="Combine the hospitals' releases by secure aggregation: the hub sees only sums",
    )
    application_id: str | None = Field(
        default=None,
        max_length=64,
        description="The accepted data-access application this study is billed under",
    )

    @model_validator(mode="after")
    def _privacy_options(self) -> StudySpec:
        if self.secure_aggregation and len(self.hospitals) < 2:
            raise ValueError("secure_aggregation needs at least 2 hospitals")
        return self

    @field_validator("hospitals")
    @classmethod
    def _unique_hospitals(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each hospital may be named once")
        return value


class HospitalStatus(BaseModel):
    """One hospital's state in a study and, when it declined or failed, why."""

    hospital: str
    state: HospitalState
    reason: str | None = None
    updated_at: datetime


class StudyView(BaseModel):
    """A study as the hub reports it to its requester."""

    id: str
    spec: StudySpec
    state: StudyState
    round: int
    version: int = Field(description="Increases with every change; /wait returns when it passes yours")
    hospitals: list[HospitalStatus]
    submitted_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(
        default=None,
        description="The analysis result plus attribution: answered, declined, refused, failed, timed_out",
    )
    error: str | None = None
