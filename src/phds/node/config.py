"""The node's configuration, ``node.toml``, loaded by :func:`load_node_config` into :class:`NodeConfig`.

::

    [node]
    name = "gosh"                               # the hospital's slug in the network
    hub_url = "https://hub.phds.example"
    credential_file = "secrets/node.credential" # relative paths resolve against this file's folder
    state_dir = "state"                         # node.db (audit log, approvals, fingerprints) lives here

    [[sources.omop]]
    name = "cdm"
    url = "duckdb://data/cdm.duckdb"            # or postgresql://user@host/db?schema=cdm

    [[sources.tabular]]
    name = "registry"
    path = "data/registry.parquet"              # .csv or .parquet

    [policy]                                    # see phds.node.policy
    min_cell_count = 11

Environment variables ``PHDS_NODE_<TABLE>__<KEY>`` override the file (e.g. ``PHDS_NODE_NODE__HUB_URL``).
Errors name the file and the key (``policy.min_cell_count``); TOML syntax errors name the line and column.
Unsafe values are refused: a hub reached without TLS outside ``environment = "development"``, a policy
looser than the network defaults, or the differencing guard switched off in production.
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from phds.errors import ConfigError, NotFound
from phds.node.policy import Policy

log = logging.getLogger(__name__)

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Strict):
    """``[node]``: who this node is, where its hub is, where it keeps its secrets and state."""

    name: str = Field(description="The hospital's slug: lower-case letters, digits and dashes.")
    hub_url: str = Field(description="The hub's base URL; https unless in development on loopback.")
    credential_file: Path = Field(description="The node's credential, written at enrolment.")
    state_dir: Path = Field(description="Folder of node.db: audit log, approvals, cohort fingerprints.")
    environment: Literal["production", "development"] = Field(
        "production", description="development allows plain http to a loopback hub and guard-off tests."
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the certificate authorities (or the hub's own certificate) the hub's "
        "TLS certificate is checked against; default: the certifi bundle httpx ships with.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.fullmatch(v):
            raise ValueError(f"{v!r} is not a slug (lower-case letters, digits and dashes, ≤ 63)")
        return v

    @field_validator("hub_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v.rstrip("/")


class OmopSource(_Strict):
    """``[[sources.omop]]``: an OMOP CDM database registered by name."""

    name: str = Field(description="The name analyses use to read this source.")
    url: str = Field(description="duckdb://relative/or/duckdb:///absolute/path, or postgresql://…?schema=…")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split(":", 1)[0].lower()
        if scheme not in {"duckdb", "postgresql", "postgres", "postgresql+psycopg"}:
            raise ValueError(f"{v!r}: use duckdb:///path/cdm.duckdb or postgresql://user@host/db?schema=cdm")
        return v


class TabularSource(_Strict):
    """``[[sources.tabular]]``: a CSV or Parquet dataset registered by name."""

    name: str = Field(description="The name analyses use to read this dataset.")
    path: Path = Field(description="A .csv or .parquet file.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file suffix.")

    @model_validator(mode="after")
    def _format(self) -> TabularSource:
        if self.format is None:
            suffix = self.path.suffix.lower().lstrip(".")
            if suffix not in {"csv", "parquet"}:
                raise ValueError(f"cannot tell the format of {self.path}; set format = 'csv' or 'parquet'")
            object.__setattr__(self, "format", suffix)
        return self


class Sources(_Strict):
    """``[sources]``: every dataset the node may read, each under a unique name."""

    omop: list[OmopSource] = Field(default_factory=list)
    tabular: list[TabularSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Sources:
        seen: set[str] = set()
        names = [s.name for s in self.omop] + [s.name for s in self.tabular]
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"source name {name!r} must be letters, digits, _ . - (≤ 63)")
            if name in seen:
                raise ValueError(f"source name {name!r} is used twice")
            seen.add(name)
        return self


class TrustSection(_Strict):
    """``[trust]``: the network trust keys this node pins, and whether it runs only signed studies.

    Requester organisations and categories are attested by the operator's network trust key, which is
    kept off the hub (``phds network public-keys`` prints what to pin here). With ``require_signed`` a
    study whose specification is not signed by an attested requester key is declined: a compromised hub
    can then neither invent a requester nor change what was asked.
    """

    network_keys: dict[str, str] = Field(
        default_factory=dict, description="Pinned network trust public keys: key id → base64url key."
    )
    require_signed: bool | None = Field(
        None, description="Run only signed studies; default true, false only in development without keys."
    )
    node_key_file: Path = Field(
        Path("node.key"), description="The node's Ed25519 key (created at enrolment), relative to state_dir."
    )

    @property
    def requires_signatures(self) -> bool:
        return self.require_signed if self.require_signed is not None else True


class NodeConfig(BaseSettings):
    """The whole ``node.toml``; build it with :func:`load_node_config`, which resolves relative paths."""

    model_config = SettingsConfigDict(
        env_prefix="PHDS_NODE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    node: NodeSection
    sources: Sources = Field(default_factory=Sources)
    policy: Policy = Field(default_factory=Policy)
    trust: TrustSection = Field(default_factory=TrustSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file (passed as init values); no .env or secrets folders."""
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _safe(self) -> NodeConfig:
        if self.node.environment == "development":
            if self.trust.require_signed is None and not self.trust.network_keys:
                object.__setattr__(self, "trust", self.trust.model_copy(update={"require_signed": False}))
            return self
        if self.trust.require_signed is False:
            raise ValueError(
                "trust.require_signed = false is allowed only with node.environment = 'development'"
            )
        if not self.trust.network_keys:
            raise ValueError(
                "trust.network_keys is empty: pin the network trust public keys (phds network public-keys) "
                "so the node can verify who asks"
            )
        if urlsplit(self.node.hub_url).scheme != "https":
            raise ValueError(
                f"node.hub_url {self.node.hub_url!r} is not https; plain http is allowed only with "
                "node.environment = 'development' and a loopback hub"
            )
        if not self.policy.differencing_guard:
            raise ValueError(
                "policy.differencing_guard = false loosens the network default; allowed only with "
                "node.environment = 'development'"
            )
        return self

    @model_validator(mode="after")
    def _dev_loopback(self) -> NodeConfig:
        parts = urlsplit(self.node.hub_url)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"node.hub_url {self.node.hub_url!r}: plain http only to localhost")
        return self

    @property
    def node_key_path(self) -> Path:
        """The node's signing key file."""
        key = self.trust.node_key_file
        return key if key.is_absolute() else self.node.state_dir / key

    @property
    def db_path(self) -> Path:
        """The node's SQLite state database (audit log, approvals, fingerprints)."""
        return self.node.state_dir / "node.db"

    def omop_source(self, name: str) -> OmopSource:
        for src in self.sources.omop:
            if src.name == name:
                return src
        raise NotFound(f"no OMOP source named {name!r} in the node configuration")

    def tabular_source(self, name: str) -> TabularSource:
        for src in self.sources.tabular:
            if src.name == name:
                return src
        raise NotFound(f"no tabular source named {name!r} in the node configuration")


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):  # skip pydantic's union/validator tags
            out += f".{part}" if out else part
    return out or "(top level)"


def _message(err: Any) -> str:
    if err["type"] == "missing":
        return "missing (required)"
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _resolve(base: Path, p: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_omop(base: Path, url: str) -> str:
    if not url.lower().startswith("duckdb:"):
        return url
    from phds.omop.store import duckdb_path

    path = duckdb_path(url)
    if str(path) == ":memory:" or path.is_absolute():
        return url
    return f"duckdb://{_resolve(base, path)}"


def load_node_config(path: str | Path) -> NodeConfig:
    """Read, validate and resolve ``node.toml``; any problem is a :class:`ConfigError` naming the key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: node configuration not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the node configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    try:
        cfg = NodeConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(dict.fromkeys(f"{_key(tuple(e['loc']))}: {_message(e)}" for e in exc.errors()))
        raise ConfigError(f"{path}: {problems}") from None
    base = path.resolve().parent
    node = cfg.node.model_copy(
        update={
            "credential_file": _resolve(base, cfg.node.credential_file),
            "state_dir": _resolve(base, cfg.node.state_dir),
            "ca_bundle": _resolve(base, cfg.node.ca_bundle) if cfg.node.ca_bundle else None,
        }
    )
    if node.ca_bundle is not None and not node.ca_bundle.is_file():
        raise ConfigError(f"{path}: node.ca_bundle {node.ca_bundle}: no such file")
    sources = Sources(
        omop=[s.model_copy(update={"url": _resolve_omop(base, s.url)}) for s in cfg.sources.omop],
        tabular=[s.model_copy(update={"path": _resolve(base, s.path)}) for s in cfg.sources.tabular],
    )
    resolved = cfg.model_copy(update={"node": node, "sources": sources})
    log.info("node %s: configuration %s loaded", resolved.node.name, path)
    return resolved


__all__ = [
    "NodeConfig",
    "NodeSection",
    "OmopSource",
    "Sources",
    "TabularSource",
    "TrustSection",
    "load_node_config",
]
