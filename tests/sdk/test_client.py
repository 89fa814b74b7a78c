"""The SDK against a real hub on loopback: nodes answer through the hub's API, the runner combines."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from phds.errors import AuthenticationError, Conflict, InputError, NotFound, PermissionDenied, PhdsError
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.gate import Gate, GateContext
from phds.node.policy import Policy
from phds.omop.profile import build_profile
from phds.omop.simulator import generate
from phds.omop.store import open_store
from phds.privacy.aggregates import BreakdownAggregate, CountAggregate, Persons
from phds.protocol.studies import StudySpec, StudyState, StudyView
from phds.sdk import Client, FeasibilityResult, GenericResult, load_study

DATA = Path(__file__).parent / "data"
NOOP = DATA / "noop.json"
FEASIBILITY = DATA / "asthma-feasibility.yaml"


def _answered(view: StudyView) -> int:
    return sum(1 for h in view.hospitals if h.state.value == "answered")


def test_submit_wait_results_follow_the_long_poll(network: Any) -> None:
    seen: list[tuple[str, int]] = []
    pending = ["north-general", "central-tertiary"]

    def progress(view: StudyView) -> None:
        seen.append((view.state.value, _answered(view)))
        if pending:  # one hospital answers each time the hub reports a change
            assert network.answer(pending.pop(0)) == 1

    with Client(network.url, network.requester) as hub:
        study = hub.submit(NOOP)
        assert study.state == "submitted"
        final = study.wait(progress=progress)
        result = study.results()
    assert final.state is StudyState.COMPLETED
    assert seen[0] == ("submitted", 0)
    assert seen[-1] == ("completed", 2)
    assert [n for _, n in seen] == sorted(n for _, n in seen)  # every change seen once, in order
    assert isinstance(result, GenericResult)
    assert result.attribution.answered == ("central-tertiary", "north-general")


def test_submit_accepts_a_spec_a_mapping_and_a_path(network: Any) -> None:
    spec = load_study(NOOP)
    with Client(network.url, network.requester) as hub:
        ids = [hub.submit(spec).id, hub.submit(spec.model_dump()).id, hub.submit(str(NOOP)).id]
        listed = [v.id for v in hub.studies()]
        assert hub.study(ids[1]).spec.title == spec.title
    assert len(set(ids)) == 3
    assert listed == ids[::-1]  # newest first


def test_a_declining_hospital_is_named_with_its_reason(network: Any) -> None:
    with Client(network.url, network.requester) as hub:
        study = hub.submit(NOOP)
        network.answer("north-general")
        network.answer("central-tertiary", status="declined")
        view = study.wait()
        result = hub.results(study.id)
    assert view.state is StudyState.PARTIALLY_COMPLETED
    reasons = {h.hospital: (h.state.value, h.reason) for h in view.hospitals}
    assert reasons["central-tertiary"] == ("declined", "central-tertiary says declined")
    assert result.attribution.declined == ("central-tertiary",)


def test_results_of_a_rejected_or_unfinished_study_are_conflicts(network: Any) -> None:
    with Client(network.url, network.requester) as hub:
        study = hub.submit(NOOP)
        with pytest.raises(Conflict, match="is submitted; it has no result yet"):
            hub.results(study.id)
        unfinished = hub.wait(study.id, timeout=0.2)  # the hub's long poll ends; nothing changed
        assert not unfinished.state.is_final
        for hospital in ("north-general", "central-tertiary"):
            network.answer(hospital, status="declined")
        with pytest.raises(Conflict, match="ended rejected without a result: every hospital declined"):
            hub.results(study.id, wait=True)


def _gate_payload(tmp_path: Path, hospital: str, n: int, sex: dict[str, int]) -> dict[str, Any]:
    db = NodeDatabase(tmp_path / hospital / "node.db")
    try:
        gate = Gate(Policy(), AuditLog(db))
        persons = Persons.of("omop:cdm", list(range(n)))
        labels = np.array([level for level, count in sex.items() for _ in range(count)])
        aggregates = [
            CountAggregate("persons", persons),
            BreakdownAggregate("by_sex", persons, labels, list(sex)),
        ]
        ctx = GateContext("study", f"task-{hospital}", "acme-pharma", "feasibility.count@1")
        return gate.release(ctx, aggregates).payload
    finally:
        db.close()


def test_feasibility_end_to_end_gives_a_typed_result(network: Any, tmp_path: Path) -> None:
    spec = load_study(FEASIBILITY)
    spec.analysis.params["breakdowns"] = ["sex"]
    counts = {
        "north-general": (42, {"female": 20, "male": 22}),
        "central-tertiary": (3, {"female": 1, "male": 2}),
    }
    with Client(network.url, network.requester) as hub:
        study = hub.submit(spec)
        for hospital, (n, sex) in counts.items():
            network.answer(hospital, payload=_gate_payload(tmp_path, hospital, n, sex))
        network.answer("west-respiratory", status="error")
        result = study.results()
    assert isinstance(result, FeasibilityResult)
    assert (result.total.lower, result.total.upper, result.total.exact) == (43, 46, False)
    assert result.attribution.failed == ("west-respiratory",)
    frame = result.to_frame().set_index("hospital")
    assert frame.loc["central-tertiary", "persons"] == "<5"
    assert frame.loc["west-respiratory", "state"] == "failed"
    assert frame.loc["network total", "state"] == "partially_completed"


# -- errors come back as the hub's PhdsError subclasses -------------------------------------------------


def test_wrong_token_is_an_authentication_error(network: Any) -> None:
    wrong = "phds_0123456789abcdef_" + "x" * 43
    with Client(network.url, wrong) as hub, pytest.raises(AuthenticationError) as caught:
        hub.studies()
    assert caught.value.message == "unknown or wrong API token"  # the hub's own message
    assert getattr(caught.value, "status", None) == 401


def test_submitting_for_another_organisation_is_permission_denied(network: Any) -> None:
    spec = load_study(NOOP).model_copy(update={"organisation": "other-uni"})
    with Client(network.url, network.requester) as hub, pytest.raises(PermissionDenied, match="'other-uni'"):
        hub.submit(spec)
    with Client(network.url, network.steward) as steward, pytest.raises(PermissionDenied):
        steward.submit(load_study(NOOP))


def test_other_organisations_studies_are_not_found(network: Any) -> None:
    with Client(network.url, network.requester) as hub:
        study_id = hub.submit(NOOP).id
    with Client(network.url, network.other_requester) as other:
        with pytest.raises(NotFound, match=study_id):
            other.study(study_id)
        with pytest.raises(NotFound):
            other.wait(study_id)
        assert other.studies() == []


@pytest.mark.parametrize(
    ("analysis", "field"),
    [
        ({"name": "feasibility.count", "params": {"cohort": "x", "breakdowns": ["region"]}},
         "analysis.params.breakdowns.0"),
        ({"name": "no.such.analysis"}, "analysis.name"),
        ({"name": "system.noop", "params": {"unexpected": 1}}, "analysis.params.unexpected"),
    ],
)  # fmt: skip
def test_hub_validation_errors_name_the_field(network: Any, analysis: dict[str, Any], field: str) -> None:
    spec = StudySpec.model_validate({**load_study(NOOP).model_dump(), "analysis": analysis})
    with Client(network.url, network.requester) as hub, pytest.raises(InputError) as caught:
        hub.submit(spec)  # a StudySpec is sent as it is: the hub checks it
    assert caught.value.field == field
    assert getattr(caught.value, "status", None) == 422


def test_unknown_hospital_is_refused_by_the_hub(network: Any) -> None:
    spec = load_study(NOOP).model_copy(update={"hospitals": ["north-general", "atlantis"]})
    with Client(network.url, network.requester) as hub, pytest.raises(InputError, match="atlantis") as caught:
        hub.submit(spec)
    assert caught.value.field == "hospitals[1]"


def test_unreachable_hub_is_a_phds_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with Client(f"http://127.0.0.1:{port}", "t") as hub, pytest.raises(PhdsError, match="cannot reach"):
            hub.studies()


def test_bad_study_ids_and_missing_tokens_fail_before_any_request() -> None:
    with Client("http://127.0.0.1:9", "t") as hub, pytest.raises(InputError, match="not a study id"):
        hub.study("../admin")
    with pytest.raises(AuthenticationError, match="no API token"):
        Client("http://127.0.0.1:9", "")


def test_catalogue_is_a_frame_of_published_profiles(network: Any, tmp_path: Path) -> None:
    with Client(network.url, network.requester) as hub:
        assert hub.catalogue().empty
        [hospital] = generate(tmp_path, hospitals=1, patients=300, seed=5)
        with open_store(f"duckdb:///{hospital.path}") as store:
            profile = build_profile(store).model_dump(mode="json")
        headers = {"Authorization": f"Bearer {network.nodes['north-general']}"}
        published = httpx.put(f"{network.url}/api/v1/nodes/me/catalogue", json=profile, headers=headers)
        assert published.status_code == 200, published.text
        frame = hub.catalogue()
    row = frame.set_index("hospital").loc["north-general"]
    assert len(frame) == 1
    assert (row["country"], row["persons"]) == ("GB", profile["number_of_unique_individuals"])
    assert row["records"] == profile["number_of_records"]
    assert row["start"] == profile["temporal"]["start_date"]
