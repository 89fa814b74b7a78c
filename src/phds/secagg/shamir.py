"""t-of-n Shamir secret sharing of 32-byte secrets (Shamir 1979; Bonawitz et al. 2017, §3 "Secret Sharing").

Built on pycryptodome's :class:`Crypto.Protocol.SecretSharing.Shamir`, which shares 16-byte secrets
over GF(2^128). A 32-byte secret is cut into two 16-byte halves, each shared independently (fresh random
polynomials) at the same indices 1..n; share *i* is the pair (i, half₁(i) ‖ half₂(i)), 32 bytes. Any t
shares give back the secret; t − 1 shares are independent of it (perfect secrecy of each half).

pycryptodome's ``ssss=True`` mode (compatibility with the ``ssss`` tool, which adds x^k to the
polynomial) is never used: both split and combine pass ``ssss=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir

from phds.errors import InputError, SecAggError

SECRET_BYTES = 32
HALF = 16
MAX_SHARES = 255
"""Most shares of one secret; far above any federation, and keeps combining (O(t²) in Python) cheap."""


@dataclass(frozen=True, slots=True)
class Share:
    """One share: its index (1..n, the x at which the polynomials were evaluated) and 32 bytes."""

    index: int
    data: bytes


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise InputError(f"the secret must be {SECRET_BYTES} bytes", field="secret")


def split(secret: bytes, threshold: int, n: int) -> list[Share]:
    """*n* shares of the 32-byte *secret*, any *threshold* of which reconstruct it (2 ≤ threshold ≤ n)."""
    _check_secret(secret)
    for name, value in (("threshold", threshold), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError("must be an integer", field=name)
    if not 2 <= threshold <= n:
        raise InputError(f"must be between 2 and n = {n}, not {threshold}", field="threshold")
    if n > MAX_SHARES:
        raise InputError(f"at most {MAX_SHARES} shares, not {n}", field="n")
    low = Shamir.split(threshold, n, secret[:HALF], ssss=False)
    high = Shamir.split(threshold, n, secret[HALF:], ssss=False)
    shares = [Share(i, a + b) for (i, a), (j, b) in zip(low, high, strict=True)]
    if [s.index for s in shares] != list(range(1, n + 1)) or [j for j, _ in high] != list(range(1, n + 1)):
        raise SecAggError("pycryptodome returned shares at unexpected indices")  # pragma: no cover
    return shares


def combine(shares: Sequence[Share]) -> bytes:
    """The secret behind *shares* (pass exactly the threshold's number, as pycryptodome asks).

    Fewer shares than the threshold return an unrelated 32-byte value: Shamir sharing cannot tell,
    so callers check the result where they can (a public key, a commitment).
    """
    if not shares:
        raise InputError("needs at least one share", field="shares")
    seen: set[int] = set()
    for share in shares:
        index, data = share.index, share.data
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_SHARES:
            raise InputError(f"share index must be 1..{MAX_SHARES}, not {index!r}", field="shares")
        if not isinstance(data, bytes) or len(data) != SECRET_BYTES:
            raise InputError(f"share {index} must be {SECRET_BYTES} bytes", field="shares")
        if index in seen:
            raise InputError(f"share {index} appears twice", field="shares")
        seen.add(index)
    low = Shamir.combine([(s.index, s.data[:HALF]) for s in shares], ssss=False)
    high = Shamir.combine([(s.index, s.data[HALF:]) for s in shares], ssss=False)
    return low + high


__all__ = ["SECRET_BYTES", "Share", "combine", "split"]
