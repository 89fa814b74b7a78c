"""``phds hub serve --tls-cert --tls-key`` serves HTTPS, and nodes check it against ``node.ca_bundle``.

The certificate is made in the test (:func:`.netns_support.self_signed`). A client that trusts it gets
an answer; one that does not (httpx's default certifi bundle) is refused at the handshake. Hub settings
refuse half a TLS pair and a missing file, and production refuses listening beyond loopback without
TLS. A node's ``ca_bundle`` resolves against its config file and must exist.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from phds.errors import ConfigError
from phds.hub.settings import load_hub_settings
from phds.node.config import load_node_config
from phds.node.hub_client import tls_verify

from .netns_support import self_signed

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_hub_serves_https_that_only_a_client_trusting_its_certificate_accepts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls", ["127.0.0.1"])
    port = _free_port()
    db = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    command = [sys.executable, "-m", "phds.cli.main", "hub", "serve", "--db", db, "--port", str(port), *tls]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}/api/v1/health"
    try:
        health = None
        deadline = time.monotonic() + 30
        while health is None and time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(url, timeout=1, verify=tls_verify(cert))
            except httpx.ConnectError as exc:
                if "CERTIFICATE" in str(exc):
                    raise
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, log.read_text()
        assert "PHDS hub on https://127.0.0.1" in log.read_text()
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url, timeout=5)  # certifi's authorities do not know this certificate
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)  # no plain http on this port
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_hub_tls_settings_come_in_pairs_of_existing_files(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, ["127.0.0.1"])
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file go together"):
        load_hub_settings(tls_cert_file=cert)
    with pytest.raises(ConfigError, match="no such file"):
        load_hub_settings(tls_cert_file=cert, tls_key_file=tmp_path / "missing.pem")
    assert load_hub_settings(tls_cert_file=cert, tls_key_file=key).tls_key_file == key


def test_production_refuses_listening_beyond_loopback_without_tls(tmp_path: Path) -> None:
    safe = {"environment": "production", "public_url": "https://hub.example.org"}
    with pytest.raises(ConfigError, match="beyond loopback without TLS"):
        load_hub_settings(host="0.0.0.0", **safe)
    cert, key = self_signed(tmp_path, ["10.0.0.1"])
    assert load_hub_settings(host="0.0.0.0", tls_cert_file=cert, tls_key_file=key, **safe).host == "0.0.0.0"


def test_a_node_ca_bundle_resolves_against_its_config_and_must_exist(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path / "tls", ["10.0.0.1"])
    config = tmp_path / "node.toml"
    lines = ["[node]", 'name = "alpha"', 'hub_url = "https://hub.example.org"', 'credential_file = "c"']
    body = "\n".join([*lines, 'state_dir = "s"', 'environment = "development"', ""])
    config.write_text(body + 'ca_bundle = "tls/hub-cert.pem"\n', encoding="utf-8")
    assert load_node_config(config).node.ca_bundle == cert.resolve()
    assert isinstance(tls_verify(cert), ssl.SSLContext) and tls_verify(None) is True
    config.write_text(body + 'ca_bundle = "tls/none.pem"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="ca_bundle"):
        load_node_config(config)
