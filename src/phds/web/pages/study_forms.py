"""New study: pick an analysis the hub offers, fill the form generated from its parameters, review.

The form is built from the hub's own description of the analysis (``GET /api/v1/analyses/{name}``: the
JSON Schema of its ``Params``) and of a study (:class:`~phds.protocol.studies.StudySpec`), by
:mod:`phds.web.params_form`; every field is named by its path in the study file. The submitted form
becomes a study mapping that ends, like every study the portal builds, in
:func:`~phds.web.pages.submit.review_page`; when a check there fails, the form comes back with the
message next to the field it names. A study file can be uploaded or pasted on the same page instead.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import InputError
from phds.protocol.analyses import AnalysisInfo
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.studies import ServiceType, StudySpec
from phds.web.pages.submit import review_page
from phds.web.params_form import FormField, form_fields, humanise
from phds.web.params_values import (
    FormData,
    apply_action,
    bare_message,
    error_target,
    form_from_values,
    read_form,
)
from phds.web.params_values import (
    counts_in as item_counts,
)
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter()

PARAMS_PREFIX = "analysis.params"
ANALYSIS_NAME = re.compile(r"[a-z][a-z0-9_.]{0,99}")  # AnalysisSpec.name's pattern
FORM_ACTION = "form_action"
#: Study fields the page sets itself (the organisation is the signed-in person's; the analysis is chosen).
STUDY_FIELDS_SET_BY_PAGE = ("organisation", "analysis")


def study_fields(
    info: AnalysisInfo, catalogue: list[CatalogueEntry], applications: list[dict[str, Any]]
) -> list[FormField]:
    """The study's own fields (title, purpose, service, hospitals, deadline, privacy, application),
    generated from the StudySpec schema and fitted to this hub: hospitals from its catalogue, the
    privacy options only when the analysis supports them, applications from the requester's accepted
    ones."""
    fields = []
    for f in form_fields(StudySpec.model_json_schema(), ""):
        if f.key in STUDY_FIELDS_SET_BY_PAGE:
            continue
        if f.key == "dp" and not info.dp_support:
            continue
        if f.key == "secure_aggregation" and not info.secure_aggregation_support:
            continue
        if f.key == "hospitals":
            f.kind, f.constraints = "checkboxes", ["at least one"]
            f.choices = {e.hospital: e.hospital for e in catalogue}
            f.option_labels = {
                e.hospital: f"{e.display_name} ({e.hospital}{', ' + e.country if e.country else ''})"
                for e in catalogue
            }
            f.help = "The hospitals that publish a catalogue entry; each one's steward decides by its policy."
        elif f.key == "service_type":
            f.option_labels = {k: humanise(k) for k in f.choices}
            f.help = "What you buy; the tariff prices each type."
        elif f.key == "deadline_seconds":
            f.label = "Deadline, in seconds (3600 is one hour)"
        elif f.key == "dp":
            f.label = "Differential privacy"
            f.help = (
                "Ask each hospital to add calibrated noise; it applies the stricter of this and its own"
                " policy. Give exactly one of epsilon or rho."
            )
        elif f.key == "application_id":
            accepted = [a for a in applications if a.get("state") == "accepted"]
            if accepted:
                f.kind = "select"
                f.choices = {"": None, **{a["id"]: a["id"] for a in accepted}}
                f.option_labels = {
                    "": "none",
                    **{a["id"]: f"{a['id']}: {(a.get('form') or {}).get('title', '')}" for a in accepted},
                }
            f.label = "Billed under application"
        fields.append(f)
    return fields


def initial_values(
    info: AnalysisInfo, study: list[FormField], params: list[FormField]
) -> dict[str, list[str]]:
    """The form as first shown: every default, and the service type the analysis is usually bought as."""
    values = form_from_values(study, {}) | form_from_values(params, {})
    kind = info.service_types[0] if info.service_types else ServiceType.ANALYTICAL_STUDY
    values["service_type"] = [kind.value]
    return values


async def analysis_info(viewer: Viewer, name: str) -> AnalysisInfo:
    """The hub's description of analysis *name* (checked to be a registry name, never a path)."""
    if not ANALYSIS_NAME.fullmatch(name):
        raise InputError(f"{name!r} is not an analysis name", field="analysis.name")
    return AnalysisInfo.model_validate(await viewer.api.get(f"/analyses/{name}"))


async def _catalogue(viewer: Viewer) -> list[CatalogueEntry]:
    return [CatalogueEntry.model_validate(e) for e in await viewer.api.get("/catalogue")]


async def _form_page(
    request: Request,
    viewer: Viewer,
    info: AnalysisInfo,
    values: dict[str, list[str]],
    *,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    counts = item_counts(values)
    params = form_fields(info.params_schema, PARAMS_PREFIX, counts)
    study = study_fields(info, await _catalogue(viewer), await viewer.api.get("/billing/applications"))
    if not values:
        values = initial_values(info, study, params)
    labels = {f.name: f.label for top in (*study, *params) for f in top.walk()}
    return page(
        request,
        "newstudy_form.html",
        viewer,
        status_code=status_code,
        title=f"New study: {info.title}",
        info=info,
        study_fields=study,
        param_fields=params,
        values=values,
        errors=errors or {},
        error_labels=labels,
        problem=problem,
    )


@router.get("/studies/new", response_class=HTMLResponse)
async def new_study(request: Request, viewer: CurrentViewer, analysis: str = "") -> Response:
    """The analysis picker and the study-file upload; with ``?analysis=NAME`` that analysis's form."""
    viewer.require("requester")
    if analysis:
        return await _form_page(request, viewer, await analysis_info(viewer, analysis), {})
    analyses = [AnalysisInfo.model_validate(a) for a in await viewer.api.get("/analyses")]
    return page(request, "newstudy.html", viewer, analyses=sorted(analyses, key=_picker_order))


def _picker_order(info: AnalysisInfo) -> tuple[int, str]:
    """Studies first, feasibility next, system checks last."""
    group = 2 if info.data_kind == "none" else 1 if info.name.startswith("feasibility.") else 0
    return group, info.name


def form_data(raw: Any) -> dict[str, list[str]]:
    """A submitted form's text fields as name → values (files are not part of a study form)."""
    data: dict[str, list[str]] = {}
    for name, value in raw.multi_items():
        if isinstance(value, str):
            data.setdefault(name, []).append(value)
    return data


@router.post("/studies/new", response_class=HTMLResponse)
async def submit_form(request: Request, viewer: CurrentViewer) -> Response:
    """Add or remove an item of a list (and show the form again), or build the study and review it."""
    viewer.require("requester")
    values = form_data(await request.form())
    name = (values.pop("analysis", None) or [""])[0]
    values.pop("csrf_token", None)
    if not name:
        raise InputError("choose an analysis first", field="analysis.name")
    info = await analysis_info(viewer, name)
    action = (values.pop(FORM_ACTION, None) or [""])[0]
    if action and action != "review":
        return await _form_page(request, viewer, info, apply_action(action, values))
    spec, errors = build_study(info, values, await _catalogue(viewer))
    if errors:
        return await _form_page(request, viewer, info, values, errors=errors, status_code=422)
    try:
        return await review_page(request, viewer, spec)
    except InputError as exc:
        fields = [*form_fields(info.params_schema, PARAMS_PREFIX, item_counts(values)), *_study_names()]
        target = error_target(fields, exc.field)
        if target is None:
            return await _form_page(request, viewer, info, values, problem=exc.message, status_code=422)
        return await _form_page(
            request, viewer, info, values, errors={target: bare_message(exc)}, status_code=422
        )


def _study_names() -> list[FormField]:
    return form_fields(StudySpec.model_json_schema(), "")


def build_study(
    info: AnalysisInfo, values: FormData, catalogue: list[CatalogueEntry]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The study mapping the form *values* describe, and the fields that could not be read."""
    study, errors = read_form(study_fields(info, catalogue, []), values)
    params, param_errors = read_form(
        form_fields(info.params_schema, PARAMS_PREFIX, item_counts(values)), values
    )
    errors.update(param_errors)
    if not study.get("hospitals"):
        errors.setdefault("hospitals", "choose at least one hospital")
    spec = {**study, "analysis": {"name": info.name, "version": info.version, "params": params}}
    return spec, errors
