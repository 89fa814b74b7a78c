"""Entry point of the ``phds`` command: builds the Typer app and maps PHDS errors to exit codes."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from phds import __version__
from phds.errors import PhdsError

app = typer.Typer(
    name="phds",
    help="PHDS: a federated Paediatric Health Data Space on OMOP CDM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register_groups() -> None:
    from phds.cli import demo, hub, network, node, omop, study, synth

    app.add_typer(omop.app, name="omop")
    hub.register(app)
    node.register(app)
    network.register(app)
    study.register(app)
    synth.register(app)
    demo.register(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"phds {__version__}")
        raise typer.Exit()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    """Run the CLI; a :class:`PhdsError` becomes a one-line message and its exit code."""
    _register_groups()
    try:
        # Non-standalone click returns the code of a ``typer.Exit`` instead of exiting.
        code = app(standalone_mode=False)
    except PhdsError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
