"""The gate: the only way out. Every attempt to make a small count leave exactly must fail here."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from phds.errors import DisclosureRefused, InputError
from phds.node.audit import AuditLog
from phds.node.gate import (
    BreakdownAggregate,
    CountAggregate,
    Gate,
    GateContext,
    GlmAggregate,
    QuantileAggregate,
    SummaryAggregate,
)
from phds.node.policy import Policy

CTX = GateContext(study_id="s1", task_id="t1", requester_org="uni-leiden", analysis="feasibility.count@1")
OTHER_ORG = GateContext(study_id="s2", task_id="t2", requester_org="pharma-x", analysis="feasibility.count@1")


def _gate(audit: AuditLog, **policy: Any) -> Gate:
    return Gate(Policy(**policy), audit)


def _exact_small_values(payload: Any, k: int) -> list[int]:
    """Every exact ``value`` in 1..k-1 anywhere in a payload: there must be none."""
    found: list[int] = []
    if isinstance(payload, dict):
        v = payload.get("value")
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v < k:
            found.append(v)
        for item in payload.values():
            found += _exact_small_values(item, k)
    elif isinstance(payload, list):
        for item in payload:
            found += _exact_small_values(item, k)
    return found


def test_released_payload_is_audited_before_return(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [CountAggregate("n", 42)])
    entry = audit.entries()[-1]
    assert entry.kind == "value_released"
    assert (entry.study_id, entry.task_id, entry.seq) == ("s1", "t1", result.audit_seq)
    assert entry.payload == result.payload
    assert result.payload["values"]["n"]["value"] == 42
    assert audit.verify().ok


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_small_count_leaves_as_less_than_five(audit: AuditLog, n: int) -> None:
    result = _gate(audit).release(CTX, [CountAggregate("n", n)])
    released = result.payload["values"]["n"]
    assert released["display"] == "<5"
    assert released["value"] is None
    assert _exact_small_values(audit.entries()[-1].payload, 5) == []
    assert result.notes[0].action == "suppressed"


@pytest.mark.parametrize("n", [5, 7, 10])
def test_threshold_raised_by_policy_applies(audit: AuditLog, n: int) -> None:
    result = _gate(audit, min_cell_count=11).release(CTX, [CountAggregate("n", n)])
    assert result.payload["values"]["n"]["display"] == "<11"
    assert result.payload["min_cell_count"] == 11
    assert _exact_small_values(result.payload, 11) == []


def test_zero_count_follows_the_policy(audit: AuditLog) -> None:
    assert _gate(audit).release(CTX, [CountAggregate("n", 0)]).payload["values"]["n"]["value"] == 0
    strict = _gate(audit, release_zero_counts=False).release(CTX, [CountAggregate("n", 0)])
    assert strict.payload["values"]["n"]["display"] == "<5"


def test_breakdown_small_cell_cannot_be_recovered_from_the_total(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [BreakdownAggregate("by_sex", {"F": 30, "M": 2})])
    values = result.payload["values"]["by_sex"]
    assert values["total"]["value"] == 32
    assert values["cells"]["M"]["display"] == "<5"
    assert values["cells"]["F"]["value"] is None  # 32 - 30 would give 2 away
    assert _exact_small_values(result.payload, 5) == []
    assert {n.aggregate for n in result.notes} == {"by_sex.F", "by_sex.M"}


def test_breakdown_zero_cells_do_not_help_recover_a_small_cell(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [BreakdownAggregate("b", {"a": 1, "b": 0, "c": 0, "d": 40})])
    cells = result.payload["values"]["b"]["cells"]
    assert cells["b"]["value"] == 0
    assert cells["d"]["value"] is None
    assert cells["a"]["lower"] < cells["a"]["upper"]


def test_breakdown_with_small_total_hides_the_total(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [BreakdownAggregate("b", {"a": 2, "b": 1})])
    assert result.payload["values"]["b"]["total"]["display"] == "<5"
    assert _exact_small_values(result.payload, 5) == []


def test_summary_of_few_persons_is_withheld(audit: AuditLog) -> None:
    result = _gate(audit).release(CTX, [SummaryAggregate("age", 3, {"mean": 4.2, "var": 1.1})])
    assert result.payload["values"]["age"]["values"] is None
    assert result.payload["values"]["age"]["n"]["display"] == "<5"
    ok = _gate(audit).release(CTX, [SummaryAggregate("age2", 20, {"mean": 4.2, "var": 1.1})])
    assert ok.payload["values"]["age2"]["values"] == {"mean": 4.2, "var": 1.1}


def test_quantiles_without_k_each_side_and_extremes_are_withheld(audit: AuditLog) -> None:
    agg = QuantileAggregate("age_q", [(0.0, 1.0, 0, 99), (0.5, 50.0, 49, 50), (0.99, 99.0, 98, 1)])
    result = _gate(audit).release(CTX, [agg])
    assert [q["value"] for q in result.payload["values"]["age_q"]["quantiles"]] == [None, 50.0, None]
    assert len(result.notes) == 2


def test_glm_checks_refuse_and_audit(audit: AuditLog) -> None:
    gate = _gate(audit)
    fine = GlmAggregate("glm", 100, 3, {"sex": {"F": 50, "M": 50}}, {"score": [0.1, 0.2, 0.3]})
    assert gate.release(CTX, [fine]).payload["values"]["glm"]["values"] == {"score": [0.1, 0.2, 0.3]}
    saturated = GlmAggregate("glm", 9, 4, {}, {"score": [0.0] * 4})
    with pytest.raises(DisclosureRefused, match=r"nfilter\.glm"):
        gate.release(CTX, [saturated])
    rare = GlmAggregate("glm", 100, 3, {"outcome": {"0": 97, "1": 3}}, {})
    with pytest.raises(DisclosureRefused, match="'outcome'"):
        gate.release(CTX, [rare])
    with pytest.raises(DisclosureRefused, match="fewer than 5 observations"):
        gate.release(CTX, [GlmAggregate("glm", 4, 1, {}, {})])
    errors = [e for e in audit.entries() if e.kind == "error"]
    assert len(errors) == 3
    assert "nfilter.glm" in errors[0].payload["reason"]
    assert [e.kind for e in audit.entries()].count("value_released") == 1


def test_a_refusal_releases_nothing_of_the_task(audit: AuditLog) -> None:
    with pytest.raises(DisclosureRefused):
        _gate(audit).release(CTX, [CountAggregate("n", 40), GlmAggregate("g", 9, 4, {}, {})])
    assert [e.kind for e in audit.entries()] == ["error"]


@pytest.mark.parametrize("bad", [True, -1, 2.0, "3"])
def test_counts_must_be_plain_non_negative_integers(audit: AuditLog, bad: Any) -> None:
    with pytest.raises(InputError):
        _gate(audit).release(CTX, [CountAggregate("n", bad)])
    assert audit.entries() == []


def test_non_finite_values_are_refused(audit: AuditLog) -> None:
    with pytest.raises(InputError):
        _gate(audit).release(CTX, [SummaryAggregate("x", 50, {"mean": float("inf")})])


def test_duplicate_aggregate_names_are_refused(audit: AuditLog) -> None:
    with pytest.raises(InputError, match="unique"):
        _gate(audit).release(CTX, [CountAggregate("n", 10), CountAggregate("n", 11)])


# -- differencing guard ----------------------------------------------------------------------------------


def test_cohort_one_person_away_from_a_released_one_is_refused(audit: AuditLog) -> None:
    gate = _gate(audit)
    base = list(range(1, 101))
    gate.release(CTX, [CountAggregate("n", 100, base)])
    with pytest.raises(DisclosureRefused, match="differs by fewer than 5 persons"):
        gate.release(CTX, [CountAggregate("n", 101, [*base, 101])])
    with pytest.raises(DisclosureRefused, match="fewer than 5"):  # one out, one in: same size, Δ = 2
        gate.release(CTX, [CountAggregate("n", 100, [*base[1:], 101])])
    with pytest.raises(DisclosureRefused, match="fewer than 5"):
        gate.release(CTX, [CountAggregate("n", 96, base[4:])])
    refusal = audit.entries()[-1]
    assert refusal.kind == "error"
    assert "differencing guard" in refusal.payload["reason"]


def test_same_cohort_again_or_k_persons_away_is_allowed(audit: AuditLog) -> None:
    gate = _gate(audit)
    base = list(range(1, 101))
    gate.release(CTX, [CountAggregate("n", 100, base)])
    assert gate.release(CTX, [CountAggregate("n", 100, base)]).payload["values"]["n"]["value"] == 100
    assert gate.release(CTX, [CountAggregate("n", 105, [*base, 201, 202, 203, 204, 205])])


def test_another_requester_is_not_compared(audit: AuditLog) -> None:
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", 100, range(1, 101))])
    assert (
        gate.release(OTHER_ORG, [CountAggregate("n", 101, range(1, 102))]).payload["values"]["n"]["value"]
        == 101
    )


def test_guard_uses_the_raised_threshold(audit: AuditLog) -> None:
    gate = _gate(audit, min_cell_count=11)
    gate.release(CTX, [CountAggregate("n", 100, range(1, 101))])
    with pytest.raises(DisclosureRefused, match="differs by fewer than 11 persons"):
        gate.release(CTX, [CountAggregate("n", 107, range(1, 108))])
    gate.release(CTX, [CountAggregate("n", 111, range(1, 112))])


def test_guard_covers_breakdown_totals(audit: AuditLog) -> None:
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", 100, range(1, 101))])
    with pytest.raises(DisclosureRefused, match="differencing guard"):
        gate.release(CTX, [BreakdownAggregate("by_sex", {"F": 51, "M": 50}, range(1, 102))])


def test_a_refused_cohort_is_not_remembered(audit: AuditLog) -> None:
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", 100, range(1, 101))])
    with pytest.raises(DisclosureRefused):
        gate.release(CTX, [CountAggregate("n", 101, range(1, 102))])
    # 5 away from the released cohort, 4 away from the refused one: allowed, as the refused one never left.
    gate.release(CTX, [CountAggregate("n", 105, [*range(1, 102), 301, 302, 303, 304])])


def test_suppressed_counts_are_not_fingerprinted(audit: AuditLog) -> None:
    gate = _gate(audit)
    gate.release(CTX, [CountAggregate("n", 3, [1, 2, 3])])
    assert audit.db.con.execute("SELECT COUNT(*) FROM cohort_fingerprints").fetchone()[0] == 0


def test_guard_off_in_policy_allows_near_identical_cohorts(audit: AuditLog) -> None:
    gate = _gate(audit, differencing_guard=False)
    gate.release(CTX, [CountAggregate("n", 100, range(1, 101))])
    assert gate.release(CTX, [CountAggregate("n", 101, range(1, 102))])


def test_cohort_must_match_the_count(audit: AuditLog) -> None:
    with pytest.raises(InputError, match="cohort has 3 persons but the count is 10"):
        _gate(audit).release(CTX, [CountAggregate("n", 10, [1, 2, 3])])


def test_fingerprints_are_salted_and_survive_a_restart(audit: AuditLog) -> None:
    _gate(audit).release(CTX, [CountAggregate("n", 100, range(1, 101))])
    stored = {r[0] for r in audit.db.con.execute("SELECT h FROM cohort_members")}
    assert len(stored) == 100
    assert hashlib.sha256(b"1").digest()[:16] not in stored
    assert all(len(h) == 16 for h in stored)
    fresh = Gate(Policy(), AuditLog(audit.db))
    with pytest.raises(DisclosureRefused):
        fresh.release(CTX, [CountAggregate("n", 101, range(1, 102))])


def test_payload_is_plain_json(audit: AuditLog) -> None:
    result = _gate(audit).release(
        CTX,
        [CountAggregate("n", 40), BreakdownAggregate("b", {"x": 3, "y": 50}), SummaryAggregate("s", 40, {})],
    )
    assert json.loads(json.dumps(result.payload)) == result.payload


NO_DIGITS = GateContext(
    study_id="study-a", task_id="task-a", requester_org="uni-x", analysis="feasibility.count"
)


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


@pytest.mark.parametrize("delta", [1, 2, 3, 4])
def test_refusal_reasons_never_state_the_small_difference(audit: AuditLog, delta: int) -> None:
    gate = _gate(audit)
    gate.release(NO_DIGITS, [CountAggregate("n", 100, range(1, 101))])
    with pytest.raises(DisclosureRefused) as exc:
        gate.release(NO_DIGITS, [CountAggregate("n", 100 + delta, range(1, 101 + delta))])
    assert _numbers(exc.value.message) == {"5"}
    assert _numbers(audit.entries()[-1].payload["reason"]) == {"5"}


def test_notes_and_reasons_never_state_small_counts(audit: AuditLog) -> None:
    gate = _gate(audit)
    result = gate.release(
        NO_DIGITS,
        [
            CountAggregate("n", 3),
            BreakdownAggregate("b", {"x": 2, "y": 40}),
            SummaryAggregate("s", 4, {"mean": 1.0}),
            QuantileAggregate("q", [(0.5, 10.0, 3, 30)]),
        ],
    )
    for note in result.notes:
        assert _numbers(note.reason) <= {"5"}, note
    with pytest.raises(DisclosureRefused) as exc:
        gate.release(NO_DIGITS, [GlmAggregate("glm", 9, 4, {}, {})])
    assert "9" not in _numbers(exc.value.message)


def test_two_counts_one_person_apart_in_one_task_are_refused(audit: AuditLog) -> None:
    with pytest.raises(DisclosureRefused, match="differencing guard"):
        _gate(audit).release(
            CTX, [CountAggregate("a", 100, range(100)), CountAggregate("b", 101, range(101))]
        )
    assert audit.db.con.execute("SELECT COUNT(*) FROM cohort_fingerprints").fetchone()[0] == 0
