"""Review, sign and submit a study: the one way every portal form becomes a study at the hub.

Any page that builds a study (the feasibility builder, an analysis's form, an uploaded study file)
ends in :func:`review_page`. The review shows the whole study as the hospitals' stewards will see it.
Hospitals run only studies signed by the requester's key (DESIGN invariant 3), and that key never
reaches the hub: the browser signs (``static/sign.js``, WebCrypto Ed25519) the exact bytes the hub
returns from ``signing-request``, the same bytes ``phds study submit`` signs with the SDK. A requester who
does not want to trust the hub's page with the key signs with the CLI and uploads the signed JSON.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from phds.documents import parse_text
from phds.errors import InputError
from phds.protocol.canonical import canonical_hash
from phds.protocol.studies import StudyView
from phds.protocol.trust import OrganisationAttestation, SignedSpec
from phds.sdk.studyfile import MAX_STUDY_FILE_BYTES, study_from_mapping
from phds.trust.keys import signed_content
from phds.trust.specs import SPEC_CONTEXT
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter()


def parse_study_text(text: str, name: str, organisation: str) -> dict[str, Any]:
    """A study file's text (YAML or JSON) as a checked spec mapping; the organisation defaults to
    the signed-in person's. :class:`InputError` names the line and field."""
    if len(text.encode()) > MAX_STUDY_FILE_BYTES:
        raise InputError(f"the study file is larger than {MAX_STUDY_FILE_BYTES:,} bytes", file=name)
    data, lines = parse_text(text, name)
    if isinstance(data, dict):
        data.setdefault("organisation", organisation)
        params = (
            (data.get("analysis") or {}).get("params") if isinstance(data.get("analysis"), dict) else None
        )
        if isinstance(params, dict) and "cohort_file" in params:
            raise InputError(
                "the portal cannot read cohort_file: put the cohort inline as 'cohort'",
                file=name,
                field="analysis.params.cohort_file",
            )
    return study_from_mapping(data, file=name, lines=lines).model_dump(mode="json")


async def review_page(request: Request, viewer: Viewer, spec: dict[str, Any]) -> Response:
    """The review-and-sign page for *spec* (a study mapping), checked first."""
    viewer.require("requester")
    spec = {"organisation": viewer.me.organisation, **spec}
    checked = study_from_mapping(spec, file="the form").model_dump(mode="json")
    return page(
        request,
        "submit_review.html",
        viewer,
        spec=checked,
        spec_json=json.dumps(checked, indent=2, sort_keys=True),
    )


@router.post("/studies/review", response_class=HTMLResponse)
async def review(
    request: Request,
    viewer: CurrentViewer,
    spec: Annotated[str, Form()] = "",
    study_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Review a study pasted (YAML/JSON) or uploaded as a file; a signed JSON file is submitted as is."""
    name, text = "the pasted study", spec
    if study_file is not None and study_file.filename:
        name = study_file.filename
        raw = await study_file.read(MAX_STUDY_FILE_BYTES + 1)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("the study file is not UTF-8 text", file=name) from None
    if not text.strip():
        raise InputError("paste a study or choose a study file", field="spec")
    data, _ = parse_text(text, name)
    if isinstance(data, dict) and "signature" in data and "spec" in data:
        return await _submit_signed(viewer, data)
    return await review_page(request, viewer, parse_study_text(text, name, viewer.me.organisation))


@router.post("/studies/signing-request")
async def signing_request(request: Request, viewer: CurrentViewer) -> JSONResponse:
    """What the browser signs: ``{"signed": <SignedSpec without signature>, "to_sign": <base64>}``."""
    viewer.require("requester")
    body = await request.json()
    try:
        attestation = OrganisationAttestation.model_validate(body.get("attestation"))
    except ValueError:
        raise InputError(
            "the attestation file is not an organisation attestation", field="attestation"
        ) from None
    spec = study_from_mapping(body.get("spec"), file="the study").model_dump(mode="json")
    if spec["organisation"] != attestation.organisation:
        raise InputError(
            f"the attestation is for {attestation.organisation!r}, the study for {spec['organisation']!r}",
            field="attestation",
        )
    unsigned = SignedSpec(
        spec=spec,
        spec_hash=canonical_hash(spec),
        signature="",
        attestation=attestation,
        signed_at=datetime.now(UTC).replace(microsecond=0),
    )
    to_sign = signed_content(SPEC_CONTEXT, unsigned.signed_body())
    # The browser must not re-serialise the study: JavaScript numbers lose a float's ".0" (3600.0 becomes
    # 3600), which changes the canonical JSON and so the hash and the signature. It puts the signature
    # in place of a random placeholder in this exact text instead.
    placeholder = f"phds-signature-{secrets.token_hex(16)}"
    signed_text = json.dumps(unsigned.model_copy(update={"signature": placeholder}).model_dump(mode="json"))
    return JSONResponse(
        {
            "signed": unsigned.model_dump(mode="json"),
            "signed_text": signed_text,
            "placeholder": placeholder,
            "to_sign": base64.b64encode(to_sign).decode(),
            "requester_key": attestation.requester_key,
        }
    )


@router.post("/studies/submit")
async def submit(
    request: Request,
    viewer: CurrentViewer,
    signed: Annotated[str, Form()] = "",
    spec: Annotated[str, Form()] = "",
) -> Response:
    """Submit the signed study (from ``sign.js``), or an unsigned one where the network allows it."""
    viewer.require("requester")
    if signed:
        try:
            data = json.loads(signed)
        except json.JSONDecodeError:
            raise InputError("the signed study is not JSON", field="signed") from None
        return await _submit_signed(viewer, data)
    if not spec:
        raise InputError("nothing to submit", field="spec")
    view = StudyView.model_validate(await viewer.api.post("/studies", json.loads(spec)))
    return RedirectResponse(f"/portal/studies/{view.id}", status_code=303)


async def _submit_signed(viewer: Viewer, data: Any) -> Response:
    view = StudyView.model_validate(await viewer.api.post("/studies/signed", data))
    return RedirectResponse(f"/portal/studies/{view.id}", status_code=303)
