"""The hospital's policy: which analyses run, for whom, for which service, with which approval and limits.

The policy is the ``[policy]`` table of ``node.toml``. Its rules are read top to bottom and the first
rule matching a request decides it (firewall style), so a decision is deterministic and names its rule.
A request that no rule matches is refused: the default is deny. A rule that allows without saying how
is ``manual``: only analyses a steward deliberately lists as ``auto`` run without a person's approval.

Thresholds may only be tightened relative to the network defaults of DESIGN.md: ``min_cell_count`` ≥ 5
(OHDSI minCellCount; e.g. 11 as PCORnet), ``nfilter_glm`` ≤ 0.33 (DataSHIELD), ``nfilter_tab`` ≥ the
minimum cell count. A looser value is a :class:`~phds.errors.ConfigError` when the configuration loads.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from phds.privacy.design_checks import DesignLimits
from phds.privacy.disclosure import NETWORK_MIN_CELL_COUNT, NETWORK_NFILTER_GLM
from phds.privacy.dominance import DominanceRules
from phds.protocol.privacy import ClippingBounds

log = logging.getLogger(__name__)

FL_MIN_ROWS = 50
"""The default ``fl_min_rows``: a model update is a function of the node's rows, and with few of them a
clipped update is close to one row's gradient (a one-row node's update *is* its row's gradient); 50
rows keep the update an average (a policy may raise it)."""

RequesterCategory = Literal["academic", "public", "non-profit", "sme", "industry"]
ServiceType = Literal[
    "feasibility", "analytical_study", "research", "clinical_trial_support", "innovation", "synthetic_dataset"
]
ApprovalMode = Literal["auto", "manual"]
CategoryPattern = Literal["*", "academic", "public", "non-profit", "sme", "industry"]
ServicePattern = Literal[
    "*",
    "feasibility",
    "analytical_study",
    "research",
    "clinical_trial_support",
    "innovation",
    "synthetic_dataset",
]

CATEGORIES: tuple[str, ...] = ("academic", "public", "non-profit", "sme", "industry")
SERVICE_TYPES: tuple[str, ...] = (
    "feasibility",
    "analytical_study",
    "research",
    "clinical_trial_support",
    "innovation",
    "synthetic_dataset",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyRule(_Strict):
    """One line of the policy. Every list matches ``"*"``; analyses also match globs (``"stats.*"``).

    An analysis pattern may pin a version: ``"glm.fit@2"`` matches only version 2.
    """

    name: str = Field("", description="Shown in every decision this rule makes.")
    effect: Literal["allow", "deny"] = Field("allow", description="Allow or refuse what matches.")
    analyses: list[str] = Field(min_length=1, description="Registry names or globs, optionally @version.")
    organisations: list[str] = Field(["*"], min_length=1, description="Requesting organisation ids.")
    categories: list[CategoryPattern] = Field(["*"], min_length=1, description="Requester categories.")
    service_types: list[ServicePattern] = Field(["*"], min_length=1, description="Service types.")
    approval: ApprovalMode = Field("manual", description="auto runs at once; manual waits for a steward.")

    def matches(self, request: TaskRequest) -> bool:
        """True when every list of this rule admits *request*."""
        return (
            any(_analysis_matches(p, request.analysis, request.analysis_version) for p in self.analyses)
            and ("*" in self.organisations or request.requester_org in self.organisations)
            and ("*" in self.categories or request.requester_category in self.categories)
            and ("*" in self.service_types or request.service_type in self.service_types)
        )


def _analysis_matches(pattern: str, name: str, version: str) -> bool:
    pat_name, _, pat_version = pattern.partition("@")
    if pat_version and pat_version != version:
        return False
    return fnmatch.fnmatchcase(name, pat_name)


class DpLoss(_Strict):
    """A privacy loss in a policy: ``epsilon`` (with the policy's δ) or ``rho`` (zCDP), exactly one."""

    epsilon: float | None = Field(None, gt=0, description="As (ε, δ)-DP with the policy's delta.")
    rho: float | None = Field(None, gt=0, description="As ρ-zCDP.")

    @model_validator(mode="after")
    def _one(self) -> DpLoss:
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError("give exactly one of epsilon or rho")
        for value in (self.epsilon, self.rho):
            if value is not None and not math.isfinite(value):
                raise ValueError("must be a finite number")
        return self


class StudyMatch(_Strict):
    """Which studies a requirement covers; lists match as in :class:`PolicyRule` (``"*"``, globs)."""

    name: str = ""
    analyses: list[str] = Field(["*"], min_length=1)
    organisations: list[str] = Field(["*"], min_length=1)
    categories: list[CategoryPattern] = Field(["*"], min_length=1)
    service_types: list[ServicePattern] = Field(["*"], min_length=1)

    def matches(self, request: TaskRequest) -> bool:
        return PolicyRule(
            analyses=self.analyses,
            organisations=self.organisations,
            categories=self.categories,
            service_types=self.service_types,
        ).matches(request)


class DpRequirement(StudyMatch, DpLoss):
    """``[[policy.dp.require]]``: studies this matches run under DP, spending at most this loss each."""

    epsilon: float | None = Field(None, gt=0, description="The most ε one study may spend here.")
    rho: float | None = Field(None, gt=0, description="The most ρ one study may spend here.")


class DifferentialPrivacy(_Strict):
    """``[policy.dp]``: when DP is required, with which δ, mechanism and bounds, and the budgets.

    Exact answers stay the default: DP applies when a ``require`` entry matches or a study asks for it;
    then the node spends the smaller of the two losses. Budgets are per dataset: ``requester_budget``
    for each requesting organisation, ``network_budget`` for all of them together, so colluding
    organisations share one ceiling. Defaults: δ = 10⁻⁶, far below 1/n for any hospital's dataset
    (Dwork & Roth 2014, §2.3: δ must be much smaller than 1/n); budgets ε = 5 per organisation and 10
    for the network, within the range of deployed systems that Dwork, Kohli & Mulligan (2019, "Differential
    Privacy in Practice: Expose your Epsilons!") report. A hospital sets its own.
    """

    require: list[DpRequirement] = Field(default_factory=list, description="Studies that must use DP.")
    delta: float = Field(1e-6, gt=0, le=1e-4, description="δ of every (ε, δ) statement.")
    mechanism: Literal["discrete_gaussian", "discrete_laplace"] = Field(
        "discrete_gaussian", description="Noise for counts when a study does not choose."
    )
    requester_budget: DpLoss = Field(default_factory=lambda: DpLoss(epsilon=5.0))
    network_budget: DpLoss = Field(default_factory=lambda: DpLoss(epsilon=10.0))
    bounds: ClippingBounds = Field(
        default_factory=dict, description="Clipping bounds per variable; they replace a study's bounds."
    )

    def requirement(self, request: TaskRequest) -> DpRequirement | None:
        """The first ``require`` entry matching *request*, if any."""
        return next((r for r in self.require if r.matches(request)), None)


class DominanceSettings(_Strict):
    """``[policy.dominance]``: N-K and p% rules for sums, and residual degrees of freedom for models.

    Defaults are ACRO's (the SACRO output checker of the UK trusted research environments). A policy may
    only tighten them: a smaller ``nk_k``, a larger ``p_ratio`` or ``min_dof``.
    """

    nk_n: int = Field(2, ge=1, le=10, description="N of the N-K rule: the largest contributions summed.")
    nk_k: float = Field(0.9, gt=0, le=0.9, description="Refuse when the top N carry more than this share.")
    p_ratio: float = Field(0.1, ge=0.1, lt=1, description="p% rule: the rest must be at least p × largest.")
    min_dof: int = Field(10, ge=10, description="Residual degrees of freedom a model needs at least.")


class DesignSettings(_Strict):
    """``[policy.design]``: when a model design isolates rows (see phds.privacy.design_checks)."""

    max_leverage: float | None = Field(None, gt=0, le=1, description="Hat value bound; default from k.")
    eta_bound: float | None = Field(None, gt=0, description="Bound on |linear predictor| at a hub β.")
    cross_classification: Literal["pairwise", "full"] = Field(
        "pairwise", description="pairwise: the cells the released sums contain; full: every joint cell."
    )


class QueryBudget(_Strict):
    """``[policy.query_budget]``: studies per requester and dataset per period, and repeats (SHRINE)."""

    max_queries: int | None = Field(None, ge=1, description="Studies per requester, dataset and period.")
    period_days: float = Field(30.0, gt=0, description="The period of max_queries, in days.")
    max_repeats: int | None = Field(None, ge=1, description="Studies with the identical query, at most.")


class BenchmarkingSettings(_Strict):
    """``[policy.benchmarking]``: how this hospital appears in benchmarking results (``benchmarking.*``).

    By default a hospital is shown under a pseudonym to every requester except its own organisation; it is
    named to all only when *every* participating hospital sets ``allow_names``. The gate releases these
    two facts, read from this policy, in each benchmarking payload (signed by the node), so neither an
    analysis nor the hub can claim a consent the hospital did not give.
    """

    allow_names: bool = Field(
        False, description="Let benchmarking results name this hospital (only if every hospital allows)."
    )
    own_organisations: list[str] = Field(
        default_factory=list,
        description="Requesting organisations this hospital belongs to: their results name it to them.",
    )


class Policy(_Strict):
    """The ``[policy]`` table; :meth:`decide` answers one task request."""

    min_cell_count: int = Field(
        NETWORK_MIN_CELL_COUNT, description="Counts below this leave as '<k'; at least the network's 5."
    )
    release_zero_counts: bool = Field(True, description="Release 0 exactly (OHDSI); false hides 0 too.")
    nfilter_glm: float = Field(NETWORK_NFILTER_GLM, description="Max parameters per observation, ≤ 0.33.")
    nfilter_tab: int | None = Field(None, description="Min rows per binary level; default min_cell_count.")
    differencing_guard: bool = Field(True, description="Refuse counts of near-identical cohorts.")
    fl_min_rows: int = Field(
        FL_MIN_ROWS,
        ge=NETWORK_MIN_CELL_COUNT,
        description="Federated learning: the fewest training rows a node trains a round on.",
    )
    discrete_max_levels: int = Field(
        10, ge=2, le=50, description="A variable with at most this many values is gated as a count."
    )
    dominance: DominanceSettings = Field(default_factory=DominanceSettings)
    design: DesignSettings = Field(default_factory=DesignSettings)
    query_budget: QueryBudget = Field(default_factory=QueryBudget)
    dp: DifferentialPrivacy = Field(default_factory=DifferentialPrivacy)
    benchmarking: BenchmarkingSettings = Field(default_factory=BenchmarkingSettings)
    secure_aggregation: list[StudyMatch] = Field(
        default_factory=list,
        description="[[policy.secure_aggregation]]: studies that must combine by secure aggregation.",
    )
    rules: list[PolicyRule] = Field(default_factory=list, description="First match decides; none: refuse.")

    @field_validator("min_cell_count")
    @classmethod
    def _min_cell_count(cls, v: int) -> int:
        if v < NETWORK_MIN_CELL_COUNT:
            raise ValueError(
                f"{v} is below the network minimum cell count {NETWORK_MIN_CELL_COUNT} (OHDSI "
                "minCellCount); a policy may raise it (e.g. 11 as PCORnet), never lower it"
            )
        return v

    @field_validator("nfilter_glm")
    @classmethod
    def _nfilter_glm(cls, v: float) -> float:
        if not (0 < v <= NETWORK_NFILTER_GLM):
            raise ValueError(
                f"{v} must be above 0 and at most the network's {NETWORK_NFILTER_GLM} (DataSHIELD "
                "nfilter.glm); a policy may only lower it"
            )
        return v

    @model_validator(mode="after")
    def _nfilter_tab(self) -> Policy:
        if self.nfilter_tab is not None and self.nfilter_tab < self.min_cell_count:
            raise ValueError(
                f"nfilter_tab {self.nfilter_tab} is below min_cell_count {self.min_cell_count}; "
                "binary levels need at least the minimum cell count"
            )
        return self

    @property
    def effective_nfilter_tab(self) -> int:
        """The minimum rows per level of a binary variable (defaults to the minimum cell count)."""
        return self.nfilter_tab if self.nfilter_tab is not None else self.min_cell_count

    def dominance_rules(self) -> DominanceRules:
        """The dominance rules in force (ACRO defaults, or tighter)."""
        d = self.dominance
        return DominanceRules(nk_n=d.nk_n, nk_k=d.nk_k, p_ratio=d.p_ratio, min_dof=d.min_dof)

    def design_limits(self) -> DesignLimits:
        """The design-isolation limits in force for this policy's minimum cell count."""
        base = DesignLimits(
            k=self.min_cell_count, max_levels=self.discrete_max_levels, rules=self.dominance_rules()
        )
        leverage = self.design.max_leverage
        eta = self.design.eta_bound
        return DesignLimits(
            k=base.k,
            max_levels=base.max_levels,
            max_leverage=min(base.leverage_limit, leverage) if leverage is not None else None,
            eta_bound=min(base.eta_bound, eta) if eta is not None else base.eta_bound,
            rules=base.rules,
            cross_classification=self.design.cross_classification,
        )

    def matching_rule(self, request: TaskRequest) -> tuple[int, PolicyRule] | None:
        """The first rule matching *request* and its number (from 1), or None: the rule that decides."""
        return next(((i, rule) for i, rule in enumerate(self.rules, start=1) if rule.matches(request)), None)

    def decide(self, request: TaskRequest) -> Decision:
        """Decide *request* by the first matching rule; no match refuses. Pure and deterministic."""
        matched = self.matching_rule(request)
        if matched is not None:
            index, rule = matched
            label = rule_label(index, rule)
            what = (
                f"{request.analysis}@{request.analysis_version} for {request.requester_org} "
                f"({request.requester_category}, {request.service_type})"
            )
            if rule.effect == "deny":
                decision = Decision(allowed=False, needs_approval=False, reason=f"{label} denies {what}")
            elif rule.approval == "auto":
                decision = Decision(
                    allowed=True, needs_approval=False, reason=f"{label} allows {what} automatically"
                )
            else:
                decision = Decision(
                    allowed=True, needs_approval=True, reason=f"{label} allows {what} after steward approval"
                )
        else:
            decision = Decision(
                allowed=False,
                needs_approval=False,
                reason=(
                    f"no policy rule allows {request.analysis}@{request.analysis_version} for "
                    f"{request.requester_org} ({request.requester_category}, {request.service_type}); "
                    "the default is to refuse"
                ),
            )
        log.info("study %s task %s: %s", request.study_id, request.task_id, decision.reason)
        return decision


def rule_label(index: int, rule: PolicyRule) -> str:
    """How decisions name a rule: ``rule 2 (feasibility counts)``."""
    return f"rule {index}" + (f" ({rule.name})" if rule.name else "")


class TaskRequest(_Strict):
    """What the node knows about a task when it decides: who asks, for what, and in which round.

    The requester's organisation and category come from the hub; until requester credentials are
    signed end to end, a compromised hub could misstate them (the steward sees them when approving).
    """

    study_id: str = Field(min_length=1)
    task_id: str = ""
    analysis: str = Field(min_length=1)
    analysis_version: str = "1"
    requester_org: str = Field(min_length=1)
    requester_category: RequesterCategory
    service_type: ServiceType
    round: int = Field(1, ge=1)


class Decision(_Strict):
    """The policy's answer; ``reason`` names the rule that decided."""

    allowed: bool
    needs_approval: bool
    reason: str


__all__ = [
    "CATEGORIES",
    "SERVICE_TYPES",
    "ApprovalMode",
    "BenchmarkingSettings",
    "Decision",
    "DesignSettings",
    "DifferentialPrivacy",
    "DominanceSettings",
    "DpLoss",
    "DpRequirement",
    "Policy",
    "PolicyRule",
    "QueryBudget",
    "RequesterCategory",
    "ServiceType",
    "StudyMatch",
    "TaskRequest",
    "rule_label",
]
