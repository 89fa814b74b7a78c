"""The gate's rules: one per aggregate type, each computing what may leave from the aggregate's evidence.

* **Counts** leave exactly when ≥ k (or 0), otherwise as ``"<k"`` (OHDSI minCellCount).
* **Breakdowns** are counted here from each person's label. Level names leave only when declared (by
  the requester or the node's vocabulary) or when they are short integer codes; undeclared levels with
  fewer than k persons merge into ``other``. Small cells and enough others to protect them are
  suppressed (:func:`~phds.privacy.disclosure.protect_breakdown`); in a table with a small cell, zeros
  are suppressed too, since a zero beside a small cell places those persons in one row and column.
* **Sums** need n ≥ k; a variable with few distinct values is a count in disguise (the mean of a 0/1
  column is a proportion), so each of its values must be held by ≥ k persons; every sum passes the N-K
  and p% dominance rules (ACRO defaults). A sum that fails is withheld with a note naming the rule.
* **Profiles** (the catalogue entry) carry only counts that are 0, suppressed or ≥ k, and name no
  vocabulary entry of a suppressed count.
* **Models** need N ≥ k, DataSHIELD's nfilter.glm saturation, enough residual degrees of freedom, a
  design that isolates no fewer than k rows (cells of its discrete columns, leverage, weights,
  dominance of column sums) and, at a parameter value the hub proposed, bounded linear predictors and
  working weights spread over enough rows. Any failure refuses the release.
* **Model updates** (federated learning) need at least the policy's ``fl_min_rows`` training rows,
  nfilter.glm saturation and residual dof as models do, an update within its declared L2 clip and
  finite, the model design check, and at the hub's global model bounded linear predictors, spread
  working weights and no two rows carrying most of the gradient (the N-K rule on per-row gradient
  norms): a crafted global model that saturates every row but one would make the update that row's.

* **Naming** (benchmarking) is no data: the rule states the node policy's ``[policy.benchmarking]``
  consent (``allow_names``, and whether the task's verified requester is one of ``own_organisations``).

* **Marginals** (a synthetic-data generator's measurements) have no exact release: outside
  differential privacy they are refused (the DP step releases them with noise).

* **Probes** (``system.noop``'s vector) are no data either: the rule draws the numbers from the probe's
  public seed itself, whatever the analysis computed.

Every exactly released person set is registered for the overlap guard. Messages never state a count.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from phds.errors import DisclosureRefused, InputError
from phds.node.gate.pipeline import Next, Release
from phds.privacy import design_checks, dominance
from phds.privacy import disclosure as dc
from phds.privacy.aggregates import (
    BreakdownAggregate,
    CountAggregate,
    DesignEvidence,
    MarginalsAggregate,
    ModelAggregate,
    NamingAggregate,
    ProbeAggregate,
    ProfileAggregate,
    SumAggregate,
    UpdateAggregate,
    probe_vector,
)
from phds.protocol.releases import (
    ReleasedBreakdown,
    ReleasedCount,
    ReleasedModel,
    ReleasedNaming,
    ReleasedProbe,
    ReleasedProfile,
    ReleasedSums,
)


class ValidateStep:
    """Aggregate names are unique and of a known type."""

    def __call__(self, release: Release, call_next: Next) -> Release:
        names = [a.name for a in release.aggregates]
        if len(set(names)) != len(names):
            raise InputError(f"aggregate names must be unique, got {names}", field="aggregates")
        known = (
            CountAggregate,
            BreakdownAggregate,
            SumAggregate,
            ModelAggregate,
            ProfileAggregate,
            MarginalsAggregate,
            NamingAggregate,
            UpdateAggregate,
            ProbeAggregate,
        )
        for agg in release.aggregates:
            if not isinstance(agg, known):
                raise InputError(f"unknown aggregate type {type(agg).__name__}", field="aggregates")
        return call_next(release)


class RulesStep:
    """Apply each aggregate type's rule (module docstring)."""

    def __call__(self, release: Release, call_next: Next) -> Release:
        for agg in release.aggregates:
            if agg.name in release.values:  # released by an earlier step (differential privacy)
                continue
            if isinstance(agg, CountAggregate):
                release.values[agg.name] = count_rule(release, agg)
            elif isinstance(agg, BreakdownAggregate):
                release.values[agg.name] = breakdown_rule(release, agg)
            elif isinstance(agg, SumAggregate):
                release.values[agg.name] = sums_rule(release, agg)
            elif isinstance(agg, ProfileAggregate):
                release.values[agg.name] = profile_rule(release, agg)
            elif isinstance(agg, NamingAggregate):
                release.values[agg.name] = naming_rule(release, agg)
            elif isinstance(agg, UpdateAggregate):
                release.values[agg.name] = update_rule(release, agg)
            elif isinstance(agg, MarginalsAggregate):
                marginals_rule(agg)
            elif isinstance(agg, ProbeAggregate):
                release.values[agg.name] = ReleasedProbe(
                    seed=agg.seed, values=probe_vector(agg.seed, agg.length).tolist()
                )
            else:
                release.values[agg.name] = model_rule(release, agg)
        return call_next(release)


def count_rule(release: Release, agg: CountAggregate) -> ReleasedCount:
    k, zero = release.k, release.policy.release_zero_counts
    rc = dc.release_count(agg.persons.size, k, release_zero=zero)
    if rc.suppressed:
        release.note(agg.name, "suppressed", f"count below the minimum cell count {k}")
    else:
        release.guard(agg.name, agg.persons)
    return rc


def _merge_undeclared(agg: BreakdownAggregate, k: int) -> tuple[np.ndarray, list[str]]:
    """Labels and levels after the level-name rule, for levels the requester did not declare."""
    labels = np.asarray(dc.protect_level_names(np.asarray(agg.labels).astype(str).tolist(), k))
    present = set(labels.tolist())
    levels = [lv for lv in agg.levels if lv in present]
    if dc.OTHER in present and dc.OTHER not in levels:
        levels.append(dc.OTHER)
    return labels, levels


def breakdown_rule(release: Release, agg: BreakdownAggregate) -> ReleasedBreakdown:
    k = release.k
    if agg.declared:
        labels, levels = np.asarray(agg.labels).astype(str), [str(lv) for lv in agg.levels]
    else:
        labels, levels = _merge_undeclared(agg, k)
    cells = BreakdownAggregate(agg.name, agg.persons, labels, levels).cells()
    has_small = any(dc.is_small(v, k) for v in cells.values())
    zero = release.policy.release_zero_counts and not has_small
    bd = dc.protect_breakdown(cells, k, release_zero=zero)
    why = {
        "small": f"below the minimum cell count {k}",
        "complementary": "hidden so that a small cell cannot be recovered by subtraction",
        "withheld": "breakdown withheld: no suppression pattern protects its small cells",
    }
    for cell, rc in bd.cells.items():
        if rc.suppressed:
            release.note(f"{agg.name}.{cell}", "suppressed", why[rc.kind or "withheld"])
        elif rc.value:
            release.guard(f"{agg.name}.{cell}", agg.persons.subset(labels == cell))
    if not bd.total.suppressed:
        release.guard(agg.name, agg.persons)
    return bd


def sums_rule(release: Release, agg: SumAggregate) -> ReleasedSums:
    k, zero = release.k, release.policy.release_zero_counts
    n_rows = int(agg.persons.ids.shape[0])
    n = dc.release_count(n_rows, k, release_zero=zero)
    if n_rows < k:
        release.note(agg.name, "withheld", f"statistics of fewer than {k} persons")
        return ReleasedSums(n=n, values=None)
    try:
        if agg.variable is not None:
            dominance.as_count_if_discrete(agg.name, agg.variable, k, release.policy.discrete_max_levels)
        for key, contributions in agg.contributions.items():
            values = np.asarray(contributions, dtype=float)
            if values.shape[0] != n_rows or not np.all(np.isfinite(values)):
                raise InputError(f"{agg.name}.{key}: one finite contribution per row", field="aggregates")
            dominance.check_sum(f"{agg.name}.{key}", values, release.policy.dominance_rules())
    except DisclosureRefused as exc:
        release.note(agg.name, "withheld", exc.message)
        return ReleasedSums(n=n, values=None)
    release.guard(agg.name, agg.persons)
    sums = {key: math.fsum(np.asarray(c, dtype=float).tolist()) for key, c in agg.contributions.items()}
    return ReleasedSums(n=n, values=sums)


def model_rule(release: Release, agg: ModelAggregate) -> ReleasedModel:
    k, policy = release.k, release.policy
    n_rows = int(agg.persons.ids.shape[0])
    if n_rows < k:
        raise DisclosureRefused(f"{agg.name}: a model of fewer than {k} observations")
    dc.check_glm_saturation(agg.n_params, n_rows, policy.nfilter_glm)
    limits = policy.design_limits()
    dominance.check_residual_dof(n_rows, agg.n_params, policy.dominance_rules())
    if agg.design is not None and not _checked_before(agg.design, limits):
        d = agg.design
        y = d.y if d.y is not None else np.zeros(d.x.shape[0])
        design_checks.check_design(d.x, list(d.columns), y, d.weights, limits)
        _remember_checked(agg.design, limits)
    if agg.point is not None:
        if agg.design is None:
            raise InputError(f"{agg.name}: a proposed parameter needs its design", field="aggregates")
        d = agg.design
        design_checks.check_irls_point(
            agg.point.eta, agg.point.working_weights, d.x, limits, columns=d.columns
        )
    if agg.risk_sets is not None:
        design_checks.check_ordered_risk_sets(agg.risk_sets.weights, agg.risk_sets.ends, limits)
    release.guard(agg.name, agg.persons)
    return ReleasedModel(
        n_obs=ReleasedCount.exact(n_rows, k), n_params=agg.n_params, values=finite(agg.name, agg.values)
    )


def naming_rule(release: Release, agg: NamingAggregate) -> ReleasedNaming:
    """The hospital's benchmarking naming consent, from the node's policy and the task's requester (the
    organisation the node verified), never from the analysis: see :class:`NamingAggregate`."""
    settings = release.policy.benchmarking
    return ReleasedNaming(
        allow_names=settings.allow_names,
        requester_is_own=release.ctx.requester_org in settings.own_organisations,
    )


def check_update_rows(release: Release, agg: UpdateAggregate) -> int:
    """The training rows of an update, refused below the policy's ``fl_min_rows`` (and k)."""
    n_rows = int(agg.persons.ids.shape[0])
    if n_rows < max(release.k, release.policy.fl_min_rows):
        raise DisclosureRefused(
            f"{agg.name}: this hospital's policy trains a federated model on at least "
            f"{release.policy.fl_min_rows} rows (fl_min_rows)"
        )
    return n_rows


def check_global_model(agg: UpdateAggregate, limits: Any, rules: Any) -> None:
    """Refuse to train at a global model (the hub's) that singles out rows: a linear predictor beyond
    R's logit clamp saturates every row but the few it spares; working weights p(1 − p) or per-row
    gradient norms whose effective number of rows (Σv)²/Σv² (Kish 1965) is below k, or that fail the
    dominance rules, mean the update is carried by fewer than k rows."""
    if agg.point.eta is not None:
        design_checks.check_linear_predictor(agg.point.eta, limits.eta_bound)
    for what, v in (("working weights", agg.point.working_weights), ("per-row gradients", agg.row_norms)):
        values = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(values)) or design_checks.effective_sample_size(values) < limits.ess_limit:
            raise DisclosureRefused(
                f"{agg.name}: at the global model the hub sent, the {what} are carried by fewer than "
                f"{limits.k} rows"
            )
        dominance.check_sum(f"{agg.name}: {what} at the global model", values, rules)


def update_rule(release: Release, agg: UpdateAggregate) -> ReleasedModel:
    """A model update (module docstring); any failure refuses the release."""
    k, policy = release.k, release.policy
    n_rows = check_update_rows(release, agg)
    dc.check_glm_saturation(agg.n_params, n_rows, policy.nfilter_glm)
    dominance.check_residual_dof(n_rows, agg.n_params, policy.dominance_rules())
    if agg.update is None:
        raise InputError(f"{agg.name}: an update without DP carries its clipped Δ", field="aggregates")
    update = np.asarray(agg.update, dtype=float).ravel()
    if update.size != agg.n_params or not np.all(np.isfinite(update)):
        raise DisclosureRefused(f"{agg.name}: the update is not {agg.n_params} finite numbers")
    if not (math.isfinite(agg.clip_norm) and agg.clip_norm > 0):
        raise InputError(f"{agg.name}: the clip norm must be a positive number", field="aggregates")
    if float(np.linalg.norm(update)) > agg.clip_norm * (1 + 1e-9):
        raise DisclosureRefused(f"{agg.name}: the update is longer than its L2 clip {agg.clip_norm:g}")
    limits = policy.design_limits()
    d = agg.design
    if not _checked_before(d, limits):
        y = d.y if d.y is not None else np.zeros(d.x.shape[0])
        design_checks.check_design(d.x, list(d.columns), y, d.weights, limits)
        _remember_checked(d, limits)
    check_global_model(agg, limits, policy.dominance_rules())
    values: dict[str, Any] = {"update": update.tolist(), "clip_norm": float(agg.clip_norm)}
    values.update({str(key): float(v) for key, v in (agg.values or {}).items()})
    release.guard(agg.name, agg.persons)
    return ReleasedModel(
        n_obs=ReleasedCount.exact(n_rows, k), n_params=agg.n_params, values=finite(agg.name, values)
    )


def marginals_rule(agg: MarginalsAggregate) -> None:
    """Exact marginals of the declared columns would publish the table's cross-tabulations (a 1-row table
    publishes its row): a generator's marginals leave only with DP noise, from the DP step."""
    raise DisclosureRefused(
        f"{agg.name}: a synthetic-data generator's marginals are released only under differential "
        "privacy; add a dp: block to the study"
    )


_PROFILE_COUNTS = frozenset({"persons", "records", "numberOfUniqueIndividuals", "numberOfRecords"})


def profile_rule(release: Release, agg: ProfileAggregate) -> ReleasedProfile:
    """The catalogue profile leaves only if every count in it is 0, suppressed (``"<k"``) or at least k;
    entries (concepts, groups) whose persons count is suppressed are dropped, so no vocabulary name is
    published for fewer than k persons."""
    k = release.k

    def check(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                is_count = key in _PROFILE_COUNTS and isinstance(value, int) and not isinstance(value, bool)
                if is_count and 0 < value < k:
                    raise DisclosureRefused(f"{agg.name}: {where}.{key} is a count below {k}")
            return {key: check(value, f"{where}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            kept = [
                item for item in node if not (isinstance(item, dict) and isinstance(item.get("persons"), str))
            ]
            if len(kept) < len(node):
                release.note(f"{agg.name}{where}", "withheld", f"entries of fewer than {k} persons dropped")
            return [check(item, f"{where}[]") for item in kept]
        return node

    return ReleasedProfile(profile=check(dict(agg.profile), ""))


# Designs that passed, by the identity of their arrays: an iterative fit releases the same design (the
# same arrays, cached by the analysis) every round, and checking it once is enough. The arrays are held,
# so an id cannot be reused by another array while its entry lives.
_PASSED: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()
_PASSED_SIZE = 16


def _design_key(design: DesignEvidence, limits: Any) -> tuple[Any, ...]:
    return (id(design.x), id(design.y), id(design.weights), tuple(design.columns), limits)


def _checked_before(design: DesignEvidence, limits: Any) -> bool:
    held = _PASSED.get(_design_key(design, limits))
    return held is not None and held[0] is design.x and held[1] is design.y and held[2] is design.weights


def _remember_checked(design: DesignEvidence, limits: Any) -> None:
    _PASSED[_design_key(design, limits)] = (design.x, design.y, design.weights)
    while len(_PASSED) > _PASSED_SIZE:
        _PASSED.popitem(last=False)


def finite(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as plain JSON: finite numbers, strings, and (nested) lists of them."""

    def plain(x: Any) -> Any:
        if isinstance(x, bool | str):
            return x
        if isinstance(x, int | np.integer):
            return int(x)
        if isinstance(x, float | np.floating):
            if not math.isfinite(float(x)):
                raise InputError(f"{name}: values must be finite numbers", field="aggregates")
            return float(x)
        if isinstance(x, np.ndarray):
            return plain(x.tolist())
        if isinstance(x, list | tuple):
            return [plain(y) for y in x]
        raise InputError(f"{name}: values must be numbers, text or lists of them", field="aggregates")

    return {str(k): plain(v) for k, v in values.items()}


__all__ = [
    "RulesStep",
    "ValidateStep",
    "breakdown_rule",
    "check_update_rows",
    "count_rule",
    "model_rule",
    "naming_rule",
    "sums_rule",
    "update_rule",
]
