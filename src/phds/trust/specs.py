"""Study specifications signed by their requester, and the node's check that a task is what was signed.

Protocol: the requester signs, with the Ed25519 key (RFC 8032) named in its organisation's
:class:`~phds.trust.attestation.OrganisationAttestation`, the :func:`~phds.trust.keys.signed_content` of
``{"spec_hash", "signed_at", "attestation_hash"}``. ``spec_hash`` is
:func:`phds.protocol.canonical.canonical_hash` (SHA-256, FIPS 180-4) of the spec as normalised by
:class:`phds.protocol.studies.StudySpec`, so signing a hash is as binding as signing the spec. Binding
``attestation_hash`` means a hub cannot swap in another attestation of the same key (another category,
say). The node then checks each task it receives against the signed spec (:func:`spec_matches_task`), so
a hub cannot change the analysis, its version or parameters, the hospitals or the service type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from phds.errors import InputError, SignatureInvalid
from phds.protocol.canonical import canonical_hash, canonical_json
from phds.protocol.studies import StudySpec
from phds.protocol.trust import SignedSpec
from phds.trust.attestation import CLOCK_SKEW, OrganisationAttestation, TrustAnchors
from phds.trust.keys import KeyPair, PublicKey, signed_content

log = logging.getLogger(__name__)

SPEC_CONTEXT = "phds.study-spec.v1"


@dataclass(frozen=True)
class VerifiedRequester:
    """Who signed a study specification, as established by :func:`verify_signed_spec`."""

    organisation: str
    category: str
    key_id: str
    serial: int
    spec_hash: str


def normalise_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as :class:`StudySpec` validates and dumps it (defaults filled); :class:`InputError` if bad."""
    try:
        return StudySpec.model_validate(spec).model_dump(mode="json")
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(err["msg"], field=".".join(str(p) for p in err["loc"]) or "spec") from None


def sign_spec(spec: dict[str, Any], key: KeyPair, attestation: OrganisationAttestation) -> SignedSpec:
    """Sign *spec* (normalised first) with the requester *key* that *attestation* names."""
    normal = normalise_spec(spec)
    if normal["organisation"] != attestation.organisation:
        raise InputError(
            f"the spec names {normal['organisation']!r} but the attestation is for "
            f"{attestation.organisation!r}",
            field="organisation",
        )
    if key.public_key_b64 != attestation.requester_key:
        raise InputError(
            f"key {key.key_id} is not the requester key of attestation {attestation.serial}", field="key"
        )
    unsigned = SignedSpec(
        spec=normal,
        spec_hash=canonical_hash(normal),
        signature="",
        attestation=attestation,
        signed_at=datetime.now(UTC).replace(microsecond=0),
    )
    signature = key.sign(signed_content(SPEC_CONTEXT, unsigned.signed_body()))
    log.info("signed study spec %s as %s", unsigned.spec_hash[:16], attestation.organisation)
    return unsigned.model_copy(update={"signature": signature})


def verify_signed_spec(
    signed: SignedSpec, anchors: TrustAnchors, now: datetime | None = None
) -> VerifiedRequester:
    """Check attestation, signature, hash and organisation; :class:`SignatureInvalid` names what failed."""
    att = anchors.verify_attestation(signed.attestation, now)
    moment = now if now is not None else datetime.now(UTC)
    if signed.signed_at > moment + CLOCK_SKEW:
        raise SignatureInvalid(f"study spec is signed in the future ({signed.signed_at.isoformat()})")
    requester = PublicKey.from_b64(att.requester_key)
    try:
        requester.verify(signed_content(SPEC_CONTEXT, signed.signed_body()), signed.signature)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"study spec signature: {exc.message}") from None
    try:
        actual = canonical_hash(signed.spec)
    except (TypeError, ValueError):
        raise SignatureInvalid("study spec is not plain JSON") from None
    if actual != signed.spec_hash:
        raise SignatureInvalid("study spec was altered after signing (its hash differs from spec_hash)")
    if signed.spec.get("organisation") != att.organisation:
        raise SignatureInvalid(
            f"study spec names organisation {signed.spec.get('organisation')!r}, but the attestation "
            f"is for {att.organisation!r}"
        )
    return VerifiedRequester(
        organisation=att.organisation,
        category=att.category,
        key_id=requester.key_id,
        serial=att.serial,
        spec_hash=signed.spec_hash,
    )


def spec_matches_task(
    signed: SignedSpec,
    *,
    hospital: str,
    analysis: str,
    analysis_version: str,
    params: dict[str, Any],
    service_type: str,
    default_version: str,
) -> None:
    """Refuse a task that is not what the spec signed; call after :func:`verify_signed_spec`.

    A spec without an analysis version matches the node's *default_version*; params compare as
    canonical JSON, so ``1`` and ``1.0`` differ.
    """
    spec = signed.spec
    signed_analysis = spec.get("analysis")
    if not isinstance(signed_analysis, dict):
        raise SignatureInvalid("signed study spec has no analysis")
    differences = []
    hospitals = spec.get("hospitals")
    if not isinstance(hospitals, list) or hospital not in hospitals:
        differences.append(f"hospital {hospital!r} is not among the signed hospitals {hospitals!r}")
    if signed_analysis.get("name") != analysis:
        differences.append(f"analysis {analysis!r} is not the signed {signed_analysis.get('name')!r}")
    signed_version = signed_analysis.get("version") or default_version
    if signed_version != analysis_version:
        differences.append(f"analysis version {analysis_version!r} is not the signed {signed_version!r}")
    try:
        same_params = canonical_json(params) == canonical_json(signed_analysis.get("params", {}))
    except (TypeError, ValueError):
        same_params = False
    if not same_params:
        differences.append("parameters differ from the signed parameters")
    if spec.get("service_type") != service_type:
        differences.append(f"service type {service_type!r} is not the signed {spec.get('service_type')!r}")
    if differences:
        raise SignatureInvalid("task does not match the signed study spec: " + "; ".join(differences))


__all__ = [
    "SPEC_CONTEXT",
    "SignedSpec",
    "VerifiedRequester",
    "normalise_spec",
    "sign_spec",
    "spec_matches_task",
    "verify_signed_spec",
]
