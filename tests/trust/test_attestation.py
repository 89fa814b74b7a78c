"""Organisation attestations and revocation lists: the operator signs, nodes verify; forgeries fail."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from phds.errors import ConfigError, Conflict, InputError, SignatureInvalid
from phds.trust import KeyPair, NetworkTrust, OrganisationAttestation, RevocationList, TrustAnchors
from phds.trust.keys import signed_content


def _rt(att: OrganisationAttestation) -> OrganisationAttestation:
    """Through JSON and back, as the hub relays it."""
    return OrganisationAttestation.model_validate_json(att.model_dump_json())


def test_init_creates_a_private_key_and_state_and_refuses_a_second_init(tmp_path: Path) -> None:
    folder = tmp_path / "nt"
    trust = NetworkTrust.init(folder)
    assert stat.S_IMODE((folder / "trust.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "PRIVATE" not in (folder / "state.json").read_text()
    assert list(trust.public_keys()) == [trust.key_id]
    with pytest.raises(Conflict):
        NetworkTrust.init(folder)
    assert NetworkTrust.load(folder).key_id == trust.key_id


def test_load_refuses_a_missing_or_mismatched_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="network init"):
        NetworkTrust.load(tmp_path / "none")
    folder = tmp_path / "nt"
    NetworkTrust.init(folder)
    KeyPair.generate().save(folder / "trust.key", overwrite=True)
    with pytest.raises(ConfigError, match="holds key"):
        NetworkTrust.load(folder)


def test_attestation_round_trip(
    trust: NetworkTrust, anchors: TrustAnchors, attestation: OrganisationAttestation, requester: KeyPair
) -> None:
    assert attestation.serial == 1 and attestation.trust_key_id == trust.key_id
    assert attestation.requester_key == requester.public_key_b64
    assert attestation.expires_at - attestation.issued_at == timedelta(days=365)
    assert anchors.verify_attestation(_rt(attestation)) == attestation
    second = trust.sign_organisation("acme-pharma", "industry", KeyPair.generate().public_key_b64, 30)
    assert second.serial == 2
    assert NetworkTrust.load(trust.folder).sign_organisation("x", "sme", requester.public_key_b64).serial == 3


@pytest.mark.parametrize(
    ("org", "category", "key", "days", "field"),
    [
        ("UCL!", "academic", None, 365, "organisation"),
        ("ucl", "charity", None, 365, "category"),
        ("ucl", "academic", "not-a-key", 365, "requester_key"),
        ("ucl", "academic", None, 0, "valid_days"),
    ],
)
def test_sign_organisation_refuses_bad_input(
    trust: NetworkTrust, requester: KeyPair, org: str, category: str, key: str | None, days: int, field: str
) -> None:
    with pytest.raises(InputError, match=field):
        trust.sign_organisation(org, category, key or requester.public_key_b64, days)


@pytest.mark.parametrize(
    "change",
    [
        {"organisation": "acme-pharma"},
        {"category": "industry"},
        {"requester_key": KeyPair.generate().public_key_b64},
        {"serial": 99},
        {"expires_at": datetime(2099, 1, 1, tzinfo=UTC)},
    ],
)
def test_an_edited_attestation_is_refused(
    anchors: TrustAnchors, attestation: OrganisationAttestation, change: dict[str, object]
) -> None:
    """Stops a hub from changing an organisation's name, category, key, serial or validity."""
    forged = attestation.model_copy(update=change)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        anchors.verify_attestation(_rt(forged))


def test_an_attestation_by_an_unpinned_trust_key_is_refused(
    tmp_path: Path, anchors: TrustAnchors, requester: KeyPair
) -> None:
    """Stops a hub that runs its own 'trust key' from attesting an organisation."""
    rogue = NetworkTrust.init(tmp_path / "rogue")
    forged = rogue.sign_organisation("ucl", "academic", requester.public_key_b64)
    with pytest.raises(SignatureInvalid, match="unknown trust key"):
        anchors.verify_attestation(forged)


def test_an_attestation_claiming_a_pinned_key_id_but_signed_by_another_is_refused(
    trust: NetworkTrust, tmp_path: Path, anchors: TrustAnchors, requester: KeyPair
) -> None:
    """Stops a forger who copies the real trust key id into an attestation signed by its own key."""
    rogue = NetworkTrust.init(tmp_path / "rogue")
    att = rogue.sign_organisation("ucl", "academic", requester.public_key_b64)
    body = {**att.body(), "trust_key_id": trust.key_id}
    rogue_key = KeyPair.load(tmp_path / "rogue" / "trust.key")
    forged = OrganisationAttestation(
        **body, signature=rogue_key.sign(signed_content("phds.organisation-attestation.v1", body))
    )
    with pytest.raises(SignatureInvalid, match="does not verify"):
        anchors.verify_attestation(forged)


def test_an_expired_or_not_yet_valid_attestation_is_refused(
    anchors: TrustAnchors, attestation: OrganisationAttestation
) -> None:
    """Stops the use of an attestation outside its validity (an old one kept after it lapsed)."""
    with pytest.raises(SignatureInvalid, match="expired"):
        anchors.verify_attestation(attestation, now=attestation.expires_at)
    with pytest.raises(SignatureInvalid, match="not valid before"):
        anchors.verify_attestation(attestation, now=attestation.issued_at - timedelta(hours=1))
    anchors.verify_attestation(attestation, now=attestation.issued_at - timedelta(minutes=1))  # clock skew
    with pytest.raises(InputError, match="timezone"):
        anchors.verify_attestation(attestation, now=datetime(2030, 1, 1))


def test_a_revoked_serial_is_refused(
    trust: NetworkTrust, anchors: TrustAnchors, attestation: OrganisationAttestation
) -> None:
    """Stops a requester whose attestation the operator revoked."""
    rl = trust.revoke(attestation.serial)
    assert rl.revoked_serials == [attestation.serial]
    assert anchors.accept_revocations(RevocationList.model_validate_json(rl.model_dump_json()))
    with pytest.raises(SignatureInvalid, match="revoked"):
        anchors.verify_attestation(attestation)
    assert trust.revoke(attestation.serial) == rl  # idempotent
    with pytest.raises(InputError, match="serial"):
        trust.revoke(42)


def test_a_replayed_older_revocation_list_is_ignored(
    trust: NetworkTrust, anchors: TrustAnchors, attestation: OrganisationAttestation
) -> None:
    """Stops a hub that replays an older (genuine) revocation list to un-revoke a requester."""
    old = trust.revocation_list()
    new = trust.revoke(attestation.serial)
    assert new.sequence == old.sequence + 1
    assert anchors.accept_revocations(new)
    assert anchors.accept_revocations(old) is False
    assert anchors.accept_revocations(new) is False  # equal sequence: nothing new
    assert anchors.revocation_list == new
    with pytest.raises(SignatureInvalid, match="revoked"):
        anchors.verify_attestation(attestation)


def test_an_edited_revocation_list_is_refused(
    trust: NetworkTrust, anchors: TrustAnchors, attestation: OrganisationAttestation
) -> None:
    """Stops a hub from emptying a revocation list, or bumping its sequence to shadow the real one."""
    rl = trust.revoke(attestation.serial)
    for change in ({"revoked_serials": []}, {"sequence": rl.sequence + 100}):
        with pytest.raises(SignatureInvalid, match="does not verify"):
            anchors.accept_revocations(rl.model_copy(update=change))
    assert anchors.revocation_list is None


def test_a_revocation_list_from_an_unpinned_key_is_refused(tmp_path: Path, anchors: TrustAnchors) -> None:
    """Stops a hub from publishing its own revocation list (to retire the real trust key, say)."""
    rogue = NetworkTrust.init(tmp_path / "rogue")
    with pytest.raises(SignatureInvalid, match="unknown trust key"):
        anchors.accept_revocations(rogue.revocation_list())


def test_rotation_keeps_old_attestations_until_the_old_key_is_retired(
    trust: NetworkTrust, attestation: OrganisationAttestation, requester: KeyPair
) -> None:
    """Stops the use of a retired trust key's attestations (and of that key's revocation lists)."""
    old_id = trust.key_id
    old_lists = trust.revocation_list()
    new_id = trust.rotate()
    assert new_id != old_id and set(trust.public_keys()) == {old_id, new_id}
    anchors = TrustAnchors(trust.public_keys())
    assert anchors.accept_revocations(trust.revocation_list())
    assert trust.revocation_list().trust_key_id == new_id
    anchors.verify_attestation(attestation)  # the rotation window
    renewed = trust.sign_organisation("ucl", "academic", requester.public_key_b64)
    assert renewed.trust_key_id == new_id
    rl = trust.retire(old_id)
    assert rl.revoked_keys == [old_id] and old_id not in trust.public_keys()
    assert anchors.accept_revocations(rl)
    with pytest.raises(SignatureInvalid, match="retired trust key"):
        anchors.verify_attestation(attestation)
    anchors.verify_attestation(renewed)
    with pytest.raises(SignatureInvalid, match="retired trust key"):
        anchors.accept_revocations(old_lists)
    with pytest.raises(Conflict, match="current trust key"):
        trust.retire(new_id)
    assert (trust.folder / f"trust-{old_id}.key").exists()
    assert NetworkTrust.load(trust.folder).key_id == new_id


def test_rotate_retire_old_cuts_over_at_once(
    trust: NetworkTrust, attestation: OrganisationAttestation
) -> None:
    """Stops a compromised old trust key from signing anything nodes accept, from the rotation on."""
    pinned_before = trust.public_keys()
    old_id = trust.key_id
    trust.rotate(trust.folder, retire_old=True)
    anchors = TrustAnchors({**pinned_before, **trust.public_keys()})
    assert anchors.accept_revocations(trust.revocation_list())
    with pytest.raises(SignatureInvalid, match="retired"):
        anchors.verify_attestation(attestation)
    assert old_id not in trust.public_keys()


def test_a_revocation_list_retiring_its_own_signer_is_refused(trust: NetworkTrust) -> None:
    """Stops a list that would leave a node with no way to trust later lists from the same key."""
    anchors = TrustAnchors(trust.public_keys())
    body = {**trust.revocation_list().body(), "revoked_keys": [trust.key_id], "sequence": 9}
    key = KeyPair.load(trust.folder / "trust.key")
    rl = RevocationList(**body, signature=key.sign(signed_content("phds.revocation-list.v1", body)))
    with pytest.raises(SignatureInvalid, match="its own signing key"):
        anchors.accept_revocations(rl)


def test_trust_anchors_refuse_a_mislabelled_or_empty_pin(trust: NetworkTrust) -> None:
    """Stops a node configuration that pins a key under another key's id."""
    (key_id, b64) = next(iter(trust.public_keys().items()))
    with pytest.raises(InputError, match="the key's id is"):
        TrustAnchors({"0" * 16: b64})
    with pytest.raises(ConfigError):
        TrustAnchors({})
    assert key_id in json.loads((trust.folder / "state.json").read_text())["keys"]


def test_an_attestation_signature_cannot_pass_as_a_revocation_list(
    trust: NetworkTrust, anchors: TrustAnchors, attestation: OrganisationAttestation
) -> None:
    """Stops cross-use of trust-key signatures: each kind of statement signs its own context."""
    body = trust.revocation_list().body()
    rl = RevocationList(**{**body, "sequence": 50}, signature=attestation.signature)
    with pytest.raises(SignatureInvalid):
        anchors.accept_revocations(rl)
