"""Release envelopes and signed audit heads: a node's releases cannot be altered or forged in transit."""

from __future__ import annotations

from typing import Any

import pytest

from phds.errors import InputError, SignatureInvalid
from phds.protocol.canonical import canonical_hash
from phds.trust import (
    KeyPair,
    ReleaseEnvelope,
    SignedAuditHead,
    open_envelope,
    seal,
    sign_audit_head,
    verify_audit_head,
)

PAYLOAD: dict[str, Any] = {"n": 42, "mean": 7.25, "suppressed": ["<5"], "levels": {"female": 20}}
STATE: dict[str, Any] = {"beta": [0.1, -0.2], "iteration": 2}


@pytest.fixture
def envelope(node_key: KeyPair) -> ReleaseEnvelope:
    return seal(
        PAYLOAD,
        key=node_key,
        study_id="st-1",
        task_id="tk-1",
        hospital="gosh",
        round=2,
        analysis="glm",
        analysis_version="1.0",
        audit_seq=17,
        audit_hash="ab" * 32,
        state=STATE,
    )


def _rt(env: ReleaseEnvelope) -> ReleaseEnvelope:
    return ReleaseEnvelope.model_validate_json(env.model_dump_json())


def test_round_trip(envelope: ReleaseEnvelope, node_key: KeyPair) -> None:
    assert open_envelope(_rt(envelope), {"gosh": node_key.public_key_b64}) == PAYLOAD
    assert envelope.state_hash == canonical_hash(STATE)
    assert envelope.payload_hash == canonical_hash(PAYLOAD)
    assert envelope.node_key_id == node_key.key_id


def test_seal_refuses_a_payload_that_is_not_plain_json(node_key: KeyPair) -> None:
    with pytest.raises(InputError, match="payload"):
        seal(
            {"n": float("nan")}, key=node_key, study_id="s", task_id="t", hospital="gosh", round=0,
            analysis="a", analysis_version="1", audit_seq=0, audit_hash="", state={},
        )  # fmt: skip


def test_an_edited_payload_is_refused(envelope: ReleaseEnvelope, node_key: KeyPair) -> None:
    """Stops a hub changing a released value (a count, a suppressed cell) on its way to the requester."""
    forged = envelope.model_copy(update={"payload": {**PAYLOAD, "n": 43}})
    with pytest.raises(SignatureInvalid, match="payload was altered"):
        open_envelope(_rt(forged), {"gosh": node_key.public_key_b64})


def test_an_edited_payload_with_a_recomputed_hash_is_refused(
    envelope: ReleaseEnvelope, node_key: KeyPair
) -> None:
    """Stops a hub that edits the payload and its hash: the signature covers payload_hash."""
    payload = {**PAYLOAD, "n": 43}
    forged = envelope.model_copy(update={"payload": payload, "payload_hash": canonical_hash(payload)})
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_envelope(_rt(forged), {"gosh": node_key.public_key_b64})


@pytest.mark.parametrize(
    "change",
    [
        {"study_id": "st-2"},
        {"task_id": "tk-9"},
        {"round": 3},
        {"analysis_version": "0.9"},
        {"audit_seq": 16},
        {"state_hash": canonical_hash({"beta": [9, 9]})},
    ],
)
def test_edited_envelope_fields_are_refused(
    envelope: ReleaseEnvelope, node_key: KeyPair, change: dict[str, Any]
) -> None:
    """Stops a hub moving a release to another study, task, round, version, audit entry or state."""
    forged = envelope.model_copy(update=change)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_envelope(_rt(forged), {"gosh": node_key.public_key_b64})


def test_an_envelope_claiming_another_hospital_is_refused(
    envelope: ReleaseEnvelope, node_key: KeyPair
) -> None:
    """Stops a hub relabelling one hospital's release as another's."""
    pinned = {"gosh": node_key.public_key_b64, "bambino-gesu": KeyPair.generate().public_key_b64}
    forged = envelope.model_copy(update={"hospital": "bambino-gesu"})
    with pytest.raises(SignatureInvalid, match="pinned node key"):
        open_envelope(_rt(forged), pinned)


def test_an_envelope_signed_by_another_nodes_key_is_refused(node_key: KeyPair) -> None:
    """Stops a hub (or another node) signing a release in a hospital's name with a key not pinned for it."""
    other = KeyPair.generate()
    forged = seal(
        PAYLOAD, key=other, study_id="s", task_id="t", hospital="gosh", round=0, analysis="a",
        analysis_version="1", audit_seq=0, audit_hash="", state={},
    )  # fmt: skip
    with pytest.raises(SignatureInvalid, match="pinned node key"):
        open_envelope(forged, {"gosh": node_key.public_key_b64})
    relabelled = forged.model_copy(update={"node_key_id": node_key.key_id})
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_envelope(relabelled, {"gosh": node_key.public_key_b64})


def test_an_envelope_from_an_unpinned_hospital_is_refused(envelope: ReleaseEnvelope) -> None:
    """Stops a hub inventing a hospital that no requester has pinned."""
    with pytest.raises(SignatureInvalid, match="no node key is pinned"):
        open_envelope(envelope, {"charite": KeyPair.generate().public_key_b64})


def test_audit_head_round_trip_and_forgeries(node_key: KeyPair) -> None:
    """Stops a forged audit head: edited seq or hash, another key, or an envelope's signature reused."""
    head = sign_audit_head(key=node_key, hospital="gosh", seq=17, hash="cd" * 32)
    verify_audit_head(SignedAuditHead.model_validate_json(head.model_dump_json()), node_key.public_key_b64)
    for change in ({"seq": 16}, {"hash": "00" * 32}, {"hospital": "bambino-gesu"}):
        with pytest.raises(SignatureInvalid, match="does not verify"):
            verify_audit_head(head.model_copy(update=change), node_key.public_key_b64)
    other = KeyPair.generate()
    with pytest.raises(SignatureInvalid, match="pinned node key"):
        verify_audit_head(
            sign_audit_head(key=other, hospital="gosh", seq=17, hash="cd" * 32), node_key.public_key_b64
        )
    with pytest.raises(SignatureInvalid, match="malformed"):
        verify_audit_head(head, "junk")


def test_signatures_do_not_cross_statement_kinds(envelope: ReleaseEnvelope, node_key: KeyPair) -> None:
    """Stops presenting a node's signature on one statement (an audit head) as another (an envelope)."""
    from phds.trust.keys import signed_content

    head = sign_audit_head(key=node_key, hospital="gosh", seq=1, hash="x")
    body = head.body()
    node_key.public_key.verify(signed_content("phds.audit-head.v1", body), head.signature)
    with pytest.raises(SignatureInvalid):
        node_key.public_key.verify(signed_content("phds.release-envelope.v1", body), head.signature)
