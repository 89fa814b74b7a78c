"""node.toml: every key validated, errors name the key (or line), unsafe values refused, paths resolved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from phds.errors import ConfigError, NotFound
from phds.node.config import (
    NodeConfig,
    NodeSection,
    OmopSource,
    TabularSource,
    TrustSection,
    load_node_config,
)
from phds.node.policy import BenchmarkingSettings, DifferentialPrivacy, DpRequirement, Policy, PolicyRule

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "node-governance.md"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_and_resolves_relative_paths(node_toml: Path, tmp_path: Path) -> None:
    cfg = load_node_config(node_toml)
    base = tmp_path.resolve()
    assert cfg.node.name == "gosh"
    assert cfg.node.credential_file == base / "secrets" / "node.credential"
    assert cfg.node.state_dir == base / "state"
    assert cfg.db_path == base / "state" / "node.db"
    assert cfg.omop_source("cdm").url == f"duckdb://{base}/data/cdm.duckdb"
    assert cfg.tabular_source("registry").path == base / "data" / "registry.parquet"
    assert cfg.tabular_source("registry").format == "parquet"
    assert cfg.policy.min_cell_count == 5
    assert [r.name for r in cfg.policy.rules] == ["feasibility for everyone", "studies for academia"]
    with pytest.raises(NotFound):
        cfg.omop_source("nope")


def test_absolute_paths_and_postgres_urls_are_kept(tmp_path: Path, node_toml_text: str) -> None:
    text = node_toml_text.replace('"state"', f'"{tmp_path}/abs-state"').replace(
        '"duckdb://data/cdm.duckdb"', '"postgresql://phds@db.local/cdm?schema=cdm54"'
    )
    cfg = load_node_config(_write(tmp_path, text))
    assert cfg.node.state_dir == tmp_path / "abs-state"
    assert cfg.omop_source("cdm").url == "postgresql://phds@db.local/cdm?schema=cdm54"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_node_config(tmp_path / "absent.toml")


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '[node]\nname = "gosh"\nhub_url = \n')
    with pytest.raises(ConfigError, match=r"node.toml: TOML syntax error: .*line 3") as exc:
        load_node_config(path)
    assert "column" in exc.value.message


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("min_cell_count = 5", "min_cell_count = 3", "policy.min_cell_count", "below the network minimum"),
        ("min_cell_count = 5", "min_cell_count = 4", "policy.min_cell_count", "never lower it"),
        ("min_cell_count = 5", "nfilter_glm = 0.5", "policy.nfilter_glm", "at most the network's 0.33"),
        ("min_cell_count = 5", "min_cell_count = 11\nnfilter_tab = 5", "policy", "nfilter_tab 5 is below"),
        ("min_cell_count = 5", "min_cel_count = 11", "policy.min_cel_count", "unknown key"),
        (
            "min_cell_count = 5",
            "[policy.dp]\ndelta = 0.5",
            "policy.dp.delta",
            "",
        ),
        (
            "min_cell_count = 5",
            "[policy.dp.requester_budget]\nepsilon = 1\nrho = 1",
            "policy.dp.requester_budget",
            "exactly one of epsilon or rho",
        ),
        ('name = "gosh"', 'name = "Great Ormond"', "node.name", "not a slug"),
        ('name = "gosh"\n', "", "node.name", "missing"),
        ('"https://hub.phds.example"', '"ftp://hub"', "node.hub_url", "not an http"),
        ('"duckdb://data/cdm.duckdb"', '"mysql://x/y"', "sources.omop[0].url", "use duckdb"),
        ('"data/registry.parquet"', '"data/registry.xlsx"', "sources.tabular[0]", "cannot tell the format"),
        ('name = "registry"', 'name = "cdm"', "sources", "used twice"),
        ('approval = "auto"', 'approval = "sometimes"', "policy.rules[0].approval", ""),
        ('categories = ["academic",', 'categories = ["university",', "policy.rules[1].categories[0]", ""),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, old: str, new: str, key: str, message: str, node_toml_text: str
) -> None:
    assert old in node_toml_text
    path = _write(tmp_path, node_toml_text.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_node_config(path)
    assert f"{path}: " in exc.value.message
    assert f"{key}: " in exc.value.message or f"{key}[" in exc.value.message, exc.value.message
    assert message in exc.value.message
    assert exc.value.exit_code == 2


def test_raised_threshold_is_accepted(tmp_path: Path, node_toml_text: str) -> None:
    cfg = load_node_config(
        _write(tmp_path, node_toml_text.replace("min_cell_count = 5", "min_cell_count = 11"))
    )
    assert cfg.policy.min_cell_count == 11
    assert cfg.policy.effective_nfilter_tab == 11


def test_plain_http_hub_is_refused_in_production(tmp_path: Path, node_toml_text: str) -> None:
    path = _write(tmp_path, node_toml_text.replace("https://hub.phds.example", "http://127.0.0.1:8000"))
    with pytest.raises(ConfigError, match="not https"):
        load_node_config(path)


def test_plain_http_to_loopback_is_allowed_in_development(tmp_path: Path, node_toml_text: str) -> None:
    text = node_toml_text.replace("https://hub.phds.example", "http://127.0.0.1:8000").replace(
        'state_dir = "state"', 'state_dir = "state"\nenvironment = "development"'
    )
    assert load_node_config(_write(tmp_path, text)).node.hub_url == "http://127.0.0.1:8000"


def test_plain_http_to_another_host_is_refused_even_in_development(
    tmp_path: Path, node_toml_text: str
) -> None:
    text = node_toml_text.replace("https://hub.phds.example", "http://hub.phds.example").replace(
        'state_dir = "state"', 'state_dir = "state"\nenvironment = "development"'
    )
    with pytest.raises(ConfigError, match="plain http only to localhost"):
        load_node_config(_write(tmp_path, text))


def test_switching_the_differencing_guard_off_is_refused_in_production(
    tmp_path: Path, node_toml_text: str
) -> None:
    text = node_toml_text.replace("min_cell_count = 5", "differencing_guard = false")
    with pytest.raises(ConfigError, match="differencing_guard = false loosens"):
        load_node_config(_write(tmp_path, text))
    dev = text.replace('state_dir = "state"', 'state_dir = "state"\nenvironment = "development"')
    assert load_node_config(_write(tmp_path, dev)).policy.differencing_guard is False


def test_environment_overrides_the_file(node_toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHDS_NODE_NODE__HUB_URL", "https://other-hub.example/")
    monkeypatch.setenv("PHDS_NODE_POLICY__MIN_CELL_COUNT", "11")
    cfg = load_node_config(node_toml)
    assert cfg.node.hub_url == "https://other-hub.example"
    assert cfg.policy.min_cell_count == 11
    assert len(cfg.policy.rules) == 2  # untouched keys still come from the file


def test_unsafe_environment_value_is_refused(node_toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHDS_NODE_POLICY__MIN_CELL_COUNT", "2")
    with pytest.raises(ConfigError, match=r"policy\.min_cell_count"):
        load_node_config(node_toml)


@pytest.mark.parametrize(
    "model",
    [
        NodeConfig,
        NodeSection,
        OmopSource,
        TabularSource,
        Policy,
        PolicyRule,
        DifferentialPrivacy,
        DpRequirement,
        TrustSection,
        BenchmarkingSettings,
    ],
)
def test_every_setting_is_documented_in_the_howto(model: type[NodeConfig]) -> None:
    doc = HOWTO.read_text(encoding="utf-8")
    for name in model.model_fields:
        assert re.search(rf"`{name}`", doc), f"{model.__name__}.{name} is not documented in {HOWTO.name}"
