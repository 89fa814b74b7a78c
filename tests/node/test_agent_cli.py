"""``phds node enrol`` and ``phds node run`` as a hospital uses them, against a real hub on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from phds.errors import AuthenticationError, ConfigError, Conflict
from phds.hub.testing import enrolment_token
from phds.node.config import load_node_config
from phds.node.credential import read_credential

cli = CliRunner()


def _enrol(app: typer.Typer, toml: Path, token: str, *extra: str) -> Any:
    return cli.invoke(app, ["node", "enrol", "--config", str(toml), "--token", token, *extra])


def test_enrol_refuses_to_overwrite_a_credential_and_a_token_works_once(
    node_cli_app: typer.Typer, live_hub: Any, tmp_path: Path, node_toml_factory: Callable[..., Path]
) -> None:
    live_hub.start()
    live_hub.network(["h1", "h2"])
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url)
    token = enrolment_token(live_hub.store, "h1")
    assert _enrol(node_cli_app, toml, token).exit_code == 0
    again = _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1"))
    assert isinstance(again.exception, Conflict) and "--force" in again.exception.message
    reused = _enrol(node_cli_app, toml, token, "--force")
    assert isinstance(reused.exception, AuthenticationError)
    wrong = _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h2"), "--force")
    assert wrong.exit_code != 0 and "hospital 'h2'" in str(wrong.exception)
    cred = read_credential(load_node_config(toml).node.credential_file, hospital="h1", hub_url=live_hub.url)
    assert cred.hospital == "h1" and "phds_" not in repr(cred)


@pytest.mark.integration
def test_phds_node_run_answers_and_stops_cleanly_on_sigterm(
    node_cli_app: typer.Typer, live_hub: Any, tmp_path: Path, node_toml_factory: Callable[..., Path],
    wait: Callable[..., Any],
) -> None:  # fmt: skip
    live_hub.start()
    live_hub.network(["h1"])
    toml = node_toml_factory(tmp_path / "h1", name="h1", hub_url=live_hub.url)
    assert _enrol(node_cli_app, toml, enrolment_token(live_hub.store, "h1")).exit_code == 0
    phds = Path(sys.executable).with_name("phds")
    process = subprocess.Popen(
        [str(phds), "-v", "node", "run", "--config", str(toml), "--poll-wait", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait(lambda: any("running against" in line for line in lines), what="the node to start")
        study = live_hub.submit("uni-a", ["h1"], "system.noop", {})
        assert live_hub.await_study("uni-a", study["id"])["state"] == "completed"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
    text = "".join(lines)
    assert "SIGTERM: finishing the current task" in text
    assert "node h1 stopped after 1 task(s)" in text


def test_run_refuses_a_missing_shared_foreign_or_expired_credential(
    node_cli_app: typer.Typer, tmp_path: Path, node_toml_factory: Callable[..., Path]
) -> None:
    toml = node_toml_factory(tmp_path / "h1", name="h1")
    missing = cli.invoke(node_cli_app, ["node", "run", "--config", str(toml)])
    assert isinstance(missing.exception, ConfigError) and "enrol first" in missing.exception.message
    path = load_node_config(toml).node.credential_file
    path.parent.mkdir(parents=True)

    def write(mode: int, **fields: str) -> None:
        body = {"credential": "phds_x", "expires_at": "2099-01-01T00:00:00Z", "node_id": "n",
                "hospital": "h1", "hub_url": "http://127.0.0.1:9", "enrolled_at": "2026-01-01T00:00:00Z",
                **fields}  # fmt: skip
        path.write_text(json.dumps(body), encoding="utf-8")
        path.chmod(mode)

    write(0o644)
    shared = cli.invoke(node_cli_app, ["node", "run", "--config", str(toml)])
    assert isinstance(shared.exception, ConfigError) and "readable by others" in shared.exception.message
    write(0o600, hospital="h2")
    foreign = cli.invoke(node_cli_app, ["node", "run", "--config", str(toml)])
    assert (
        isinstance(foreign.exception, ConfigError) and "belongs to hospital 'h2'" in foreign.exception.message
    )
    write(0o600, expires_at="2020-01-01T00:00:00Z")
    expired = cli.invoke(node_cli_app, ["node", "run", "--config", str(toml)])
    assert isinstance(expired.exception, AuthenticationError) and "expired" in expired.exception.message
