"""Signed study specifications: the requester signs, the node verifies and matches each task to it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from phds.errors import InputError, SignatureInvalid
from phds.trust import (
    KeyPair,
    NetworkTrust,
    OrganisationAttestation,
    SignedSpec,
    TrustAnchors,
    sign_spec,
    spec_matches_task,
    verify_signed_spec,
)
from phds.trust.keys import signed_content


def _rt(signed: SignedSpec) -> SignedSpec:
    return SignedSpec.model_validate_json(signed.model_dump_json())


@pytest.fixture
def signed(spec: dict[str, Any], requester: KeyPair, attestation: OrganisationAttestation) -> SignedSpec:
    return sign_spec(spec, requester, attestation)


def _task(**change: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "hospital": "gosh",
        "analysis": "mean_variance",
        "analysis_version": "1.0",
        "params": {"bins": [0, 1.5], "column": "age"},
        "service_type": "analytical_study",
        "default_version": "1.0",
    }
    return {**task, **change}


def test_round_trip(signed: SignedSpec, anchors: TrustAnchors, requester: KeyPair) -> None:
    who = verify_signed_spec(_rt(signed), anchors)
    assert (who.organisation, who.category, who.key_id, who.serial) == (
        "ucl",
        "academic",
        requester.key_id,
        1,
    )
    assert who.spec_hash == signed.spec_hash
    spec_matches_task(_rt(signed), **_task())


def test_sign_spec_normalises_and_refuses_bad_specs(
    spec: dict[str, Any], requester: KeyPair, attestation: OrganisationAttestation
) -> None:
    signed = sign_spec({k: v for k, v in spec.items() if k != "deadline_seconds"}, requester, attestation)
    assert signed.spec["deadline_seconds"] == 3600.0
    with pytest.raises(InputError, match="organisation"):
        sign_spec({**spec, "organisation": "acme-pharma"}, requester, attestation)
    with pytest.raises(InputError, match="key"):
        sign_spec(spec, KeyPair.generate(), attestation)
    with pytest.raises(InputError, match="service_type"):
        sign_spec({**spec, "service_type": "free-lunch"}, requester, attestation)


@pytest.mark.parametrize(
    "change",
    [
        {"hospitals": ["gosh", "bambino-gesu", "charite"]},
        {"analysis": {"name": "glm", "version": None, "params": {}}},
        {"purpose": "Something else entirely"},
    ],
)
def test_an_edited_spec_is_refused(signed: SignedSpec, anchors: TrustAnchors, change: dict[str, Any]) -> None:
    """Stops a hub from changing what the requester asked for (hospitals, analysis, purpose)."""
    forged = signed.model_copy(update={"spec": {**signed.spec, **change}})
    with pytest.raises(SignatureInvalid, match="altered"):
        verify_signed_spec(_rt(forged), anchors)


def test_an_edited_spec_with_a_recomputed_hash_is_refused(signed: SignedSpec, anchors: TrustAnchors) -> None:
    """Stops a hub that edits the spec and recomputes spec_hash: the signature covers the hash."""
    from phds.protocol.canonical import canonical_hash

    spec = {**signed.spec, "hospitals": ["gosh"]}
    forged = signed.model_copy(update={"spec": spec, "spec_hash": canonical_hash(spec)})
    with pytest.raises(SignatureInvalid, match="signature"):
        verify_signed_spec(_rt(forged), anchors)


def test_a_spec_signed_by_a_key_outside_the_attestation_is_refused(
    spec: dict[str, Any], signed: SignedSpec, anchors: TrustAnchors
) -> None:
    """Stops a hub (or anyone) signing a spec in an attested organisation's name with its own key."""
    rogue = KeyPair.generate()
    forged = signed.model_copy(
        update={"signature": rogue.sign(signed_content("phds.study-spec.v1", signed.signed_body()))}
    )
    with pytest.raises(SignatureInvalid, match="signature"):
        verify_signed_spec(_rt(forged), anchors)


def test_a_swapped_attestation_is_refused(
    trust: NetworkTrust, signed: SignedSpec, anchors: TrustAnchors, requester: KeyPair
) -> None:
    """Stops a hub swapping in another attestation, even a genuine one for the same key (other category)."""
    other = trust.sign_organisation("ucl", "industry", requester.public_key_b64)
    forged = signed.model_copy(update={"attestation": other})
    with pytest.raises(SignatureInvalid, match="signature"):
        verify_signed_spec(_rt(forged), anchors)


def test_a_spec_for_another_organisation_than_its_attestation_is_refused(
    trust: NetworkTrust, spec: dict[str, Any], anchors: TrustAnchors
) -> None:
    """Stops an attested requester from submitting in another organisation's name."""
    key = KeyPair.generate()
    att = trust.sign_organisation("acme-pharma", "industry", key.public_key_b64)
    honest = sign_spec({**spec, "organisation": "acme-pharma"}, key, att)
    from phds.protocol.canonical import canonical_hash

    lying = {**honest.spec, "organisation": "ucl"}
    body = {**honest.signed_body(), "spec_hash": canonical_hash(lying)}
    forged = honest.model_copy(
        update={
            "spec": lying,
            "spec_hash": body["spec_hash"],
            "signature": key.sign(signed_content("phds.study-spec.v1", body)),
        }
    )
    with pytest.raises(SignatureInvalid, match="names organisation 'ucl'"):
        verify_signed_spec(_rt(forged), anchors)


def test_a_revoked_or_expired_attestation_fails_the_spec(
    trust: NetworkTrust, signed: SignedSpec, anchors: TrustAnchors
) -> None:
    """Stops a requester whose attestation lapsed or was revoked from starting studies."""
    with pytest.raises(SignatureInvalid, match="expired"):
        verify_signed_spec(signed, anchors, now=signed.attestation.expires_at + timedelta(days=1))
    anchors.accept_revocations(trust.revoke(signed.attestation.serial))
    with pytest.raises(SignatureInvalid, match="revoked"):
        verify_signed_spec(signed, anchors)


def test_a_spec_under_a_rogue_trust_key_is_refused(
    tmp_path: Path, spec: dict[str, Any], anchors: TrustAnchors
) -> None:
    """Stops a hub minting its own requester identities."""
    rogue = NetworkTrust.init(tmp_path / "rogue")
    key = KeyPair.generate()
    signed = sign_spec(spec, key, rogue.sign_organisation("ucl", "academic", key.public_key_b64))
    with pytest.raises(SignatureInvalid, match="unknown trust key"):
        verify_signed_spec(signed, anchors)


def test_a_post_dated_spec_is_refused(signed: SignedSpec, anchors: TrustAnchors, requester: KeyPair) -> None:
    """Stops a post-dated spec, signed now but dated to look fresh later (or made with a wrong clock)."""
    later = signed.model_copy(update={"signed_at": signed.signed_at + timedelta(days=2)})
    dated = later.model_copy(
        update={"signature": requester.sign(signed_content("phds.study-spec.v1", later.signed_body()))}
    )
    with pytest.raises(SignatureInvalid, match="future"):
        verify_signed_spec(_rt(dated), anchors)
    verify_signed_spec(_rt(dated), anchors, now=signed.signed_at + timedelta(days=2))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"hospital": "charite"}, "hospital 'charite'"),
        ({"analysis": "glm"}, "analysis 'glm'"),
        ({"analysis_version": "2.0"}, "analysis version '2.0'"),
        ({"params": {"bins": [0, 1.5], "column": "weight"}}, "parameters"),
        ({"params": {"bins": [0, 1.5], "column": "age", "extra": 1}}, "parameters"),
        ({"service_type": "research"}, "service type 'research'"),
    ],
)
def test_a_task_other_than_the_signed_spec_is_refused(
    signed: SignedSpec, change: dict[str, Any], named: str
) -> None:
    """Stops a hub sending a node a task (hospital, analysis, version, params, service) nobody signed."""
    with pytest.raises(SignatureInvalid, match="does not match the signed study spec") as info:
        spec_matches_task(signed, **_task(**change))
    assert named in info.value.message


def test_a_signed_version_must_match_exactly_and_none_means_the_node_default(
    spec: dict[str, Any], requester: KeyPair, attestation: OrganisationAttestation
) -> None:
    """Stops a hub running another version than the requester pinned."""
    pinned = sign_spec({**spec, "analysis": {**spec["analysis"], "version": "1.1"}}, requester, attestation)
    spec_matches_task(pinned, **_task(analysis_version="1.1"))
    with pytest.raises(SignatureInvalid, match="version"):
        spec_matches_task(pinned, **_task(analysis_version="1.0"))
    unpinned = sign_spec(spec, requester, attestation)
    with pytest.raises(SignatureInvalid, match="version"):
        spec_matches_task(unpinned, **_task(analysis_version="1.1"))  # default_version is 1.0
