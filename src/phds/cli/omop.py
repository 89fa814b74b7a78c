"""``phds omop``: put a hospital's OMOP CDM behind PHDS (load, profile, check)."""

from __future__ import annotations

import typer

from phds.cli import omop_load, omop_profile

app = typer.Typer(help="Load, profile and check a hospital's OMOP CDM store.", no_args_is_help=True)
omop_load.register(app)
omop_profile.register(app)
