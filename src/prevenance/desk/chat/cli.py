"""``prevenance desk chat`` commands: agents' teams, the open chats, waiting and handling by hour."""

from __future__ import annotations

import json

import typer

from prevenance.common.clock import SystemClock
from prevenance.common.inputs import cli_month
from prevenance.common.periods import month_bounds, month_of
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session, run_in_transaction
from prevenance.desk.chat import service

app = typer.Typer(help="The member chat: agents' teams, queues, times.", no_args_is_help=True)


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.db import engine_from_settings

    return engine_from_settings()


@app.command("agent")
def agent(
    name: str = typer.Argument(..., help="the agent's API key name or console username"),
    team: list[str] = typer.Option(..., "--team", help="a team whose queue the agent serves (repeat)"),
) -> None:
    """Set the teams whose chat queues an agent serves (as PUT /v1/chat-agents/{name})."""
    try:
        body = run_in_transaction(
            _engine(), lambda s: service.put_agent(s, name=name, teams=team, now=SystemClock().now())
        )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{body['name']}: {', '.join(body['teams'])}")


@app.command("list")
def list_chats(
    status: str | None = typer.Option(None, help="waiting, active or closed (default: the open ones)"),
) -> None:
    """Chats of every team, oldest first: the supervisor's view of the queues."""
    if status not in (None, "waiting", "active", "closed"):
        typer.echo("error: --status must be waiting, active or closed", err=True)
        raise typer.Exit(2)
    actor = service.ChatActor("supervisor", "cli")
    with read_session(_engine()) as session:
        rows = service.list_conversations(session, actor=actor, status=status, limit=500)
    for row in rows:
        typer.echo(
            f"{row['id']:<40} {row['status']:<8} {row['team']:<12} {row['moment_kind']:<20} "
            f"{row['member_ref']:<16} {row['agent'] or '-':<16} {row['opened_at']}"
        )


@app.command("times")
def times(
    month: str | None = typer.Option(None, help="YYYY-MM (default: this month)", callback=cli_month),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Waiting and handling seconds of a month's chats, by hour of opening (UTC)."""
    now = SystemClock().now()
    chosen = month or month_of(now)
    start, end = month_bounds(chosen)
    with read_session(_engine()) as session:
        hours = service.times_by_hour(session, start=start, end=end, now=now)
    if as_json:
        typer.echo(json.dumps({"month": chosen, "hours": hours}, indent=2))
        return

    def s(value: float | None) -> str:
        return "     -" if value is None else f"{value:6.0f}"

    typer.echo(f"{'hour':<5} {'chats':>6} {'wait50':>6} {'wait90':>6} {'done':>6} {'hdl50':>6} {'hdl90':>6}")
    for h in hours:
        typer.echo(
            f"{h['hour']:02d}:00 {h['chats']:>6} {s(h['wait_median_s'])} {s(h['wait_p90_s'])} {h['handled']:>6} "
            f"{s(h['handle_median_s'])} {s(h['handle_p90_s'])}"
        )
