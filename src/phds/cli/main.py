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
    from phds.cli import billing, demo, hub, network, node, omop, simulate, study

    app.add_typer(omop.app, name="omop")
    app.add_typer(billing.app, name="billing")
    hub.register(app)
    node.register(app)
    network.register(app)
    study.register(app)
    simulate.register(app)
    demo.register(app)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"phds {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
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
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors and exits arrive here in non-standalone mode
        # Typer may vendor its own click, so these are recognised by what they carry, not by class.
        code_of = getattr(exc, "exit_code", None)
        if isinstance(code_of, int) and callable(getattr(exc, "show", None)):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(code_of)
        if isinstance(code_of, int) and type(exc).__name__ == "Exit":
            sys.exit(code_of)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
