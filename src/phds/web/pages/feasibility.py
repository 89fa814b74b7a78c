"""The feasibility builder: a cohort from concepts, an age range and criteria, counted at hospitals.

The page is one form that holds the whole draft, so it works without JavaScript: every button (search,
add, remove, review) posts it and the page comes back with the draft changed. HTMX only makes the
concept search live (``GET /portal/feasibility/concepts``). The cohort is written in the YAML form
(:mod:`phds.web.pages.feasibility_form`); a requester may instead paste that form or upload an ATLAS
Circe JSON export. Either way the page ends in :func:`~phds.web.pages.submit.review_page` with a
``feasibility.count`` study, where the requester signs and submits it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from phds.cohorts import parse_cohort
from phds.errors import InputError, PhdsError
from phds.protocol.vocabulary import ConceptDescendants, ConceptView
from phds.sdk.studyfile import MAX_STUDY_FILE_BYTES
from phds.web.pages.catalogue import hospital_cards
from phds.web.pages.feasibility_form import (
    BREAKDOWNS,
    EVENT_DOMAINS,
    MAX_CRITERIA,
    CohortDraft,
    Criterion,
    bare_message,
    check_cohort,
    cohort_mapping,
    cohort_yaml,
    criterion_fields,
    draft_from_form,
)
from phds.web.pages.submit import review_page
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter()

DEFAULT_PURPOSE = "Feasibility: how many children match this cohort at each hospital."
SEARCH_DOMAINS = tuple(EVENT_DOMAINS)
LOOKUP_BATCH = 200
STUDY_FIELDS = {"hospitals": "hospitals", "title": "title", "purpose": "purpose"}


@dataclass
class Builder:
    """Everything on the builder page: the study's fields, the cohort draft, the search, the errors."""

    hospitals: list[str] = field(default_factory=list)
    title: str = ""
    purpose: str = DEFAULT_PURPOSE
    breakdowns: list[str] = field(default_factory=lambda: ["sex", "age_group"])
    draft: CohortDraft = field(default_factory=CohortDraft)
    q: str = ""
    domain: str = ""
    cohort_text: str = ""
    results: list[ConceptView] | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: FormData) -> Builder:
        def text(name: str, limit: int, strip: bool = True) -> str:
            value = form.get(name)
            if not isinstance(value, str):
                return ""
            return (value.strip() if strip else value)[:limit]

        return cls(
            hospitals=list(dict.fromkeys(str(h) for h in form.getlist("hospitals")))[:200],
            title=text("title", 200),
            purpose=text("purpose", 4000),
            breakdowns=[b for b in BREAKDOWNS if b in form.getlist("breakdowns")],
            draft=draft_from_form(form, form.getlist),
            q=text("q", 200),
            domain=text("domain", 40),
            cohort_text=text("cohort_text", MAX_STUDY_FILE_BYTES, strip=False),
        )


async def lookup(viewer: Viewer, ids: list[int]) -> dict[int, ConceptView]:
    """The hub's concepts among *ids*, by id (in batches the API accepts)."""
    found: dict[int, ConceptView] = {}
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = ids[start : start + LOOKUP_BATCH]
        for item in await viewer.api.get("/vocabulary/concepts", id=batch):
            concept = ConceptView.model_validate(item)
            found[concept.id] = concept
    return found


async def search(viewer: Viewer, q: str, domain: str) -> list[ConceptView]:
    """The hub's best matches for *q* (name, code or id), standard concepts of event domains."""
    found = await viewer.api.get("/vocabulary/concepts", q=q, domain=domain or None, limit=25)
    return [c for c in map(ConceptView.model_validate, found) if c.domain in EVENT_DOMAINS]


async def _descendants(viewer: Viewer, ids: list[int]) -> dict[int, ConceptDescendants]:
    answers = await asyncio.gather(
        *(viewer.api.get(f"/vocabulary/concepts/{c}/descendants", limit=20) for c in ids)
    )
    return {c: ConceptDescendants.model_validate(a) for c, a in zip(ids, answers, strict=True)}


def auto_name(draft: CohortDraft, concepts: dict[int, ConceptView]) -> str:
    """A readable name for the draft: ``Asthma, aged 2-11, with albuterol``."""
    name = " or ".join(concepts[c].name for c in draft.entry if c in concepts) or "Cohort"
    if draft.age_min or draft.age_max:
        name += f", aged {draft.age_min or '0'}-{draft.age_max or 'any'}"
    if draft.sex and len(draft.sex) == 1:
        name += f", {draft.sex[0]}"
    for criterion in draft.criteria:
        if criterion.concept in concepts:
            word = "with" if criterion.kind == "require" else "without"
            name += f", {word} {concepts[criterion.concept].name}"
    return name[:200]


async def render(request: Request, viewer: Viewer, state: Builder, status_code: int = 200) -> Response:
    """The builder page for *state*, with the concepts' names, their descendants and the YAML so far."""
    concepts = await lookup(viewer, state.draft.concept_ids())
    cards = await hospital_cards(viewer)
    known = {c.hospital for c in cards}
    choices = [(c.hospital, c.display_name) for c in cards]
    choices += [(h, f"{h} (not in the catalogue)") for h in state.hospitals if h not in known]
    descendants = await _descendants(viewer, [c for c in state.draft.concept_ids() if c in concepts])
    named = replace(state.draft, name=state.draft.name or auto_name(state.draft, concepts))
    mapping, problems = cohort_mapping(named, concepts)
    preview = cohort_yaml(mapping, _used(state.draft, concepts)) if state.draft.entry and not problems else ""
    return page(
        request,
        "feasibility.html",
        viewer,
        status_code=status_code,
        state=state,
        concepts=concepts,
        descendants=descendants,
        choices=choices,
        preview=preview,
        auto_name=auto_name(state.draft, concepts),
        breakdown_names=BREAKDOWNS,
        domains=SEARCH_DOMAINS,
        max_criteria=MAX_CRITERIA,
        event_domains=EVENT_DOMAINS,
    )


def _used(draft: CohortDraft, concepts: dict[int, ConceptView]) -> list[ConceptView]:
    return [concepts[c] for c in draft.concept_ids() if c in concepts]


@router.get("/feasibility", response_class=HTMLResponse)
async def builder(
    request: Request, viewer: CurrentViewer, hospitals: Annotated[list[str] | None, Query()] = None
) -> Response:
    """An empty builder, with the hospitals chosen in the catalogue ticked."""
    viewer.require("requester")
    return await render(request, viewer, Builder(hospitals=list(dict.fromkeys(hospitals or []))))


@router.get("/feasibility/concepts", response_class=HTMLResponse)
async def concept_results(request: Request, viewer: CurrentViewer, q: str = "", domain: str = "") -> Response:
    """The live search's results (an HTMX fragment): concepts with buttons that add them to the form."""
    results = await search(viewer, q.strip()[:200], domain[:40]) if q.strip() else None
    return page(request, "feasibility_concepts.html", viewer, results=results, q=q.strip(), oob=True)


@router.post("/feasibility", response_class=HTMLResponse)
async def builder_action(request: Request, viewer: CurrentViewer) -> Response:
    """One step of the builder, named by the button pressed (``action``)."""
    viewer.require("requester")
    async with request.form() as form:  # closes an uploaded file's temporary file at the end
        return await _step(request, viewer, form)


async def _step(request: Request, viewer: Viewer, form: FormData) -> Response:
    state = Builder.read(form)
    action = str(form.get("action") or "search")
    verb, _, target = action.partition(":")
    if verb == "review":
        return await _review_built(request, viewer, state)
    if verb == "review-definition":
        return await _review_definition(request, viewer, state, form.get("cohort_file"))
    if verb in ("add-entry", "add-criterion") and target.isdigit():
        await _add(viewer, state, verb, int(target))
    elif verb == "remove-entry" and target.isdigit():
        state.draft.entry = [c for c in state.draft.entry if c != int(target)]
    elif verb == "remove-criterion" and target.isdigit():
        del state.draft.criteria[int(target) : int(target) + 1]
    elif verb == "search" and not state.q:
        state.errors["q"] = "Type part of a concept's name, a code (e.g. 195967001) or a concept id."
    if state.q:
        state.results = await search(viewer, state.q, state.domain)
    return await render(request, viewer, state, 422 if state.errors else 200)


async def _add(viewer: Viewer, state: Builder, verb: str, concept_id: int) -> None:
    found = await lookup(viewer, [concept_id, *state.draft.entry])
    concept = found.get(concept_id)
    if concept is None or concept.domain not in EVENT_DOMAINS:
        state.errors["q"] = f"Concept {concept_id} cannot be an event of a cohort; pick another."
        return
    if verb == "add-criterion":
        if len(state.draft.criteria) >= MAX_CRITERIA:
            state.errors["q"] = (
                f"A cohort here has at most {MAX_CRITERIA} criteria; paste the YAML form for more."
            )
        else:
            state.draft.criteria.append(Criterion(concept=concept_id))
        return
    domains = {found[c].domain for c in state.draft.entry if c in found}
    if domains and concept.domain not in domains:
        state.errors["q"] = (
            f"{concept.name} is a {concept.domain} concept and the entry event is a {domains.pop()} one; "
            "add it as a criterion instead."
        )
    elif concept_id not in state.draft.entry:
        state.draft.entry.append(concept_id)


def _study_errors(state: Builder) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not state.hospitals:
        errors["hospitals"] = "Choose at least one hospital."
    if not state.purpose:
        errors["purpose"] = "Say what the count is for: each hospital's data steward reads it."
    return errors


def _study(state: Builder, cohort: str, title: str) -> dict[str, Any]:
    return {
        "title": state.title or title,
        "purpose": state.purpose,
        "service_type": "feasibility",
        "hospitals": state.hospitals,
        "analysis": {
            "name": "feasibility.count",
            "params": {"cohort": cohort, "breakdowns": state.breakdowns},
        },
    }


async def _to_review(request: Request, viewer: Viewer, state: Builder, spec: dict[str, Any]) -> Response:
    """The review page, or the builder with the study's own errors (from the study file checks)."""
    try:
        return await review_page(request, viewer, spec)
    except InputError as exc:
        where = exc.field or ""
        name = next((v for k, v in STUDY_FIELDS.items() if where.startswith(k)), "cohort")
        state.errors[name] = bare_message(exc)
        return await render(request, viewer, state, 422)


async def _review_built(request: Request, viewer: Viewer, state: Builder) -> Response:
    concepts = await lookup(viewer, state.draft.concept_ids())
    # The automatic name stays out of the form: it changes with every concept picked.
    named = replace(state.draft, name=state.draft.name or auto_name(state.draft, concepts))
    mapping, errors = cohort_mapping(named, concepts)
    state.errors.update(_study_errors(state) | errors)
    if state.errors:
        return await render(request, viewer, state, 422)
    text = cohort_yaml(mapping, _used(state.draft, concepts))
    try:
        check_cohort(text, criterion_fields(state.draft))
    except InputError as exc:
        state.errors[exc.field or "cohort"] = bare_message(exc)
        return await render(request, viewer, state, 422)
    return await _to_review(request, viewer, state, _study(state, text, f"Feasibility: {named.name}"))


async def _review_definition(request: Request, viewer: Viewer, state: Builder, upload: Any) -> Response:
    """A pasted YAML form or an uploaded ATLAS Circe JSON file, checked as the hub will check it."""
    name, text, where = "the pasted cohort", state.cohort_text, "cohort_text"
    if isinstance(upload, UploadFile) and upload.filename:
        if text.strip():
            state.errors["cohort_file"] = "Upload a file or paste a cohort, not both."
            return await render(request, viewer, state, 422)
        raw = await upload.read(MAX_STUDY_FILE_BYTES + 1)
        name, where = upload.filename, "cohort_file"
        if len(raw) > MAX_STUDY_FILE_BYTES:
            state.errors[where] = f"The file is larger than {MAX_STUDY_FILE_BYTES:,} bytes."
        else:
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                state.errors[where] = "The file is not UTF-8 text (an ATLAS JSON export is)."
    elif not text.strip():
        state.errors["cohort_text"] = "Paste a cohort, or choose an ATLAS export file."
    state.errors.update(_study_errors(state))
    if state.errors:
        return await render(request, viewer, state, 422)
    try:
        definition = parse_cohort(text, filename=name)
        wanted = sorted(definition.concept_ids())
        unknown = sorted(set(wanted) - set(await lookup(viewer, wanted)))
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (" …" if len(unknown) > 20 else "")
            raise InputError(f"the hub's vocabulary has no concept {shown}", field="ConceptSets")
    except PhdsError as exc:
        located = exc.message if isinstance(exc, InputError) else str(exc)
        state.errors[where] = located
        return await render(request, viewer, state, 422)
    return await _to_review(
        request, viewer, state, _study(state, text, definition.name or "Feasibility count")
    )
