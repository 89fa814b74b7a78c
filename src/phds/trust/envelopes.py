"""Release envelopes and signed audit heads: what a node released, in words the hub cannot change.

Protocol: the node's Ed25519 key (RFC 8032, :mod:`phds.trust.keys`) signs the
:func:`~phds.trust.keys.signed_content` of every envelope field except ``signature`` and ``payload``;
the payload is bound through ``payload_hash``, and the round state the node computed on through
``state_hash`` (both :func:`phds.protocol.canonical.canonical_hash`, SHA-256 per FIPS 180-4). The
envelope also names the audit entry (``audit_seq``, ``audit_hash``) that recorded the release, so a
release can be matched to the node's hash-chained audit log. A :class:`SignedAuditHead` is the node's
signed statement of its audit chain's newest entry, which lets anyone holding it detect a truncated or
rewritten log later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from phds.errors import InputError, SignatureInvalid
from phds.protocol.billing import ParticipationStatement
from phds.protocol.canonical import canonical_hash
from phds.protocol.receipts import UsageReceipt
from phds.protocol.trust import ReleaseEnvelope, SignedAuditHead
from phds.trust.keys import KeyPair, PublicKey, signed_content

log = logging.getLogger(__name__)

ENVELOPE_CONTEXT = "phds.release-envelope.v1"
AUDIT_HEAD_CONTEXT = "phds.audit-head.v1"
RECEIPT_CONTEXT = "phds.usage-receipt.v1"
S = TypeVar("S", UsageReceipt, ParticipationStatement)
PARTICIPATION_CONTEXT = "phds.participation.v1"


def _hash(value: Any, what: str) -> str:
    try:
        return canonical_hash(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not plain JSON ({exc})", field=what) from None


def _now() -> datetime:
    return datetime.now(UTC)


def _verify(public_b64: str, key_id: str, data: bytes, signature: str, what: str) -> None:
    """Verify with the pinned node key, which must be the key the statement names."""
    try:
        node_key = PublicKey.from_b64(public_b64)
    except InputError:
        raise SignatureInvalid(f"{what}: the pinned node key is malformed") from None
    if node_key.key_id != key_id:
        raise SignatureInvalid(f"{what}: signed by key {key_id}, not the pinned node key {node_key.key_id}")
    try:
        node_key.verify(data, signature)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"{what}: {exc.message}") from None


def seal(
    payload: dict[str, Any],
    *,
    key: KeyPair,
    study_id: str,
    task_id: str,
    hospital: str,
    round: int,
    analysis: str,
    analysis_version: str,
    audit_seq: int,
    audit_hash: str,
    state: dict[str, Any],
) -> ReleaseEnvelope:
    """Put a released *payload* in an envelope signed by the node *key*."""
    unsigned = ReleaseEnvelope(
        study_id=study_id,
        task_id=task_id,
        hospital=hospital,
        round=round,
        analysis=analysis,
        analysis_version=analysis_version,
        audit_seq=audit_seq,
        audit_hash=audit_hash,
        state_hash=_hash(state, "state"),
        payload_hash=_hash(payload, "payload"),
        node_key_id=key.key_id,
        signed_at=_now(),
        signature="",
        payload=payload,
    )
    signature = key.sign(signed_content(ENVELOPE_CONTEXT, unsigned.body()))
    log.debug("sealed %s round %d of %s at audit seq %d", task_id, round, study_id, audit_seq)
    return unsigned.model_copy(update={"signature": signature})


def open_envelope(env: ReleaseEnvelope, pinned: Mapping[str, str]) -> dict[str, Any]:
    """The payload of *env*, once its hospital's pinned key (hospital → public key) verifies it."""
    what = f"release envelope {env.task_id} from {env.hospital}"
    public = pinned.get(env.hospital)
    if public is None:
        raise SignatureInvalid(f"{what}: no node key is pinned for hospital {env.hospital!r}")
    _verify(public, env.node_key_id, signed_content(ENVELOPE_CONTEXT, env.body()), env.signature, what)
    try:
        actual = canonical_hash(env.payload)
    except (TypeError, ValueError):
        raise SignatureInvalid(f"{what}: payload is not plain JSON") from None
    if actual != env.payload_hash:
        raise SignatureInvalid(f"{what}: payload was altered after signing")
    return env.payload


def sign_audit_head(*, key: KeyPair, hospital: str, seq: int, hash: str) -> SignedAuditHead:
    """Sign the audit chain's head (*seq*, *hash*) with the node *key*."""
    unsigned = SignedAuditHead(
        hospital=hospital, seq=seq, hash=hash, signed_at=_now(), node_key_id=key.key_id, signature=""
    )
    signature = key.sign(signed_content(AUDIT_HEAD_CONTEXT, unsigned.body()))
    return unsigned.model_copy(update={"signature": signature})


def verify_audit_head(head: SignedAuditHead, public_key_b64: str) -> None:
    """Check that the node key *public_key_b64* signed *head*; :class:`SignatureInvalid` otherwise."""
    what = f"audit head {head.seq} of {head.hospital}"
    _verify(
        public_key_b64,
        head.node_key_id,
        signed_content(AUDIT_HEAD_CONTEXT, head.body()),
        head.signature,
        what,
    )


def _sign_statement(statement: S, key: KeyPair, context: str) -> S:
    """*statement* (a model with ``node_key_id``, ``signature`` and ``body()``) signed by the node *key*."""
    unsigned = statement.model_copy(update={"node_key_id": key.key_id, "signature": ""})
    signature = key.sign(signed_content(context, unsigned.body()))
    return unsigned.model_copy(update={"signature": signature})


def sign_receipt(receipt: UsageReceipt, key: KeyPair) -> UsageReceipt:
    """*receipt* signed by the node *key* (its ``node_key_id`` is set to the key's)."""
    return _sign_statement(receipt, key, RECEIPT_CONTEXT)


def verify_receipt(receipt: UsageReceipt, public_key_b64: str) -> None:
    """Check that the node key *public_key_b64* signed *receipt*; :class:`SignatureInvalid` otherwise."""
    what = f"usage receipt {receipt.receipt_id} from {receipt.hospital}"
    _verify(
        public_key_b64, receipt.node_key_id, signed_content(RECEIPT_CONTEXT, receipt.body()),
        receipt.signature, what,
    )  # fmt: skip


def sign_participation(statement: ParticipationStatement, key: KeyPair) -> ParticipationStatement:
    """A steward's participation *statement* signed by the node *key*."""
    return _sign_statement(statement, key, PARTICIPATION_CONTEXT)


def verify_participation(statement: ParticipationStatement, public_key_b64: str) -> None:
    """Check that the node key *public_key_b64* signed *statement*; :class:`SignatureInvalid` otherwise."""
    what = f"participation of {statement.hospital} in {statement.application_id}"
    _verify(
        public_key_b64, statement.node_key_id, signed_content(PARTICIPATION_CONTEXT, statement.body()),
        statement.signature, what,
    )  # fmt: skip


__all__ = [
    "AUDIT_HEAD_CONTEXT",
    "ENVELOPE_CONTEXT",
    "PARTICIPATION_CONTEXT",
    "RECEIPT_CONTEXT",
    "ReleaseEnvelope",
    "SignedAuditHead",
    "open_envelope",
    "seal",
    "sign_audit_head",
    "sign_participation",
    "sign_receipt",
    "verify_audit_head",
    "verify_participation",
    "verify_receipt",
]
