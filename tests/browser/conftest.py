"""Browser tests: Playwright drives Debian's chromium against real hub and node processes.

``portal_network`` is one package-scoped :class:`~phds.demo.network.LocalNetwork` of three synthetic
hospitals (alpha and beta answer at once; gamma's steward approves by hand), with every person's
password set to :data:`~phds.demo.network_people.DEMO_PASSWORD`. :func:`check_accessibility` runs the vendored
axe-core (``vendor/axe-*.min.js``) in the page against WCAG 2.2 A and AA. :func:`screenshot` writes
``docs/img/portal-<name>.png`` when ``PHDS_SCREENSHOTS=1``, else into the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from phds.demo.network import LocalNetwork
from phds.demo.network_people import DEMO_PASSWORD
from phds.omop.simulator import HospitalResult

from ..integration.conftest import hospital, running_network, synthetic_hospitals  # noqa: F401 (a fixture)

CHROMIUM = Path("/usr/bin/chromium")
VENDOR = Path(__file__).parent / "vendor"
AXE_SOURCE = next(VENDOR.glob("axe-*.min.js")).read_text(encoding="utf-8")
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium, since ``playwright install`` cannot download browsers here."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs the chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="package")
def portal_network(
    tmp_path_factory: pytest.TempPathFactory,
    synthetic_hospitals: list[HospitalResult],  # noqa: F811 (the imported fixture)
) -> Iterator[LocalNetwork]:
    """alpha and beta answer at once; gamma's steward approves each study by hand."""
    a, b, c = synthetic_hospitals
    hospitals = [hospital(a, "alpha"), hospital(b, "beta"), hospital(c, "gamma", approval="manual")]
    with running_network(tmp_path_factory.mktemp("portal"), hospitals) as network:
        yield network


@dataclass(frozen=True)
class Portal:
    """The portal of the test network: its URL, its people, and the requester's signing files."""

    network: LocalNetwork

    @property
    def url(self) -> str:
        return f"{self.network.hub_url}/portal"

    admin = "admin@phds.local"
    requester = "researcher@acme.example"
    password = DEMO_PASSWORD

    def steward(self, hospital: str) -> str:
        return f"steward@{hospital}.example"


@pytest.fixture
def portal(portal_network: LocalNetwork) -> Portal:
    return Portal(portal_network)


def sign_in(page: Page, portal: Portal, email: str, *, next_path: str = "/portal/") -> None:
    """Sign in through the sign-in form, as a person would, and land on *next_path*."""
    page.goto(f"{portal.network.hub_url}{next_path}")
    if "/portal/sign-in" in page.url:
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(portal.password)
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def check_accessibility(page: Page, *, exclude: list[str] | None = None) -> None:
    """No axe-core violation of WCAG 2.2 A/AA on the page as it is now; the failure lists each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)  # evaluated over CDP: the page's CSP (rightly) forbids inline scripts
    found = page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length ? {exclude: exclude.map((s) => [s])} : document;
            const r = await axe.run(context, {runOnly: {type: 'tag', values: tags}});
            return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                             nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5)}));
        }""",
        [WCAG_TAGS, exclude or []],
    )
    assert found == [], f"accessibility violations on {page.url}: {found}"


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot, in docs/img if ``PHDS_SCREENSHOTS=1``, else in *tmp_path*."""
    folder = DOCS_IMG if os.environ.get("PHDS_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"portal-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
