"""Wire models for tasks: the work a node pulls from the hub and the result it sends back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from phds.protocol.privacy import DpRequest
from phds.protocol.receipts import ReceiptOutcome, UsageReceipt
from phds.protocol.studies import ServiceType
from phds.protocol.trust import ReleaseEnvelope, SignedSpec
from phds.secagg.messages import SessionConfig


class TaskRequester(BaseModel):
    """Who asks, as a node's policy needs to know it."""

    organisation: str
    category: str | None = None  # academic, public, non-profit, sme, industry; None for hospitals/operator


class Task(BaseModel):
    """One round of one analysis for one hospital, as delivered to that hospital's node."""

    id: str
    study_id: str
    study_title: str
    study_purpose: str
    service_type: ServiceType
    requester: TaskRequester
    hospital: str
    analysis: str
    analysis_version: str
    params: dict[str, Any]
    round: int = Field(ge=1)
    state: dict[str, Any] = Field(default_factory=dict, description="Round state from the hub's runner")
    attempt: int = Field(ge=1, description="Delivery attempt; >1 after a lease expired")
    lease_expires_at: datetime
    signed_spec: SignedSpec | None = Field(
        default=None, description="The requester's signed study specification, relayed as submitted"
    )
    dp: DpRequest | None = Field(default=None, description="The study's differential-privacy request")
    secure_aggregation: bool = Field(default=False, description="The study asks for secure aggregation")
    application_id: str | None = Field(default=None, description="The application the study is billed under")
    secagg: SessionConfig | None = Field(
        default=None, description="This round's secure-aggregation session (phds.secagg), if it is one"
    )


class ResultStatus(StrEnum):
    """How a node answered a task."""

    OK = "ok"
    AWAITING_APPROVAL = "awaiting_approval"  # interim: the steward has not decided yet
    DECLINED = "declined"  # policy refused or steward rejected
    REFUSED = "refused"  # the disclosure gate refused to release
    ERROR = "error"


#: The receipt outcome of each final answer.
RECEIPT_OUTCOMES: dict[ResultStatus, ReceiptOutcome] = {
    ResultStatus.OK: ReceiptOutcome.ANSWERED,
    ResultStatus.DECLINED: ReceiptOutcome.DECLINED,
    ResultStatus.REFUSED: ReceiptOutcome.REFUSED,
    ResultStatus.ERROR: ReceiptOutcome.FAILED,
}


class TaskResult(BaseModel):
    """A node's answer to a task: only gate-released aggregates, never rows."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    status: ResultStatus
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=2000)
    compute_seconds: float = Field(default=0.0, ge=0)
    audit_hash: str | None = Field(default=None, description="Hash of the node's value_released audit entry")
    envelope: ReleaseEnvelope | None = Field(
        default=None, description="The released payload in an envelope signed by the node's key"
    )
    receipt: UsageReceipt | None = Field(
        default=None, description="The node-signed usage receipt that meters this answer"
    )


class TaskStates(BaseModel):
    """The hub's state of some of a node's tasks (``POST /nodes/me/tasks/states``), by task id.

    A node asks before it runs a task it parked for its steward: a task whose study was cancelled is
    ``cancelled`` and is not run. Unknown ids (or another node's) are absent.
    """

    model_config = ConfigDict(extra="forbid")

    states: dict[str, str] = Field(
        default_factory=dict, description="task id → queued, leased, parked, done, cancelled"
    )


class TaskIds(BaseModel):
    """Which tasks a node asks about."""

    model_config = ConfigDict(extra="forbid")

    task_ids: list[str] = Field(min_length=1, max_length=500)
