"""The hub's settings: environment variables ``PHDS_HUB_*``, built by :func:`load_hub_settings`.

Nothing is read at import. Outside ``environment="development"`` the factory refuses settings that are
only safe on a developer's machine (plain-HTTP public URL, an in-memory database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from phds.errors import ConfigError

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class HubSettings(BaseSettings):
    """Everything a hub operator can set; each field reads ``PHDS_HUB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PHDS_HUB_", extra="forbid", frozen=True)

    environment: Literal["development", "test", "staging", "production"] = Field(
        default="development",
        description="Deployment kind. Anything but 'development' refuses unsafe settings.",
    )
    database_url: str = Field(
        default="sqlite:///phds-hub.sqlite",
        description="SQLAlchemy URL of the hub's store: 'sqlite:///path.sqlite' (default, one file in the "
        "working directory) or 'postgresql://user@host/db'.",
    )
    host: str = Field(default="127.0.0.1", description="Interface 'phds hub serve' listens on.")
    port: int = Field(default=8700, ge=1, le=65535, description="TCP port 'phds hub serve' listens on.")
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) 'phds hub serve' answers HTTPS with; with tls_key_file.",
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
    public_url: str = Field(
        default="http://127.0.0.1:8700",
        description="URL nodes and requesters reach the hub at; must be https outside development.",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger bodies are refused with 413 before parsing.",
    )
    catalogue_max_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest dataset profile (serialised JSON) a node may publish to the catalogue.",
    )
    user_token_ttl_days: int = Field(
        default=90, ge=1, le=3650, description="Default lifetime of a person's API token, in days."
    )
    node_token_ttl_days: int = Field(
        default=365,
        ge=1,
        le=3650,
        description="Lifetime of the credential a node gets at enrolment, in days.",
    )
    enrolment_token_ttl_hours: int = Field(
        default=48,
        ge=1,
        le=24 * 30,
        description="Default lifetime of a one-time node enrolment token, in hours.",
    )
    session_ttl_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="Lifetime of a portal sign-in (a session token), in hours."
    )
    sign_in_max_failures: int = Field(
        default=10, ge=1, le=100, description="Consecutive failed sign-ins that lock an account."
    )
    sign_in_lock_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How long a locked account stays locked."
    )
    token_touch_seconds: int = Field(
        default=60,
        ge=0,
        description="A token's last_used_at is written at most this often, to keep reads from writing.",
    )
    docs_enabled: bool = Field(default=True, description="Publish /docs and /openapi.json.")
    secagg_stage_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a secure-aggregation stage waits for every node; then it closes with the "
        "nodes that answered (the others dropped out).",
    )
    billing_require_application: bool = Field(
        default=False,
        description="Refuse studies that name no accepted data-access application (a billed network); "
        "off, a study without one runs unbilled, e.g. in a grant-funded consortium.",
    )
    task_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=24 * 3600,
        description="How long a delivered task stays leased to its node; unanswered by then, it is "
        "delivered again with attempt + 1.",
    )
    runner_tick_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often the study runner's background sweep re-queues expired leases and applies "
        "study deadlines.",
    )
    poll_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Long polls are woken in-process the moment work arrives; as a safety net they also "
        "re-read the database this often.",
    )
    vocabulary_url: str | None = Field(
        default=None,
        description="A CDM store (duckdb:///… or postgresql://…?schema=…) whose concept table, e.g. a full "
        "Athena vocabulary, cohort concept ids are checked against at submission; the paediatric subset "
        "shipped with PHDS is always known.",
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_db(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme in {"postgresql", "postgres"}:
            return "postgresql+psycopg:" + value.split(":", 1)[1]
        if scheme not in {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}:
            raise ValueError(f"unsupported database URL scheme {scheme!r}; use sqlite:/// or postgresql://")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> HubSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: no such file")
        return self

    def unsafe_reasons(self) -> list[str]:
        """Why these settings are unsafe outside development (empty when they are fine)."""
        reasons = []
        url = urlsplit(self.public_url)
        if url.scheme != "https" and url.hostname not in _LOOPBACK:
            reasons.append(f"public_url {self.public_url!r} is not https")
        if self.host not in _LOOPBACK and self.tls_cert_file is None:
            reasons.append(f"host {self.host!r} listens beyond loopback without TLS (set tls_cert_file)")
        if self.database_url.startswith("sqlite") and self.database_url.rstrip("/").endswith(
            (":memory:", "sqlite:")
        ):
            reasons.append("database_url is an in-memory SQLite database; everything is lost at exit")
        return reasons


def load_hub_settings(**overrides: Any) -> HubSettings:
    """Build settings from ``PHDS_HUB_*`` variables and *overrides* (``None`` values are ignored).

    Raises :class:`ConfigError` for invalid values, and for unsafe ones outside development.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = HubSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid hub settings: {problems}") from exc
    if settings.environment != "development":
        reasons = settings.unsafe_reasons()
        if reasons:
            raise ConfigError(
                f"unsafe hub settings for environment {settings.environment!r}: {'; '.join(reasons)}"
            )
    return settings
