"""``phds study`` against a real hub on loopback, with the token and hub from the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from phds.cli import study as study_cli
from phds.errors import ConfigError, Conflict, InputError, NotFound

DATA = Path(__file__).parent / "data"
NOOP = str(DATA / "noop.json")


@pytest.fixture
def cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root, as phds.cli.main builds it."""

    study_cli.register(root)
    return root


def _run(cli: typer.Typer, network: Any, *args: str, token: str | None = None) -> Result:
    env = {"PHDS_HUB_URL": network.url, "PHDS_TOKEN": token or network.requester, "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["study", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_submit_prints_only_the_id_then_status_and_results(cli: typer.Typer, network: Any) -> None:
    study_id = _run(cli, network, "submit", NOOP).stdout.strip()
    assert len(study_id) == 36 and "\n" not in study_id
    network.answer("north-general")
    network.answer("central-tertiary", status="declined")
    status = _run(cli, network, "status", study_id).stdout
    assert "partially_completed" in status
    assert "central-tertiary says declined" in status
    table = _run(cli, network, "results", study_id).stdout
    assert "answered: north-general; declined: central-tertiary" in table
    as_json = json.loads(_run(cli, network, "results", study_id, "--json").stdout)
    assert as_json["attribution"]["answered"] == ["north-general"]  # attribution is nested in the result
    assert as_json["attribution"]["declined"] == ["central-tertiary"]
    listing = _run(cli, network, "list").stdout
    assert study_id in listing and "1/2" in listing


def test_submit_wait_follows_the_study_to_its_result(cli: typer.Typer, network: Any) -> None:
    with network.nodes_answering("north-general", "central-tertiary"):
        shown = _run(cli, network, "submit", NOOP, "--wait").stdout
    study_id = shown.splitlines()[0]
    assert len(study_id) == 36
    assert "Are the nodes alive?" in shown
    assert "completed" in shown and "answered: central-tertiary, north-general" in shown


def test_results_wait_on_a_finished_study_returns_at_once(cli: typer.Typer, network: Any) -> None:
    study_id = _run(cli, network, "submit", NOOP).stdout.strip()
    for hospital in ("north-general", "central-tertiary"):
        network.answer(hospital)
    shown = _run(cli, network, "results", study_id, "--wait").stdout
    assert "answered: central-tertiary, north-general" in shown


def test_feasibility_results_render_a_table(cli: typer.Typer, network: Any, tmp_path: Path) -> None:
    study_id = _run(cli, network, "submit", str(DATA / "asthma-feasibility.yaml")).stdout.strip()
    empty = {"persons": {"type": "count", "value": 0, "suppressed": False, "display": "0", "threshold": 5,
                         "lower": 0, "upper": 0, "kind": None}}  # fmt: skip
    for breakdown in ("by_sex", "by_age_group"):
        empty[breakdown] = {"type": "breakdown", "total": empty["persons"], "cells": {}}
    payload = {"analysis": "feasibility.count@1", "min_cell_count": 5, "values": empty, "notes": []}
    for hospital in ("north-general", "central-tertiary", "west-respiratory"):
        network.answer(hospital, payload=payload)
    shown = _run(cli, network, "results", study_id, "--wait").stdout
    assert "Persons (network total 0)" in shown
    assert "west-respiratory" in shown and "network total" in shown


def test_errors_are_phds_errors(cli: typer.Typer, network: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        _run(cli, network, "status", "00000000-0000-0000-0000-000000000000")
    study_id = _run(cli, network, "submit", NOOP).stdout.strip()
    with pytest.raises(Conflict, match="no result yet"):
        _run(cli, network, "results", study_id)
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\n")
    with pytest.raises(InputError, match=r"bad\.yaml"):
        _run(cli, network, "submit", str(bad))
    result = CliRunner().invoke(cli, ["study", "list"], env={"PHDS_HUB_URL": "", "PHDS_TOKEN": ""})
    assert isinstance(result.exception, ConfigError)
