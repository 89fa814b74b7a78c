"""``/api/v1/vocabulary``: concept search by name, code and id, look-ups and descendants, over the
shipped paediatric subset and an operator's vocabulary store (``PHDS_HUB_VOCABULARY_URL``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from phds.hub.store import HubStore
from phds.hub.testing import ClientFactory, HubClient, add_org, add_user
from phds.omop.store import open_store
from phds.omop.vocabulary import concepts as c
from phds.omop.vocabulary import load_vocabulary

# OMOP reserves concept ids above 2,000,000,000 for a site's own concepts: these two exist only in the
# operator's vocabulary store of this test, below asthma and with no hierarchy of their own.
LOCAL_ASTHMA = 2_000_000_001
LOCAL_CODE = 2_000_000_002


def _concept(concept_id: int, name: str, code: str, standard: str | None = "S") -> dict[str, Any]:
    return {
        "concept_id": concept_id,
        "concept_name": name,
        "domain_id": "Condition",
        "vocabulary_id": "PHDS local",
        "concept_class_id": "Clinical Finding",
        "standard_concept": standard,
        "concept_code": code,
        "valid_start_date": dt.date(2026, 1, 1),
        "valid_end_date": dt.date(2099, 12, 31),
        "invalid_reason": None,
    }


@pytest.fixture
def vocabulary_url(tmp_path: Path) -> str:
    """A DuckDB CDM store with the shipped subset plus two local concepts and one ancestry link."""
    url = f"duckdb:///{tmp_path / 'vocabulary.duckdb'}"
    with open_store(url) as store:
        store.create_tables()
        load_vocabulary(store)
        rows = [
            _concept(LOCAL_ASTHMA, "Severe persistent childhood asthma (local)", "LOC-1"),
            _concept(LOCAL_CODE, "Wheeze, unspecified (local)", "LOC-2", standard=None),
        ]
        store.append_arrow("concept", pa.Table.from_pylist(rows))
        ancestry = [
            {
                "ancestor_concept_id": a,
                "descendant_concept_id": d,
                "min_levels_of_separation": lv,
                "max_levels_of_separation": lv,
            }
            for a, d, lv in [(LOCAL_ASTHMA, LOCAL_ASTHMA, 0), (c.ASTHMA, LOCAL_ASTHMA, 2)]
        ]
        store.append_arrow("concept_ancestor", pa.Table.from_pylist(ancestry))
    return url


def _hub(store: HubStore, url: str, make_client: ClientFactory, **settings: Any) -> tuple[HubClient, str]:
    add_org(store, "uni-a", "requester", category="academic")
    _, token = add_user(store, "r@uni-a.example", "requester", "uni-a")
    return make_client(store, url, **settings), token


@pytest.fixture
def subset_hub(sqlite_url: str, make_client: ClientFactory) -> Iterator[tuple[HubClient, str]]:
    store = HubStore.open(sqlite_url)
    yield _hub(store, sqlite_url, make_client)
    store.close()


@pytest.fixture
def store_hub(
    sqlite_url: str, vocabulary_url: str, make_client: ClientFactory
) -> Iterator[tuple[HubClient, str]]:
    store = HubStore.open(sqlite_url)
    yield _hub(store, sqlite_url, make_client, vocabulary_url=vocabulary_url)
    store.close()


def _get(hub: tuple[HubClient, str], path: str, status: int = 200) -> Any:
    client, token = hub
    response = client.get(f"/api/v1/vocabulary{path}", token=token)
    assert response.status_code == status, response.text
    return response.json()


def test_a_name_search_puts_the_exact_name_first_then_longer_names(subset_hub: Any) -> None:
    found = _get(subset_hub, "/concepts?q=asthma")
    assert found[0] == {
        "id": c.ASTHMA,
        "name": "Asthma",
        "domain": "Condition",
        "vocabulary": "SNOMED",
        "concept_class": "Clinical Finding",
        "code": "195967001",
        "standard": True,
    }
    names = [f["name"] for f in found]
    assert set(names) == {"Asthma", *(c.REGISTRY[s].name for s in c.ASTHMA_SUBTYPES)}
    assert all("asthma" in n.lower() for n in names)
    assert [len(n) for n in names[1:]] == sorted(len(n) for n in names[1:])


def test_a_code_or_an_id_finds_its_concept_first(subset_hub: Any) -> None:
    assert _get(subset_hub, "/concepts?q=195967001")[0]["id"] == c.ASTHMA  # SNOMED code
    assert _get(subset_hub, "/concepts?q=29463-7")[0]["name"] == "Body weight"  # LOINC code
    assert _get(subset_hub, f"/concepts?q={c.ALBUTEROL}")[0]["name"] == "albuterol"


def test_domain_standard_and_limit_narrow_the_search(subset_hub: Any) -> None:
    drugs = _get(subset_hub, "/concepts?q=a&domain=drug&limit=100")
    assert drugs and {d["domain"] for d in drugs} == {"Drug"}
    assert len(_get(subset_hub, "/concepts?q=a&limit=3")) == 3
    standard = _get(subset_hub, "/concepts?q=matching&standard=true")
    assert standard == []  # "No matching concept" (0) is not standard
    assert _get(subset_hub, "/concepts?q=matching")[0]["id"] == c.NO_MATCHING_CONCEPT
    assert len(_get(subset_hub, "/concepts?q=zzz-no-such-thing")) == 0


def test_ids_are_looked_up_in_the_order_asked_and_unknown_ones_left_out(subset_hub: Any) -> None:
    found = _get(subset_hub, f"/concepts?id={c.ALBUTEROL}&id=999999999&id={c.ASTHMA}")
    assert [f["id"] for f in found] == [c.ALBUTEROL, c.ASTHMA]
    refused = _get(subset_hub, f"/concepts?id={c.ASTHMA}&q=asthma", status=422)
    assert refused["details"][0]["field"] == "id"
    assert _get(subset_hub, f"/concepts/{c.BODY_WEIGHT}")["code"] == "29463-7"
    assert "no concept 999999999" in _get(subset_hub, "/concepts/999999999", status=404)["message"]


def test_descendants_come_from_the_verified_hierarchy_nearest_first(subset_hub: Any) -> None:
    asthma = _get(subset_hub, f"/concepts/{c.ASTHMA}/descendants")
    assert asthma["hierarchy_known"] is True and asthma["truncated"] is False
    assert asthma["concept"]["name"] == "Asthma"
    assert {d["id"] for d in asthma["descendants"]} == set(c.ASTHMA_SUBTYPES)
    assert {(d["min_levels"], d["max_levels"]) for d in asthma["descendants"]} == {(1, 1)}
    uti = _get(subset_hub, f"/concepts/{c.URINARY_TRACT_INFECTION}/descendants")
    levels = [(d["id"], d["min_levels"]) for d in uti["descendants"]]
    assert levels == [(c.E_COLI_URINARY_TRACT_INFECTION, 1), (c.RECURRENT_URINARY_TRACT_INFECTION, 2)]
    first = _get(subset_hub, f"/concepts/{c.ASTHMA}/descendants?limit=2")
    assert len(first["descendants"]) == 2 and first["truncated"] is True
    leaf = _get(subset_hub, f"/concepts/{c.CHILDHOOD_ASTHMA}/descendants")
    assert (leaf["hierarchy_known"], leaf["descendants"]) == (True, [])
    none = _get(subset_hub, f"/concepts/{c.NO_MATCHING_CONCEPT}/descendants")
    assert (none["hierarchy_known"], none["descendants"]) == (False, [])
    _get(subset_hub, "/concepts/999999999/descendants", status=404)


def test_the_operators_vocabulary_store_adds_its_concepts_and_hierarchy(store_hub: Any) -> None:
    found = _get(store_hub, "/concepts?q=asthma&limit=100")
    assert found[0]["id"] == c.ASTHMA
    local = next(f for f in found if f["id"] == LOCAL_ASTHMA)
    assert (local["vocabulary"], local["code"], local["standard"]) == ("PHDS local", "LOC-1", True)
    assert len({f["id"] for f in found}) == len(found)  # the subset's concepts are in the store too
    assert _get(store_hub, "/concepts?q=loc-2")[0] == {
        "id": LOCAL_CODE,
        "name": "Wheeze, unspecified (local)",
        "domain": "Condition",
        "vocabulary": "PHDS local",
        "concept_class": "Clinical Finding",
        "code": "LOC-2",
        "standard": False,
    }
    assert _get(store_hub, f"/concepts?q={LOCAL_CODE}")[0]["id"] == LOCAL_CODE
    assert [f["id"] for f in _get(store_hub, f"/concepts?id={LOCAL_ASTHMA}&id={c.ASTHMA}")] == [
        LOCAL_ASTHMA,
        c.ASTHMA,
    ]
    asthma = _get(store_hub, f"/concepts/{c.ASTHMA}/descendants")
    by_id = {d["id"]: d for d in asthma["descendants"]}
    assert set(by_id) == {*c.ASTHMA_SUBTYPES, LOCAL_ASTHMA}
    assert by_id[LOCAL_ASTHMA]["min_levels"] == 2
    assert asthma["descendants"][-1]["id"] == LOCAL_ASTHMA  # nearest first
    local_tree = _get(store_hub, f"/concepts/{LOCAL_ASTHMA}/descendants")
    assert (local_tree["hierarchy_known"], local_tree["descendants"]) == (True, [])
    assert _get(store_hub, f"/concepts/{LOCAL_CODE}/descendants")["hierarchy_known"] is False


def test_an_anonymous_caller_may_not_search(subset_hub: Any) -> None:
    client, _ = subset_hub
    assert client.get("/api/v1/vocabulary/concepts?q=asthma").status_code == 401
