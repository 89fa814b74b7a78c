"""``phds network …`` and ``phds keys create`` through Typer's CliRunner, against a temporary folder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from phds.cli import network as network_cli
from phds.errors import Conflict, InputError, SignatureInvalid
from phds.trust import KeyPair, OrganisationAttestation, RevocationList, TrustAnchors

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Stand-in for the phds root."""

    network_cli.register(root)
    return root


@pytest.fixture
def folder(app: typer.Typer, tmp_path: Path) -> Path:
    folder = tmp_path / "nt"
    result = runner.invoke(app, ["network", "init", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def _run(app: typer.Typer, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_init_prints_the_keys_to_pin_and_refuses_a_second_time(app: typer.Typer, folder: Path) -> None:
    pinned = json.loads(_run(app, "network", "public-keys", "--dir", str(folder)))
    assert len(pinned) == 1 and stat.S_IMODE((folder / "trust.key").stat().st_mode) == 0o600
    result = runner.invoke(app, ["network", "init", "--dir", str(folder)])
    assert isinstance(result.exception, Conflict)


def test_keys_create_writes_a_private_key_and_prints_the_public_key(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "req.key"
    public = _run(app, "keys", "create", "--out", str(out)).strip()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert KeyPair.load(out).public_key_b64 == public
    assert (tmp_path / "req.key.pub").read_text().strip() == public
    again = runner.invoke(app, ["keys", "create", "--out", str(out)])
    assert isinstance(again.exception, Conflict)
    assert KeyPair.load(out).public_key_b64 == public
    assert _run(app, "keys", "create", "--out", str(out), "--force").strip() != public


def test_sign_org_revoke_and_verify_end_to_end(app: typer.Typer, folder: Path, tmp_path: Path) -> None:
    public = _run(app, "keys", "create", "--out", str(tmp_path / "req.key")).strip()
    att_file = tmp_path / "ucl.attestation.json"
    pub = str(tmp_path / "req.key.pub")
    _run(
        app, "network", "sign-org", "ucl", "--category", "academic", "--requester-key", pub,
        "--valid-days", "30", "--out", str(att_file), "--dir", str(folder),
    )  # fmt: skip
    att = OrganisationAttestation.model_validate_json(att_file.read_text())
    assert (att.organisation, att.category, att.requester_key) == ("ucl", "academic", public)
    printed = _run(
        app,
        "network",
        "sign-org",
        "acme",
        "--category",
        "industry",
        "--requester-key",
        public,
        "--dir",
        str(folder),
    )
    assert OrganisationAttestation.model_validate_json(printed).serial == att.serial + 1
    anchors = TrustAnchors(json.loads(_run(app, "network", "public-keys", "--dir", str(folder))))
    anchors.verify_attestation(att)

    rl_file = tmp_path / "revocations.json"
    _run(app, "network", "revoke", str(att.serial), "--out", str(rl_file), "--dir", str(folder))
    assert anchors.accept_revocations(RevocationList.model_validate_json(rl_file.read_text()))
    with pytest.raises(SignatureInvalid, match="revoked"):
        anchors.verify_attestation(att)
    current = RevocationList.model_validate_json(_run(app, "network", "revocations", "--dir", str(folder)))
    assert current.revoked_serials == [att.serial]


def test_sign_org_refuses_bad_input(app: typer.Typer, folder: Path, tmp_path: Path) -> None:
    key = tmp_path / "req.key"
    _run(app, "keys", "create", "--out", str(key))
    for args, field in [
        (["--category", "charity", "--requester-key", f"{key}.pub"], "category"),
        (["--category", "sme", "--requester-key", "not-a-key"], "--requester-key"),
        (["--category", "sme", "--requester-key", str(key)], "private key"),
    ]:
        result = runner.invoke(app, ["network", "sign-org", "ucl", *args, "--dir", str(folder)])
        assert isinstance(result.exception, InputError), result.output
        assert field in result.exception.message


def test_sign_org_accepts_a_pem_public_key(app: typer.Typer, folder: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "req.pem"
    pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    printed = _run(
        app,
        "network",
        "sign-org",
        "ucl",
        "--category",
        "public",
        "--requester-key",
        str(pem),
        "--dir",
        str(folder),
    )
    assert (
        OrganisationAttestation.model_validate_json(printed).requester_key == KeyPair(private).public_key_b64
    )


def test_rotate_then_retire(app: typer.Typer, folder: Path, tmp_path: Path) -> None:
    (old_id,) = json.loads(_run(app, "network", "public-keys", "--dir", str(folder)))
    rl = RevocationList.model_validate_json(_run(app, "network", "rotate", "--dir", str(folder)))
    keys = json.loads(_run(app, "network", "public-keys", "--dir", str(folder)))
    assert old_id in keys and len(keys) == 2 and rl.trust_key_id != old_id and rl.revoked_keys == []
    out = tmp_path / "rl.json"
    _run(app, "network", "retire", old_id, "--out", str(out), "--dir", str(folder))
    assert RevocationList.model_validate_json(out.read_text()).revoked_keys == [old_id]
    assert old_id not in json.loads(_run(app, "network", "public-keys", "--dir", str(folder)))
    cut = RevocationList.model_validate_json(
        _run(app, "network", "rotate", "--retire-old", "--dir", str(folder))
    )
    assert rl.trust_key_id in cut.revoked_keys


def test_commands_on_a_missing_folder_say_to_init(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["network", "public-keys", "--dir", str(tmp_path / "none")])
    assert result.exception is not None and "network init" in str(result.exception)


def test_the_phds_entry_point_has_the_groups_and_maps_errors_to_exit_codes(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "phds.cli.main", "keys", "create", "--out", str(tmp_path / "k.key")]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == Conflict.exit_code and "refusing to overwrite" in again.stderr
    missing = [sys.executable, "-m", "phds.cli.main", "network", "public-keys", "--dir", str(tmp_path / "x")]
    assert subprocess.run(missing, capture_output=True, text=True, check=False).returncode == 2
