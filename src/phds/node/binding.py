"""What a steward's decision is bound to: a task's binding hash, and its parameters as one line."""

from __future__ import annotations

import json
from typing import Any

from phds.analyses.base import Analysis
from phds.protocol.canonical import canonical_hash
from phds.protocol.tasks import Task

_SUMMARY_CHARS = 400


def task_binding(task: Task, analysis: Analysis[Any], hospitals: tuple[str, ...]) -> str:
    """The hash a study is bound to at this node, and its steward's approval with it: analysis, version,
    parameters, requester (organisation and category), service type, target hospitals and the study's
    privacy options (DP request, secure aggregation)."""
    bound: dict[str, Any] = {
        "analysis": analysis.name,
        "version": analysis.version,
        "params": task.params,
        "requester": task.requester.organisation,
        "category": task.requester.category,
        "service_type": task.service_type.value,
        "hospitals": sorted(hospitals),
    }
    # The privacy options bind only when asked for, so exact studies keep the bindings they had.
    if task.dp is not None:
        bound["dp"] = task.dp.model_dump(mode="json")
    if task.secure_aggregation:
        bound["secure_aggregation"] = True
    return canonical_hash(bound)


def params_summary(params: dict[str, Any]) -> str:
    """The task's parameters as one line of JSON for the steward's list (``phds node approvals show``
    prints them in full, with the purpose and the hospitals)."""
    text = json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"
