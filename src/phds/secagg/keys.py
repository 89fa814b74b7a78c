"""Ephemeral key agreement and share encryption (Bonawitz et al. 2017, §3 "Key Agreement" and
"Authenticated Encryption").

* Key agreement: X25519 (RFC 7748) with a fresh key pair per party, per purpose, per session; the shared
  secret goes through HKDF-SHA256 (RFC 5869, no salt, *info* naming the purpose and session) to a 32-byte
  key. X25519 is symmetric, so u and v derive the same key; the *info* must not depend on direction.
  Public keys travel as their raw 32 bytes in unpadded base64url, like :func:`phds.trust.keys.b64encode`.
* Authenticated encryption: AES-256-GCM (NIST SP 800-38D). Each sealed share is nonce ‖ ciphertext ‖
  tag with a random 12-byte nonce; a key encrypts two messages at most (u → v and v → u), so random
  nonces cannot collide in practice. The associated data binds session, sender, recipient and stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phds.errors import InputError, SignatureInvalid
from phds.trust.keys import b64decode, b64encode

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


@dataclass(frozen=True, repr=False)
class EphemeralKey:
    """An X25519 private key for one session; never printed."""

    private: X25519PrivateKey

    def __repr__(self) -> str:
        return f"EphemeralKey(public={self.public_b64!r})"

    @classmethod
    def generate(cls) -> EphemeralKey:
        """A fresh key from the operating system's random source."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> EphemeralKey:
        """The key whose raw 32-byte private scalar is *raw* (as stored, or as reconstructed)."""
        if len(raw) != KEY_BYTES:
            raise InputError(f"an X25519 private key is {KEY_BYTES} bytes", field="private_key")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    @property
    def raw(self) -> bytes:
        """The raw 32-byte private key (what is secret-shared and persisted between stages)."""
        return self.private.private_bytes_raw()

    @property
    def public_b64(self) -> str:
        """The raw public key in unpadded base64url."""
        return b64encode(self.private.public_key().public_bytes_raw())


def public_from_b64(text: str, *, what: str = "public key") -> X25519PublicKey:
    """Parse a raw X25519 public key in unpadded base64url; :class:`InputError` when malformed."""
    return X25519PublicKey.from_public_bytes(b64decode(text, length=KEY_BYTES, what=what))


def agree(own_private: EphemeralKey, peer_public: X25519PublicKey | str, info: bytes) -> bytes:
    """HKDF-SHA256(X25519(own, peer), info) → 32 bytes; the same for both ends of a pair."""
    peer = public_from_b64(peer_public) if isinstance(peer_public, str) else peer_public
    try:
        shared = own_private.private.exchange(peer)
    except ValueError:  # an all-zero result: a low-order peer point
        raise InputError("the peer's X25519 public key is degenerate", field="public key") from None
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def seal_share(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM encryption of *plaintext* under *key*: random nonce ‖ ciphertext ‖ tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_share(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Decrypt :func:`seal_share` output; :class:`SignatureInvalid` if it was altered, or if the key or
    associated data differ."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SignatureInvalid("encrypted share is too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise SignatureInvalid("encrypted share does not authenticate (altered, or not for us)") from None


__all__ = ["EphemeralKey", "agree", "open_share", "public_from_b64", "seal_share"]
