"""Hub side of ``benchmarking.indicators``: the rows of the result and how each hospital is labelled.

**Who sees which names.** The result goes to the requester (and the portal shows it to the requester's
organisation). Each row is labelled from the naming consent its node's gate released
(:class:`~phds.protocol.releases.ReleasedNaming`, signed with the payload):

* if *every* answering hospital's policy sets ``allow_names``, every row carries the hospital's name and
  the result says ``names_disclosed: true``;
* otherwise a row is named only when its node said the requesting organisation is one of its own
  (``own_organisations``): a hospital's own clinicians see their hospital named; every other row gets a
  pseudonym ``Hospital A``, ``Hospital B``, … drawn at random (``secrets``) for this study. Pseudonyms are
  fixed once the result is stored and never derived from the names, the hospitals' order or anything a
  requester or node could recompute, so neither can invert them; they are not linkable across studies
  (a stable pseudonym would let one identification, e.g. by size, carry over to every later indicator).

Nothing the hub or requester sends (parameters, round state) enters the decision. The hub relays every
release and so knows which node sent which; what it cannot do is show a name the hospitals did not
allow without the result contradicting the signed releases (``phds study verify`` recomputes it when the
result claims ``names_disclosed``; otherwise the hub API withholds the per-hospital releases).
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scipy import stats

from phds.analyses.benchmarking_stats import (
    LIMITS,
    Row,
    clopper_pearson,
    flag,
    poisson_ratio_ci,
    proportion_limits,
    ratio_limits,
    z_of,
)
from phds.errors import InputError
from phds.protocol.releases import ReleasePayload

if TYPE_CHECKING:
    from phds.analyses.benchmarking import BenchmarkParams


def pseudonyms(count: int) -> list[str]:
    """*count* labels ``Hospital A`` … ``Hospital Z``, ``Hospital AA`` …, in a random order."""
    letters = string.ascii_uppercase
    names = [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(count)]
    secrets.SystemRandom().shuffle(names)
    return [f"Hospital {name}" for name in names]


def labels(payloads: Mapping[str, ReleasePayload]) -> tuple[dict[str, tuple[str, bool]], bool]:
    """Each hospital's label and whether it is named to this requester; and whether all allow names."""
    consent = {h: p.naming("naming") for h, p in payloads.items()}
    if all(c.allow_names for c in consent.values()):
        return {h: (h, True) for h in payloads}, True
    others = [h for h in sorted(payloads) if not consent[h].requester_is_own]
    drawn = dict(zip(others, pseudonyms(len(others)), strict=True))
    return {h: (h, True) if consent[h].requester_is_own else (drawn[h], False) for h in payloads}, False


def _observed(params: BenchmarkParams, payload: ReleasePayload) -> tuple[float | None, str, float | None]:
    """O (None when the gate suppressed or withheld it), how it is shown, and Σy² for a continuous one."""
    if params.outcome_type == "binary":
        cell = payload.breakdown("observed").cells["event"]
        return (None if cell.suppressed else float(cell.value or 0)), cell.display, None
    sums = payload.sums("observed")
    if sums.values is None:
        return None, "withheld", None
    return float(sums.values["sum"]), f"{sums.values['sum']:.6g}", float(sums.values["sum_sq"])


def indicator_result(
    params: BenchmarkParams, state: Mapping[str, Any], payloads: Mapping[str, ReleasePayload]
) -> tuple[dict[str, Any], list[str]]:
    """The benchmarking result (JSON) and its notes, from the indicator round's releases."""
    label_of, disclosed = labels(payloads)
    model = dict(state["model"])
    binary = params.outcome_type == "binary"
    phi = 1.0 if binary else max(1.0, float(model["pearson_dispersion"]))
    parts: dict[str, tuple[int, float, float | None, str, float | None]] = {}
    for h, payload in payloads.items():
        fit = payload.model("expected")
        if fit.n_obs.value is None:
            raise InputError("a hospital released no n for its expected value", field="payload")
        parts[h] = (int(fit.n_obs.value), float(fit.values["expected"]), *_observed(params, payload))
    known = [p for p in parts.values() if p[2] is not None]
    if not known:
        raise InputError("every hospital's observed value was suppressed", field="analysis")
    n_known = sum(p[0] for p in known)
    target = math.fsum(float(p[2] or 0) for p in known) / n_known
    spread = 0.0
    if not binary:  # the network SD of the outcome, for the funnel of the crude means
        total_sq = math.fsum(float(p[4] or 0) for p in known)
        spread = math.sqrt(max(0.0, (total_sq - n_known * target * target) / max(1, n_known - 1)))
    rows: list[Row] = []
    for h, (n, expected, observed, shown, sum_sq) in parts.items():
        label, own = label_of[h]
        rows.append(_row(params, label, own, n, expected, observed, shown, sum_sq, target, spread, phi))
    rows.sort(key=lambda r: (not r.own, r.label))
    suppressed = [r.label for r in rows if r.observed is None]
    notes = list(state.get("model_notes") or [])
    if suppressed:
        notes.append(f"observed values withheld by the gate (small counts): {', '.join(suppressed)}")
    if not disclosed:
        notes.append(
            "hospitals other than the requester's own are shown under pseudonyms drawn for this study"
        )
    result = {
        "indicator": params.indicator,
        "outcome": params.outcome,
        "outcome_type": params.outcome_type,
        "coverage": params.coverage,
        "names_disclosed": disclosed,
        "target": target,
        "target_sd": spread if not binary else None,
        "dispersion": phi,
        "n_obs": sum(p[0] for p in parts.values()),
        "observed_total": math.fsum(float(p[2] or 0) for p in known),
        "expected_total": math.fsum(p[1] for p in parts.values()),
        "limits": dict(LIMITS),
        "model": model,
        "rows": [_row_json(r) for r in rows],
    }
    return result, notes


def _row(
    params: BenchmarkParams,
    label: str,
    own: bool,
    n: int,
    expected: float,
    observed: float | None,
    shown: str,
    sum_sq: float | None,
    target: float,
    spread: float,
    phi: float,
) -> Row:
    cov = params.coverage
    if observed is None or expected <= 0:
        return Row(
            label, own, n, None, shown, expected, None, None, None, None, "not assessed", "not assessed"
        )
    ratio = observed / expected
    ratio_lims = {name: ratio_limits(expected, c, phi) for name, c in LIMITS.items()}
    if params.outcome_type == "binary":
        ratio_ci = poisson_ratio_ci(observed, expected, cov)
        crude = observed / n
        crude_ci = clopper_pearson(int(observed), n, cov)
        crude_lims = {name: proportion_limits(target, n, c) for name, c in LIMITS.items()}
    else:
        # quasi-Poisson: O/φ is treated as the Poisson count (Spiegelhalter 2005 §5, variance × φ)
        ratio_ci = poisson_ratio_ci(observed / phi, expected / phi, cov)
        crude = observed / n
        sd = math.sqrt(max(0.0, (float(sum_sq or 0) - n * crude * crude) / max(1, n - 1)))
        half = float(stats.t.ppf(0.5 + cov / 2, max(1, n - 1))) * sd / math.sqrt(n)
        crude_ci = (crude - half, crude + half)
        crude_lims = {
            name: (target - z_of(c) * spread / math.sqrt(n), target + z_of(c) * spread / math.sqrt(n))
            for name, c in LIMITS.items()
        }
    return Row(
        label,
        own,
        n,
        observed,
        shown,
        expected,
        ratio,
        ratio_ci,
        crude,
        crude_ci,
        flag(ratio, ratio_lims),
        flag(crude, crude_lims),
    )


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "hospital": row.label,
        "own": row.own,
        "n": row.n,
        "observed": row.observed,
        "observed_display": row.observed_display,
        "expected": row.expected,
        "ratio": row.ratio,
        "ratio_ci": list(row.ratio_ci) if row.ratio_ci else None,
        "crude": row.crude,
        "crude_ci": list(row.crude_ci) if row.crude_ci else None,
        "flag": row.flag,
        "crude_flag": row.crude_flag,
    }


__all__ = ["indicator_result", "labels", "pseudonyms"]
