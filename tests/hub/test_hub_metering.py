"""Metering at the hub: node-signed usage receipts, verified on arrival and stored once from events.

Attacks stopped here: a node (or anyone holding its credential) posting a receipt that its key did not
sign, altering a signed receipt (more compute seconds, another outcome), or re-using one task's receipt
for another; and double charging through duplicate results or a restarted consumer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from phds.hub.metering import Metering
from phds.hub.store import HubStore
from phds.hub.testing import study_spec
from phds.protocol.receipts import UsageReceipt
from phds.trust.envelopes import sign_receipt
from phds.trust.keys import KeyPair


def pin_key(store: HubStore, node_id: uuid.UUID) -> KeyPair:
    key = KeyPair.generate()
    with store.unit() as uow:
        node = uow.nodes.get(node_id)
        assert node is not None
        node.public_key = key.public_key_b64
    return key


def receipt_for(task: dict[str, Any], key: KeyPair, outcome: str = "declined", **fields: Any) -> UsageReceipt:
    body: dict[str, Any] = {
        "receipt_id": f"r-{task['id']}", "hospital": task["hospital"], "study_id": task["study_id"],
        "task_id": task["id"], "round": task["round"], "service_type": task["service_type"],
        "analysis": task["analysis"], "requester_org": task["requester"]["organisation"],
        "outcome": outcome, "compute_seconds": 0.25, "audit_seq": 7, "audit_hash": "ab" * 32,
        "issued_at": datetime.now(UTC), "node_key_id": key.key_id,
    }  # fmt: skip
    body.update(fields)
    return sign_receipt(UsageReceipt.model_validate(body), key)


def post(network: Any, hospital: str, task: dict[str, Any], receipt: UsageReceipt | dict[str, Any]) -> Any:
    signed = receipt.model_dump(mode="json") if isinstance(receipt, UsageReceipt) else receipt
    body = {"task_id": task["id"], "status": "declined", "reason": "not today", "receipt": signed}
    return network.client.post(
        f"/api/v1/tasks/{task['id']}/result", token=network.tokens[hospital], json=body
    )


def test_a_signed_receipt_is_metered_once_whatever_is_posted_or_restarted(network: Any) -> None:
    key = pin_key(network.store, network.node_ids["h1"])
    study = network.submit(study_spec("uni-a", ["h1"]))
    [task] = network.poll("h1")
    receipt = receipt_for(task, key)
    assert post(network, "h1", task, receipt).json() == {
        "accepted": True,
        "duplicate": False,
        "cancelled": False,
    }
    assert post(network, "h1", task, receipt).json() == {
        "accepted": False,
        "duplicate": True,
        "cancelled": False,
    }
    assert Metering(network.store).drain() == 1
    assert Metering(network.store).drain() == 0, "a restarted consumer resumes after its cursor"
    with network.store.unit() as uow:
        [row] = uow.billing.receipts(requester_org="uni-a")
        assert row.study_id == uuid.UUID(study["id"]) and row.outcome == "declined"
        assert row.receipt == receipt.model_dump(mode="json"), "stored exactly as the node signed it"
        assert row.month == receipt.issued_at.strftime("%Y-%m")


def test_forged_altered_or_misdirected_receipts_refuse_the_answer(network: Any) -> None:
    key = pin_key(network.store, network.node_ids["h1"])
    network.submit(study_spec("uni-a", ["h1"]))
    [task] = network.poll("h1")
    forged = receipt_for(task, KeyPair.generate())
    altered = receipt_for(task, key).model_dump(mode="json") | {"compute_seconds": 9999.0}
    other_task = receipt_for(task, key, task_id=str(uuid.uuid4()))
    wrong_outcome = receipt_for(task, key, outcome="answered")
    for bad in (forged, altered, other_task, wrong_outcome):
        response = post(network, "h1", task, bad)
        assert response.status_code == 422, response.text
        assert "receipt" in response.text
    assert post(network, "h1", task, receipt_for(task, key)).status_code == 200
    assert Metering(network.store).drain() == 1


def test_a_receipt_from_a_node_without_a_pinned_key_is_never_metered(network: Any) -> None:
    network.submit(study_spec("uni-a", ["h2"]))
    [task] = network.poll("h2")
    assert post(network, "h2", task, receipt_for(task, KeyPair.generate())).status_code == 200
    assert Metering(network.store).drain() == 0
    with network.store.unit() as uow:
        assert uow.billing.receipts() == []
