"""``prevenance outbox``: the events parked after ``outbox.MAX_ATTEMPTS`` refused deliveries (dead
letters), and sending them back once their handler is fixed."""

from __future__ import annotations

import json

import typer

from prevenance.common import outbox
from prevenance.common.text import is_utf8
from prevenance.db import engine_from_settings, read_session, unit_of_work

app = typer.Typer(help="The outbox: parked events (dead letters) and their retry.", no_args_is_help=True)


@app.command("parked")
def parked(as_json: bool = typer.Option(False, "--json", help="print the events as JSON")) -> None:
    """List the parked events, oldest first: event id, type, attempts, parked at, last error."""
    with read_session(engine_from_settings()) as session:
        rows = [
            {
                "event_id": event.event_id,
                "type": event.type,
                "attempts": event.attempts,
                "parked_at": event.parked_at.isoformat() if event.parked_at else None,
                "last_error": event.last_error,
            }
            for event in outbox.parked_events(session)
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['event_id']}  {row['type']:<28} attempts={row['attempts']:<3} "
            f"parked {row['parked_at']}  {row['last_error'] or ''}"
        )
    typer.echo(f"{len(rows)} parked event(s)")


@app.command("retry")
def retry(
    event_id: str | None = typer.Argument(
        None, help="the parked event's id (evt_…), as `outbox parked` shows it"
    ),
    every: bool = typer.Option(False, "--all", help="every parked event"),
) -> None:
    """Send a parked event (or --all) back to pending, attempts at 0 and no backoff: the next pass
    delivers it."""
    if (event_id is None) == (not every):
        typer.echo("error: name one event id or --all", err=True)
        raise typer.Exit(2)
    with unit_of_work(engine_from_settings()) as session:
        if event_id is not None:
            # Bytes the shell could not decode (lone surrogates) name no event, and no driver takes them.
            event = (
                outbox.find_event(session, event_id) if event_id.isprintable() and is_utf8(event_id) else None
            )
            if event is None:
                typer.echo(f"error: no outbox event {event_id!r}", err=True)
                raise typer.Exit(2)
            if event.parked_at is None:
                state = "delivered" if event.delivered_at else "pending"
                typer.echo(f"error: {event_id} is not parked ({state})", err=True)
                raise typer.Exit(2)
        count = outbox.unpark(session, event_ids=None if every else [str(event_id)])
    typer.echo(f"{count} event(s) back to pending; the next pass delivers them")
