"""A study's result as a page of its own: ``/portal/studies/{id}/analysis``, the printable view.

The page shows the study's state while it runs (HTMX long-polls ``.../analysis/progress``, which waits on
the hub's ``GET /studies/{id}/wait`` and reloads the page when the study ends; without JavaScript the
person reloads it) and, once it has finished, its analysis's result partial
(``templates/results/<analysis>.html``), the same partial the study page includes. The partials print
the SDK's typed result (:func:`phds.sdk.result_registry.result_for`) and never compute a statistic.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import NotFound
from phds.protocol.studies import StudyView
from phds.sdk.result_registry import result_for
from phds.sdk.results import GenericResult, StudyResult
from phds.web import result_view
from phds.web.render import page, templates
from phds.web.session import CurrentViewer, Viewer

router = APIRouter()
result_view.install(templates.env)

#: How long one progress request waits for a change at the hub (the hub allows up to its own maximum).
PROGRESS_WAIT_SECONDS = 20.0


def checked_id(study_id: str) -> str:
    """*study_id* if it is a study id (a UUID); :class:`NotFound` otherwise (never a path elsewhere)."""
    try:
        return str(uuid.UUID(study_id))
    except ValueError:
        raise NotFound(f"there is no study {study_id!r}") from None


async def fetch_study(viewer: Viewer, study_id: str) -> StudyView:
    """The study as the hub shows it to *viewer* (404 when it does not exist or is not theirs)."""
    return StudyView.model_validate(await viewer.api.get(f"/studies/{checked_id(study_id)}"))


def typed_result(study: StudyView) -> StudyResult | None:
    """The typed result of a study with a result; a result its class cannot read shows as raw JSON."""
    if study.result is None:
        return None
    try:
        return result_for(study)
    except (KeyError, TypeError, ValueError):
        return GenericResult(study)


def finished_result(study: StudyView) -> StudyResult:
    """The typed result, or :class:`NotFound` while the study has none (for plots and downloads)."""
    result = typed_result(study)
    if result is None:
        raise NotFound(f"study {study.id} has no result yet; it is {study.state.value.replace('_', ' ')}")
    return result


@router.get("/studies/{study_id}/analysis", response_class=HTMLResponse)
async def analysis_page(request: Request, viewer: CurrentViewer, study_id: str) -> Response:
    """The study's result on a page of its own (or its progress, while it runs)."""
    study = await fetch_study(viewer, study_id)
    return page(
        request,
        "studyresult_page.html",
        viewer,
        title=f"Result: {study.spec.title}",
        study=study,
        result=typed_result(study),
    )


@router.get("/studies/{study_id}/analysis/progress", response_class=HTMLResponse)
async def progress(request: Request, viewer: CurrentViewer, study_id: str, after: int = 0) -> Response:
    """The study's state once its version passes *after* (or after a while); when the study has
    ended, tell HTMX to reload the page so the result shows."""
    path = f"/studies/{checked_id(study_id)}/wait"
    view = await viewer.api.get(path, after_version=after, timeout=PROGRESS_WAIT_SECONDS)
    study = StudyView.model_validate(view)
    if study.state.is_final:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return page(request, "studyresult_progress.html", viewer, study=study)
