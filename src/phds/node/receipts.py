"""Usage receipts at the node: one signed receipt per answered task, committed with its audit entry.

:func:`with_receipt` runs inside the transaction that stores the task's final answer (the gate's release
transaction for a release, the outcome's own for a refusal or failure). It appends a ``usage_receipt``
audit entry holding the receipt's fields, signs the receipt naming that entry's sequence and hash, and
returns the answer carrying it; a rollback takes the entry, the receipt and the answer together. A task
answered again (redelivered after its lease expired) returns its stored answer with the same receipt,
so the hub can never be handed two receipts for one task.

What the hub learns from a receipt is what the answer already tells it (status, compute time) plus the
cohort size the node released; under secure aggregation the per-hospital size is not released, so the
receipt carries none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from phds.node.audit import AuditLog
from phds.protocol.receipts import ReceiptOutcome, UsageReceipt
from phds.protocol.tasks import RECEIPT_OUTCOMES, Task, TaskResult
from phds.trust.envelopes import sign_receipt
from phds.trust.keys import KeyPair


def released_persons(payload: dict[str, Any]) -> int | None:
    """The cohort size a release states: its ``persons`` count when released unsuppressed, else None."""
    persons = (payload.get("values") or {}).get("persons")
    if not isinstance(persons, dict) or persons.get("type") != "count" or persons.get("suppressed"):
        return None
    value = persons.get("value")
    return int(value) if isinstance(value, int) and value >= 0 else None


def with_receipt(result: TaskResult, task: Task, *, audit: AuditLog, key: KeyPair) -> TaskResult:
    """*result* with its signed usage receipt; call inside the transaction that records *result*."""
    outcome = RECEIPT_OUTCOMES[result.status]
    persons = None
    if outcome is ReceiptOutcome.ANSWERED and task.secagg is None:
        persons = released_persons(result.payload)
    fields: dict[str, Any] = {
        "receipt_id": f"r-{task.id}",
        "hospital": task.hospital,
        "study_id": task.study_id,
        "task_id": task.id,
        "application_id": task.application_id,
        "round": task.round,
        "service_type": task.service_type.value,
        "analysis": task.analysis,
        "requester_org": task.requester.organisation,
        "outcome": outcome.value,
        "compute_seconds": round(result.compute_seconds, 6),
        "persons": persons,
        "issued_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    entry = audit.append("usage_receipt", study_id=task.study_id, task_id=task.id, payload=fields)
    unsigned = UsageReceipt.model_validate(
        {**fields, "audit_seq": entry.seq, "audit_hash": entry.hash, "node_key_id": key.key_id}
    )
    return result.model_copy(update={"receipt": sign_receipt(unsigned, key)})


def receipt_matches_audit(receipt: UsageReceipt, entry_payload: dict[str, Any], entry_kind: str) -> bool:
    """Whether *receipt* states exactly what its ``usage_receipt`` audit entry recorded."""
    if entry_kind != "usage_receipt":
        return False
    stated = receipt.model_dump(mode="json", exclude={"audit_seq", "audit_hash", "node_key_id", "signature"})
    recorded = UsageReceipt.model_validate(
        {**entry_payload, "audit_seq": receipt.audit_seq, "audit_hash": receipt.audit_hash,
         "node_key_id": receipt.node_key_id}
    ).model_dump(mode="json", exclude={"audit_seq", "audit_hash", "node_key_id", "signature"})  # fmt: skip
    return stated == recorded
