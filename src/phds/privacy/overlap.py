"""Overlap audit: may a new set of persons be released, given every set already released from a dataset?

Threat. Every aggregate tied to a set of persons (a count, the n of a mean, a sum, a sum of squares, a
quantile-bin or time-bin count) releases that set's size, and through n, sum and sum of squares the
values of the persons in it. A requester who obtains two sets that differ by a few persons subtracts
them (Denning, Denning & Schwartz, "The tracker: a threat to statistical database security", ACM TODS
4(1), 1979, is the classic form: a "tracker" pads a small target with a large known group). The same
works through combinations: a cohort A and a partition of a slightly smaller cohort A′ give |A| − |A′|;
A = B ∪ C ∪ {few}; nested quantile or time bins whose shifted versions isolate one or two persons; two
organisations colluding, each getting one of the counts. Deciding whether released counting queries
determine something about few persons is the auditing problem of statistical databases (Chin &
Özsoyoglu, "Auditing and inference control in statistical databases", IEEE TSE 8(6), 1982; Kleinberg,
Papadimitriou & Raghavan, "Auditing Boolean attributes", PODS 2000, show that the Boolean version is
coNP-complete, which is why the enumeration below has a cap and fails safe).

Algorithm (:func:`audit_release`), on persons represented by keyed 64-bit hashes (:func:`person_keys`):

a. Pairwise. A new set S and any other set T (released before, to any requester, or new alongside S)
   must not differ by 1 ≤ |S Δ T| < band(S, T). The band is a per-pair threshold in [k, 2k) that the
   node derives from a secret, so a refusal does not tell the requester "1 to k − 1 persons differ".
   Only T with ||S| − |T|| ≤ 2k − 2 can fail; a check costs O(|S| log |T|) (binary search).
b. Combinations. Over the new sets and their neighbourhood in the history (below), persons are grouped
   into atoms (persons with the same membership pattern: bitmask signatures, ``np.unique``). With M the
   incidence matrix (sets × atoms) and c the atom sizes, the size of a union U of atoms is determined by
   the released sizes iff 1_U lies in the row space of M. Only atoms of size ≤ 2k − 2 can be in a U
   that needs refusing, so the algorithm computes W = rowspace(M) ∩ span(small atoms) by eliminating
   the large atoms' columns, reduces W to a basis with one pivot atom per row, and enumerates the 0/1
   vectors of W (each fixed by its pivots) whose pivot sizes sum to ≤ 2k − 2. A determined U with
   1 ≤ |U| < band(U, U) is refused (the band keyed on U's own digest, so asking for U again through
   another combination meets the same threshold), unless U is itself one of the released sets and
   holds at least k persons: a set released directly passed the count rule, and only what can be
   derived is blurred. The pairwise check makes the same exception when S Δ T is a released set.
   Before enumerating, a certificate is tried: if the columns of W's basis contain 2k − 1 disjoint
   bases, no non-zero vector of W is supported on 2k − 2
   atoms or fewer, so nothing is determined; this is what keeps many crossed breakdowns (every person
   in an atom of their own) cheap. Past :data:`ENUMERATION_CAP` candidate unions the release is
   refused (fail safe). Arithmetic is exact modulo two 31-bit primes (a union counts as determined if
   either prime says so); an error would need both primes to divide minors of the 0/1 matrix M.
   Sums and means are released with their person set, so guarding the set guards them too.

Neighbourhood. The combination check uses all new sets and at most :data:`NEIGHBOURHOOD_CAP` (64)
history sets: the connected component of the new sets in the overlap graph, grown greedily from the
union of the sets chosen so far, most contained first (|T ∩ covered| / |T|), most recent on ties.

Cost. Hashing ~0.5 µs a person; the pairwise check O(|S| log |T|) per candidate; the combination check
O(m · n log n) for signatures (m sets, n persons in their union) plus O(m² · a) for the elimination
(a atoms, usually far fewer than n), plus the enumeration (at most the cap).

Limits. (1) History sets outside the neighbourhood cap are not combined: a requester who releases
more than 64 sets that overlap a target more than the incriminating ones do can push those out (the
pairwise check still sees every set the store passes in). (2) Only unions are checked: a determined
signed combination of small atoms (e.g. |X| − |Y| = 3) still bounds them. (3) Inequalities are not
modelled: suppressed counts ("<k") and refusals themselves carry information; the band hides a single
refusal, not a campaign of probes with slightly varied cohorts, which the node's audit log must show.
(4) Persons are hash keys: two ids colliding in 64 bits merge (about n²/2⁶⁵, negligible below 10⁸).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Keys = npt.NDArray[np.uint64]
Band = Callable[["ReleasedSet", "ReleasedSet"], int]

NEIGHBOURHOOD_CAP = 64
ENUMERATION_CAP = 20_000
REASON = (
    "this release, combined with results already released from this dataset, "
    "would describe fewer than the minimum number of persons"
)
_PRIMES = (2_147_483_647, 2_147_483_629)


def sorted_unique(a: Keys) -> Keys:
    """Sorted distinct values (a sort and a mask: faster than ``np.unique`` on uint64)."""
    s = np.sort(a)
    if s.size > 1:
        keep = np.empty(s.size, dtype=bool)
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
        s = s[keep]
    return s


def person_keys(ids: Iterable[int | str] | npt.NDArray[Any], salt: bytes) -> Keys:
    """Sorted unique uint64 keys: the first 8 bytes of BLAKE2b keyed with *salt* over ``str(id)``."""
    if len(salt) < 16 or len(salt) > 64:
        raise ValueError("the salt must be 16 to 64 bytes")
    base = hashlib.blake2b(key=salt, digest_size=8)
    items = ids.tolist() if isinstance(ids, np.ndarray) else ids

    def one(text: str, copy: Callable[[], Any] = base.copy) -> bytes:
        h = copy()
        h.update(text.encode())
        digest: bytes = h.digest()
        return digest

    raw = b"".join([one(str(i)) for i in items])
    return sorted_unique(np.frombuffer(raw, dtype="<u8").astype(np.uint64))


@dataclass(frozen=True, eq=False)
class ReleasedSet:
    """A released set of persons: its *name* (for the node's log) and sorted unique uint64 *keys*."""

    name: str
    keys: Keys

    def __post_init__(self) -> None:
        k = self.keys
        if k.dtype != np.uint64 or k.ndim != 1 or (k.size > 1 and not bool(np.all(k[1:] > k[:-1]))):
            raise ValueError(f"{self.name}: keys must be a sorted, duplicate-free 1-D uint64 array")
        k.setflags(write=False)

    @classmethod
    def of(cls, name: str, keys: npt.NDArray[Any]) -> ReleasedSet:
        """Build from any array of uint64 keys (sorted and deduplicated here)."""
        return cls(name, sorted_unique(np.asarray(keys, dtype=np.uint64)))

    @property
    def size(self) -> int:
        return int(self.keys.size)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the keys (little-endian uint64): equal digests, equal sets."""
        return hashlib.sha256(self.keys.astype("<u8").tobytes()).digest()


@dataclass(frozen=True)
class Violation:
    """Why a release is refused: *reason* may leave the node; *kind* and *detail* are for its log only."""

    kind: str  # "pairwise", "combination" or "cap"
    detail: str
    reason: str = REASON


def intersection_size(a: Keys, b: Keys) -> int:
    """|a ∩ b| for sorted unique arrays, by binary search of the smaller in the larger."""
    if a.size > b.size:
        a, b = b, a
    if a.size == 0:
        return 0
    idx = np.searchsorted(b, a)
    idx[idx == b.size] = 0
    return int(np.count_nonzero(b[idx] == a))


def _band(band: Band, s: ReleasedSet, t: ReleasedSet, k: int) -> int:
    b = int(band(s, t))
    if not k <= b < 2 * k:
        raise ValueError(f"band must return a threshold in [{k}, {2 * k}), got {b}")
    return b


def audit_release(
    new: Sequence[ReleasedSet], history: Sequence[ReleasedSet], k: int, band: Band
) -> Violation | None:
    """Check *new* sets against *history* and each other; a :class:`Violation` or ``None`` to pass."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if k == 1 or not new:
        return None
    reach = 2 * k - 2
    released = {t.digest for t in [*new, *history] if t.size}
    for i, s in enumerate(new):
        for t in [*new[i + 1 :], *history]:
            if abs(s.size - t.size) > reach:
                continue
            delta = s.size + t.size - 2 * intersection_size(s.keys, t.keys)
            if 1 <= delta <= reach and delta < _band(band, s, t, k):
                if delta >= k and _is_released(np.setxor1d(s.keys, t.keys), released):
                    continue  # the difference is itself a released set of ≥ k persons
                return Violation("pairwise", f"{s.name} and {t.name} differ by {delta} persons")
    sets = [*_unique(new), *neighbourhood(new, history)]
    return _combinations(sets, k, band)


def _is_released(keys: Keys, released: set[bytes]) -> bool:
    """Whether the set of *keys* is one of the sets released (and so already passed on its own)."""
    return ReleasedSet.of("difference", keys).digest in released


def _unique(sets: Iterable[ReleasedSet]) -> list[ReleasedSet]:
    seen: set[bytes] = set()
    out = []
    for s in sets:
        if s.size and s.digest not in seen:
            seen.add(s.digest)
            out.append(s)
    return out


def neighbourhood(
    new: Sequence[ReleasedSet], history: Sequence[ReleasedSet], cap: int = NEIGHBOURHOOD_CAP
) -> list[ReleasedSet]:
    """History sets connected to *new* through overlaps, most contained first, at most *cap*."""
    fresh = {s.digest for s in new}
    rest = [(i, t) for i, t in enumerate(history) if t.size and t.digest not in fresh]
    rest = list({t.digest: (i, t) for i, t in rest}.values())
    covered = sorted_unique(np.concatenate([s.keys for s in new])) if new else np.empty(0, np.uint64)
    chosen: list[ReleasedSet] = []
    while rest and len(chosen) < cap:
        scored = [(intersection_size(t.keys, covered) / t.size, i, t) for i, t in rest]
        hits = sorted([x for x in scored if x[0] > 0], key=lambda x: (-x[0], -x[1]))
        if not hits:
            break
        take = hits[: cap - len(chosen)]
        chosen.extend(t for _, _, t in take)
        taken = {id(t) for _, _, t in take}
        rest = [(i, t) for i, t in rest if id(t) not in taken]
        covered = sorted_unique(np.concatenate([covered, *(t.keys for _, _, t in take)]))
    return chosen


def atoms(sets: Sequence[ReleasedSet]) -> tuple[Keys, npt.NDArray[np.intp], npt.NDArray[np.int64], Any]:
    """Persons (union), each person's atom, atom sizes, and the incidence matrix (sets × atoms, 0/1)."""
    union = sorted_unique(np.concatenate([s.keys for s in sets]))
    words = (len(sets) + 63) // 64
    sig = np.zeros((union.size, words), dtype=np.uint64)
    for j, s in enumerate(sets):
        sig[np.searchsorted(union, s.keys), j // 64] |= np.uint64(1 << (j % 64))
    if words == 1:
        flat, inverse, counts = np.unique(sig[:, 0], return_inverse=True, return_counts=True)
        patterns = flat[:, None]
    else:
        patterns, inverse, counts = np.unique(sig, axis=0, return_inverse=True, return_counts=True)
    m = np.empty((len(sets), patterns.shape[0]), dtype=np.int64)
    for j in range(len(sets)):
        m[j] = (patterns[:, j // 64] >> np.uint64(j % 64)) & np.uint64(1)
    return union, inverse.reshape(-1), counts.astype(np.int64), m


def _eliminate(a: Any, cols: int, p: int) -> tuple[Any, list[int]]:
    """Gauss-Jordan mod *p* with pivots among the first *cols* columns; returns (matrix, pivot columns)."""
    a = a % p
    pivots: list[int] = []
    row = 0
    while row < a.shape[0]:
        nz = np.argwhere(a[row:, :cols])
        if not nz.size:
            break
        r, c = int(nz[0, 0]) + row, int(nz[0, 1])
        if r != row:
            a[[row, r]] = a[[r, row]]
        a[row] = a[row] * pow(int(a[row, c]), p - 2, p) % p
        f = a[:, c].copy()
        f[row] = 0
        rows = np.flatnonzero(f)
        if rows.size:
            a[rows] = (a[rows] - f[rows, None] * a[row]) % p
        pivots.append(c)
        row += 1
    return a, pivots


def _certified(basis: Any, need: int, p: int) -> bool:
    """True if the columns of *basis* (d × s, rank d) hold *need* disjoint bases (greedy)."""
    d = basis.shape[0]
    left = np.arange(basis.shape[1])
    for _ in range(need):
        if left.size < d:
            return False
        _, piv = _eliminate(basis[:, left].copy(), left.size, p)
        if len(piv) < d:
            return False
        left = np.delete(left, piv)
    return True


def _combinations(sets: Sequence[ReleasedSet], k: int, band: Band) -> Violation | None:
    if not sets:
        return None
    reach = 2 * k - 2
    union, inverse, sizes, m = atoms(sets)
    small = sizes <= reach
    if not small.any():
        return None
    order = np.concatenate([np.flatnonzero(~small), np.flatnonzero(small)])
    n_large = int((~small).sum())
    for p in _PRIMES:
        a, piv = _eliminate(m[:, order].copy(), n_large, p)
        w = a[len(piv) :, n_large:]  # rows with no large-atom part: they span W
        w, wpiv = _eliminate(w, w.shape[1], p)
        w = w[: len(wpiv)]
        if not len(wpiv) or _certified(w, reach + 1, p):
            continue
        found = _enumerate(w, wpiv, sizes[order[n_large:]], reach, p)
        if isinstance(found, Violation):
            return found
        for cols in found:
            atom_ids = order[n_large:][cols]
            u = ReleasedSet(f"combination of {len(atom_ids)} atoms", union[np.isin(inverse, atom_ids)])
            # A set released on its own (≥ k persons, as the count rule requires) is no derived fact; the
            # band blurs only the threshold for what can be derived.
            if u.size >= k and u.digest in {s.digest for s in sets}:
                continue
            if u.size < _band(band, u, u, k):
                names = ", ".join(s.name for s in sets)
                return Violation("combination", f"{u.size} persons determined by combining: {names}")
    return None


def _enumerate(w: Any, wpiv: list[int], sizes: Any, reach: int, p: int) -> list[Any] | Violation:
    """0/1 vectors of rowspace(w) whose pivot sizes sum to ≤ reach and whose total size is ≤ reach."""
    support = np.flatnonzero(w.any(axis=0))
    w, sizes = w[:, support], sizes[support]
    piv_size = sizes[np.searchsorted(support, wpiv)]
    rank = np.argsort(piv_size, kind="stable")
    w, piv_size = w[rank], piv_size[rank]
    found: list[Any] = []
    tried = 0
    stack: list[tuple[int, Any, int]] = [(0, np.zeros(w.shape[1], dtype=np.int64), 0)]
    while stack:
        start, vec, total = stack.pop()
        for j in range(start, w.shape[0]):
            if total + int(piv_size[j]) > reach:
                break
            tried += 1
            if tried > ENUMERATION_CAP:
                return Violation("cap", f"more than {ENUMERATION_CAP} candidate unions of small atoms")
            nxt = (vec + w[j]) % p
            if bool(np.all(nxt <= 1)) and int(sizes @ nxt) <= reach:
                found.append(support[nxt == 1])
            stack.append((j + 1, nxt, total + int(piv_size[j])))
    return found


__all__ = [
    "ENUMERATION_CAP",
    "NEIGHBOURHOOD_CAP",
    "REASON",
    "ReleasedSet",
    "Violation",
    "atoms",
    "audit_release",
    "intersection_size",
    "neighbourhood",
    "person_keys",
    "sorted_unique",
]
