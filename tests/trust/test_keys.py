"""Ed25519 key pairs: encodings, signatures, key files (0600, never overwritten by accident)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from phds.errors import ConfigError, Conflict, InputError, SignatureInvalid
from phds.trust import KeyPair, PublicKey, load_or_create
from phds.trust.keys import b64decode


def test_sign_and_verify_round_trip() -> None:
    key = KeyPair.generate()
    public = PublicKey.from_b64(key.public_key_b64)
    assert len(key.public_key_b64) == 43 and "=" not in key.public_key_b64
    assert public.key_id == key.key_id and len(key.key_id) == 16
    public.verify(b"hello", key.sign(b"hello"))
    assert "KeyPair(key_id=" in repr(key)


def test_a_signature_over_other_bytes_is_refused() -> None:
    """Stops reusing a genuine signature for a different message."""
    key = KeyPair.generate()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        key.public_key.verify(b"hellO", key.sign(b"hello"))


def test_another_keys_signature_is_refused() -> None:
    """Stops a signature by any key other than the expected one."""
    with pytest.raises(SignatureInvalid):
        KeyPair.generate().public_key.verify(b"x", KeyPair.generate().sign(b"x"))


@pytest.mark.parametrize("signature", ["", "not base64!", "AAAA", "A" * 86 + "=="])
def test_malformed_signatures_are_invalid_not_crashes(signature: str) -> None:
    """Stops a garbage signature from raising anything but SignatureInvalid."""
    with pytest.raises(SignatureInvalid, match="malformed"):
        KeyPair.generate().public_key.verify(b"x", signature)


@pytest.mark.parametrize("text", ["", "abc", "A" * 44, "+" * 43, "A" * 42 + "B"])
def test_malformed_public_keys_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="public key"):
        PublicKey.from_b64(text)


def test_base64_has_one_spelling() -> None:
    """Stops two encodings of one key (non-zero padding bits) from giving two identities."""
    good = KeyPair.generate().public_key_b64
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = good[:-1] + last[last.index(good[-1]) ^ 1]  # the same 32 bytes, other padding bits
    with pytest.raises(InputError):
        b64decode(twin, length=32, what="public key")


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key = KeyPair.generate()
    path = key.save(tmp_path / "sub" / "node.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyPair.load(path).key_id == key.key_id
    with pytest.raises(Conflict, match="refusing to overwrite"):
        KeyPair.generate().save(path)
    assert KeyPair.load(path).key_id == key.key_id
    other = KeyPair.generate()
    other.save(path, overwrite=True)
    assert KeyPair.load(path).key_id == other.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(ConfigError, match=r"missing\.key"):
        KeyPair.load(missing)
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(ConfigError, match=r"junk\.key"):
        KeyPair.load(junk)
    shared = KeyPair.generate().save(tmp_path / "shared.key")
    shared.chmod(0o644)
    with pytest.raises(ConfigError, match=r"shared\.key is readable by others"):
        KeyPair.load(shared)


def test_load_refuses_a_non_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.key"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        KeyPair.load(path)


def test_load_or_create_creates_once_then_reuses(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node.key"
    first = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path).key_id == first.key_id
