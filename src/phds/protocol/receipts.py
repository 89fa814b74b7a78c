"""Usage receipts: a node's signed statement that it did (or refused) one task's work, for metering.

The node signs each receipt with its key in the same transaction as the receipt's audit entry (kind
``usage_receipt``), which the receipt names by ``audit_seq`` and ``audit_hash``. The hub meters usage
only from receipts whose signature verifies against the node key pinned at enrolment, so an invoice line
can be traced to what a hospital signed, and a hospital can find each receipt in its own audit log.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from phds.protocol.common import WireModel


class ReceiptOutcome(StrEnum):
    """What became of the work a receipt stands for."""

    ANSWERED = "answered"  # released through the gate
    DECLINED = "declined"  # the hospital's policy or steward said no
    REFUSED = "refused"  # the disclosure gate refused the release
    FAILED = "failed"  # bad input or an error at the node


class UsageReceipt(WireModel):
    """One task's chargeable event at one node, signed by the node's key."""

    receipt_id: str = Field(description="Unique per task: the node issues one receipt per task it answers")
    hospital: str
    study_id: str
    task_id: str
    application_id: str | None = None
    round: int = Field(ge=0)
    service_type: str
    analysis: str
    requester_org: str
    outcome: ReceiptOutcome
    compute_seconds: float = Field(ge=0)
    persons: int | None = Field(
        default=None,
        ge=0,
        description="The cohort size as the node released it (rounded or noisy, never an exact small "
        "number); None when nothing was released or the release is secure-aggregated",
    )
    audit_seq: int = Field(ge=1, description="The node's usage_receipt audit entry")
    audit_hash: str
    issued_at: datetime
    node_key_id: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but the signature: what the node key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


__all__ = ["ReceiptOutcome", "UsageReceipt"]
