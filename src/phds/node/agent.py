"""The node agent: pull tasks from the hub, answer them at the node, post the results. Outbound only.

Two threads, one :class:`Agent`:

- the **poller** long-polls ``GET /nodes/me/tasks`` and hands each batch to the main thread, waiting
  until the batch is done before it polls again (so leases are not wasted on queued tasks). It never
  touches ``node.db`` or the data;
- the **main thread** (:meth:`Agent.run`) executes tasks one at a time (:func:`execute_task`), posts
  their results, and every ``approvals_interval`` seconds runs parked tasks whose study the steward
  has decided (``phds node approve`` runs in another process and writes ``node.db``), retries results
  the hub has not acknowledged (the outbox in :mod:`phds.node.taskstore`) and, every
  ``catalogue_interval`` seconds, publishes the node's dataset profile.

An unreachable hub (connection error, timeout, 5xx) is retried with exponential backoff and jitter
(0.2 s doubling to 30 s), logged once when the link goes down and once when it is back. A 401 stops
the agent with :class:`~phds.errors.AuthenticationError`. :meth:`Agent.stop` (SIGINT/SIGTERM in the
CLI) lets the current task finish, then :meth:`Agent.run` returns. The node never listens on a port.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from phds.errors import AuthenticationError, DisclosureRefused, PermissionDenied, PhdsError
from phds.node.cancellation import audit_cancelled, withdraw_cancelled
from phds.node.executor import NodeRuntime, execute_task
from phds.node.gate import GateContext
from phds.node.hub_client import HubClient, HubUnreachable
from phds.node.memory import ScopedMemory
from phds.node.secure_round import take_part, verify_last_sum
from phds.privacy.aggregates import ProfileAggregate
from phds.protocol.tasks import ResultStatus, Task, TaskResult
from phds.trust.envelopes import sign_audit_head

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentOptions:
    """How often the agent polls, checks approvals, retries and publishes."""

    poll_wait: float = 25.0
    poll_limit: int = 10
    approvals_interval: float = 0.5
    catalogue_interval: float = 3600.0  # 0 publishes only at start
    trust_interval: float = 300.0  # report the signed audit head, fetch revocations
    cancel_check_interval: float = 10.0  # ask the hub whether parked tasks' studies were cancelled
    backoff_initial: float = 0.2
    backoff_cap: float = 30.0


class Backoff:
    """Exponential backoff with jitter: the n-th failure in a row waits about ``initial · 2ⁿ``, capped."""

    def __init__(self, initial: float, cap: float, rand: Callable[[], float] = random.random) -> None:
        self.initial, self.cap, self.rand = initial, cap, rand
        self.failures = 0

    def failure(self) -> float:
        """Count a failure; the delay before the next attempt (between half and all of the step)."""
        step = min(self.cap, self.initial * float(2 ** min(self.failures, 32)))
        self.failures += 1
        return step * (0.5 + 0.5 * self.rand())

    def reset(self) -> None:
        self.failures = 0


class _Link:
    """Whether the hub is reachable, logged once per change (shared by both threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = True
        self.failures = 0

    def down(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            if self.up:
                self.up = False
                log.warning("hub unreachable (%s); retrying with backoff", reason)

    def ok(self) -> None:
        with self._lock:
            if not self.up:
                self.up = True
                log.warning("hub reachable again")


class Agent:
    """One node's agent; :meth:`run` blocks until :meth:`stop` or a fatal error."""

    def __init__(
        self,
        runtime: NodeRuntime,
        credential: str,
        options: AgentOptions | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.runtime = runtime
        self.options = options or AgentOptions()
        self.link = _Link()
        self._stop = threading.Event()
        self._batches: queue.Queue[list[Task]] = queue.Queue()
        self._batch_done = threading.Event()
        self._fatal: PhdsError | None = None
        hub_url, ca_bundle = runtime.config.node.hub_url, runtime.config.node.ca_bundle
        self._client = HubClient(hub_url, credential, transport=transport, ca_bundle=ca_bundle)
        self._poll_client = HubClient(hub_url, credential, transport=transport, ca_bundle=ca_bundle)
        self._poller = threading.Thread(target=self._poll_loop, name="phds-node-poller", daemon=True)
        self._outbox_backoff = Backoff(self.options.backoff_initial, self.options.backoff_cap)
        self._outbox_next = 0.0
        self._catalogue_next = 0.0
        self._trust_next = 0.0
        self._cancel_next = 0.0
        self._catalogue_last: str | None = None
        self._catalogue_audited: str | None = None
        self.tasks_done = 0

    # -- control ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the agent to finish the current task and return from :meth:`run` (signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Serve until stopped; raise :class:`AuthenticationError` when the hub refuses the credential."""
        name = self.runtime.config.node.name
        log.info("node %s: agent starting, hub %s", name, self.runtime.config.node.hub_url)
        self._poller.start()
        try:
            while not self._stop.is_set():
                self._housekeeping()
                try:
                    batch = self._batches.get(timeout=self.options.approvals_interval)
                except queue.Empty:
                    continue
                for task in batch:
                    if self._stop.is_set():
                        break  # the hub delivers it again when its lease expires
                    self._handle(task, resumed=False)
                self._batch_done.set()
        finally:
            self._stop.set()
            self._batch_done.set()
            self._poll_client.close()
            self._poller.join(timeout=5.0)
            self._client.close()
            log.info("node %s: agent stopped after %d task(s)", name, self.tasks_done)
        if self._fatal is not None:
            raise self._fatal

    def _fail(self, exc: PhdsError) -> None:
        if self._fatal is None:
            self._fatal = exc
            log.error("%s", exc.message)
        self._stop.set()

    # -- the poller thread ----------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_cap)
        while not self._stop.is_set():
            try:
                tasks = self._poll_client.tasks(wait=self.options.poll_wait, limit=self.options.poll_limit)
            except (AuthenticationError, PermissionDenied) as exc:
                self._fail(exc)
                return
            except PhdsError as exc:  # HubUnreachable, or a hub that does not (yet) serve tasks
                if self._stop.is_set():
                    return
                self.link.down(exc.message)
                self._stop.wait(backoff.failure())
                continue
            except Exception as exc:  # e.g. the client closed under a long poll at shutdown
                if self._stop.is_set():
                    return
                log.exception("polling for tasks failed")
                self.link.down(type(exc).__name__)
                self._stop.wait(backoff.failure())
                continue
            self.link.ok()
            backoff.reset()
            if not tasks:
                continue
            log.info("received %d task(s)", len(tasks))
            self._batch_done.clear()
            self._batches.put(tasks)
            while not self._batch_done.wait(0.2) and not self._stop.is_set():
                pass

    # -- the main thread ------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._outbox_next:
            self._flush_outbox()
        if now >= self._cancel_next:
            self._cancel_next = now + self.options.cancel_check_interval
            withdraw_cancelled(self.runtime, self._client, self.runtime.tasks.parked())
        self._run_decided()
        if now >= self._trust_next:
            self._trust_next = now + self.options.trust_interval
            self._exchange_trust()
        if now >= self._catalogue_next:
            interval = self.options.catalogue_interval
            self._catalogue_next = now + interval if interval > 0 else float("inf")
            self._publish_catalogue()

    def _handle(self, task: Task, *, resumed: bool) -> None:
        if task.secure_aggregation and task.round > 1 and not self._verify_last_sum(task):
            return  # the hub is unreachable: the task comes again
        try:
            result = execute_task(task, self.runtime, resumed=resumed)
        except Exception:
            # The node's own state failed (node.db); nothing was answered. The hub re-delivers later.
            log.exception("task %s (study %s): the node could not process it", task.id, task.study_id)
            return
        self.tasks_done += 1
        if task.secagg is not None and result.status is ResultStatus.OK:
            self._secure_round(task)
        self._post(task.study_id, result)

    def _secagg_parts(self, task: Task) -> tuple[ScopedMemory, Callable[[dict[str, Any]], None]]:
        """The study's node memory, and an audit writer of ``secagg`` entries for *task*."""

        def audit(payload: dict[str, Any]) -> None:
            self.runtime.audit.append("secagg", study_id=task.study_id, task_id=task.id, payload=payload)

        return ScopedMemory(self.runtime.memory, f"study:{task.study_id}"), audit

    def _secure_round(self, task: Task) -> None:
        """Take part in the round's secure aggregation; a failure is audited (the node dropped out)."""
        memory, audit = self._secagg_parts(task)
        try:
            take_part(task, self.runtime.key, memory, self._client, audit, stop=self._stop.is_set)
        except PhdsError as exc:
            log.warning("task %s: secure aggregation: %s", task.id, exc.message)
            audit({"stage": "failed", "reason": exc.message})

    def _verify_last_sum(self, task: Task) -> bool:
        """Recompute the last secure round's sum from its transcript before acting on it; a failure is
        audited, and the round is then refused (:func:`~phds.node.secure_round.check_secure_task`).
        False when the hub could not be reached (nothing was decided)."""
        memory, audit = self._secagg_parts(task)
        try:
            verify_last_sum(task, memory, self._client, audit)
        except HubUnreachable as exc:
            self.link.down(exc.message)
            return False
        except PhdsError as exc:
            log.warning("task %s: the last secure sum does not verify: %s", task.id, exc.message)
            audit({"stage": "verify_failed", "reason": exc.message})
        return True

    def _post(self, study_id: str, result: TaskResult) -> bool:
        """Post *result*; a final one is already in the outbox, so a failure is retried later."""
        try:
            ack = self._client.post_result(result)
        except AuthenticationError as exc:
            self._fail(exc)
            return False
        except HubUnreachable as exc:
            self.link.down(exc.message)
            self._outbox_next = time.monotonic() + self._outbox_backoff.failure()
            return False
        except PhdsError as exc:  # 4xx: the hub will never take it; do not retry forever
            log.error("the hub refused the result of task %s: %s", result.task_id, exc.message)
            ack = {"accepted": False, "refused": exc.message}
        self.link.ok()
        self._outbox_backoff.reset()
        if ack.get("cancelled"):
            audit_cancelled(self.runtime, study_id, result.task_id, "the hub did not take the answer")
        if result.status is not ResultStatus.AWAITING_APPROVAL:
            self.runtime.tasks.mark_posted(result.task_id)
            self._report_decision(study_id)
        log.info("task %s: %s posted (%s)", result.task_id, result.status.value, ack)
        return True

    def _flush_outbox(self) -> None:
        for study_id, result in self.runtime.tasks.unposted():
            if self._stop.is_set() or not self._post(study_id, result):
                return

    def _run_decided(self) -> None:
        """Run parked tasks whose study the steward has decided (and the requester has not cancelled);
        post their final results."""
        decided = [t for t in self.runtime.tasks.parked() if self.runtime.approvals.decision_for(t.study_id)]
        for task in withdraw_cancelled(self.runtime, self._client, decided):
            if self._stop.is_set():
                return
            if self.runtime.approvals.decision_for(task.study_id) is not None:
                log.info("study %s decided by the steward: running parked task %s", task.study_id, task.id)
                self._handle(task, resumed=True)

    def _report_decision(self, study_id: str) -> None:
        decision = self.runtime.approvals.decision_for(study_id)
        if decision is not None and decision.reported_at is None:
            self.runtime.approvals.mark_reported(decision.id)

    def _exchange_trust(self) -> None:
        """Report the signed audit head (a truncated log then shows at the hub) and take a newer signed
        revocation list; neither blocks the node when the hub is away."""
        runtime = self.runtime
        last = runtime.audit.head()
        try:
            revocations = self._client.revocations()
            if revocations is not None:
                runtime.verifier.accept_revocations(revocations)
            if last is not None:
                head = sign_audit_head(
                    key=runtime.key, hospital=runtime.config.node.name, seq=last[0], hash=last[1]
                )
                self._client.report_audit_head(head)
        except AuthenticationError as exc:
            self._fail(exc)
        except PhdsError as exc:
            log.warning("trust exchange with the hub failed (%s); retrying later", exc.message)

    def _publish_catalogue(self) -> None:
        """Profile the first OMOP source and publish it when it changed; audited as released first."""
        data = self.runtime.data
        if not data.omop_names:
            return
        try:
            from phds.omop.profile import build_profile
        except ImportError:  # pragma: no cover - an older installation without profiles
            log.info("no dataset profiler installed; not publishing a catalogue entry")
            return
        source = data.omop_names[0]
        try:
            profile = build_profile(data.omop(source), min_cell_count=self.runtime.policy.min_cell_count)
            body: dict[str, Any] = json.loads(profile.to_json())
        except Exception:
            log.exception("could not profile OMOP source %s; the catalogue is not updated", source)
            return
        text = json.dumps(body, sort_keys=True)
        if text == self._catalogue_last:
            return
        if text != self._catalogue_audited:
            try:  # through the gate, like every release: audited there as value_released
                released = self.runtime.gate.release(
                    GateContext("", "catalogue", "network", "catalogue.profile"),
                    [ProfileAggregate("profile", body)],
                )
            except DisclosureRefused as exc:
                log.error("catalogue profile refused by the gate: %s", exc.message)
                return
            body = released.payload["values"]["profile"]["profile"]
            self._catalogue_audited = text
        try:
            self._client.publish_catalogue(body)
        except AuthenticationError as exc:
            self._fail(exc)
            return
        except PhdsError as exc:
            log.warning("catalogue not published (%s); retrying at the next interval", exc.message)
            self._catalogue_next = time.monotonic() + self._outbox_backoff.failure()
            return
        self._catalogue_last = text
        log.info("catalogue entry published from OMOP source %s", source)


__all__ = ["Agent", "AgentOptions", "Backoff"]
