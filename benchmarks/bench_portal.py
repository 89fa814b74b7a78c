"""Portal page times on a demo network of real processes: the median of each page over real HTTP.

A hub and three nodes run as processes (:class:`~phds.demo.network.LocalNetwork`, synthetic hospitals);
a feasibility study is run first so the pages have content. Each page is fetched
``PHDS_BENCH_PORTAL_REPEATS`` times (default 20, after 3 warm-ups) with a signed-in session cookie; the
baseline, run side by side, is the API call the page is built on (same token, same process), so the
ratio is what rendering and the portal's own API hop cost. Target (issue 10): every page ≤ 200 ms at
the median.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import write_result
from phds.demo.network_people import DEMO_PASSWORD, DemoHospital, LocalNetwork
from phds.demo.scenario import default_cohort, demo_spec, submit_and_wait
from phds.omop.simulator import generate

REPEATS = int(os.environ.get("PHDS_BENCH_PORTAL_REPEATS", "20"))
TARGET_MS = 200.0


def _session(client: httpx.Client, email: str) -> str:
    """A session token for *email*, through the sign-in API the portal's form uses."""
    response = client.post("/api/v1/sessions", json={"email": email, "password": DEMO_PASSWORD})
    response.raise_for_status()
    return str(response.json()["token"])


def _median_ms(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[float, int]:
    status = 0
    for _ in range(3):
        status = client.get(path, headers=headers).status_code
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        status = client.get(path, headers=headers).status_code
        runs.append(time.perf_counter() - start)
    return round(statistics.median(runs) * 1000, 2), status


def _pages(study_id: str) -> dict[str, tuple[str, str, str]]:
    """Page name → (who, page path, baseline API path)."""
    return {
        "home": ("requester", "/portal/", "/api/v1/studies"),
        "catalogue": ("requester", "/portal/catalogue", "/api/v1/catalogue"),
        "feasibility builder": ("requester", "/portal/feasibility", "/api/v1/catalogue"),
        "studies": ("requester", "/portal/studies", "/api/v1/studies"),
        "study (feasibility result)": (
            "requester",
            f"/portal/studies/{study_id}",
            f"/api/v1/studies/{study_id}",
        ),
        "result chart (PNG)": (
            "requester",
            f"/portal/studies/{study_id}/chart.png",
            f"/api/v1/studies/{study_id}",
        ),
        "new study": ("requester", "/portal/studies/new", "/api/v1/analyses"),
        "money": ("requester", "/portal/money", "/api/v1/billing/applications"),
        "operator: organisations": ("admin", "/portal/operator/organisations", "/api/v1/organisations"),
        "operator: nodes": ("admin", "/portal/operator/nodes", "/api/v1/nodes"),
        "operator: billing": ("admin", "/portal/operator/billing", "/api/v1/billing/invoices"),
    }


def _measure(network: LocalNetwork) -> dict[str, Any]:
    spec = demo_spec(
        {"name": "feasibility.count", "params": {"cohort": default_cohort()}},
        network,
        "Portal benchmark",
        "feasibility",
    )
    study = submit_and_wait(network, spec, on_change=lambda view: None)
    with httpx.Client(base_url=network.hub_url, timeout=60) as client:
        tokens = {
            "requester": _session(client, "researcher@acme.example"),
            "admin": _session(client, "admin@phds.local"),
        }
        pages: dict[str, Any] = {}
        for name, (who, path, baseline) in _pages(study.study_id).items():
            cookie = {"Cookie": f"__Host-phds_session={tokens[who]}"}
            bearer = {"Authorization": f"Bearer {tokens[who]}"}
            page_ms, status = _median_ms(client, path, cookie)
            api_ms, _ = _median_ms(client, baseline, bearer)
            pages[name] = {
                "path": path,
                "status": status,
                "median_ms": page_ms,
                "api_baseline": baseline,
                "api_median_ms": api_ms,
                "ratio": round(page_ms / api_ms, 2) if api_ms else None,
                "meets_target": status == 200 and page_ms <= TARGET_MS,
            }
    return pages


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = generate(folder / "hospitals", hospitals=3, patients=600, seed=11)
        hospitals = [DemoHospital(h.slug, h.name, omop_url=f"duckdb:///{h.path.resolve()}") for h in data]
        with LocalNetwork(folder / "network", hospitals) as network:
            pages = _measure(network)
    medians = [p["median_ms"] for p in pages.values() if p["status"] == 200]
    summary = {
        "what": "median time of each portal page over real HTTP on a demo network of real processes, "
        "against the API call it is built on (side by side)",
        "repeats": REPEATS,
        "target_ms": TARGET_MS,
        "pages": pages,
        "slowest_page_ms": max(medians) if medians else None,
        "all_pages_meet_target": all(p["meets_target"] for p in pages.values()),
    }
    write_result("portal", summary)
    return summary
