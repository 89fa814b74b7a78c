"""Policy.decide: first matching rule decides, default deny, default manual, reasons name the rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phds.node.policy import CATEGORIES, SERVICE_TYPES, Policy, PolicyRule, TaskRequest


def _request(**kw: Any) -> TaskRequest:
    base: dict[str, Any] = {
        "study_id": "s1",
        "task_id": "t1",
        "analysis": "feasibility.count",
        "analysis_version": "1",
        "requester_org": "uni-leiden",
        "requester_category": "academic",
        "service_type": "feasibility",
    }
    return TaskRequest(**(base | kw))


POLICY = Policy(
    min_cell_count=11,
    rules=[
        PolicyRule(name="no pharma-x", effect="deny", analyses=["*"], organisations=["pharma-x"]),
        PolicyRule(
            name="feasibility", analyses=["feasibility.*"], service_types=["feasibility"], approval="auto"
        ),
        PolicyRule(name="academic stats", analyses=["stats.*"], categories=["academic", "public"]),
        PolicyRule(name="glm v2 only", analyses=["glm.fit@2"], categories=["*"], approval="auto"),
    ],
)


def test_auto_rule_allows_without_approval() -> None:
    d = POLICY.decide(_request())
    assert (d.allowed, d.needs_approval) == (True, False)
    assert d.reason.startswith("rule 2 (feasibility) allows feasibility.count@1 for uni-leiden")
    assert "automatically" in d.reason


def test_rule_without_approval_mode_needs_a_steward() -> None:
    d = POLICY.decide(_request(analysis="stats.mean_variance", service_type="research"))
    assert (d.allowed, d.needs_approval) == (True, True)
    assert "rule 3 (academic stats)" in d.reason
    assert "steward approval" in d.reason
    assert PolicyRule(analyses=["x"]).approval == "manual"


def test_no_matching_rule_refuses_by_default() -> None:
    d = POLICY.decide(_request(analysis="stats.mean_variance", requester_category="industry"))
    assert (d.allowed, d.needs_approval) == (False, False)
    assert "no policy rule allows stats.mean_variance@1" in d.reason
    assert "industry" in d.reason
    empty = Policy().decide(_request())
    assert not empty.allowed


def test_first_matching_rule_wins_so_a_deny_above_an_allow_refuses() -> None:
    d = POLICY.decide(_request(requester_org="pharma-x", requester_category="industry"))
    assert not d.allowed
    assert d.reason.startswith("rule 1 (no pharma-x) denies")


def test_service_type_must_match() -> None:
    d = POLICY.decide(_request(service_type="innovation"))
    assert not d.allowed


def test_version_pin_matches_only_that_version() -> None:
    assert POLICY.decide(_request(analysis="glm.fit", analysis_version="2", service_type="research")).allowed
    assert not POLICY.decide(
        _request(analysis="glm.fit", analysis_version="1", service_type="research")
    ).allowed


def test_star_matches_everything_but_glob_does_not_cross_names() -> None:
    assert PolicyRule(analyses=["*"]).matches(_request(analysis="anything.at.all"))
    assert not PolicyRule(analyses=["stats.*"]).matches(_request(analysis="statsx.mean"))
    assert PolicyRule(analyses=["feasibility.count"]).matches(_request())


def test_round_does_not_change_the_decision() -> None:
    assert POLICY.decide(_request(round=1)) == POLICY.decide(_request(round=7))


@given(
    category=st.sampled_from(CATEGORIES),
    service=st.sampled_from(SERVICE_TYPES),
    org=st.sampled_from(["uni-leiden", "pharma-x", "sme-y"]),
    analysis=st.sampled_from(["feasibility.count", "stats.mean_variance", "glm.fit", "other.thing"]),
)
def test_decisions_are_deterministic_and_never_allow_without_a_rule(
    category: str, service: str, org: str, analysis: str
) -> None:
    req = _request(requester_category=category, service_type=service, requester_org=org, analysis=analysis)
    first, second = POLICY.decide(req), POLICY.decide(req)
    assert first == second
    if first.allowed:
        assert first.reason.startswith("rule ")
        assert org != "pharma-x"
    else:
        assert "denies" in first.reason or "no policy rule" in first.reason


def test_invalid_category_is_rejected() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        _request(requester_category="university")


def test_categories_and_service_types_match_the_wire_models() -> None:
    from phds.protocol.organisations import RequesterCategory
    from phds.protocol.studies import ServiceType

    assert set(CATEGORIES) == {c.value for c in RequesterCategory}
    assert set(SERVICE_TYPES) == {s.value for s in ServiceType}
    req = _request(requester_category=RequesterCategory.NON_PROFIT, service_type=ServiceType.FEASIBILITY)
    assert POLICY.decide(req).allowed
