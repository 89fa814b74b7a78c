"""The node's hub credential: written once at enrolment (mode 0600), read by the agent at start.

The file is JSON: the bearer ``credential``, its expiry, and the node and hub it belongs to, so the
agent can refuse a credential meant for another hospital or hub before it ever sends it.
"""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from phds.errors import AuthenticationError, ConfigError
from phds.protocol.enrolment import EnrolResponse
from phds.trust.keys import write_private_file

log = logging.getLogger(__name__)


class NodeCredential(BaseModel):
    """What ``credential_file`` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credential: str
    expires_at: datetime
    node_id: str
    hospital: str
    hub_url: str
    enrolled_at: datetime

    @field_validator("expires_at", "enrolled_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)

    def __repr__(self) -> str:  # never print the secret
        return f"NodeCredential(hospital={self.hospital!r}, hub_url={self.hub_url!r})"

    __str__ = __repr__


def write_credential(
    path: Path, response: EnrolResponse, hub_url: str, *, force: bool = False
) -> NodeCredential:
    """Write the credential from an enrolment answer to *path* (0600); refuse to overwrite unless *force*."""
    cred = NodeCredential(
        credential=response.credential,
        expires_at=response.credential_expires_at,
        node_id=str(response.node.id),
        hospital=response.node.hospital,
        hub_url=hub_url,
        enrolled_at=datetime.now(UTC),
    )
    text = cred.model_dump_json(indent=2) + "\n"
    write_private_file(
        path, text.encode("utf-8"), overwrite=force, what="credential", refusal="use --force to replace it"
    )
    log.info("credential for %s written to %s", cred.hospital, path)
    return cred


def read_credential(path: Path, *, hospital: str, hub_url: str) -> NodeCredential:
    """Read and check the credential: present, private, for this hospital and hub, not expired."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no node credential; enrol first with `phds node enrol --token …`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the credential file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    try:
        cred = NodeCredential.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        raise ConfigError(f"{path} is not a PHDS node credential file") from None
    if cred.hospital != hospital:
        raise ConfigError(f"{path} belongs to hospital {cred.hospital!r}, but node.name is {hospital!r}")
    if cred.hub_url.rstrip("/") != hub_url.rstrip("/"):
        log.warning("%s was issued through %s; node.hub_url is %s", path, cred.hub_url, hub_url)
    if cred.expires_at <= datetime.now(UTC):
        raise AuthenticationError(
            f"the node credential expired at {cred.expires_at.isoformat()}; ask the network operator for "
            "a new enrolment token and run `phds node enrol --force`"
        )
    return cred


__all__ = ["NodeCredential", "read_credential", "write_credential"]
