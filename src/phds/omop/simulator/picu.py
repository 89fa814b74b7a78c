"""PICU admissions of one chunk of children: the visits, the admission measurements and the sepsis records.

The ground truth is :mod:`phds.omop.simulator.picu_truth` (docs/ground-truth.md, "PICU sepsis"). Each
child is admitted at most once, with probability ``PicuMix.rate`` of their hospital. The admission day is
in the first year of life for a share ``infant_share`` of admissions (when the child was observed then),
otherwise uniform over the observation period, and always at least :data:`~picu_truth.WINDOW_DAYS` days
before the end of observation, so every admitted child has the full sepsis window. The seven measurements
are recorded on the admission day in the PICU visit; sepsis, when drawn, is a condition of the same visit
on a day within the window, and the stay lasts at least until then.

Everything is drawn from its own generator (spawned from the chunk's), so adding PICU admissions changed
no other row the simulator writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from phds.omop.simulator import codes
from phds.omop.simulator import picu_truth as pt
from phds.omop.simulator.encounters import YEAR, Visits, length_of_stay, make_visits
from phds.omop.simulator.growth_measurements import Measurements
from phds.omop.simulator.population import Population

IntArray = npt.NDArray[np.int64]

#: The role of a PICU admission among the chunk's visits (after those of :mod:`.encounters`).
PICU_ROLE = 7
#: Mean PICU stay in nights (illustrative, not fitted to a registry).
MEAN_STAY_NIGHTS = 4.0


@dataclass
class PicuChunk:
    """PICU admissions: their visits, each admission's values, and the sepsis day offset (-1: none)."""

    visits: Visits
    age: npt.NDArray[np.float64]
    values: dict[str, npt.NDArray[np.float64]]
    sepsis_day: IntArray

    @property
    def size(self) -> int:
        return self.visits.size


def draw_picu(rng: np.random.Generator, pop: Population, mix: pt.PicuMix) -> PicuChunk:
    """Which children are admitted, when, what is measured, and whether sepsis follows."""
    last = pop.obs_end - pt.WINDOW_DAYS  # the last admission day with the whole window observed
    admitted = (rng.random(pop.size) < mix.rate) & (last >= pop.obs_start)
    who = np.flatnonzero(admitted).astype(np.int64)
    lo, hi = pop.obs_start[who], last[who]
    infant_hi = np.minimum(hi, pop.birth[who] + int(YEAR) - 1)
    infant = (rng.random(who.shape[0]) < mix.infant_share) & (infant_hi >= lo)
    hi = np.where(infant, infant_hi, hi)
    day = lo + np.floor(rng.random(who.shape[0]) * (hi - lo + 1)).astype(np.int64)
    age = (day - pop.birth[who]) / YEAR  # as the analysis table's decimal age: days / 365.25
    severity = rng.normal(mix.severity_mean, mix.severity_sd, who.shape[0])
    values = pt.draw_measurements(rng, age, severity)
    sepsis = pt.draw_sepsis(rng, age, values)
    offset = rng.integers(0, pt.WINDOW_DAYS + 1, who.shape[0])
    sepsis_day = np.where(sepsis, offset, -1).astype(np.int64)
    stay = np.maximum(length_of_stay(rng, MEAN_STAY_NIGHTS, who.shape[0]), sepsis_day)
    stay = np.minimum(stay, pop.obs_end[who] - day)  # never past the end of observation (>= the window)
    visits = make_visits(who, day, codes.INTENSIVE_CARE, -1, PICU_ROLE, stay)
    return PicuChunk(visits, age, values, sepsis_day)


def picu_measurements(picu: PicuChunk, row_offset: int, first_kind: int) -> Measurements:
    """The admission-day measurement rows; visit rows start at *row_offset*, kinds at *first_kind*."""
    n = picu.size
    rows = np.arange(n, dtype=np.int64) + row_offset
    parts = [
        Measurements(
            picu.visits.pidx,
            rows,
            np.full(n, first_kind + k, dtype=np.int8),
            picu.visits.start,
            picu.values[name],
        )
        for k, name in enumerate(pt.MEASURED)
    ]
    return Measurements.concat(parts)
