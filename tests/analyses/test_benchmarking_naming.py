"""Who sees which hospital named in a benchmarking result, and the attacks the rules stop.

* the default: every hospital under a pseudonym (no hospital's name anywhere in the result);
* a hospital's own organisation sees that hospital named, and only that one; another requester does not;
* names for all only when every hospital's policy allows them (one refusal keeps everyone pseudonymised);
* attacks: a requester asking for names in the parameters; a hub claiming consent in the round state or
  in a payload the node did not sign; a hub skipping the risk model or choosing another β to probe a
  node; a requester inverting pseudonyms from the hospitals' order or names.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from phds.analyses import get_analysis
from phds.analyses.base import check_privacy_options
from phds.analyses.benchmarking import LAST_BETA
from phds.analyses.benchmarking_result import indicator_result, labels, pseudonyms
from phds.analyses.context import DictMemory
from phds.analyses.testing import Federation, everything_auto
from phds.errors import DisclosureRefused, InputError, SignatureInvalid
from phds.node.policy import BenchmarkingSettings, Policy
from phds.privacy import disclosure as dc
from phds.protocol.releases import ReleasedModel, ReleasedNaming, ReleasePayload
from phds.trust import KeyPair
from phds.trust.envelopes import open_envelope, seal

from .benchmark_support import BINARY, simulate

HOSPITALS = 3


def _policy(**settings: Any) -> Policy:
    return everything_auto().model_copy(update={"benchmarking": BenchmarkingSettings(**settings)})


@pytest.fixture(scope="module")
def cdms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = simulate(tmp_path_factory.mktemp("bench-naming"))
    return dict(list(found.items())[:HOSPITALS])


def _hospitals(make_hospital: Any, cdms: dict[str, Path], policies: dict[str, Policy]) -> dict[str, Any]:
    return {
        s: make_hospital(s, omop={"cdm": f"duckdb:///{p}"}, policy=policies.get(s, _policy()))
        for s, p in cdms.items()
    }


def _run(hospitals: dict[str, Any], requester: str = "acme") -> dict[str, Any]:
    federation = Federation(runtimes={h.name: h.runtime for h in hospitals.values()})
    run = federation.run("benchmarking.indicators", BINARY, requester=requester)
    assert run.result is not None, (run.error, run.refused)
    return run.result


def test_by_default_no_hospital_is_named_anywhere_in_the_result(
    cdms: dict[str, Path], make_hospital: Any
) -> None:
    result = _run(_hospitals(make_hospital, cdms, {}))
    assert result["names_disclosed"] is False
    assert sorted(r["hospital"] for r in result["rows"]) == ["Hospital A", "Hospital B", "Hospital C"]
    assert not any(r["own"] for r in result["rows"])
    text = json.dumps(result)
    for slug in cdms:  # nor in notes, model or anything else the requester gets
        assert slug not in text


def test_the_requesters_own_hospital_is_named_to_it_and_to_nobody_else(
    cdms: dict[str, Path], make_hospital: Any
) -> None:
    own = next(iter(cdms))
    hospitals = _hospitals(make_hospital, cdms, {own: _policy(own_organisations=["acme"])})
    mine = _run(hospitals, requester="acme")
    named = [r for r in mine["rows"] if r["own"]]
    assert [r["hospital"] for r in named] == [own]
    assert all(r["hospital"].startswith("Hospital ") for r in mine["rows"] if not r["own"])
    assert mine["names_disclosed"] is False
    theirs = _run(hospitals, requester="rival-org")  # another organisation asks the same
    assert own not in json.dumps(theirs) and not any(r["own"] for r in theirs["rows"])


def test_names_only_when_every_hospital_allows_them(cdms: dict[str, Path], make_hospital: Any) -> None:
    slugs = list(cdms)
    everyone = _run(_hospitals(make_hospital, cdms, {s: _policy(allow_names=True) for s in slugs}))
    assert everyone["names_disclosed"] is True
    assert sorted(r["hospital"] for r in everyone["rows"]) == sorted(slugs)


def test_one_hospital_without_consent_keeps_every_hospital_pseudonymised(
    cdms: dict[str, Path], make_hospital: Any
) -> None:
    slugs = list(cdms)
    policies = {s: _policy(allow_names=True) for s in slugs[1:]}  # the first keeps the default
    result = _run(_hospitals(make_hospital, cdms, policies))
    assert result["names_disclosed"] is False
    assert not any(s in json.dumps(result) for s in slugs)


def test_benchmarking_refuses_dp_and_secure_aggregation() -> None:
    analysis = get_analysis("benchmarking.indicators")
    for option in ({"dp": True}, {"secure_aggregation": True}):  # per-hospital values are the point
        with pytest.raises(InputError):
            check_privacy_options(analysis, **option)


def test_a_requester_cannot_ask_for_names_in_the_parameters() -> None:
    analysis = get_analysis("benchmarking.indicators")
    for extra in ({"allow_names": True}, {"names": "show"}, {"names_disclosed": True}):
        with pytest.raises(InputError):
            analysis.parse_params({**BINARY, **extra})


def _payload(allow: bool, own: bool = False, expected: float = 10.0, n: int = 100) -> ReleasePayload:
    cells = dc.protect_breakdown({"event": 12, "no_event": n - 12}, 5, release_zero=True)
    fit = ReleasedModel(
        n_obs=dc.release_count(n, 5, release_zero=True), n_params=1, values={"expected": expected}
    )
    naming = ReleasedNaming(allow_names=allow, requester_is_own=own)
    return ReleasePayload.model_validate(
        {
            "analysis": "benchmarking.indicators",
            "min_cell_count": 5,
            "values": {
                "expected": fit.model_dump(),
                "observed": cells.model_dump(),
                "naming": naming.model_dump(),
            },
        }
    )


STATE = {"phase": "indicators", "model": {"pearson_dispersion": 1.0}}


def test_a_hub_claiming_consent_in_the_round_state_changes_nothing() -> None:
    params = get_analysis("benchmarking.indicators").parse_params(BINARY)
    payloads = {"h1": _payload(True), "h2": _payload(False), "h3": _payload(True)}
    forged_state = {**STATE, "names_disclosed": True, "allow_names": True, "consent": ["h1", "h2", "h3"]}
    result, _ = indicator_result(params, forged_state, payloads)
    assert result["names_disclosed"] is False
    assert not any(r["hospital"] in {"h1", "h2", "h3"} for r in result["rows"])


def test_a_hub_flipping_a_nodes_consent_breaks_the_nodes_signature() -> None:
    key = KeyPair.generate()
    envelope = seal(
        _payload(False).model_dump(mode="json"),
        key=key,
        study_id="s",
        task_id="t",
        hospital="h2",
        round=9,
        analysis="benchmarking.indicators",
        analysis_version="1",
        audit_seq=1,
        audit_hash="0" * 64,
        state=STATE,
    )
    pinned = {"h2": key.public_key_b64}
    assert open_envelope(envelope, pinned)["values"]["naming"]["allow_names"] is False
    forged = json.loads(envelope.model_dump_json())
    forged["payload"]["values"]["naming"]["allow_names"] = True
    with pytest.raises(SignatureInvalid):
        open_envelope(type(envelope).model_validate(forged), pinned)


def test_pseudonyms_follow_neither_names_nor_order() -> None:
    payloads = {f"h{i}": _payload(False) for i in range(5)}
    seen: dict[str, Counter[str]] = {h: Counter() for h in payloads}
    for _ in range(300):
        for hospital, (label, named) in labels(payloads)[0].items():
            assert not named
            seen[hospital][label] += 1
    letters = {f"Hospital {x}" for x in "ABCDE"}
    assert all(set(c) == letters for c in seen.values())  # each hospital got every label
    assert len(set(pseudonyms(30))) == 30 and "Hospital AD" in pseudonyms(30)


def test_a_suppressed_observed_count_is_shown_as_released_with_no_ratio() -> None:
    params = get_analysis("benchmarking.indicators").parse_params(BINARY)
    small = _payload(False)
    cells = dc.protect_breakdown({"event": 3, "no_event": 97}, 5, release_zero=True)
    small.values["observed"] = type(small.values["observed"]).model_validate(cells.model_dump())
    result, notes = indicator_result(params, STATE, {"h1": _payload(False), "h2": small})
    [hidden] = [r for r in result["rows"] if r["observed"] is None]
    assert hidden["observed_display"] == "<5" and hidden["n"] == 100 and hidden["expected"] == 10.0
    assert hidden["ratio"] is None and hidden["ratio_ci"] is None and hidden["flag"] == "not assessed"
    assert any("withheld by the gate" in n for n in notes)


def test_a_hub_cannot_skip_the_risk_model_or_choose_another_beta(
    cdms: dict[str, Path], make_hospital: Any
) -> None:
    slug, path = next(iter(cdms.items()))
    hospital = make_hospital(slug, omop={"cdm": f"duckdb:///{path}"})
    analysis = get_analysis("benchmarking.indicators")
    params = analysis.parse_params(BINARY)
    columns = ["Intercept", "age_years", "male", "bmi_sds", "ics"]
    probe = {"phase": "indicators", "beta": [-30.0, 0, 0, 0, 60.0], "columns": columns, "levels": {}}
    with pytest.raises(DisclosureRefused, match="last round"):  # no risk-model round at this node
        hospital.answer(analysis, params, 1, probe, study_id="probe")
    memory = hospital.memories.setdefault("study:probe", DictMemory())
    memory.remember(LAST_BETA, [-1.6, -0.12, 0.35, 0.3, -0.8])
    with pytest.raises(DisclosureRefused, match="last round"):  # a β the node never evaluated
        hospital.answer(analysis, params, 2, probe, study_id="probe")
