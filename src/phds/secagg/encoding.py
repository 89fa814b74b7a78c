"""Fixed-point encoding of real vectors into the group Z_{2^64} that secure aggregation sums in.

Bonawitz et al. 2017 (§3, §4) mask inputs in Z_R; here R = 2^64, so numpy ``uint64`` arithmetic (which
wraps modulo 2^64) is the group operation and masks are uniform 64-bit words from the PRG
(:mod:`phds.secagg.prg`). A value v is clipped to [-clip, clip] (if a clip is given), scaled and rounded
to the nearest integer round(v·scale), and stored in two's complement. The sum of n encodings, read back
as a signed 64-bit integer and divided by scale, is the sum of the values, provided that the true sum
of the rounded values stays within ±2^62 (checked by :meth:`FixedPoint.check_capacity`).

Error bound: rounding moves each value by at most 1/(2·scale), so a sum over n parties is within
n/(2·scale) of the exact sum of the (clipped) values, per entry (:meth:`FixedPoint.max_error`); clipping
itself is a deliberate bias and not part of that bound. With ``scale=1`` integer inputs are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from phds.errors import InputError

CAPACITY = 2**62
"""Bound on the magnitude of any encoded sum; leaves headroom below the int64 limit of 2^63."""

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


def as_u64(vector: object, length: int | None = None, *, what: str = "vector") -> U64:
    """*vector* as a one-dimensional ``uint64`` array (of *length*, if given); :class:`InputError` if not."""
    if not isinstance(vector, np.ndarray) or vector.dtype != np.uint64 or vector.ndim != 1:
        raise InputError("must be a one-dimensional numpy uint64 array", field=what)
    if length is not None and vector.shape[0] != length:
        raise InputError(f"must have {length} entries, not {vector.shape[0]}", field=what)
    return vector


def add(a: U64, b: U64) -> U64:
    """a + b modulo 2^64, entry by entry (a new array)."""
    a = as_u64(a, what="a")
    return np.add(a, as_u64(b, a.shape[0], what="b"))


def sub(a: U64, b: U64) -> U64:
    """a − b modulo 2^64, entry by entry (a new array)."""
    a = as_u64(a, what="a")
    return np.subtract(a, as_u64(b, a.shape[0], what="b"))


def add_into(total: U64, b: U64) -> None:
    """total += b modulo 2^64, in place."""
    np.add(total, b, out=total)


def sub_into(total: U64, b: U64) -> None:
    """total −= b modulo 2^64, in place."""
    np.subtract(total, b, out=total)


def total_of(vectors: list[U64], length: int) -> U64:
    """The sum modulo 2^64 of *vectors* (each of *length*); zeros when there are none."""
    total = np.zeros(length, dtype=np.uint64)
    for v in vectors:
        add_into(total, as_u64(v, length))
    return total


@dataclass(frozen=True)
class FixedPoint:
    """round(v·scale) in two's complement modulo 2^64, after clipping to [-clip, clip] when *clip* is set."""

    scale: int = 1
    clip: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 1:
            raise InputError("scale must be a positive integer", field="scale")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise InputError("clip must be a positive finite number", field="clip")

    def check_capacity(self, n_parties: int) -> None:
        """Check that n·clip·scale < 2^62, so no sum of n clipped encodings can wrap around.

        Without a clip nothing can be checked in advance: :meth:`encode` then only keeps each value
        below 2^62/n_parties when told *n_parties*, and below 2^62 otherwise.
        """
        if n_parties < 1:
            raise InputError("needs at least one party", field="secure_aggregation")
        if self.clip is not None and n_parties * self.clip * self.scale >= CAPACITY:
            raise InputError(
                f"{n_parties} parties × clip {self.clip} × scale {self.scale} reaches 2^62; "
                "lower the clip or the scale",
                field="secure_aggregation",
            )

    def max_error(self, n_parties: int) -> float:
        """Largest error, per entry, of a decoded sum over *n_parties*: n/(2·scale) (0 for integers at
        scale 1, since they round to themselves)."""
        return n_parties / (2 * self.scale)

    def encode(self, values: npt.ArrayLike, n_parties: int = 1) -> U64:
        """Encode real *values* (one-dimensional) into Z_{2^64}.

        Each |round(v·scale)| must stay below 2^62/n_parties (always true when clip passed
        :meth:`check_capacity`); non-finite values are refused.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise InputError("must be one-dimensional", field="values")
        if not np.all(np.isfinite(array)):
            raise InputError("must be finite (no NaN or infinity)", field="values")
        if self.clip is not None:
            array = np.clip(array, -self.clip, self.clip)
        scaled = np.rint(array * self.scale)
        limit = CAPACITY / max(n_parties, 1)
        if scaled.size and float(np.max(np.abs(scaled))) >= limit:
            raise InputError(
                f"a value times scale {self.scale} reaches 2^62/{n_parties}; set a clip or lower the scale",
                field="secure_aggregation",
            )
        return scaled.astype(np.int64).view(np.uint64)

    def decode(self, total: U64) -> F64:
        """The real sum held by *total*: its entries read as signed 64-bit integers, divided by scale."""
        signed = as_u64(total, what="total").view(np.int64)
        return signed.astype(np.float64) / self.scale

    def decode_int(self, total: U64) -> npt.NDArray[np.int64]:
        """The exact integer sum held by *total* (scale 1 only): use it for counts beyond 2^53."""
        if self.scale != 1:
            raise InputError("exact integer decoding needs scale 1", field="scale")
        return as_u64(total, what="total").view(np.int64).copy()


__all__ = ["CAPACITY", "FixedPoint", "add", "add_into", "as_u64", "sub", "sub_into", "total_of"]
