"""The overlap guard's memory: every person set released from a dataset at this node, in ``node.db``.

:class:`OverlapGuard` hashes person ids with a node-secret salt (:func:`phds.privacy.overlap.person_keys`),
loads the dataset's ("universe's") history, runs :func:`~phds.privacy.overlap.audit_release`, and
records the new sets when they pass, inside the caller's transaction: the record commits with the
caller's audit entry or rolls back with it. History is shared by all requesters, so collusion gains
nothing. The salt and the band secret are random, stored once, and never leave the node.

Storage: one row per distinct set (``UNIQUE (universe, digest)``), keys as a zlib-compressed BLOB of
sorted little-endian uint64 (about 8 bytes a person before compression) and a sketch: its 256
smallest keys, a bottom-k sample of the set, since keys are uniform hashes.

Which history is loaded. (1) Pairwise: every set whose size is within 2k − 2 of a new set's (index on
``(universe, size)``); these are all it needs. (2) Combinations: the :data:`RECENT` most recent sets,
plus every set whose sketch meets the union of the new sets, plus, in a second round, every set whose
sketch meets the union of those. :func:`~phds.privacy.overlap.audit_release` then keeps the 64 most
related. Weakness: a set much larger than the sets it overlaps (a 100,000-person cohort against a
50-person cell) may show no sketch hit and be missed unless it is recent or size-close; reading all
sketches costs about 2 KB per stored set per release, fine for thousands of sets.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from phds.errors import DisclosureRefused
from phds.node.audit import NodeDatabase
from phds.privacy.overlap import (
    NEIGHBOURHOOD_CAP,
    ReleasedSet,
    audit_release,
    intersection_size,
    person_keys,
    sorted_unique,
)

log = logging.getLogger(__name__)

RECENT = 32
SKETCH = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS overlap_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1), salt BLOB NOT NULL, band BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS overlap_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, universe TEXT NOT NULL, digest BLOB NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, study_id TEXT NOT NULL, task_id TEXT NOT NULL, created_at TEXT NOT NULL,
    sketch BLOB NOT NULL, keys BLOB NOT NULL, UNIQUE (universe, digest));
CREATE INDEX IF NOT EXISTS overlap_sets_size ON overlap_sets (universe, size)
"""


def _pack(keys: npt.NDArray[np.uint64]) -> bytes:
    return zlib.compress(keys.astype("<u8").tobytes(), 1)


def _unpack(blob: bytes, raw: bool = False) -> npt.NDArray[np.uint64]:
    data = blob if raw else zlib.decompress(blob)
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


_RECENT_ARRAYS = 8  # id arrays whose keys are kept (the rounds of a few concurrent fits)


def _keys_in_order(ids: npt.NDArray[Any], salt: bytes) -> npt.NDArray[np.uint64]:
    """The key of each id, in the order given (``person_keys`` returns them sorted and deduplicated)."""
    base = hashlib.blake2b(key=salt, digest_size=8)

    def one(text: str) -> bytes:
        h = base.copy()
        h.update(text.encode())
        return h.digest()

    raw = b"".join([one(str(i)) for i in ids.tolist()])
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


class OverlapGuard:
    """Checks and records released person sets per universe; see the module docstring."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)
        with db.transaction() as con:
            con.execute(
                "INSERT OR IGNORE INTO overlap_secret VALUES (1, ?, ?)", (os.urandom(32), os.urandom(32))
            )
            row = con.execute("SELECT salt, band FROM overlap_secret").fetchone()
        self._salt: bytes = row[0]
        self._band_secret: bytes = row[1]
        self._recent: dict[int, tuple[npt.NDArray[Any], npt.NDArray[np.uint64]]] = {}

    def keys(self, ids: Iterable[int | str] | npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
        """The node's keys for *ids* (salted; they mean nothing outside this node)."""
        return person_keys(ids, self._salt)

    def band_for(self, k: int) -> Callable[[ReleasedSet, ReleasedSet], int]:
        """The per-pair threshold in [k, 2k): HMAC of the band secret over the sorted digests."""

        def band(s: ReleasedSet, t: ReleasedSet) -> int:
            msg = b"".join(sorted((s.digest, t.digest))) + k.to_bytes(4, "big")
            mac = hmac.new(self._band_secret, msg, hashlib.sha256).digest()
            return k + int.from_bytes(mac[:8], "big") % k

        return band

    def guard(
        self,
        universe: str,
        sets: Sequence[tuple[str, Iterable[int | str] | npt.NDArray[Any]]],
        k: int,
        *,
        study_id: str,
        task_id: str,
    ) -> None:
        """Refuse (:class:`~phds.errors.DisclosureRefused`) or record *sets*, in the caller's transaction."""
        self.guard_keys(universe, self.keyed(sets), k, study_id=study_id, task_id=task_id)

    def keyed(self, sets: Sequence[tuple[str, Iterable[int | str] | npt.NDArray[Any]]]) -> list[ReleasedSet]:
        """*sets* as released sets of node keys, hashing every distinct id once (breakdown cells share
        their cohort's ids)."""
        arrays = [np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids) for _, ids in sets]
        if not arrays:
            return []
        cached = [self._recent.get(id(a)) for a in arrays]
        if all(c is not None and c[0] is a for c, a in zip(cached, arrays, strict=True)):
            # the same id arrays as a release just before (an iterative fit's rounds): no hashing again
            return [
                ReleasedSet(name, c[1]) for (name, _), c in zip(sets, cached, strict=True) if c is not None
            ]
        integral = all(a.dtype.kind in "iu" for a in arrays)
        every = np.concatenate([a if integral else a.astype(str) for a in arrays])
        distinct, inverse = np.unique(every, return_inverse=True)  # ids print alike as ints or text
        table = _keys_in_order(distinct, self._salt)
        out, start = [], 0
        for (name, _), a in zip(sets, arrays, strict=True):
            out.append(ReleasedSet.of(name, table[inverse[start : start + a.size]]))
            start += a.size
            self._recent[id(a)] = (a, out[-1].keys)  # holding *a* keeps its id from being reused
        while len(self._recent) > _RECENT_ARRAYS:
            self._recent.pop(next(iter(self._recent)))
        return out

    def guard_keys(
        self, universe: str, new: Sequence[ReleasedSet], k: int, *, study_id: str, task_id: str
    ) -> None:
        """:meth:`guard` for sets already keyed by :meth:`keyed`."""
        new = [s for s in new if s.size]
        if not new:
            return
        with self.db.transaction() as con:
            known = {
                bytes(r[0])
                for r in con.execute(
                    "SELECT digest FROM overlap_sets WHERE universe = ? AND digest IN "
                    f"({','.join('?' * len(new))})",
                    (universe, *(s.digest for s in new)),
                )
            }
            if all(s.digest in known for s in new):
                return  # every set was released before, and checked against all that came after it
            history = self._history(con, universe, new, k)
            violation = audit_release(new, history, k, self.band_for(k))
            if violation is not None:
                log.info(
                    "overlap guard refused %s in %s (study %s task %s): %s: %s",
                    [s.name for s in new],
                    universe,
                    study_id,
                    task_id,
                    violation.kind,
                    violation.detail,
                )
                raise DisclosureRefused(violation.reason)
            now = datetime.now(UTC).isoformat()
            con.executemany(
                "INSERT OR IGNORE INTO overlap_sets (universe, digest, name, size, study_id, task_id, "
                "created_at, sketch, keys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (universe, s.digest, s.name, s.size, study_id, task_id, now,
                     s.keys[:SKETCH].astype("<u8").tobytes(), _pack(s.keys))
                    for s in new
                ],
            )  # fmt: skip

    def _history(self, con: Any, universe: str, new: Sequence[ReleasedSet], k: int) -> list[ReleasedSet]:
        ids: set[int] = set()
        for s in new:
            rows = con.execute(
                "SELECT id FROM overlap_sets WHERE universe = ? AND size BETWEEN ? AND ?",
                (universe, s.size - 2 * k + 2, s.size + 2 * k - 2),
            )
            ids.update(r[0] for r in rows)
        rows = con.execute(
            "SELECT id FROM overlap_sets WHERE universe = ? ORDER BY id DESC LIMIT ?", (universe, RECENT)
        )
        ids.update(r[0] for r in rows)
        # The sets most related to the new ones, by their sketches (the 256 smallest keys: a uniform sample):
        # containment of a set's sketch in the new sets, and of the new sets' sketch in it, as
        # :func:`~phds.privacy.overlap.neighbourhood` ranks them; at most NEIGHBOURHOOD_CAP of them.
        covered = sorted_unique(np.concatenate([s.keys for s in new]))
        probe = covered[:SKETCH]
        scored = []
        for i, blob in con.execute("SELECT id, sketch FROM overlap_sets WHERE universe = ?", (universe,)):
            if i in ids:
                continue
            sketch = _unpack(blob, raw=True)
            hits = intersection_size(sketch, covered)
            if hits:
                scored.append((hits / sketch.size + intersection_size(probe, sketch) / probe.size, i))
        ids.update(i for _, i in sorted(scored, reverse=True)[:NEIGHBOURHOOD_CAP])
        loaded = {}
        for i in sorted(ids):
            name, blob = con.execute("SELECT name, keys FROM overlap_sets WHERE id = ?", (i,)).fetchone()
            loaded[i] = ReleasedSet(name, _unpack(blob))
        return [loaded[i] for i in sorted(loaded)]

    def stored(self, universe: str) -> int:
        """How many distinct sets this universe's history holds."""
        row = self.db.con.execute("SELECT COUNT(*) FROM overlap_sets WHERE universe = ?", (universe,))
        return int(row.fetchone()[0])


__all__ = ["RECENT", "SKETCH", "OverlapGuard"]
