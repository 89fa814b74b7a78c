"""Cryptographic trust of the network: who a requester is, what they asked for, what a node released.

Ed25519 signatures (RFC 8032) over canonical JSON (:mod:`phds.protocol.canonical`). The operator's
offline trust key attests requester organisations (:mod:`.attestation`); requesters sign study specs
(:mod:`.specs`); nodes seal every release and sign their audit head (:mod:`.envelopes`). The hub only
relays these statements, so a compromised hub cannot forge any of them (DESIGN.md, invariant 7).
"""

from __future__ import annotations

from phds.trust.attestation import NetworkTrust, OrganisationAttestation, RevocationList, TrustAnchors
from phds.trust.envelopes import (
    ReleaseEnvelope,
    SignedAuditHead,
    open_envelope,
    seal,
    sign_audit_head,
    verify_audit_head,
)
from phds.trust.keys import KeyPair, PublicKey, load_or_create
from phds.trust.specs import SignedSpec, VerifiedRequester, sign_spec, spec_matches_task, verify_signed_spec

__all__ = [
    "KeyPair",
    "NetworkTrust",
    "OrganisationAttestation",
    "PublicKey",
    "ReleaseEnvelope",
    "RevocationList",
    "SignedAuditHead",
    "SignedSpec",
    "TrustAnchors",
    "VerifiedRequester",
    "load_or_create",
    "open_envelope",
    "seal",
    "sign_audit_head",
    "sign_spec",
    "spec_matches_task",
    "verify_audit_head",
    "verify_signed_spec",
]
