"""Hub settings: documented, read from PHDS_HUB_*, unsafe values refused outside development."""

from __future__ import annotations

import pytest

from phds.errors import ConfigError
from phds.hub.settings import HubSettings, load_hub_settings


def test_every_setting_is_documented() -> None:
    for name, field in HubSettings.model_fields.items():
        assert field.description and len(field.description) > 10, f"setting {name} has no description"


def test_defaults_are_a_local_sqlite_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HubSettings.model_fields:
        monkeypatch.delenv(f"PHDS_HUB_{name.upper()}", raising=False)
    settings = load_hub_settings()
    assert settings.environment == "development"
    assert settings.database_url == "sqlite:///phds-hub.sqlite"
    assert (settings.host, settings.port) == ("127.0.0.1", 8700)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHDS_HUB_PORT", "9911")
    monkeypatch.setenv("PHDS_HUB_DATABASE_URL", "postgresql://hub@db.internal/phds")
    settings = load_hub_settings()
    assert settings.port == 9911
    assert settings.database_url == "postgresql+psycopg://hub@db.internal/phds"


def test_overrides_win_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHDS_HUB_PORT", "9911")
    assert load_hub_settings(port=8123).port == 8123
    assert load_hub_settings(port=None).port == 9911


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"public_url": "http://hub.example.org"}, "is not https"),
        ({"public_url": "https://hub.example.org", "database_url": "sqlite://"}, "in-memory"),
        ({"public_url": "https://hub.example.org", "database_url": "sqlite:///:memory:"}, "in-memory"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, str], reason: str) -> None:
    load_hub_settings(**overrides)  # fine for development
    with pytest.raises(ConfigError, match=reason):
        load_hub_settings(environment="production", **overrides)


def test_production_accepts_safe_settings() -> None:
    settings = load_hub_settings(environment="production", public_url="https://hub.example.org")
    assert settings.environment == "production"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"port": 0}, "port"),
        ({"database_url": "mysql://x/y"}, "database_url"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_invalid_settings_name_the_setting(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_hub_settings(**overrides)
