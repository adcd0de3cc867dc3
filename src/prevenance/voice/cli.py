"""``prevenance voice`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="The voice domain.", no_args_is_help=True)
