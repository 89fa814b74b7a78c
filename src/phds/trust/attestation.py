"""Organisation attestations and revocation lists, signed by the network trust key kept off the hub.

Protocol: the operator's offline *network trust key* (Ed25519, RFC 8032, see :mod:`phds.trust.keys`)
signs two kinds of statement, each over :func:`phds.trust.keys.signed_content` of its fields without
``signature``:

* an :class:`OrganisationAttestation` ("organisation *o*, category *c*, holds requester key *k*, serial *n*,
  valid from ... to ..."), the same shape as an X.509 certificate's subject, key, serial and validity
  (RFC 5280 §4.1), without ASN.1;
* a :class:`RevocationList` of revoked serials and retired trust keys with a monotonic ``sequence``, the
  role of a CRL number (RFC 5280 §5.2.3): a node keeps the highest sequence it has seen, so a hub that
  replays an older list cannot un-revoke anything. Revocation is permanent: a node unions every list
  it accepts.

:class:`NetworkTrust` is the operator's side (a folder with ``trust.key`` and ``state.json``);
:class:`TrustAnchors` is the node's and the SDK's side, holding only the pinned trust public keys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from phds.errors import ConfigError, Conflict, InputError, SignatureInvalid
from phds.protocol.trust import Category, OrganisationAttestation, RevocationList
from phds.trust.keys import KeyPair, PublicKey, signed_content

log = logging.getLogger(__name__)

ATTESTATION_CONTEXT = "phds.organisation-attestation.v1"
REVOCATION_CONTEXT = "phds.revocation-list.v1"
CLOCK_SKEW = timedelta(minutes=5)
"""How far a node's clock may lag the operator's before an attestation counts as not yet valid."""
MAX_VALID_DAYS = 3 * 366

KEY_FILE = "trust.key"
STATE_FILE = "state.json"


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise InputError("now must be timezone-aware", field="now")
    return now


class _Issued(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: str
    category: str
    requester_key: str
    trust_key_id: str
    expires_at: AwareDatetime


class _State(BaseModel):
    """``state.json``: public keys, issued serials, revocations. Nothing secret."""

    model_config = ConfigDict(extra="forbid")

    current_key_id: str
    keys: dict[str, str]
    retired_keys: list[str] = Field(default_factory=list)
    next_serial: int = 1
    issued: dict[int, _Issued] = Field(default_factory=dict)
    revoked_serials: list[int] = Field(default_factory=list)
    revocation_list: RevocationList | None = None


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
    os.replace(tmp, path)


class NetworkTrust:
    """The operator's network trust: the signing key and its state, in one folder kept off the hub."""

    def __init__(self, folder: Path, key: KeyPair, state: _State) -> None:
        self.folder = folder
        self._key = key
        self._state = state

    @property
    def key_id(self) -> str:
        """The id of the current trust key, the one that signs."""
        return self._key.key_id

    @classmethod
    def init(cls, folder: str | Path) -> NetworkTrust:
        """Create the trust key (``trust.key``, 0600) and ``state.json`` in *folder*, never over old ones."""
        folder = Path(folder)
        if (folder / KEY_FILE).exists() or (folder / STATE_FILE).exists():
            raise Conflict(f"{folder} already holds a network trust; refusing to replace it")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = KeyPair.generate()
        key.save(folder / KEY_FILE)
        trust = cls(folder, key, _State(current_key_id=key.key_id, keys={key.key_id: key.public_key_b64}))
        trust._publish_revocations()
        log.info("network trust key %s created in %s", key.key_id, folder)
        return trust

    @classmethod
    def load(cls, folder: str | Path) -> NetworkTrust:
        """Open the trust folder written by :meth:`init`; its key and state must agree."""
        folder = Path(folder)
        state_path = folder / STATE_FILE
        try:
            state = _State.model_validate(json.loads(state_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"{state_path}: no network trust here; run `phds network init` first") from None
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"{state_path}: unreadable network trust state ({exc})") from None
        key = KeyPair.load(folder / KEY_FILE)
        if key.key_id != state.current_key_id:
            raise ConfigError(
                f"{folder / KEY_FILE} holds key {key.key_id} but {state_path} names {state.current_key_id}"
            )
        return cls(folder, key, state)

    def _save(self) -> None:
        _write_private(self.folder / STATE_FILE, self._state.model_dump_json(indent=2) + "\n")

    def _publish_revocations(self) -> RevocationList:
        previous = self._state.revocation_list
        body: dict[str, Any] = {
            "trust_key_id": self.key_id,
            "sequence": (previous.sequence + 1) if previous else 1,
            "issued_at": _utc_now(),
            "revoked_serials": sorted(set(self._state.revoked_serials)),
            "revoked_keys": sorted(set(self._state.retired_keys)),
        }
        body = RevocationList.model_validate({**body, "signature": ""}).body()
        rl = RevocationList(**body, signature=self._key.sign(signed_content(REVOCATION_CONTEXT, body)))
        self._state.revocation_list = rl
        self._save()
        return rl

    def sign_organisation(
        self, org: str, category: str, requester_key_b64: str, valid_days: int = 365
    ) -> OrganisationAttestation:
        """Attest that *requester_key_b64* speaks for *org* of *category* for *valid_days* days."""
        if not 1 <= valid_days <= MAX_VALID_DAYS:
            raise InputError(f"must be between 1 and {MAX_VALID_DAYS}", field="valid_days")
        issued = _utc_now()
        unsigned = {
            "organisation": org,
            "category": category,
            "requester_key": requester_key_b64.strip(),
            "issued_at": issued,
            "expires_at": issued + timedelta(days=valid_days),
            "serial": self._state.next_serial,
            "trust_key_id": self.key_id,
            "signature": "",
        }
        try:
            body = OrganisationAttestation.model_validate(unsigned).body()
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(err["msg"], field=".".join(str(p) for p in err["loc"])) from None
        att = OrganisationAttestation(
            **body, signature=self._key.sign(signed_content(ATTESTATION_CONTEXT, body))
        )
        self._state.issued[att.serial] = _Issued(
            organisation=att.organisation,
            category=att.category,
            requester_key=att.requester_key,
            trust_key_id=att.trust_key_id,
            expires_at=att.expires_at,
        )
        self._state.next_serial += 1
        self._save()
        log.info("attested %s (%s) as serial %d", org, category, att.serial)
        return att

    def revoke(self, serial: int) -> RevocationList:
        """Revoke attestation *serial* for good and sign a new revocation list."""
        if serial not in self._state.issued:
            raise InputError(f"no attestation with serial {serial} was issued here", field="serial")
        if serial in self._state.revoked_serials:
            return self.revocation_list()
        self._state.revoked_serials.append(serial)
        log.info("revoked attestation serial %d", serial)
        return self._publish_revocations()

    def retire(self, key_id: str) -> RevocationList:
        """Stop trusting an earlier trust key (the end of a rotation window) and sign a new list."""
        if key_id not in self._state.keys:
            raise InputError(f"unknown trust key {key_id}", field="key_id")
        if key_id == self.key_id:
            raise Conflict(f"{key_id} is the current trust key; rotate first, then retire it")
        if key_id not in self._state.retired_keys:
            self._state.retired_keys.append(key_id)
            log.info("retired trust key %s", key_id)
        return self._publish_revocations()

    def rotate(self, folder: str | Path | None = None, *, retire_old: bool = False) -> str:
        """Make a new current trust key and return its id.

        The old private key is kept beside it as ``trust-<key id>.key`` (destroy it once nothing needs
        it) and its public key stays trusted, so existing attestations keep working during the rotation
        window, unless *retire_old*, which lists it as revoked at once. *folder* defaults to this one.
        """
        if folder is not None and Path(folder).resolve() != self.folder.resolve():
            raise InputError(f"{folder} is not this trust's folder {self.folder}", field="folder")
        old = self._key
        new = KeyPair.generate()
        staged = new.save(self.folder / f"trust-{new.key_id}.key")
        os.replace(self.folder / KEY_FILE, self.folder / f"trust-{old.key_id}.key")
        os.replace(staged, self.folder / KEY_FILE)
        self._key = new
        self._state.current_key_id = new.key_id
        self._state.keys[new.key_id] = new.public_key_b64
        if retire_old:
            self._state.retired_keys.append(old.key_id)
        self._publish_revocations()  # re-signed by the new key (and saves the state)
        log.info("rotated network trust key %s -> %s (old retired: %s)", old.key_id, new.key_id, retire_old)
        return new.key_id

    def revocation_list(self) -> RevocationList:
        """The newest signed revocation list, to hand to every node and requester."""
        rl = self._state.revocation_list
        return rl if rl is not None else self._publish_revocations()

    def public_keys(self) -> dict[str, str]:
        """Trust key id → public key (base64url) for every key not retired: what nodes pin."""
        return {k: v for k, v in self._state.keys.items() if k not in self._state.retired_keys}


class TrustAnchors:
    """The pinned network trust public keys, and what the node or SDK has learnt from revocation lists."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ConfigError("no network trust keys are pinned; add `phds network public-keys` output")
        self._keys: dict[str, PublicKey] = {}
        for key_id, b64 in keys.items():
            key = PublicKey.from_b64(b64)
            if key.key_id != key_id:
                raise InputError(f"the key's id is {key.key_id}, not {key_id}", field=f"trust_keys.{key_id}")
            self._keys[key_id] = key
        self._revoked_serials: set[int] = set()
        self._retired: set[str] = set()
        self._latest: RevocationList | None = None

    @property
    def revocation_list(self) -> RevocationList | None:
        """The highest-sequence list accepted so far (persist it and accept it again at start)."""
        return self._latest

    def _trusted_key(self, key_id: str, what: str) -> PublicKey:
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureInvalid(f"{what}: signed by unknown trust key {key_id}")
        if key_id in self._retired:
            raise SignatureInvalid(f"{what}: signed by retired trust key {key_id}")
        return key

    def accept_revocations(self, rl: RevocationList) -> bool:
        """Verify and apply *rl*; False (and nothing changes) when its sequence is not above the last one."""
        key = self._trusted_key(rl.trust_key_id, "revocation list")
        key.verify(signed_content(REVOCATION_CONTEXT, rl.body()), rl.signature)
        if rl.trust_key_id in rl.revoked_keys:
            raise SignatureInvalid(f"revocation list retires its own signing key {rl.trust_key_id}")
        if self._latest is not None and rl.sequence <= self._latest.sequence:
            log.debug("ignored revocation list %d (have %d)", rl.sequence, self._latest.sequence)
            return False
        self._revoked_serials.update(rl.revoked_serials)
        self._retired.update(rl.revoked_keys)
        self._latest = rl
        log.info("accepted revocation list %d from trust key %s", rl.sequence, rl.trust_key_id)
        return True

    def verify_attestation(
        self, att: OrganisationAttestation, now: datetime | None = None
    ) -> OrganisationAttestation:
        """*att* when a pinned, unretired trust key signed it and it is valid and unrevoked at *now*."""
        what = f"attestation {att.serial} for {att.organisation}"
        key = self._trusted_key(att.trust_key_id, what)
        key.verify(signed_content(ATTESTATION_CONTEXT, att.body()), att.signature)
        moment = _check_now(now)
        if moment + CLOCK_SKEW < att.issued_at:
            raise SignatureInvalid(f"{what} is not valid before {att.issued_at.isoformat()}")
        if moment >= att.expires_at:
            raise SignatureInvalid(f"{what} expired at {att.expires_at.isoformat()}")
        if att.serial in self._revoked_serials:
            raise SignatureInvalid(f"{what} was revoked")
        return att


__all__ = [
    "ATTESTATION_CONTEXT",
    "CLOCK_SKEW",
    "REVOCATION_CONTEXT",
    "Category",
    "NetworkTrust",
    "OrganisationAttestation",
    "RevocationList",
    "TrustAnchors",
]
