"""``prevenance offers`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="The offers domain.", no_args_is_help=True)
