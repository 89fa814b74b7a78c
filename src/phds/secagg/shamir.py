"""t-of-n Shamir secret sharing of 32-byte secrets (Shamir 1979; Bonawitz et al. 2017, §3 "Secret Sharing").

Shares live in the prime field GF(p), p = 2²⁵⁶ + 297, the smallest prime above 2²⁵⁶ (checked by
Miller–Rabin in the tests): a 32-byte secret is one field element, the polynomial
f(x) = s + a₁x + … + a_{t−1}x^{t−1} has uniformly random coefficients (``secrets``), and share *i* is
(i, f(i)) written in 32 bytes. Any t shares give back f(0) = s by Lagrange interpolation; t − 1 are
independent of s (Shamir's perfect secrecy). A share value can exceed 2²⁵⁶ − 1 with probability
297/p ≈ 2⁻²⁴⁸; the polynomial is then drawn again, which changes the shares' distribution by at most
n·2⁻²⁴⁸ in statistical distance.

Why not pycryptodome's ``Crypto.Protocol.SecretSharing.Shamir``, which the issue prefers: it shares
16-byte secrets over GF(2¹²⁸) in pure Python, so a 32-byte secret takes two sharings, and one combine
of 6 shares took 4 ms here. At 10 hospitals the hub combines 20 of them per round, 81 of the 142 ms its
aggregate took (``benchmarks/bench_secagg_core.py``). Integer arithmetic modulo p does the same in
about 0.1 ms: Python's integers are native big integers, and modular inverses are built in.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from phds.errors import InputError

SECRET_BYTES = 32
PRIME = 2**256 + 297
MAX_SHARES = 255
"""Most shares of one secret; far above any federation, and keeps combining (O(t²)) cheap."""
_LIMIT = 1 << (8 * SECRET_BYTES)


@dataclass(frozen=True, slots=True)
class Share:
    """One share: its index (1..n, the x at which the polynomial was evaluated) and 32 bytes."""

    index: int
    data: bytes


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise InputError(f"the secret must be {SECRET_BYTES} bytes", field="secret")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    value = 0
    for c in reversed(coefficients):  # Horner
        value = (value * x + c) % PRIME
    return value


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
    s = int.from_bytes(secret, "big")
    while True:
        coefficients = [s, *(secrets.randbelow(PRIME) for _ in range(threshold - 1))]
        values = [_evaluate(coefficients, x) for x in range(1, n + 1)]
        if all(v < _LIMIT for v in values):  # else draw again (module docstring)
            return [Share(x, v.to_bytes(SECRET_BYTES, "big")) for x, v in enumerate(values, start=1)]


def combine(shares: Sequence[Share]) -> bytes:
    """The secret behind *shares* (pass the threshold's number; more also work).

    Fewer shares than the threshold give an unrelated value: Shamir sharing cannot tell, so callers
    check the result where they can (a public key, a commitment). A value that is no 32-byte secret is
    an error.
    """
    if not shares:
        raise InputError("needs at least one share", field="shares")
    seen: set[int] = set()
    points: list[tuple[int, int]] = []
    for share in shares:
        index, data = share.index, share.data
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_SHARES:
            raise InputError(f"share index must be 1..{MAX_SHARES}, not {index!r}", field="shares")
        if not isinstance(data, bytes) or len(data) != SECRET_BYTES:
            raise InputError(f"share {index} must be {SECRET_BYTES} bytes", field="shares")
        if index in seen:
            raise InputError(f"share {index} appears twice", field="shares")
        seen.add(index)
        points.append((index, int.from_bytes(data, "big")))
    secret = 0
    for j, (xj, yj) in enumerate(points):  # Lagrange interpolation at x = 0
        numerator = denominator = 1
        for m, (xm, _) in enumerate(points):
            if m != j:
                numerator = numerator * xm % PRIME
                denominator = denominator * (xm - xj) % PRIME
        secret = (secret + yj * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= _LIMIT:
        return (secret % _LIMIT).to_bytes(SECRET_BYTES, "big")  # too few shares: an unrelated value
    return secret.to_bytes(SECRET_BYTES, "big")


__all__ = ["PRIME", "SECRET_BYTES", "Share", "combine", "split"]
