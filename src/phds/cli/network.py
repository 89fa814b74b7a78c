"""``phds network``: the operator's offline network trust key; ``phds keys``: requester and node key pairs.

Run ``phds network`` on a machine that is not the hub (ideally offline); only its outputs travel: the
trust public keys (``public-keys``, which nodes and requesters pin), attestations (``sign-org``) and
revocation lists (``revoke``, ``retire``, ``rotate``, ``revocations``). Signatures are Ed25519 (RFC
8032) over canonical JSON; see :mod:`phds.trust`. JSON goes to stdout (or ``--out``), notes to stderr.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from phds.errors import InputError
from phds.trust.attestation import NetworkTrust
from phds.trust.keys import KeyPair, PublicKey, b64encode

log = logging.getLogger(__name__)

app = typer.Typer(help="The network trust key: attest requester organisations, revoke, rotate.")
keys_app = typer.Typer(help="Ed25519 key pairs for requesters and nodes.")

Dir = Annotated[
    Path,
    typer.Option(
        "--dir", envvar="PHDS_TRUST_DIR", help="The trust folder (PHDS_TRUST_DIR); keep it off the hub."
    ),
]
Out = Annotated[Path | None, typer.Option("--out", help="Write the JSON here instead of stdout.")]


def register(root: typer.Typer) -> None:
    """Add the ``network`` and ``keys`` groups to *root*."""
    root.add_typer(app, name="network", no_args_is_help=True)
    root.add_typer(keys_app, name="keys", no_args_is_help=True)


def _emit(document: Any, out: Path | None) -> None:
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", file=str(out)) from None
    typer.echo(f"wrote {out}", err=True)


def _requester_key(value: str) -> str:
    """A public key given as base64url, or as a file holding it (``.pub``) or a PEM public key."""
    text = value.strip()
    path = Path(value)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the requester key: {exc}", file=str(path)) from None
        if "PRIVATE KEY" in text:
            raise InputError("this is a private key; ask the requester for the public key only", file=value)
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                pem = load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise InputError(f"not a PEM public key ({exc})", file=value) from None
            if not isinstance(pem, Ed25519PublicKey):
                raise InputError("not an Ed25519 public key", file=value)
            text = b64encode(pem.public_bytes_raw())
    try:
        return PublicKey.from_b64(text).b64
    except InputError:
        raise InputError(
            "not an Ed25519 public key (base64url, as `phds keys create` prints) nor a file holding one",
            field="--requester-key",
        ) from None


@app.command("init")
def init(folder: Dir = Path("network-trust")) -> None:
    """Create the network trust key (trust.key, mode 0600) and its state; prints the public keys to pin."""
    trust = NetworkTrust.init(folder)
    typer.echo(
        f"network trust key {trust.key_id} created in {folder}; keep this folder off the hub", err=True
    )
    _emit(trust.public_keys(), None)


@app.command("sign-org")
def sign_org(
    organisation: Annotated[str, typer.Argument(help="The requester organisation's slug.")],
    category: Annotated[
        str, typer.Option("--category", help="academic, public, non-profit, sme or industry.")
    ],
    requester_key: Annotated[
        str, typer.Option("--requester-key", help="The organisation's public key, or a file holding it.")
    ],
    valid_days: Annotated[int, typer.Option("--valid-days", help="Days the attestation is valid.")] = 365,
    out: Out = None,
    folder: Dir = Path("network-trust"),
) -> None:
    """Attest that a requester key speaks for an organisation of a category; prints the attestation."""
    trust = NetworkTrust.load(folder)
    att = trust.sign_organisation(organisation, category, _requester_key(requester_key), valid_days)
    typer.echo(
        f"attestation serial {att.serial} for {organisation}, expires {att.expires_at:%Y-%m-%d}", err=True
    )
    _emit(att.model_dump(mode="json"), out)


@app.command("revoke")
def revoke(
    serial: Annotated[int, typer.Argument(help="The attestation's serial.")],
    out: Out = None,
    folder: Dir = Path("network-trust"),
) -> None:
    """Revoke an attestation for good; writes the new signed revocation list to hand to every node."""
    rl = NetworkTrust.load(folder).revoke(serial)
    typer.echo(f"revoked serial {serial}; revocation list {rl.sequence}", err=True)
    _emit(rl.model_dump(mode="json"), out)


@app.command("retire")
def retire(
    key_id: Annotated[str, typer.Argument(help="The earlier trust key's id.")],
    out: Out = None,
    folder: Dir = Path("network-trust"),
) -> None:
    """End a rotation window: stop trusting an earlier trust key; writes the new revocation list."""
    rl = NetworkTrust.load(folder).retire(key_id)
    typer.echo(f"retired trust key {key_id}; revocation list {rl.sequence}", err=True)
    _emit(rl.model_dump(mode="json"), out)


@app.command("rotate")
def rotate(
    retire_old: Annotated[
        bool, typer.Option("--retire-old", help="Stop trusting the old key at once (it was compromised).")
    ] = False,
    out: Out = None,
    folder: Dir = Path("network-trust"),
) -> None:
    """Make a new trust key; the old one stays trusted until retired. Writes the new revocation list."""
    trust = NetworkTrust.load(folder)
    old = trust.key_id
    new = trust.rotate(retire_old=retire_old)
    note = "retired" if retire_old else f"still trusted until `phds network retire {old}`"
    typer.echo(f"new trust key {new}; old key {old} {note}; pin `phds network public-keys`", err=True)
    _emit(trust.revocation_list().model_dump(mode="json"), out)


@app.command("revocations")
def revocations(out: Out = None, folder: Dir = Path("network-trust")) -> None:
    """Print the newest signed revocation list."""
    _emit(NetworkTrust.load(folder).revocation_list().model_dump(mode="json"), out)


@app.command("public-keys")
def public_keys(folder: Dir = Path("network-trust")) -> None:
    """Print the trusted public keys as JSON (key id → base64url): what nodes and requesters pin."""
    _emit(NetworkTrust.load(folder).public_keys(), None)


@keys_app.command("create")
def create(
    out: Annotated[Path, typer.Option("--out", help="The private key file to write (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
) -> None:
    """Create an Ed25519 key pair: the private key in --out, the public key in --out.pub and on stdout."""
    key = KeyPair.generate()
    key.save(out, overwrite=force)
    pub = out.with_name(out.name + ".pub")
    pub.write_text(key.public_key_b64 + "\n", encoding="utf-8")
    typer.echo(f"key {key.key_id}: private key in {out} (mode 0600), public key in {pub}", err=True)
    typer.echo(key.public_key_b64)
