"""``prevenance demo``: load deterministic demo data."""

from __future__ import annotations

import typer
from sqlalchemy import Engine

app = typer.Typer(help="Demo data.", no_args_is_help=True)


@app.command("load")
def load(
    members: int = typer.Option(1000, help="how many members"),
    seed: int = typer.Option(7, help="random seed (same seed, same data)"),
    desk_scale: float = typer.Option(
        0.01,
        help="service-desk volume as a fraction of 5,000 contacts and 700 concierge requests a day "
        "(0.01: 50 and 7 a day, about 20,000 contacts a year, enough answers a quarter for GB to be "
        "calibrated by estimation; 0 for none)",
        min=0.0,
    ),
) -> None:
    """Load members across FR, GB, DE, IT, ES with a year of transactions, redemptions, referrals
    and service-desk contacts, card replacements, communications and contact preferences."""
    from prevenance.db import engine_from_settings
    from prevenance.demo.generator import DemoMismatch, load_demo

    engine = engine_from_settings()
    try:
        summary = load_demo(engine, members=members, seed=seed, desk_scale=desk_scale)
    except DemoMismatch as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    summary["events_delivered"] = deliver_demo_events(engine)
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


def deliver_demo_events(engine: Engine) -> int:
    """Hand the outbox events the load wrote to their handlers now, as the server's worker would
    (unless a NATS relay owns the outbox): the server then starts with nothing to catch up on."""
    from prevenance.common.clock import SystemClock
    from prevenance.maintenance import drain
    from prevenance.settings import get_settings

    if get_settings().nats_url is not None:
        return 0
    return drain(engine, SystemClock(), deliver_events=True)["events_delivered"]


def demo_users() -> None:
    """Create or reset the demo users and print their sign-ins (for ``make demo``)."""
    from prevenance.db import engine_from_settings
    from prevenance.demo.users import create_demo_users

    for username, password, role in create_demo_users(engine_from_settings()):
        typer.echo(f"  {role:<11} {username:<16} {password}")
