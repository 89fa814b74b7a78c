"""Another organisation's study is not found, in the page, the fragment and the downloads (chromium)."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Page, expect

from phds.demo.network import REQUESTER_ORG

from .conftest import Portal, check_accessibility, sign_in


def _rival_requester(portal: Portal) -> str:
    """A requester of a second organisation, made as the operator does it: through the admin API."""
    suffix = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {portal.network.admin_token}"}
    with httpx.Client(base_url=f"{portal.network.hub_url}/api/v1", headers=headers, timeout=30) as api:
        org = {
            "name": f"rival-{suffix}",
            "display_name": "Rival Labs",
            "kind": "requester",
            "category": "academic",
        }
        assert api.post("/organisations", json=org).status_code == 201
        email = f"someone-{suffix}@rival.example"
        person = {
            "email": email,
            "display_name": "Someone at Rival",
            "role": "requester",
            "organisation": org["name"],
        }
        created = api.post("/users", json=person)
        assert created.status_code == 201, created.text
        password = api.put(f"/users/{created.json()['id']}/password", json={"new_password": portal.password})
        assert password.status_code == 200, password.text
    return email


def test_another_organisations_study_answers_not_found(page: Page, portal: Portal) -> None:
    spec = {
        "title": "acme-pharma's own study",
        "purpose": "Only acme-pharma may see it",
        "organisation": REQUESTER_ORG,
        "service_type": "feasibility",
        "hospitals": ["alpha"],
        "analysis": {"name": "system.noop"},
    }
    with portal.network.client() as client:
        study = client.submit(spec)
    rival = _rival_requester(portal)
    sign_in(page, portal, rival)
    page.goto(f"{portal.url}/studies/{study.id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_role("alert")).to_contain_text("your organisation cannot see it")
    expect(page.locator("body")).not_to_contain_text("acme-pharma's own study")
    check_accessibility(page)
    for path in ("progress", "result.json", "chart.svg"):
        answer = page.request.get(f"{portal.url}/studies/{study.id}/{path}")
        assert answer.status == 404, path
        assert "acme-pharma" not in answer.text()
    page.goto(f"{portal.url}/studies")
    expect(page.get_by_role("status")).to_have_text("0 studies.")
    check_accessibility(page)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, portal, portal.requester, next_path=f"/portal/studies/{study.id}")  # the owner sees it
    expect(page.get_by_role("heading", level=1)).to_have_text("acme-pharma's own study")
