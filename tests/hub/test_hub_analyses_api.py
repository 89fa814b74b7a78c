"""``GET /api/v1/analyses``: every registered analysis with the JSON Schema of its parameters."""

from __future__ import annotations

import pytest

from phds.analyses import available_analyses
from phds.hub.store import HubStore
from phds.hub.testing import HubClient, add_org, add_user


@pytest.fixture
def requester(store: HubStore) -> str:
    add_org(store, "uni-a", "requester", category="academic")
    return add_user(store, "r@uni-a.example", "requester", "uni-a")[1]


def test_the_list_names_every_registered_analysis_with_its_params_schema(
    client: HubClient, requester: str
) -> None:
    response = client.get("/api/v1/analyses", token=requester)
    assert response.status_code == 200, response.text
    listed = {a["name"]: a for a in response.json()}
    registry = available_analyses()
    assert set(listed) == set(registry)
    for name, analysis in registry.items():
        info = listed[name]
        assert (info["version"], info["title"], info["data_kind"]) == (
            analysis.version,
            analysis.title,
            analysis.data_kind,
        )
        assert info["params_schema"] == analysis.params_model.model_json_schema()
        assert info["params_schema"]["type"] == "object"
        assert info["description"] and "\n" not in info["description"]
        assert info["dp_support"] is analysis.dp_support
        assert info["secure_aggregation_support"] is analysis.secure_aggregation_support
    assert listed["feasibility.count"]["service_types"][0] == "feasibility"
    assert listed["stats.glm"]["service_types"] == []  # any service type


def test_one_analysis_and_an_unknown_one(client: HubClient, requester: str) -> None:
    glm = client.get("/api/v1/analyses/stats.glm", token=requester).json()
    assert glm["name"] == "stats.glm" and "formula" in glm["params_schema"]["required"]
    missing = client.get("/api/v1/analyses/stats.nothing", token=requester)
    assert missing.status_code == 404 and "GET /api/v1/analyses" in missing.json()["message"]
