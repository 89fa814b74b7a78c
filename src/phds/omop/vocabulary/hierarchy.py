"""Verified hierarchy between the shipped concepts, and its closure into CONCEPT_ANCESTOR rows.

Only links seen in a real OMOP source are listed: a ``Subsumes``/``Is a`` row of Synthea27Nj's
CONCEPT_RELATIONSHIP (a direct parent, one level) or a CONCEPT_ANCESTOR row of Eunomia GiBleed (with
its levels). Links absent here are unknown, not absent in Athena: a full Athena vocabulary has more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from phds.omop.vocabulary import concepts as c


@dataclass(frozen=True, slots=True)
class Link:
    """``descendant`` lies ``min_levels``..``max_levels`` below ``ancestor``; ``direct`` means Is a."""

    descendant: int
    ancestor: int
    min_levels: int
    max_levels: int
    direct: bool
    source: str


_SYN = "synthea27nj CONCEPT_RELATIONSHIP Subsumes/Is a"
_EUN = "eunomia-gibleed CONCEPT_ANCESTOR"

LINKS: tuple[Link, ...] = (
    Link(c.CHILDHOOD_ASTHMA, c.ASTHMA, 1, 1, True, f"{_SYN}; {_EUN}"),
    Link(c.ALLERGIC_ASTHMA, c.ASTHMA, 1, 1, True, _SYN),
    Link(c.EXERCISE_INDUCED_ASTHMA, c.ASTHMA, 1, 1, True, _SYN),
    Link(c.COUGH_VARIANT_ASTHMA, c.ASTHMA, 1, 1, True, _SYN),
    Link(c.INTRINSIC_ASTHMA, c.ASTHMA, 1, 1, True, _SYN),
    Link(c.ACUTE_OTITIS_MEDIA, c.OTITIS_MEDIA, 1, 1, True, _SYN),
    Link(c.VIRAL_SINUSITIS, c.SINUSITIS, 1, 1, True, _SYN),
    Link(c.EPILEPSY, c.SEIZURE_DISORDER, 1, 1, True, f"{_SYN}; {_EUN}"),
    Link(c.CHILD_ATTENTION_DEFICIT_DISORDER, c.ADHD, 1, 1, True, f"{_SYN}; {_EUN}"),
    Link(c.E_COLI_URINARY_TRACT_INFECTION, c.URINARY_TRACT_INFECTION, 1, 1, True, _EUN),
    Link(c.RECURRENT_URINARY_TRACT_INFECTION, c.URINARY_TRACT_INFECTION, 2, 2, False, _EUN),
)


def ancestor_rows(
    links: Sequence[Link] = LINKS, standard: Iterable[int] | None = None
) -> list[tuple[int, int, int, int]]:
    """CONCEPT_ANCESTOR rows: each standard concept (default: the registry's) is its own ancestor at
    level 0, plus the closure of ``links`` (levels summed along paths; minimum and maximum of the sums).
    """
    if standard is None:
        standard = [k for k, v in c.REGISTRY.items() if v.standard_concept == "S"]
    parents: dict[int, list[Link]] = {}
    for link in links:
        parents.setdefault(link.descendant, []).append(link)
    best: dict[tuple[int, int], tuple[int, int]] = {}

    def climb(start: int, node: int, lo: int, hi: int, seen: frozenset[int]) -> None:
        for link in parents.get(node, []):
            if link.ancestor in seen:
                raise ValueError(f"cycle in vocabulary hierarchy at {link.ancestor}")
            key = (link.ancestor, start)
            step = (lo + link.min_levels, hi + link.max_levels)
            old = best.get(key)
            best[key] = step if old is None else (min(old[0], step[0]), max(old[1], step[1]))
            climb(start, link.ancestor, step[0], step[1], seen | {link.ancestor})

    for descendant in parents:
        climb(descendant, descendant, 0, 0, frozenset({descendant}))
    rows = [(k, k, 0, 0) for k in standard]
    rows += [(a, d, lo, hi) for (a, d), (lo, hi) in best.items()]
    return sorted(rows)
