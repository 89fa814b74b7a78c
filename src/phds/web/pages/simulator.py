"""The sustainability simulator in the portal (admins only): a shipped or uploaded scenario, run here.

The simulator (:mod:`phds.billing.simulator`) is pure computation over the scenario file, so the portal
runs it in its own process, in a worker thread (``run_in_threadpool``) so the event loop keeps serving.
The charts are :mod:`phds.billing.simulator_plots`' PNGs, sent inline as ``data:`` images (the CSP
allows ``img-src data:``), each with a text alternative and the yearly table as its long description.

An uploaded scenario may not name other files (``tariff:``, ``demand_from:``): on a server they would
be read from the portal's disk. It uses the shipped default tariff, as ``phds billing simulate`` does
without ``tariff:``.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from phds.billing.scenario import (
    MAX_SCENARIO_BYTES,
    LoadedScenario,
    Scenario,
    check_scenario,
    load_scenario,
    shipped_scenarios,
)
from phds.billing.simulator import simulate
from phds.billing.simulator_result import SimulationResult
from phds.documents import model_from_document, parse_text
from phds.errors import InputError
from phds.web.pages.outcome import FIXABLE, NO_OUTCOME, Outcome, money
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

router = APIRouter(prefix="/operator")

MAX_PORTAL_RUNS = 500
"""Monte Carlo runs the portal does per request (about a second per 100 on one core); more: the CLI."""
_DRAWING = threading.Lock()  # matplotlib's state is not thread-safe; draw one chart set at a time


@dataclass(frozen=True)
class Chart:
    title: str
    png: str  # a data: URI
    alt: str


def scenario_from_text(text: str, name: str) -> LoadedScenario:
    """An uploaded scenario (YAML or JSON), checked; one that names other files is refused."""
    if len(text.encode()) > MAX_SCENARIO_BYTES:
        raise InputError(f"larger than {MAX_SCENARIO_BYTES:,} bytes", file=name, field="scenario_file")
    data, lines = parse_text(text, name)
    scenario = model_from_document(Scenario, data, file=name, lines=lines)
    for key in ("tariff", "demand_from"):
        if getattr(scenario, key) is not None:
            raise InputError(
                "an uploaded scenario cannot name other files; remove it (the default tariff is used) or run "
                "it with phds billing simulate",
                file=name,
                field=key,
            )
    return check_scenario(scenario, file=name, lines=lines)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": "PHDS"})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _month(result: SimulationResult, month: int | None) -> str:
    return "none within the horizon" if month is None else f"month {month} ({result.months[month - 1].label})"


def charts(result: SimulationResult) -> list[Chart]:
    """The three charts as PNG data URIs, each with a text alternative that states what it shows."""
    from phds.billing.simulator_plots import cash_plot, payout_plot, revenue_plot

    c = result.currency
    first, last = result.years[0], result.years[-1]
    below = ", ".join(f"{y.hospitals_below_viability}/{y.hospitals}" for y in result.years)
    alts = {
        "revenue": (
            f"Stacked bars of the operator's revenue per year by stream, with its costs as a line: year 1 "
            f"revenue {money(first.revenue, c)} against costs {money(first.costs, c)}; year {last.year} "
            f"revenue {money(last.revenue, c)} against costs {money(last.costs, c)}. The yearly table "
            "below gives every year."
        ),
        "cash": (
            f"Line of the operator's month-end cash from an opening {money(result.opening_cash, c)} to "
            f"{money(result.months[-1].cash, c)} in {result.months[-1].label}; lowest "
            f"{money(result.lowest_cash, c)} in {_month(result, result.lowest_cash_month)}; break-even "
            f"{_month(result, result.break_even_month)}."
            + (f" A band shows the p5 to p95 of {result.bands.runs} runs." if result.bands else "")
        ),
        "payouts": (
            f"Bars of the mean net payout per hospital and year against the viability line of "
            f"{money(result.viability_line, c)}; hospitals below the line, year by year: {below}."
        ),
    }
    titles = {
        "revenue": "The operator's revenue by stream against its costs",
        "cash": "The operator's cash balance",
        "payouts": "Each hospital's net payout against the viability line",
    }
    found = []
    with _DRAWING:
        for key, draw in (("revenue", revenue_plot), ("cash", cash_plot), ("payouts", payout_plot)):
            found.append(Chart(titles[key], _png(draw(result)), alts[key]))
    return found


def run(loaded: LoadedScenario, runs: int, seed: int | None) -> tuple[SimulationResult, list[Chart]]:
    """Simulate and draw (CPU-bound: called in a worker thread)."""
    result = simulate(loaded, runs=runs, seed=seed)
    return result, charts(result)


def _runs(value: str) -> int:
    try:
        runs = int(value or "1")
    except ValueError:
        raise InputError(f"{value!r} is not a whole number", field="runs") from None
    if not 1 <= runs <= MAX_PORTAL_RUNS:
        raise InputError(f"runs must be between 1 and {MAX_PORTAL_RUNS} here", field="runs")
    return runs


def _seed(value: str) -> int | None:
    if not value.strip():
        return None
    try:
        seed = int(value)
    except ValueError:
        raise InputError(f"{value!r} is not a whole number", field="seed") from None
    if seed < 0:
        raise InputError("the seed must be 0 or more", field="seed")
    return seed


async def simulator_page(
    request: Request,
    viewer: Viewer,
    *,
    loaded: LoadedScenario | None = None,
    runs: str = "1",
    seed: str = "",
    chosen: str = "",
    outcome: Outcome = NO_OUTCOME,
) -> Response:
    viewer.require("admin")
    result: SimulationResult | None = None
    drawn: list[Chart] = []
    if loaded is not None and not outcome.error:
        try:
            result, drawn = await run_in_threadpool(run, loaded, _runs(runs), _seed(seed))
        except FIXABLE as exc:
            outcome = Outcome.failed("simulate", exc)
    return page(
        request,
        "simulator.html",
        viewer,
        status_code=outcome.status,
        scenarios=shipped_scenarios(),
        chosen=chosen,
        runs=runs,
        seed=seed,
        max_runs=MAX_PORTAL_RUNS,
        result=result,
        charts=drawn,
        month_text=_month,
        outcome=outcome,
    )


@router.get("/simulator", response_class=HTMLResponse)
async def simulator(
    request: Request, viewer: CurrentViewer, scenario: str = "", runs: str = "1", seed: str = ""
) -> Response:
    """The scenario form; with ``scenario`` (a shipped one's name), its projection: table and charts."""
    viewer.require("admin")
    if not scenario:
        return await simulator_page(request, viewer)
    if scenario not in shipped_scenarios():
        error = InputError(f"no shipped scenario {scenario!r}", field="scenario")
        return await simulator_page(request, viewer, outcome=Outcome.failed("simulate", error))
    return await simulator_page(
        request, viewer, loaded=load_scenario(scenario), runs=runs, seed=seed, chosen=scenario
    )


@router.post("/simulator", response_class=HTMLResponse)
async def simulate_upload(
    request: Request,
    viewer: CurrentViewer,
    scenario_file: Annotated[UploadFile | None, File()] = None,
    scenario_text: Annotated[str, Form()] = "",
    runs: Annotated[str, Form()] = "1",
    seed: Annotated[str, Form()] = "",
) -> Response:
    """Run an uploaded (or pasted) scenario file."""
    viewer.require("admin")
    name, text = "the pasted scenario", scenario_text
    try:
        if scenario_file is not None and scenario_file.filename:
            name = scenario_file.filename
            raw = await scenario_file.read(MAX_SCENARIO_BYTES + 1)
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", file=name, field="scenario_file") from None
        if not text.strip():
            raise InputError("choose a scenario file or paste one", field="scenario_file")
        loaded = scenario_from_text(text, name)
    except FIXABLE as exc:
        return await simulator_page(
            request, viewer, runs=runs, seed=seed, outcome=Outcome.failed("upload", exc)
        )
    return await simulator_page(request, viewer, loaded=loaded, runs=runs, seed=seed)
