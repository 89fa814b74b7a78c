"""Ed25519 key pairs and public keys: the one place PHDS touches signature primitives.

Protocol: Ed25519 (RFC 8032, section 5.1) through ``cryptography``. Public keys travel as their raw 32
bytes and signatures as their raw 64 bytes (RFC 8032 §5.1.2, §5.1.6), both in URL-safe base64 without
padding (RFC 4648 §5). A key id is the first 16 hex digits of SHA-256 over the raw public key. Private
keys are stored as unencrypted PKCS #8 PEM (RFC 5208, RFC 8410 §7) with file mode 0600.

Every signed message is :func:`signed_content`: the canonical JSON (:mod:`phds.protocol.canonical`) of
``{"context": ..., "body": ...}``. The context names the kind of statement, so a signature made for one
kind (say an audit head) can never be presented as another (say a release envelope).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from phds.errors import ConfigError, Conflict, InputError, SignatureInvalid
from phds.protocol.canonical import canonical_bytes

log = logging.getLogger(__name__)

PUBLIC_KEY_BYTES = 32  # RFC 8032 §5.1.5
SIGNATURE_BYTES = 64  # RFC 8032 §5.1.6


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str, *, length: int, what: str) -> bytes:
    """Strictly decode :func:`b64encode` output of exactly *length* bytes; one spelling per value."""
    if not isinstance(text, str) or not text.isascii():
        raise InputError(f"{what} is not URL-safe base64", field=what)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what} is not URL-safe base64", field=what) from None
    if len(raw) != length or b64encode(raw) != text:
        raise InputError(f"{what} must be {length} bytes in unpadded URL-safe base64", field=what)
    return raw


def key_id_of(raw_public_key: bytes) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def signed_content(context: str, body: Any) -> bytes:
    """The exact bytes signed for a statement of kind *context* (canonical JSON, see module docstring)."""
    try:
        return canonical_bytes({"context": context, "body": body})
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot sign {context}: not plain JSON ({exc})") from None


def write_private_file(path: Path, data: bytes, *, overwrite: bool, what: str, refusal: str) -> None:
    """Write *data* to *path* readable by its owner only (0600, in a 0700 folder); an existing file is a
    :class:`~phds.errors.Conflict` (ending in *refusal*) unless *overwrite*."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already holds a {what}; {refusal}") from None
    except OSError as exc:
        raise ConfigError(f"cannot write the {what} file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key, as pinned by nodes and requesters."""

    b64: str
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = b64decode(self.b64, length=PUBLIC_KEY_BYTES, what="public key")
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        """Parse a raw public key in unpadded URL-safe base64; :class:`InputError` when malformed."""
        return cls(text.strip() if isinstance(text, str) else text)

    @property
    def key_id(self) -> str:
        return key_id_of(self._key.public_bytes_raw())

    def verify(self, data: bytes, signature_b64: str) -> None:
        """Check an Ed25519 signature over *data*; :class:`SignatureInvalid` when it does not verify."""
        try:
            signature = b64decode(signature_b64, length=SIGNATURE_BYTES, what="signature")
        except InputError:
            raise SignatureInvalid(f"malformed signature (key {self.key_id})") from None
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise SignatureInvalid(f"signature does not verify with key {self.key_id}") from None


class KeyPair:
    """An Ed25519 private key with its public half. Never printed."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key = PublicKey(b64encode(private_key.public_key().public_bytes_raw()))

    def __repr__(self) -> str:
        return f"KeyPair(key_id={self.key_id!r})"

    __str__ = __repr__

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the operating system's random source."""
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key_b64(self) -> str:
        return self.public_key.b64

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, data: bytes) -> str:
        """Ed25519 signature over *data*, in unpadded URL-safe base64."""
        return b64encode(self._private.sign(data))

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the private key as PKCS #8 PEM with mode 0600; refuse an existing file unless *overwrite*."""
        path = Path(path)
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private_file(path, pem, overwrite=overwrite, what="key", refusal="refusing to overwrite it")
        log.info("key %s written to %s", self.key_id, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> KeyPair:
        """Read a key written by :meth:`save`; it must be private to its owner and an Ed25519 key."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such key file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: not an Ed25519 key ({type(key).__name__})")
        return cls(key)


def load_or_create(path: str | Path) -> KeyPair:
    """The key pair at *path*, created (mode 0600) the first time; a node's identity at enrolment."""
    path = Path(path)
    if path.exists():
        return KeyPair.load(path)
    key = KeyPair.generate()
    try:
        key.save(path)
    except Conflict:  # created meanwhile by a concurrent enrolment: use that one
        return KeyPair.load(path)
    log.info("created key %s at %s", key.key_id, path)
    return key


__all__ = [
    "KeyPair",
    "PublicKey",
    "b64decode",
    "b64encode",
    "key_id_of",
    "load_or_create",
    "signed_content",
]
