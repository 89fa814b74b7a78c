"""``phds node console``: serve the data steward's console (:mod:`phds.node.console`) for this node.

It runs in its own process beside ``phds node run`` and works on the same ``node.db``. It listens on
127.0.0.1 unless told otherwise; listening on another interface needs ``--allow-remote`` and TLS
(``--tls-cert``/``--tls-key``): browsers keep the console's ``Secure`` cookie over plain http only on
loopback, and the sign-in link must not cross the hospital's network in clear.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import typer

from phds.errors import ConfigError

CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and every loopback address (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def console_url(host: str, port: int, *, tls: bool) -> str:
    """Where a browser reaches the console: the host itself, or this machine's name for a wildcard."""
    shown = socket.getfqdn() if host in {"0.0.0.0", "::", ""} else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def check_binding(host: str, *, allow_remote: bool, tls: bool) -> None:
    """Refuse a non-loopback *host* without ``--allow-remote``, or without TLS."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(
            f"--host {host} is not a loopback address: the console would be reachable from the network. "
            "Pass --allow-remote (with --tls-cert and --tls-key) if the hospital means that, or leave "
            "--host at 127.0.0.1"
        )
    if not tls:
        raise ConfigError(
            f"--host {host} with --allow-remote needs --tls-cert and --tls-key: browsers keep the "
            "console's Secure cookie over plain http only on loopback, and the sign-in link would cross "
            "the network in clear"
        )


def console(
    config: Path = CONFIG,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="TCP port."),
    steward: str | None = typer.Option(
        None, "--steward", help="Whose decisions these are, in the audit log (default: login name)."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --host (needs --tls-cert and --tls-key)."
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate for https."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
) -> None:
    """Serve the steward console: approvals, audit log, policy, budget and earnings. Ctrl-C stops it."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    tls = tls_cert is not None
    check_binding(host, allow_remote=allow_remote, tls=tls)

    import uvicorn

    from phds.node.config import load_node_config
    from phds.node.console import LOOPBACK_HOSTS, announce_link, create_console
    from phds.node.console.session import LINK_SECONDS
    from phds.node.local import open_local, steward_name

    cfg = load_node_config(config)
    with open_local(cfg) as node:  # fail here, not at the first page, on an unusable node.db
        node.approvals.pending()
    name = steward_name(steward)
    remote = not is_loopback(host)
    if remote:
        typer.echo(
            f"warning: the console listens on {host}, reachable from the network, not only this computer; "
            "anyone who gets a sign-in link can decide as "
            f"{name}. Keep it behind the hospital's firewall.",
            err=True,
        )
    url = console_url(host, port, tls=tls)
    app = create_console(
        cfg,
        steward=name,
        base_url=url,
        announce=lambda link: typer.echo(
            f"Sign in (the link works once, within {LINK_SECONDS // 60} minutes):\n    {link}"
        ),
        allowed_hosts=("*",) if remote else LOOPBACK_HOSTS,
    )

    class ConsoleServer(uvicorn.Server):
        """Prints the first sign-in link once the console accepts connections."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                typer.echo(f"PHDS steward console of {cfg.node.name} at {url}; decisions are {name}'s.")
                announce_link(app)
                typer.echo("Ctrl-C stops the console; the node (phds node run) keeps running.")

    server = ConsoleServer(
        uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=port,
            log_level="warning",
            access_log=False,  # the sign-in link carries its token in the query
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    )
    server.run()


__all__ = ["check_binding", "console", "console_url", "is_loopback"]
