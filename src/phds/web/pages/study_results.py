"""A study's result as a page of its own: ``/portal/studies/{id}/analysis``, the printable view.

The page shows who answered, the privacy budget the study left, the analysis's result partial
(``templates/results/<analysis>.html``, the one the study page includes too) and the downloads. While
the study runs it shows the study page's progress fragment, which reloads the page when the study ends.
The partials print the SDK's typed result (:func:`phds.sdk.result_registry.result_for`) and never compute
a statistic; :mod:`phds.web.result_view` lays their numbers out.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import NotFound
from phds.protocol.studies import StudyView
from phds.sdk.results import StudyResult
from phds.web import result_view
from phds.web.pages.studies import study_view, typed_result
from phds.web.render import page, templates
from phds.web.session import CurrentViewer

router = APIRouter()
result_view.install(templates.env)


def finished_result(study: StudyView) -> StudyResult:
    """The typed result, or :class:`NotFound` while the study has none (for plots and downloads)."""
    result = typed_result(study)
    if result is None:
        raise NotFound(f"study {study.id} has no result yet; it is {study.state.value.replace('_', ' ')}")
    return result


@router.get("/studies/{study_id:uuid}/analysis", response_class=HTMLResponse)
async def analysis_page(request: Request, viewer: CurrentViewer, study_id: uuid.UUID) -> Response:
    """The study's result on a page of its own (or its progress, while it runs)."""
    study = await study_view(viewer, study_id)
    return page(
        request,
        "studyresult_page.html",
        viewer,
        title=f"Result: {study.spec.title}",
        study=study,
        result=typed_result(study),
    )
