"""Wire models of network trust: attestations, revocation lists, signed specs, release envelopes, audit heads.

They are pure data; signing and verifying them is :mod:`phds.trust`'s work (Ed25519, RFC 8032). Each
model's ``body()`` (or ``signed_body()``) is what its signer signs, under a context label.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator

from phds.protocol.canonical import canonical_hash
from phds.protocol.common import Slug, WireModel

Category = Literal["academic", "public", "non-profit", "sme", "industry"]
_ED25519_B64 = re.compile(r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")  # 32 bytes, unpadded base64url


class OrganisationAttestation(WireModel):
    """The operator's statement that a requester key belongs to an organisation of a category."""

    organisation: Slug
    category: Category
    requester_key: str = Field(description="The organisation's requester public key (raw, base64url)")
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    serial: int = Field(ge=1)
    trust_key_id: str
    signature: str

    @field_validator("requester_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        if not _ED25519_B64.fullmatch(value):
            raise ValueError("requester_key must be a 32-byte Ed25519 public key in unpadded URL-safe base64")
        return value

    def body(self) -> dict[str, Any]:
        """Every field but the signature, in JSON mode: what the trust key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


class RevocationList(WireModel):
    """Revoked attestation serials and retired trust keys, signed by a current trust key."""

    trust_key_id: str
    sequence: int = Field(ge=1)
    issued_at: AwareDatetime
    revoked_serials: list[int]
    revoked_keys: list[str] = Field(description="Trust key ids no longer trusted (retired at rotation)")
    signature: str

    def body(self) -> dict[str, Any]:
        """Every field but the signature, in JSON mode: what the trust key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


class SignedSpec(WireModel):
    """A study specification with its requester's signature and organisation attestation."""

    spec: dict[str, Any]
    spec_hash: str
    signature: str
    attestation: OrganisationAttestation
    signed_at: AwareDatetime

    def signed_body(self) -> dict[str, Any]:
        """What the requester key signs: the spec's hash, the signing time and the attestation's hash."""
        return {
            **self.model_dump(mode="json", include={"spec_hash", "signed_at"}),
            "attestation_hash": canonical_hash(self.attestation.model_dump(mode="json")),
        }


class ReleaseEnvelope(WireModel):
    """One release from one node, signed by that node's key."""

    study_id: str
    task_id: str
    hospital: str
    round: int = Field(ge=0)
    analysis: str
    analysis_version: str
    audit_seq: int = Field(ge=0)
    audit_hash: str
    state_hash: str = Field(description="canonical_hash of the round state the node received")
    payload_hash: str
    node_key_id: str
    signed_at: AwareDatetime
    signature: str
    payload: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """What the node key signs: every field but the signature and the payload (in ``payload_hash``)."""
        return self.model_dump(mode="json", exclude={"signature", "payload"})


class SignedAuditHead(WireModel):
    """A node's signed statement of its audit chain's newest entry."""

    hospital: str
    seq: int = Field(ge=0)
    hash: str
    signed_at: AwareDatetime
    node_key_id: str
    signature: str

    def body(self) -> dict[str, Any]:
        """Every field but the signature: what the node key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


__all__ = [
    "Category",
    "OrganisationAttestation",
    "ReleaseEnvelope",
    "RevocationList",
    "SignedAuditHead",
    "SignedSpec",
]
