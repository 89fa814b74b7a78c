"""Local approvals: pending studies, steward decisions audited atomically, reporting to the hub later."""

from __future__ import annotations

import pytest

from phds.errors import Conflict, InputError, NotFound, StoreError
from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog


@pytest.fixture
def store(audit: AuditLog) -> ApprovalStore:
    s = ApprovalStore(audit)
    s.add_pending(
        "study-1",
        title="Bronchiolitis admissions",
        requester_org="uni-leiden",
        requester_category="academic",
        analysis="stats.mean_variance@1",
        params_summary="age_days by sex",
    )
    s.add_pending(
        "study-2",
        title="Dose finding",
        requester_org="pharma-x",
        requester_category="industry",
        analysis="glm.fit",
    )
    return s


def test_pending_lists_studies_waiting(store: ApprovalStore) -> None:
    pending = store.pending()
    assert [p.study_id for p in pending] == ["study-1", "study-2"]
    assert pending[0].requester_org == "uni-leiden"
    assert pending[0].params_summary == "age_days by sex"
    assert store.decision_for("study-1") is None


def test_filing_again_is_idempotent(store: ApprovalStore) -> None:
    again = store.add_pending(
        "study-1", title="changed", requester_org="x", requester_category="sme", analysis="other"
    )
    assert again.title == "Bronchiolitis admissions"
    assert len(store.pending()) == 2


def test_approve_records_decision_and_audit_entry(store: ApprovalStore, audit: AuditLog) -> None:
    d = store.approve("study-1", steward="Dr Jones")
    assert d.approved
    assert (d.study_id, d.steward, d.reported_at) == ("study-1", "Dr Jones", None)
    assert store.decision_for("study-1") == d
    assert [p.study_id for p in store.pending()] == ["study-2"]
    (entry,) = audit.entries("study-1")
    assert entry.kind == "approval"
    assert entry.payload["steward"] == "Dr Jones"
    assert entry.payload["decision_id"] == d.id
    assert entry.payload["requester_org"] == "uni-leiden"
    assert audit.verify().ok


def test_reject_needs_a_reason_and_is_audited(store: ApprovalStore, audit: AuditLog) -> None:
    with pytest.raises(InputError, match="reason"):
        store.reject("study-2", reason="  ", steward="Dr Jones")
    d = store.reject("study-2", reason="outside our ethics approval", steward="Dr Jones")
    assert not d.approved
    assert d.reason == "outside our ethics approval"
    (entry,) = audit.entries("study-2")
    assert entry.kind == "rejection"
    assert entry.payload["reason"] == "outside our ethics approval"


def test_a_study_is_decided_once(store: ApprovalStore) -> None:
    store.approve("study-1", steward="a")
    with pytest.raises(Conflict, match="already approved"):
        store.reject("study-1", reason="changed my mind", steward="b")
    with pytest.raises(Conflict):
        store.approve("study-1", steward="a")


def test_unknown_study_is_not_found(store: ApprovalStore) -> None:
    with pytest.raises(NotFound, match="study-9"):
        store.approve("study-9", steward="a")
    assert store.decision_for("study-9") is None


def test_steward_name_is_required(store: ApprovalStore) -> None:
    with pytest.raises(InputError, match="steward"):
        store.approve("study-1", steward="")


def test_unreported_decisions_until_marked(store: ApprovalStore) -> None:
    a = store.approve("study-1", steward="a")
    b = store.reject("study-2", reason="no", steward="a")
    assert [d.id for d in store.unreported()] == [a.id, b.id]
    store.mark_reported(a.id)
    assert [d.id for d in store.unreported()] == [b.id]
    reported = store.decision_for("study-1")
    assert reported is not None
    assert reported.reported_at is not None
    store.mark_reported(a.id)  # idempotent
    with pytest.raises(NotFound):
        store.mark_reported(999)


def test_decision_and_audit_entry_commit_together(store: ApprovalStore, audit: AuditLog) -> None:
    blocker = audit.head_path.with_suffix(".head.tmp")
    blocker.mkdir()  # the audit entry cannot be completed
    with pytest.raises(StoreError):
        store.approve("study-1", steward="a")
    blocker.rmdir()
    assert store.decision_for("study-1") is None
    assert [p.study_id for p in store.pending()] == ["study-1", "study-2"]
    assert audit.entries() == []
