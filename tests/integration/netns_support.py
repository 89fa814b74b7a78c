"""Hospitals on hosts of their own: one Linux network namespace per node, joined to the hub by a veth pair.

Each hospital *i* gets namespace ``phds-<run>-<i>`` with the address 10.231.*i*.2/24; the hub's side of
the pair, in the test's own namespace, is 10.231.*i*.1, and the hub listens on every interface. Inside
each hospital's namespace an nftables ruleset drops every inbound packet that does not belong to a
connection the namespace opened itself (``ct state established,related``), loopback aside: the
firewall a hospital's IT puts in front of a node that only ever calls out (DESIGN.md, invariant 1).

Needs root, ``ip`` (iproute2) and ``nft`` (nftables); CI runs as root and ``.ci/run`` installs nftables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phds.demo.network import DemoHospital, LocalNetwork

INBOUND_DROPPED = """
table inet phds_node {
  chain input {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
  }
}
"""


def missing_tools() -> str | None:
    """Why namespaces cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"phds-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine cannot make network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def run(*command: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command, inside *namespace* when given."""
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, check=check, timeout=60)


@dataclass(frozen=True)
class HospitalHost:
    """One hospital's namespace and its two addresses."""

    namespace: str
    address: str  # the node's, inside its namespace
    hub_address: str  # the hub's end of the pair


@contextmanager
def hospital_hosts(names: list[str]) -> Iterator[dict[str, HospitalHost]]:
    """A namespace per hospital, wired to this namespace and firewalled; removed afterwards."""
    tag = f"{os.getpid() % 10000}"
    hosts: dict[str, HospitalHost] = {}
    try:
        for i, name in enumerate(names, start=1):
            ns, outside, inside = f"phds-{tag}-{i}", f"ph{tag}h{i}", f"ph{tag}n{i}"
            host = HospitalHost(ns, f"10.231.{i}.2", f"10.231.{i}.1")
            run("ip", "netns", "add", ns)
            hosts[name] = host
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            run("ip", "link", "set", inside, "netns", ns)
            run("ip", "addr", "add", f"{host.hub_address}/24", "dev", outside)
            run("ip", "link", "set", outside, "up")
            run("ip", "addr", "add", f"{host.address}/24", "dev", inside, namespace=ns)
            run("ip", "link", "set", inside, "up", namespace=ns)
            run("ip", "link", "set", "lo", "up", namespace=ns)
            nft = ["ip", "netns", "exec", ns, "nft", "-f", "-"]
            subprocess.run(nft, input=INBOUND_DROPPED, text=True, check=True, capture_output=True)
        yield hosts
    finally:
        for i, host in enumerate(hosts.values(), start=1):
            run("ip", "link", "del", f"ph{tag}h{i}", check=False)  # removes both ends of the pair
            run("ip", "netns", "del", host.namespace, check=False)


def self_signed(folder: Path, addresses: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for *addresses* (IP SANs) and its key, as PEM files in *folder*."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phds test hub")])
    now = datetime.now(UTC)
    sans = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(sans, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "hub-cert.pem", folder / "hub-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class NamespacedNetwork(LocalNetwork):
    """A :class:`LocalNetwork` whose nodes enrol and run inside their hospitals' namespaces, and whose hub
    serves HTTPS with a certificate made here (nodes and the SDK check it against that certificate)."""

    def __init__(self, workdir: Path, hospitals: list[DemoHospital], hosts: dict[str, HospitalHost]) -> None:
        super().__init__(workdir, hospitals)
        self.hosts = hosts
        self.hub_host = "0.0.0.0"  # every interface: each hospital reaches the hub over its own pair
        self.hub_url = f"https://127.0.0.1:{self.port}"
        addresses = ["127.0.0.1", *(h.hub_address for h in hosts.values())]
        cert, key = self_signed(self.workdir / "tls", addresses)
        self.hub_args = ("--tls-cert", str(cert), "--tls-key", str(key))
        self.ca_bundle = cert

    def node_prefix(self, hospital: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[hospital].namespace]

    def node_hub_url(self, hospital: str) -> str:
        return f"https://{self.hosts[hospital].hub_address}:{self.port}"
