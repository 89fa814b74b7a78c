"""Signing in and out of the portal in chromium, and what the session cookie is."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Portal, check_accessibility, screenshot, sign_in


def test_a_requester_signs_in_lands_home_and_signs_out(page: Page, portal: Portal, tmp_path: Path) -> None:
    page.goto(f"{portal.url}/")
    expect(page).to_have_url(f"{portal.url}/sign-in?next=/portal/")
    check_accessibility(page)
    screenshot(page, "sign-in", tmp_path)
    sign_in(page, portal, portal.requester)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    check_accessibility(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{portal.url}/sign-in")
    page.goto(f"{portal.url}/account")
    expect(page).to_have_url(re.compile(r"/portal/sign-in\?next=/portal/account$"))


def test_a_wrong_password_says_so_without_saying_whether_the_account_exists(
    page: Page, portal: Portal
) -> None:
    for email in (portal.requester, "nobody@nowhere.example"):
        page.goto(f"{portal.url}/sign-in")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("not the password at all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("wrong email or password")


def test_the_session_cookie_is_secure_httponly_samesite_and_host_only(page: Page, portal: Portal) -> None:
    sign_in(page, portal, portal.requester)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "__Host-phds_session"]
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert not cookie["domain"].startswith(".")  # host-only, as the __Host- prefix requires
    assert page.evaluate("document.cookie").find("phds_session") == -1  # invisible to scripts


def test_a_steward_sees_at_the_hub_only_what_their_node_reported(page: Page, portal: Portal) -> None:
    sign_in(page, portal, portal.steward("beta"))
    expect(page.get_by_role("heading", name="Your node, as the hub sees it")).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("beta")
    expect(facts).not_to_contain_text("alpha")
    check_accessibility(page)
