"""The attack: a requester maps a benchmarking result's pseudonyms back to hospitals by downloading the
study's signed releases (each envelope names its node and carries its n, O and E). The hub withholds them
from every caller unless the result says every hospital allowed names; other studies are unaffected."""

from __future__ import annotations

from typing import Any

import pytest

from phds.hub.testing import study_spec

pytestmark = pytest.mark.usefixtures("network")

PARAMS = {
    "table": {"dataset": "admissions"},
    "indicator": "length of stay",
    "outcome": "los_days",
    "outcome_type": "continuous",
    "risk_factors": ["age_years"],
}


def _releases(network: Any, study_id: str, actor: str) -> Any:
    return network.client.get(f"/api/v1/studies/{study_id}/releases", token=network.tokens[actor])


def test_benchmarking_releases_are_withheld_from_requester_and_operator(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"], "benchmarking.indicators", PARAMS))
    for actor in ("requester", "admin"):
        response = _releases(network, study["id"], actor)
        assert response.status_code == 403, response.text
        assert "pseudonyms" in response.text


def test_other_studies_keep_their_releases_for_verification(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"], "system.noop"))
    assert _releases(network, study["id"], "requester").status_code == 200
