"""What the ``phds billing`` commands that talk to a hub share: its options, the client, JSON and tables.

The hub comes from ``--hub`` or ``PHDS_HUB_URL``, the API token from ``--token`` or ``PHDS_TOKEN``, as for
``phds study``. With ``--json`` a command prints the hub's objects exactly, amounts as decimal strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from phds.errors import ConfigError
from phds.sdk.client import Client

Hub = Annotated[str | None, typer.Option("--hub", envvar="PHDS_HUB_URL", help="Hub URL (PHDS_HUB_URL).")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="PHDS_TOKEN", help="API token (PHDS_TOKEN).", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as decimal strings).")]
Period = Annotated[str, typer.Argument(metavar="PERIOD", help="A month, YYYY-MM.", show_default=False)]


def console(*, stderr: bool = False) -> Console:
    """A console made per command, so it sees the terminal (and ``COLUMNS``) of this invocation."""
    return Console(stderr=stderr, highlight=False)


@contextmanager
def hub_client(hub: str | None, token: str | None) -> Iterator[Client]:
    """A :class:`Client` of the hub named by the options or the environment."""
    if not hub:
        raise ConfigError("no hub URL: pass --hub or set PHDS_HUB_URL")
    if not token:
        raise ConfigError("no API token: pass --token or set PHDS_TOKEN")
    with Client(hub, token) as client:
        yield client


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    """*data* (wire models, lists of them, plain mappings) as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, default=_plain))


def amount(value: Decimal | None, currency: str | None = None) -> str:
    """An amount as people read it: thousands separated, two decimals, then its currency."""
    if value is None:
        return ""
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    """Print *rows* as a Rich table on stdout; amounts and counts (by their column's name) align right."""
    if not rows:
        console().print(empty)
        return
    right = ("total", "amount", "ceiling", "charged", "price", "quantity", "payable", "receipts", "revision")
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, justify="right" if column.endswith(right) else "left")
    for row in rows:
        shown.add_row(*["" if v is None else str(v) for v in row])
    console().print(shown)
