"""Condition and drug eras, built from the chunk's records as OHDSI's era scripts do.

Records of one person and concept join into an era while each starts no more than ``gap`` days after
the latest end so far (OHDSI persistence window: 30 days for both eras). A record without an end lasts
one day (condition era convention: ``end = start + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

PERSISTENCE_DAYS = 30


@dataclass
class Eras:
    """Era rows: child row, concept, start, end, records joined, gap days inside the era."""

    pidx: IntArray
    concept: IntArray
    start: IntArray
    end: IntArray
    count: IntArray
    gap_days: IntArray


def build_eras(
    pidx: IntArray, concept: IntArray, start: IntArray, end: IntArray, gap: int = PERSISTENCE_DAYS
) -> Eras:
    """Collapse records (end ``-1`` means none) into eras per child and concept."""
    if pidx.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Eras(empty, empty, empty, empty, empty, empty)
    end = np.where(end < 0, start + 1, end)
    order = np.lexsort((start, concept, pidx))
    p, c, s, e = pidx[order], concept[order], start[order], end[order]
    new_group = np.ones(p.shape[0], dtype=bool)
    new_group[1:] = (p[1:] != p[:-1]) | (c[1:] != c[:-1])
    group = np.cumsum(new_group) - 1
    # running maximum of the end within each group: offset groups so earlier ones never win
    big = int(e.max() - min(int(s.min()), 0) + 2)
    running = np.maximum.accumulate(group * big + e) - group * big
    prev_end = np.empty_like(running)
    prev_end[0] = 0
    prev_end[1:] = running[:-1]
    new_era = new_group.copy()
    new_era[1:] |= s[1:] > prev_end[1:] + gap
    first = np.flatnonzero(new_era)
    gaps = np.where(new_era, 0, np.maximum(s - prev_end - 1, 0))
    return Eras(
        pidx=p[first],
        concept=c[first],
        start=s[first],
        end=np.maximum.reduceat(e, first),
        count=np.diff(np.append(first, p.shape[0])).astype(np.int64),
        gap_days=np.add.reduceat(gaps, first),
    )
