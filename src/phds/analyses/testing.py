"""Run an analysis over in-memory hospitals with the real node path: for analysis authors and tests.

:func:`run_federation` is PHDS's counterpart of vantage6's ``MockAlgorithmClient``, but nothing in it is
mocked: each hospital is a real node runtime (policy, gate, overlap guard, audit log and memory in its
own ``node.db``) answering real :class:`~phds.protocol.tasks.Task` objects through
:func:`phds.node.executor.execute_task`, and the rounds are driven as the hub's runner drives them
(``combine`` on what the gates released; hospitals that refuse drop out). Only the network is missing.

    from phds.analyses.testing import run_federation
    run = run_federation("stats.glm", {"table": {"dataset": "cnsim"}, "formula": "LAB_HDL ~ GENDER"},
                         {"site1": {"cnsim": "CNSIM1.csv"}, "site2": {"cnsim": "CNSIM2.csv"}})
    run.result["coefficients"]

With ``secure_aggregation=True`` each round whose :meth:`~phds.analyses.base.Analysis.secure_layout`
is not None gets a session as the hub would open it; every node checks it, turns its release into the
layout's vector and the federation runs the real protocol among the nodes (masks, shares, fixed point;
:func:`phds.node.secure_round.sum_in_process`), then :meth:`~phds.analyses.base.Analysis.combine_secure`.
Only HTTP is missing. The run's ``releases`` hold what each gate released into the protocol (read from
the node's audit log, for tests); a node that cannot encode its release (beyond the layout's clip) is
refused.

This module imports the node lazily: the hub and the SDK never load it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phds.analyses.base import (
    Analysis,
    Final,
    NextRound,
    SecureLayout,
    check_privacy_options,
    released_budgets,
)
from phds.analyses.registry import get_analysis
from phds.errors import InputError
from phds.protocol.trust import OrganisationAttestation
from phds.secagg.messages import SessionConfig, round_session_id
from phds.trust import KeyPair, NetworkTrust, sign_spec

if TYPE_CHECKING:
    from phds.node.executor import NodeRuntime
    from phds.node.policy import Policy

MAX_ROUNDS = 200


@dataclass
class FederationRun:
    """The outcome: the final result (or None), each hospital's released payloads, and refusals."""

    result: dict[str, Any] | None
    notes: list[str]
    rounds: int
    releases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    timings: list[RoundTiming] = field(default_factory=list)
    secure_layouts: dict[int, SecureLayout] = field(default_factory=dict)  # rounds combined from sums


@dataclass
class RoundTiming:
    """One round's cost: per hospital, its whole answer and its analysis's own compute (seconds), and the
    hub's combine. Benchmarks report the platform's share as the difference."""

    answers: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    combine: float = 0.0


def everything_auto() -> Policy:
    """The network default thresholds with one rule that runs every analysis without a steward."""
    from phds.node.policy import Policy, PolicyRule

    return Policy(rules=[PolicyRule(name="everything", analyses=["*"], approval="auto")])


def node_runtime(
    name: str,
    state_dir: Path,
    *,
    tabular: Mapping[str, Path | str] | None = None,
    omop: Mapping[str, str] | None = None,
    policy: Policy | None = None,
    network_keys: Mapping[str, str] | None = None,
) -> NodeRuntime:
    """A real node runtime (policy, gate, audit log, memory in ``state_dir/node.db``) without an agent."""
    from phds.node.config import NodeConfig
    from phds.node.executor import NodeRuntime

    config = NodeConfig.model_validate(
        {
            "node": {"name": name, "hub_url": "http://localhost", "environment": "development",
                     "credential_file": state_dir / "credential", "state_dir": state_dir},
            "sources": {
                "tabular": [{"name": d, "path": str(p)} for d, p in (tabular or {}).items()],
                "omop": [{"name": s, "url": u} for s, u in (omop or {}).items()],
            },
            "policy": (policy or everything_auto()).model_dump(),
            "trust": {"network_keys": dict(network_keys or {})},
        }
    )  # fmt: skip
    return NodeRuntime.open(config)


@dataclass
class Requester:
    """A requester organisation with its key and the operator's attestation (from a network trust key)."""

    organisation: str
    category: str
    key: KeyPair
    attestation: OrganisationAttestation


@dataclass
class TrustSetup:
    """An operator's network trust key and the requesters it attested, for federations that sign studies."""

    folder: Path
    trust: NetworkTrust = field(init=False)
    requesters: dict[str, Requester] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trust = NetworkTrust.init(self.folder)

    def requester(self, organisation: str, category: str = "academic") -> Requester:
        """The attested requester *organisation* (created on first use)."""
        if organisation not in self.requesters:
            key = KeyPair.generate()
            attestation = self.trust.sign_organisation(organisation, category, key.public_key_b64)
            self.requesters[organisation] = Requester(organisation, category, key, attestation)
        return self.requesters[organisation]


@dataclass
class Federation:
    """In-memory hospitals (real node runtimes) that can run several studies, as a network would.

    Keep one federation to run a sequence of studies against the same node memories (the overlap
    guard, query budgets and fixed grids remember across studies, as they do in production). Build it
    from ``{hospital: {dataset: path}}`` or pass ready ``runtimes``.
    """

    hospitals: Mapping[str, Mapping[str, Path | str]] = field(default_factory=dict)
    policy: Policy | None = None
    omop: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    folder: Path | None = None
    runtimes: dict[str, NodeRuntime] = field(default_factory=dict)
    owns_runtimes: bool = True
    signed: bool = False
    trust: TrustSetup | None = None
    _temporary: Path | None = None

    def __post_init__(self) -> None:
        """With ``signed=True`` an operator's trust key attests the requesters, every study is signed and
        the nodes pin the trust key and run only signed studies, as in production."""
        if self.runtimes:
            self.owns_runtimes = False
            return
        if self.folder is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="phds-federation-"))
        base = Path(self.folder or self._temporary or ".")
        if self.signed:
            self.trust = TrustSetup(base / "network-trust")
        keys = self.trust.trust.public_keys() if self.trust else None
        for name in sorted(set(self.hospitals) | set(self.omop)):
            self.runtimes[name] = node_runtime(
                name, base / name, tabular=self.hospitals.get(name), omop=self.omop.get(name),
                policy=self.policy, network_keys=keys,
            )  # fmt: skip

    def run(
        self,
        analysis: str | Analysis[Any],
        params: Mapping[str, Any],
        *,
        requester: str = "acme",
        category: str = "academic",
        service_type: str = "analytical_study",
        tamper: Any = None,
        dp: Mapping[str, Any] | None = None,
        secure_aggregation: bool = False,
    ) -> FederationRun:
        """Run one study to its end. *tamper*, if given, is called with each task before a node sees it
        and may return a changed task: the malicious-hub harness of the attack suite. *dp* is the study
        file's ``dp:`` block; *secure_aggregation* combines the rounds that have a secure layout from
        their sums only (module docstring)."""
        from phds.node.executor import execute_task
        from phds.protocol.tasks import ResultStatus, Task, TaskRequester

        chosen = analysis if isinstance(analysis, Analysis) else get_analysis(analysis)
        parsed = chosen.parse_params(dict(params))
        chosen.check_at_hub(parsed)
        check_privacy_options(chosen, dp=dp is not None, secure_aggregation=secure_aggregation)
        study_id = str(uuid.uuid4())
        answering = sorted(self.runtimes)
        signed = None
        if self.trust is not None:
            attested = self.trust.requester(requester, category)
            spec: dict[str, Any] = {
                "title": "federation", "purpose": "testing", "organisation": requester,
                "service_type": service_type, "hospitals": answering,
                "analysis": {"name": chosen.name, "version": chosen.version, "params": dict(params)},
            }  # fmt: skip
            if dp is not None:
                spec["dp"] = dict(dp)
            if secure_aggregation:
                spec["secure_aggregation"] = True
            signed = sign_spec(spec, attested.key, attested.attestation)
        run = FederationRun(None, [], 0, {h: [] for h in answering})
        state: Mapping[str, Any] = {}
        for round_no in range(1, MAX_ROUNDS + 1):
            run.rounds = round_no
            try:  # the hub fixes the round's secure sum before any node answers
                layout = chosen.secure_layout(parsed, round_no, state) if secure_aggregation else None
            except InputError as exc:
                run.error = f"secure layout failed: {exc.message}"
                return run
            session = None
            if layout is not None:  # as the hub opens the round's session
                session = SessionConfig(
                    session_id=round_session_id(study_id, round_no), participants=answering,
                    vector_length=layout.length, scale=layout.scale, clip=layout.clip,
                )  # fmt: skip
            released: dict[str, dict[str, Any]] = {}
            timing = RoundTiming()
            run.timings.append(timing)
            for hospital in answering:
                who = TaskRequester(organisation=requester, category=category)
                task = Task(
                    id=str(uuid.uuid4()), study_id=study_id, study_title="federation",
                    study_purpose="testing", service_type=service_type, requester=who, hospital=hospital,
                    analysis=chosen.name, analysis_version=chosen.version,
                    params=dict(params), round=round_no, state=dict(state), attempt=1,
                    lease_expires_at=datetime.now(UTC) + timedelta(minutes=5), signed_spec=signed,
                    dp=dict(dp) if dp is not None else None, secure_aggregation=secure_aggregation,
                    secagg=session,
                )  # fmt: skip
                if tamper is not None:
                    task = tamper(task) or task
                started = time.perf_counter()
                answer = execute_task(task, self.runtimes[hospital])
                timing.answers[hospital] = time.perf_counter() - started
                timing.compute[hospital] = answer.compute_seconds
                if answer.status is ResultStatus.OK:
                    payload = answer.payload
                    if session is not None:  # what the gate released into the protocol (never sent)
                        payload = _audited_release(self.runtimes[hospital], task)
                    released[hospital] = payload
                    run.releases[hospital].append(payload)
                else:
                    run.refused[hospital] = f"{answer.status.value}: {answer.reason}"
            answering = sorted(released)
            if not released:
                run.error = f"no hospital answered round {round_no}"
                return run
            started = time.perf_counter()
            try:
                if layout is None:
                    outcome = chosen.combine(parsed, round_no, state, dict(sorted(released.items())))
                else:
                    assert session is not None  # the real protocol among the answering nodes
                    sums, contributors = self._secure_sum(session, study_id, round_no, answering)
                    outcome = chosen.combine_secure(
                        parsed, round_no, state, layout.unflatten(sums), contributors
                    )
                    run.secure_layouts[round_no] = layout
                timing.combine = time.perf_counter() - started
            except InputError as exc:
                run.error = f"combine failed: {exc.message}"
                return run
            if isinstance(outcome, Final):
                run.result, run.notes = dict(outcome.result), list(outcome.notes)
                budgets = released_budgets(released)
                if budgets:  # as the hub adds them
                    run.result["dp_budget"] = budgets
                return run
            assert isinstance(outcome, NextRound)
            state = outcome.state
        run.error = f"the analysis did not finish in {MAX_ROUNDS} rounds"
        return run

    def _secure_sum(
        self, session: SessionConfig, study_id: str, round_no: int, answering: list[str]
    ) -> tuple[list[float], list[str]]:
        from phds.node.memory import ScopedMemory
        from phds.node.secure_round import sum_in_process

        config = (
            session
            if answering == session.participants
            else session.model_copy(update={"participants": answering})
        )
        parties = {h: (self.runtimes[h].key, ScopedMemory(self.runtimes[h].memory, f"study:{study_id}"))
                   for h in answering}  # fmt: skip
        return sum_in_process(config, parties, round_no)

    def close(self) -> None:
        """Close the runtimes this federation opened; remove its temporary folder, if it made one."""
        if self.owns_runtimes:
            for runtime in self.runtimes.values():
                runtime.close()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _audited_release(runtime: Any, task: Any) -> dict[str, Any]:
    """The payload of the node's ``value_released`` audit entry for *task*: under secure aggregation
    it stays at the node (tests look at it here; only its masked vector is summed)."""
    for entry in reversed(runtime.audit.entries(task.study_id)):
        if entry.kind == "value_released" and entry.task_id == task.id:
            return dict(entry.payload)
    raise InputError(f"the node audited no release for task {task.id}", field="task")


def run_federation(
    analysis: str | Analysis[Any],
    params: Mapping[str, Any],
    tables: Mapping[str, Mapping[str, Path | str]],
    *,
    policy: Policy | None = None,
    folder: Path | None = None,
    omop: Mapping[str, Mapping[str, str]] | None = None,
    **options: Any,
) -> FederationRun:
    """Run one study over hospitals given as ``{hospital: {dataset: CSV or Parquet path}}`` and/or
    ``omop={hospital: {source: store URL}}`` (e.g. ``{"h1": {"cdm": "duckdb:///h1.duckdb"}}``)."""
    with Federation(tables, policy=policy, omop=omop or {}, folder=folder) as federation:
        return federation.run(analysis, params, **options)


__all__ = [
    "Federation",
    "FederationRun",
    "RoundTiming",
    "everything_auto",
    "node_runtime",
    "run_federation",
]
