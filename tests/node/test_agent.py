"""The node agent against a real hub on a loopback port: enrol, pull, execute, post; backoff; 401."""

from __future__ import annotations

import csv
import json
import logging
import math
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from phds.errors import AuthenticationError
from phds.hub.testing import enrolment_token
from phds.node.agent import Agent, AgentOptions, Backoff
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import load_node_config
from phds.node.credential import read_credential
from phds.node.executor import NodeRuntime

cli = CliRunner()
FAST = AgentOptions(
    poll_wait=2.0, approvals_interval=0.1, catalogue_interval=0, backoff_initial=0.05, backoff_cap=0.5
)


class RunningNode:
    """An agent in a thread; its runtime is opened in that thread (SQLite connections are per thread)."""

    def __init__(self, toml: Path, options: AgentOptions = FAST, credential: str | None = None) -> None:
        self.config = load_node_config(toml)
        self.credential = (
            credential
            or read_credential(
                self.config.node.credential_file,
                hospital=self.config.node.name,
                hub_url=self.config.node.hub_url,
            ).credential
        )
        self.options = options
        self.agent: Agent | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"node-{self.config.node.name}", daemon=True)
        self.thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        runtime = NodeRuntime.open(self.config)
        try:
            self.agent = Agent(runtime, self.credential, self.options)
            self._ready.set()
            self.agent.run()
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self._ready.set()
            runtime.close()

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def audit(self) -> tuple[list[Any], bool]:
        db = NodeDatabase(self.config.db_path)
        try:
            log = AuditLog(db)
            return log.entries(), log.verify().ok
        finally:
            db.close()


@pytest.fixture
def nodes() -> Iterator[list[RunningNode]]:
    started: list[RunningNode] = []
    yield started
    for node in started:
        node.stop()


def _enrol(app: typer.Typer, toml: Path, token: str, *extra: str) -> Any:
    return cli.invoke(app, ["node", "enrol", "--config", str(toml), "--token", token, *extra])


def _lab_tsc(paths: list[Path]) -> np.ndarray:
    values: list[float] = []
    for path in paths:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                raw = row["LAB_TSC "]  # the CNSIM header carries a trailing space
                if raw.strip():
                    values.append(float(raw))
    return np.array(values)


def test_three_nodes_answer_noop_and_mean_variance_equal_to_numpy_on_the_pooled_files(
    node_cli_app: typer.Typer,
    live_hub: Any,
    nodes: list[RunningNode],
    tmp_path: Path,
    shared_data: Path,
    node_toml_factory: Callable[..., Path],
) -> None:
    hospitals = ["h1", "h2", "h3"]
    live_hub.start()
    live_hub.network(hospitals)
    files = [shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv" for i in (1, 2, 3)]
    for hospital, path in zip(hospitals, files, strict=True):
        toml = node_toml_factory(
            tmp_path / hospital, name=hospital, hub_url=live_hub.url, tabular={"cnsim": path}
        )
        result = _enrol(node_cli_app, toml, enrolment_token(live_hub.store, hospital))
        assert result.exit_code == 0, result.output
        cred_file = load_node_config(toml).node.credential_file
        assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
        nodes.append(RunningNode(toml))

    noop = live_hub.submit("uni-a", hospitals, "system.noop", {})
    done = live_hub.await_study("uni-a", noop["id"])
    assert done["state"] == "completed", done
    assert sorted(done["result"]["attribution"]["answered"]) == hospitals

    params = {"dataset": "cnsim", "variable": "LAB_TSC"}
    study = live_hub.submit("uni-a", hospitals, "stats.mean_variance", params)
    done = live_hub.await_study("uni-a", study["id"])
    assert done["state"] == "completed", done
    x = _lab_tsc(files)
    result = done["result"]
    assert result["n"] == len(x)
    assert math.isclose(result["mean"], float(x.mean()), rel_tol=1e-12)
    assert math.isclose(result["variance"], float(x.var(ddof=1)), rel_tol=1e-12)

    for node in nodes:
        node.stop()
        assert node.error is None
        entries, ok = node.audit()
        assert ok
        released = [e for e in entries if e.kind == "value_released" and e.study_id == study["id"]]
        assert [sorted(e.payload["values"]) for e in released] == [["missing", "moments"], ["moments"]]


def test_a_study_waits_for_the_steward_and_runs_once_approved_also_after_a_restart(
    node_cli_app: typer.Typer, live_hub: Any, nodes: list[RunningNode], tmp_path: Path, shared_data: Path,
    node_toml_factory: Callable[..., Path],
) -> None:  # fmt: skip
    live_hub.start()
    live_hub.network(["h1"])
    cnsim = shared_data / "tabular" / "datashield" / "CNSIM" / "CNSIM1.csv"
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url, tabular={"cnsim": cnsim})
    assert _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1")).exit_code == 0
    first = RunningNode(toml)
    params = {"dataset": "cnsim", "variable": "LAB_HDL"}
    study = live_hub.submit("pharma-y", ["h1"], "stats.mean_variance", params)
    waiting = live_hub.await_study("pharma-y", study["id"],
        lambda v: v["hospitals"][0]["state"] == "awaiting_approval",
    )  # fmt: skip
    assert waiting["state"] not in {"completed", "partially_completed", "rejected", "failed"}
    first.stop()  # the parked task must survive a restart of the node

    listed = cli.invoke(node_cli_app, ["node", "approvals", "--config", str(toml), "--json"])
    assert [p["study_id"] for p in json.loads(listed.output)] == [study["id"]]
    approved = cli.invoke(
        node_cli_app, ["node", "approve", study["id"], "--config", str(toml), "--as", "Dr Jones"]
    )
    assert approved.exit_code == 0, approved.output
    nodes.append(RunningNode(toml))
    done = live_hub.await_study("pharma-y", study["id"])
    assert done["state"] == "completed", done

    # A second study is rejected by the steward while the node runs; the requester reads the reason.
    other = live_hub.submit("pharma-y", ["h1"], "stats.mean_variance", params)
    live_hub.await_study("pharma-y", other["id"], lambda v: v["hospitals"][0]["state"] == "awaiting_approval")
    rejected = cli.invoke(
        node_cli_app,
        ["node", "reject", other["id"], "--reason", "outside our ethics approval", "--config", str(toml)],
    )
    assert rejected.exit_code == 0, rejected.output
    final = live_hub.await_study("pharma-y", other["id"])
    assert final["state"] == "rejected"
    assert "outside our ethics approval" in (final["hospitals"][0]["reason"] or "")

    nodes[0].stop()
    db = NodeDatabase(load_node_config(toml).db_path)
    try:
        from phds.node.approvals import ApprovalStore

        assert ApprovalStore(AuditLog(db)).unreported() == []
    finally:
        db.close()


def test_the_agent_backs_off_while_the_hub_is_down_and_carries_on_when_it_is_back(
    node_cli_app: typer.Typer, live_hub: Any, nodes: list[RunningNode], tmp_path: Path,
    node_toml_factory: Callable[..., Path], caplog: pytest.LogCaptureFixture, wait: Callable[..., Any],
) -> None:  # fmt: skip
    live_hub.network(["h1"])
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url)
    # Enrol while the hub is down: refused clearly, nothing written.
    down = _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1"))
    assert down.exit_code != 0 and "cannot reach the hub" in str(down.exception)
    assert not load_node_config(toml).node.credential_file.exists()
    live_hub.start()
    assert _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1")).exit_code == 0
    live_hub.stop_serving()

    caplog.set_level(logging.WARNING, logger="phds.node.agent")
    node = RunningNode(toml)
    nodes.append(node)
    assert node.agent is not None
    agent = node.agent
    wait(lambda: agent.link.failures >= 3, what="three failed polls")
    live_hub.start()
    study = live_hub.submit("uni-a", ["h1"], "system.noop", {})
    done = live_hub.await_study("uni-a", study["id"])
    assert done["state"] == "completed"
    messages = [r.getMessage() for r in caplog.records if r.name == "phds.node.agent"]
    assert sum("hub unreachable" in m for m in messages) == 1
    assert sum("hub reachable again" in m for m in messages) == 1


def test_a_refused_credential_stops_the_agent_with_a_clear_error(
    live_hub: Any, tmp_path: Path, node_toml_factory: Callable[..., Path]
) -> None:
    live_hub.start()
    live_hub.network(["h1"])
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url)
    node = RunningNode(toml, credential="phds_0123456789abcdef_" + "x" * 43)
    node.thread.join(timeout=60)
    assert isinstance(node.error, AuthenticationError)
    assert "refused the node's credential" in node.error.message


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.2, 30.0, rand=lambda: 1.0)
    delays = [backoff.failure() for _ in range(10)]
    assert delays[:4] == [0.2, 0.4, 0.8, 1.6] and delays[-1] == 30.0
    low = Backoff(0.2, 30.0, rand=lambda: 0.0)
    assert [low.failure() for _ in range(2)] == [0.1, 0.2]
    backoff.reset()
    assert backoff.failure() == 0.2


def test_the_catalogue_is_published_from_the_omop_source_and_audited_first(
    node_cli_app: typer.Typer, live_hub: Any, nodes: list[RunningNode], tmp_path: Path, small_omop: Path,
    node_toml_factory: Callable[..., Path], wait: Callable[..., Any],
) -> None:  # fmt: skip
    live_hub.start()
    live_hub.network(["h1"])
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url, omop={"cdm": small_omop})
    assert _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1")).exit_code == 0
    node = RunningNode(toml)
    nodes.append(node)
    with live_hub.http(live_hub.tokens["uni-a"]) as http:
        entry = wait(
            lambda: (r := http.get("/api/v1/catalogue/h1")).status_code == 200 and r.json(),
            what="the catalogue entry",
        )
    profile = entry["profile"]
    assert profile["disclosure"]["minCellCount"] == 5
    node.stop()
    entries, ok = node.audit()
    [audited] = [e for e in entries if e.kind == "value_released" and e.task_id == "catalogue"]
    assert ok and audited.payload["values"]["profile"]["profile"] == profile  # released through the gate


def test_a_result_computed_before_a_crash_is_posted_from_the_outbox_without_computing_again(
    node_cli_app: typer.Typer, live_hub: Any, nodes: list[RunningNode], tmp_path: Path, shared_data: Path,
    node_toml_factory: Callable[..., Path],
) -> None:  # fmt: skip
    from phds.node.executor import execute_task
    from phds.node.hub_client import HubClient

    live_hub.start()
    live_hub.network(["h1"])
    cnsim = shared_data / "tabular" / "datashield" / "CNSIM" / "CNSIM1.csv"
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url, tabular={"cnsim": cnsim})
    assert _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1")).exit_code == 0
    config = load_node_config(toml)
    credential = read_credential(config.node.credential_file, hospital="h1", hub_url=live_hub.url).credential
    study = live_hub.submit("uni-a", ["h1"], "system.noop", {})

    # The node leases and answers the task, then "crashes" before posting.
    client = HubClient(live_hub.url, credential)
    [task] = client.tasks(wait=5)
    runtime = NodeRuntime.open(config)
    answered = execute_task(task, runtime)
    runtime.close()

    nodes.append(RunningNode(toml))
    done = live_hub.await_study("uni-a", study["id"])
    assert done["state"] == "completed"
    assert client.post_result(answered) == {"accepted": False, "duplicate": True, "cancelled": False}
    client.close()
    nodes[0].stop()
    entries, _ = nodes[0].audit()
    assert [e.kind for e in entries if e.study_id == study["id"]].count("value_released") == 1
