"""A synthetic dataset is metered like any study: the node signs a receipt naming ``synthetic_dataset``,
and the invoice charges the tariff's ``synthetic_dataset`` price once per study (``per_study``).

The task runs through the real node executor (policy, gate, DP ledger, audit) on CNSIM1; the receipt it
returns is verified with the node's public key before it is priced, as the hub's metering does.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from phds.billing.invoicing import MeteredReceipt, charge_lines
from phds.billing.service_catalogue import BillableService
from phds.billing.tariff import default_tariff
from phds.node.executor import NodeRuntime, execute_task
from phds.protocol.organisations import RequesterCategory
from phds.protocol.tasks import ResultStatus, Task
from phds.trust.envelopes import verify_receipt

PARAMS: dict[str, Any] = {
    "table": {"dataset": "cnsim"},
    "columns": [{"name": "GENDER", "categories": [0, 1]}, {"name": "DIS_DIAB", "categories": [0, 1]}],
    "rows": 100,
    "evaluate": False,
}


def test_a_released_synthetic_dataset_is_invoiced_from_its_node_signed_receipt(
    runtime: NodeRuntime, task_factory: Callable[..., Task]
) -> None:
    task = task_factory(
        analysis="synthetic.mst", params=PARAMS, service_type="synthetic_dataset", dp={"epsilon": 1.0}
    )
    result = execute_task(task, runtime)
    assert result.status is ResultStatus.OK, result.reason
    assert result.payload["values"]["generator"]["type"] == "marginals"
    receipt = result.receipt
    assert receipt is not None and receipt.service_type == "synthetic_dataset"
    verify_receipt(receipt, runtime.key.public_key_b64)  # raises if the node did not sign it
    metered = MeteredReceipt(
        receipt.receipt_id,
        receipt.study_id,
        receipt.hospital,
        receipt.service_type,
        receipt.outcome,
        receipt.issued_at,
        receipt.application_id,
        receipt.persons,
    )
    tariff = default_tariff()
    for category in (RequesterCategory.ACADEMIC, RequesterCategory.INDUSTRY):
        [line] = charge_lines([metered], tariff, category)
        expected = tariff.unit_price(BillableService.SYNTHETIC_DATASET, category).net_price
        assert (line.service, line.quantity, line.unit_price) == ("synthetic_dataset", 1, expected)
        assert line.receipt_ids == (receipt.receipt_id,) and line.net_amount > Decimal(0)
    # The tariff's list prices (tariff-default.yaml): 500.00 academic, 4000.00 industry, before discounts.
    assert tariff.price(BillableService.SYNTHETIC_DATASET).prices["industry"] == Decimal("4000.00")


def test_a_refused_synthetic_dataset_is_not_charged(
    runtime: NodeRuntime, task_factory: Callable[..., Task]
) -> None:
    task = task_factory(analysis="synthetic.mst", params=PARAMS, service_type="synthetic_dataset")  # no dp
    result = execute_task(task, runtime)
    assert result.status is not ResultStatus.OK and result.receipt is not None
    metered = MeteredReceipt(
        result.receipt.receipt_id,
        "study-1",
        "gosh",
        "synthetic_dataset",
        result.receipt.outcome,
        result.receipt.issued_at,
    )
    assert charge_lines([metered], default_tariff(), RequesterCategory.ACADEMIC) == []
