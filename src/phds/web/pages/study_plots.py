"""A finished study's plot (PNG, SVG) and its table (CSV), as the SDK draws and tabulates them.

``/portal/studies/{id}/plot.png`` and ``plot.svg`` draw :func:`phds.sdk.plots.plot_result` of the typed
result in a worker thread (matplotlib is CPU-bound and would block the event loop), one figure at a time
(matplotlib's documentation: "Matplotlib is not thread-safe"). ``table.csv`` is the result's own table
(``to_csv`` where the result has one, e.g. Table 1, else ``to_frame()``): coefficients for a model,
life tables for Kaplan–Meier, the released cells for counts.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from phds.errors import NotFound
from phds.sdk.results import StudyResult
from phds.web.pages.studies import study_view
from phds.web.pages.study_results import finished_result
from phds.web.result_view import has_plot
from phds.web.session import CurrentViewer

router = APIRouter()

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
_DRAWING = threading.Lock()


def draw(result: StudyResult, fmt: Literal["png", "svg"]) -> bytes:
    """The result's plot as PNG or SVG bytes."""
    from phds.sdk.plots import plot_result

    with _DRAWING:
        figure = plot_result(result)
        buffer = io.BytesIO()
        metadata = {"Software": "PHDS"} if fmt == "png" else None
        figure.savefig(buffer, format=fmt, dpi=120, metadata=metadata)
    return buffer.getvalue()


def result_csv(result: StudyResult) -> str:
    """The result's table as CSV text; :class:`NotFound` for a result without a table."""
    to_csv = getattr(result, "to_csv", None)
    if callable(to_csv):
        return str(to_csv())
    to_frame = getattr(result, "to_frame", None)
    if not callable(to_frame):
        raise NotFound(f"a {result.study.spec.analysis.name} result has no table to download")
    frame = to_frame()
    keep_index = frame.index.name is not None or any(name is not None for name in frame.index.names)
    return str(frame.to_csv(index=keep_index, lineterminator="\n"))


def download_name(result: StudyResult, suffix: str) -> str:
    """``<analysis>-<first 8 of the study id>.<suffix>``, safe as a file name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{result.study.spec.analysis.name}-{result.study.id[:8]}")
    return f"{stem}.{suffix}"


async def _plot(viewer: CurrentViewer, study_id: uuid.UUID, fmt: Literal["png", "svg"]) -> Response:
    result = finished_result(await study_view(viewer, study_id))
    if not has_plot(result):
        raise NotFound(f"there is no plot of a {result.study.spec.analysis.name} result like this one")
    body = await run_in_threadpool(draw, result, fmt)
    disposition = f'inline; filename="{download_name(result, fmt)}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})


@router.get("/studies/{study_id:uuid}/plot.png")
async def plot_png(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result's plot as PNG."""
    return await _plot(viewer, study_id, "png")


@router.get("/studies/{study_id:uuid}/plot.svg")
async def plot_svg(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result's plot as SVG (text stays text: searchable, scalable)."""
    return await _plot(viewer, study_id, "svg")


@router.get("/studies/{study_id:uuid}/table.csv")
async def table_csv(viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The result's table as a CSV download."""
    result = finished_result(await study_view(viewer, study_id))
    text = result_csv(result)
    disposition = f'attachment; filename="{download_name(result, "csv")}"'
    return Response(text, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})
