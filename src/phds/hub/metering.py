"""Metering: node-signed usage receipts from the runner's events, each stored once.

:meth:`Metering.drain` reads the ``task_answered`` events after its cursor and stores each receipt they
carry by its id, with the cursor moved in the same transaction. So a redelivered task (the node answers
with its stored receipt), a duplicate result (the runner records no event for it) and a restart of hub
or node (events and cursor are in the database) never meter twice. Whether a receipt is charged is the
tariff's rule, applied when invoicing (``phds.billing``): refused, declined and failed work is free
unless the tariff says otherwise.
"""

from __future__ import annotations

import logging
import uuid

from phds.errors import InputError, SignatureInvalid
from phds.hub.events import TaskAnswered, parse_event
from phds.hub.store import HubStore
from phds.hub.store.billing_models import UsageReceiptRow
from phds.protocol.receipts import UsageReceipt
from phds.protocol.tasks import RECEIPT_OUTCOMES, TaskResult
from phds.trust.envelopes import verify_receipt

log = logging.getLogger(__name__)

CONSUMER = "metering"
BATCH = 500


def check_receipt(
    result: TaskResult, public_key: str | None, *, task_id: str, study_id: str, hospital: str
) -> UsageReceipt | None:
    """The answer's usage receipt once the node's pinned key verifies it and it states this answer.

    A forged or mismatched receipt refuses the whole answer (422 naming ``receipt``), as a forged
    envelope does. A node without a pinned key cannot be metered: its receipt is ignored, so its work
    is never charged."""
    receipt = result.receipt
    if receipt is None:
        return None
    if public_key is None:
        log.warning("task %s: a usage receipt from a node with no pinned key is not metered", task_id)
        return None
    try:
        verify_receipt(receipt, public_key)
    except SignatureInvalid as exc:
        raise InputError(exc.message, field="receipt") from None
    if (receipt.task_id, receipt.study_id, receipt.hospital) != (task_id, study_id, hospital):
        raise InputError("the usage receipt is for another task, study or hospital", field="receipt")
    if receipt.outcome is not RECEIPT_OUTCOMES.get(result.status):
        raise InputError(
            f"the usage receipt says {receipt.outcome.value}, the answer {result.status.value}",
            field="receipt",
        )
    return receipt


class Metering:
    """The metering consumer of study events."""

    def __init__(self, store: HubStore) -> None:
        self.store = store

    def drain(self) -> int:
        """Meter every pending event; how many receipts were new."""
        metered = 0
        while True:
            with self.store.unit() as uow:
                cursor = uow.billing.cursor(CONSUMER)
                events = uow.billing.events_after(cursor.last_event_id, BATCH)
                for row in events:
                    event = parse_event(row)
                    if isinstance(event, TaskAnswered) and event.receipt is not None:
                        receipt = event.receipt
                        metered += uow.billing.add_receipt(
                            UsageReceiptRow(
                                receipt_id=receipt.receipt_id,
                                node_id=uuid.UUID(event.node_id),
                                hospital=receipt.hospital,
                                study_id=row.study_id,
                                task_id=uuid.UUID(receipt.task_id),
                                application_id=receipt.application_id,
                                requester_org=receipt.requester_org,
                                service_type=receipt.service_type,
                                round=receipt.round,
                                outcome=receipt.outcome.value,
                                compute_seconds=receipt.compute_seconds,
                                persons=receipt.persons,
                                month=receipt.issued_at.strftime("%Y-%m"),
                                issued_at=receipt.issued_at,
                                receipt=receipt.model_dump(mode="json"),
                                event_id=row.id,
                            )
                        )
                if events:
                    cursor.last_event_id = events[-1].id
            if len(events) < BATCH:
                break
        if metered:
            log.info("metered %d usage receipt(s)", metered)
        return metered
