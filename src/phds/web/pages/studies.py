"""The requester's studies: the list, one study's page with live progress and its result, downloads.

The hub scopes every answer (a requester sees its organisation's studies, a steward those that target
its hospital, an admin all), so another organisation's study answers 404 here as it does in the API.
A study's result is rendered by the partial template of its analysis, ``results/<analysis>.html``
(``results/generic.html`` otherwise), with ``study`` (the StudyView), ``result`` (the typed result of
:func:`~phds.sdk.result_registry.result_for`) and ``viewer``. While a study runs, its progress fragment
polls every 2 s and the page reloads once when the study reaches a final state.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from phds.errors import Conflict, InputError, NotFound
from phds.protocol.studies import StudyState, StudyView
from phds.sdk.result_registry import result_for
from phds.sdk.results import GenericResult, StudyResult
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

log = logging.getLogger(__name__)

router = APIRouter()

STATE_FILTERS: dict[str, str] = {
    "": "All",
    "active": "Not finished",
    "final": "Finished",
    **{s.value: s.value.replace("_", " ").capitalize() for s in StudyState},
}
CHART_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


async def study_view(viewer: Viewer, study_id: uuid.UUID) -> StudyView:
    """The study as the hub shows it to *viewer* (404 when their organisation cannot see it)."""
    return StudyView.model_validate(await viewer.api.get(f"/studies/{study_id}"))


def typed_result(study: StudyView) -> StudyResult | None:
    """The typed result, or the generic one when the analysis's class cannot read it; None without."""
    if study.result is None:
        return None
    try:
        return result_for(study)
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        log.warning("study %s: result not readable as %s (%s)", study.id, study.spec.analysis.name, exc)
        return GenericResult(study)


def readable_params(params: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The analysis parameters as ``(name, text, is_block)``: lists joined, documents pretty-printed."""
    shown: list[tuple[str, str, bool]] = []
    for name, value in params.items():
        if isinstance(value, str):
            shown.append((name, value.strip(), "\n" in value.strip()))
        elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            shown.append((name, ", ".join(map(str, value)) or "none", False))
        elif isinstance(value, dict | list):
            shown.append((name, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False), True))
        else:
            shown.append((name, json.dumps(value), False))
    return shown


def _with_result(study: StudyView) -> StudyResult:
    result = typed_result(study)
    if result is None:
        raise Conflict(f"study {study.id} has no result yet: it is {study.state.value.replace('_', ' ')}")
    return result


@router.get("/studies", response_class=HTMLResponse)
async def studies(request: Request, viewer: CurrentViewer, state: str = "") -> Response:
    """The studies the caller's organisation may see, newest first, filtered by state."""
    views = [StudyView.model_validate(s) for s in await viewer.api.get("/studies")]
    error = None
    if state == "active":
        views = [v for v in views if not v.state.is_final]
    elif state == "final":
        views = [v for v in views if v.state.is_final]
    elif state in STATE_FILTERS:
        views = [v for v in views if not state or v.state.value == state]
    else:
        error, state = f"There is no state “{state[:40]}”; showing every study.", ""
    return page(
        request, "study_list.html", viewer, studies=views, state=state, states=STATE_FILTERS, error=error
    )


@router.get("/studies/{study_id:uuid}", response_class=HTMLResponse)
async def study(request: Request, viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """One study: its specification, each hospital's progress, and the result once there is one."""
    view = await study_view(viewer, study_id)
    return page(
        request,
        "study_page.html",
        viewer,
        study=view,
        result=typed_result(view),
        params=readable_params(view.spec.analysis.params),
    )


@router.get("/studies/{study_id:uuid}/progress", response_class=HTMLResponse)
async def progress(
    request: Request, viewer: CurrentViewer, study_id: uuid.UUID, after: int | None = None
) -> Response:
    """The progress fragment. From HTMX: 204 (no swap) while the version is still *after*, and a full
    reload (``HX-Refresh``) once the study is final, so the page shows the result."""
    view = await study_view(viewer, study_id)
    if request.headers.get("hx-request"):
        if view.state.is_final:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        if after is not None and view.version <= after:
            return Response(status_code=204)
    return page(request, "study_progress.html", viewer, study=view)


@router.get("/studies/{study_id:uuid}/result.json")
async def result_json(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result as the hub sent it (with the attribution), pretty-printed."""
    view = await study_view(viewer, study_id)
    _with_result(view)
    body = json.dumps(view.result, indent=2, sort_keys=True, ensure_ascii=False)
    return _download(body.encode(), "application/json", f"study-{view.id}-result.json")


@router.get("/studies/{study_id:uuid}/result.csv")
async def result_csv(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The typed result's table (``to_frame()``) as CSV: one row per hospital and the network total."""
    view = await study_view(viewer, study_id)
    result = _with_result(view)
    to_frame = getattr(result, "to_frame", None)
    if to_frame is None:
        raise NotFound(f"{view.spec.analysis.name} results have no table; download result.json instead")
    text = await run_in_threadpool(lambda: to_frame().to_csv(index=False))
    return _download(text.encode(), "text/csv; charset=utf-8", f"study-{view.id}-result.csv")


@router.get("/studies/{study_id:uuid}/chart.png")
async def chart_png(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result's chart (:func:`phds.sdk.plots.plot_result`) as PNG."""
    return await _chart(viewer, study_id, "png")


@router.get("/studies/{study_id:uuid}/chart.svg")
async def chart_svg(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result's chart as SVG."""
    return await _chart(viewer, study_id, "svg")


async def _chart(viewer: Viewer, study_id: uuid.UUID, fmt: str) -> Response:
    view = await study_view(viewer, study_id)
    result = _with_result(view)

    def draw() -> bytes:
        from phds.sdk.plots import plot_result  # matplotlib: loaded on the first chart only

        figure = plot_result(result)
        out = io.BytesIO()
        figure.savefig(out, format=fmt, dpi=120, metadata={"Software": "PHDS"} if fmt == "png" else None)
        return out.getvalue()

    try:
        image = await run_in_threadpool(draw)
    except InputError as exc:  # plot_result knows no plot for this analysis
        raise NotFound(f"there is no chart of {view.spec.analysis.name} results") from exc
    return Response(
        image,
        media_type=CHART_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="study-{view.id}-chart.{fmt}"'},
    )


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
