"""``prevenance demo``: load deterministic demo data."""

from __future__ import annotations

import typer

app = typer.Typer(help="Demo data.", no_args_is_help=True)


@app.command("load")
def load(
    members: int = typer.Option(1000, help="how many members"),
    seed: int = typer.Option(7, help="random seed (same seed, same data)"),
) -> None:
    """Load members across FR, GB, DE, IT, ES with a year of transactions, redemptions, referrals."""
    from prevenance.cli import engine_from_settings
    from prevenance.demo.generator import DemoMismatch, load_demo

    try:
        summary = load_demo(engine_from_settings(), members=members, seed=seed)
    except DemoMismatch as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))
