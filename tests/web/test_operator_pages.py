"""The operator's pages over HTTP against a real hub on loopback (no browser): organisations, people and
tokens, node health, and who may reach them. The money pages are in ``test_money_pages.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..sdk.billing_support import MoneyNetwork, money_network
from .operator_support import PortalAs, alert, notice, secret, text_of

OPERATOR_PAGES = [
    "/operator/organisations",
    "/operator/organisations/uni-a",
    "/operator/nodes",
    "/operator/billing",
    "/operator/billing/applications",
    "/operator/billing/tariffs",
    "/operator/billing/statements",
    "/operator/simulator",
]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[MoneyNetwork]:
    with money_network(tmp_path) as running:
        yield running


@pytest.fixture
def admin(network: MoneyNetwork) -> Iterator[PortalAs]:
    with PortalAs(network.url, network.tokens["admin"]) as portal:
        yield portal


def test_every_operator_page_is_for_admins_only(network: MoneyNetwork, admin: PortalAs) -> None:
    for path in OPERATOR_PAGES:
        page = admin.get(path)
        assert page.status_code == 200, (path, text_of(page)[:500])
        assert page.text.count("<h1") == 1, path
    for actor in ("requester", "steward"):
        with PortalAs(network.url, network.tokens[actor]) as other:
            for path in OPERATOR_PAGES:
                page = other.get(path)
                assert page.status_code == 403, (actor, path)
                assert "Not allowed" in text_of(page)
                assert "/portal/operator/" not in page.text.split("<main", 1)[0]  # no operator menu
            refused = other.post(
                "/operator/organisations", {"name": "x", "display_name": "X", "kind": "hospital"}
            )
            assert refused.status_code == 403


def test_a_write_without_the_csrf_token_is_refused(network: MoneyNetwork) -> None:
    cookie = {"Cookie": f"__Host-phds_session={network.tokens['admin']}"}
    with httpx.Client(base_url=f"{network.url}/portal", headers=cookie) as raw:
        page = raw.post(
            "/operator/organisations", data={"name": "x", "display_name": "X", "kind": "hospital"}
        )
    assert page.status_code == 403
    assert "security token" in text_of(page)


def test_the_operator_adds_organisations_and_the_hub_s_errors_name_the_field(admin: PortalAs) -> None:
    missing = admin.post(
        "/operator/organisations", {"name": "delta", "display_name": "Delta", "kind": "hospital"}
    )
    assert missing.status_code == 422
    assert "a hospital needs a country" in alert(missing)
    assert 'value="delta"' in missing.text  # what was typed stays
    added = admin.post(
        "/operator/organisations",
        {"name": "delta", "display_name": "Delta Children's", "kind": "hospital", "country": "pt"},
    )
    assert added.status_code == 200
    assert notice(added) == "Added the hospital Delta Children's (delta)."
    again = admin.post(
        "/operator/organisations",
        {"name": "delta", "display_name": "Delta", "kind": "hospital", "country": "PT"},
    )
    assert again.status_code == 409 and "already exists" in alert(again)
    requester = admin.post(
        "/operator/organisations",
        {"name": "kids-trust", "display_name": "Kids Trust", "kind": "requester", "category": "non-profit"},
    )
    assert notice(requester).startswith("Added the requester Kids Trust")
    listed = text_of(admin.get("/operator/organisations"))
    assert "Delta Children's delta hospital PT" in listed and "not enrolled" in listed
    assert "Kids Trust kids-trust requester — non-profit" in listed


def test_people_passwords_tokens_and_an_enrolment_token(network: MoneyNetwork, admin: PortalAs) -> None:
    admin.post(
        "/operator/organisations",
        {"name": "delta", "display_name": "Delta", "kind": "hospital", "country": "PT"},
    )
    wrong_role = admin.post(
        "/operator/organisations/delta/people",
        {"email": "s@delta.example", "display_name": "Sam Steward", "role": "requester"},
    )
    assert wrong_role.status_code == 422 and "belongs to a requester organisation" in alert(wrong_role)
    assert 'aria-invalid="true"' in wrong_role.text
    added = admin.post(
        "/operator/organisations/delta/people",
        {"email": "s@delta.example", "display_name": "Sam Steward", "role": "steward"},
    )
    assert notice(added).startswith("Added Sam Steward <s@delta.example> as steward.")
    [user] = [
        u
        for u in httpx.get(
            f"{network.url}/api/v1/users", headers={"Authorization": f"Bearer {network.tokens['admin']}"}
        ).json()
        if u["email"] == "s@delta.example"
    ]

    weak = admin.post(f"/operator/people/{user['id']}/password", {"new_password": "short"})
    assert weak.status_code == 422 and alert(weak)
    strong = admin.post(
        f"/operator/people/{user['id']}/password", {"new_password": "a long enough passphrase 42"}
    )
    assert notice(strong).startswith("Set the password of s@delta.example")
    signed_in = httpx.post(
        f"{network.url}/api/v1/sessions",
        json={"email": "s@delta.example", "password": "a long enough passphrase 42"},
    )
    assert signed_in.status_code == 201

    issued = admin.post(f"/operator/people/{user['id']}/tokens", {"token_name": "laptop", "ttl_days": "30"})
    token = secret(issued)
    assert "Copy it now: it is shown only once" in notice(issued)
    assert f"export PHDS_TOKEN={token}" in text_of(issued)
    me = httpx.get(f"{network.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == "s@delta.example"
    assert token not in admin.get("/operator/organisations/delta").text  # shown once, never again
    token_id = me.json()["token_id"]
    revoked = admin.post(f"/operator/tokens/{token_id}/revoke", {"organisation": "delta"})
    assert notice(revoked).startswith("Revoked the api token laptop")
    assert (
        httpx.get(f"{network.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )

    enrolment = admin.post("/operator/organisations/delta/enrolment-token", {"ttl_hours": "24"})
    one_time = secret(enrolment)
    assert one_time.startswith("phdse_")
    assert f"phds node enrol --config node.toml --hub {network.url} --token {one_time}" in text_of(enrolment)
    enrolled = httpx.post(f"{network.url}/api/v1/nodes/enrol", json={"enrolment_token": one_time})
    assert enrolled.status_code == 201
    not_a_hospital = admin.post("/operator/organisations/uni-a/enrolment-token", {})
    assert not_a_hospital.status_code == 422 and "no hospital" in alert(not_a_hospital)


def test_node_health_shows_each_hospital_s_node(network: MoneyNetwork, admin: PortalAs) -> None:
    page = admin.get("/operator/nodes")
    text = text_of(page)
    for hospital in ("h1", "h2"):
        assert f"{hospital.upper()} {hospital}" in text
    assert "H3 h3 Not enrolled." in text  # h3 has no node
    assert "none reported" in text  # the test nodes report no audit head
    # the test nodes never called the hub since enrolment: flagged as stale, first in the table
    assert "did not call the hub in the last 5 minutes" in alert(page)


def test_a_success_redirects_and_its_notice_shows_once_in_its_own_session(
    network: MoneyNetwork, admin: PortalAs
) -> None:
    form = {"name": "epsilon", "display_name": "Epsilon", "kind": "hospital", "country": "FI"}
    sent = admin.http.post("/operator/organisations", data={"csrf_token": admin.csrf, **form})
    assert sent.status_code == 303 and sent.headers["location"] == "/portal/operator/organisations"
    [flash] = [
        c.split(";", 1)[0] for c in sent.headers.get_list("set-cookie") if c.startswith("__Host-phds_flash")
    ]
    assert "Secure" in sent.headers["set-cookie"] and "HttpOnly" in sent.headers["set-cookie"]
    shown = admin.http.get("/operator/organisations", headers={"Cookie": f"{admin.session}; {flash}"})
    assert notice(shown) == "Added the hospital Epsilon (epsilon)."
    assert 'phds_flash=""' in shown.headers["set-cookie"]  # cleared once shown
    issued = httpx.post(
        f"{network.url}/api/v1/tokens",
        json={},
        headers={"Authorization": f"Bearer {network.tokens['admin']}"},
    )
    with PortalAs(network.url, issued.json()["token"]) as same_person_other_session:
        foreign = same_person_other_session.http.get(
            "/operator/organisations", headers={"Cookie": f"{same_person_other_session.session}; {flash}"}
        )
    assert foreign.status_code == 200 and notice(foreign) == ""  # signed for the session it was set in
