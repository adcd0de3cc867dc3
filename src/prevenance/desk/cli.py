"""``prevenance desk`` commands: the desk's reports from the command line."""

from __future__ import annotations

import json

import typer

from prevenance.common.clock import SystemClock
from prevenance.common.inputs import cli_month
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session
from prevenance.desk import incidents, service
from prevenance.desk.chat.cli import app as chat_app
from prevenance.desk.mail_in.cli import register as register_mail_commands

app = typer.Typer(help="The service desk: contacts, cases, emergency cards.", no_args_is_help=True)
app.add_typer(chat_app, name="chat")


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.db import engine_from_settings

    return engine_from_settings()


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:5.1f}"


@app.command("fcr")
def fcr(
    by: str = typer.Option("agent", help="agent, team, channel, reason, country or month"),
    month: str | None = typer.Option(
        None, help="YYYY-MM: cases opened that month (default: all)", callback=cli_month
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """First-contact resolution with Wilson 95% intervals (cases whose window is open are left out)."""
    try:
        with read_session(_engine()) as session:
            report = service.fcr_report(session, by=by, month=month, now=SystemClock().now())
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{by:<24} {'n':>7} {'FCR %':>6} {'95% CI':>15}")
    for row in [*report["rows"], report["overall"]]:
        ci = f"{_pct(row['ci_low'])}–{_pct(row['ci_high'])}"
        typer.echo(f"{row['key']:<24} {row['n']:>7} {_pct(row['value']):>6} {ci:>15}")
    typer.echo(f"undetermined (window of {report['window_days']} days still open): {report['undetermined']}")


@app.command("card-replacements")
def card_replacements(
    state: str = typer.Option("breached", help="open, on_track, at_risk or breached"),
) -> None:
    """Emergency card orders not yet delivered, in a state, soonest due first."""
    if state not in ("open", "on_track", "at_risk", "breached"):
        typer.echo("error: --state must be open, on_track, at_risk or breached", err=True)
        raise typer.Exit(2)
    with read_session(_engine()) as session:
        rows = service.list_card_replacements(session, state=state, now=SystemClock().now())
    for row in rows:
        typer.echo(
            f"{row['id']}  {row['member_ref']}  {row['city']} ({row['country']})  due {row['due_at']}  {row['state']}"
        )
    typer.echo(f"{len(rows)} order(s) {state}")


@app.command("reasons")
def reasons(
    month: str = typer.Option(..., help="YYYY-MM", callback=cli_month),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Why customers contacted us in a month: volume, repeats, growth, avoidable contacts."""
    try:
        with read_session(_engine()) as session:
            report = service.reason_report(session, month=month)
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{'reason':<24} {'contacts':>8} {'prev':>6} {'repeat %':>8}  flags")
    for row in report["reasons"]:
        flags = " ".join(
            f
            for f, on in (
                ("GROWING", row["growing"]),
                ("avoidable", row["avoidable"]),
                (f"notice-avoidable:{row['avoidable_by_notice']}", row["avoidable_by_notice"] > 0),
            )
            if on
        )
        typer.echo(
            f"{row['reason']:<24} {row['contacts']:>8} {row['previous']:>6} "
            f"{_pct(row['repeat']['value']):>8}  {flags}"
        )
    typer.echo(
        f"{report['contacts']} contact(s) in {month} ({report['previous_contacts']} in "
        f"{report['previous_month']}); repeat {_pct(report['repeat']['value'])} %; "
        f"avoidable {_pct(report['avoidable']['value'])} % (self-care "
        f"{_pct(report['avoidable_self_care']['value'])} %, proactive notice "
        f"{_pct(report['avoidable_by_notice']['value'])} %)"
    )


@app.command("benefits")
def benefits(
    month: str = typer.Option(
        ..., help="YYYY-MM: benefits explained at contacts started that month", callback=cli_month
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Benefits explained by agents and then used within the attribution window (Wilson 95% intervals)."""
    try:
        with read_session(_engine()) as session:
            report = service.benefit_attribution_report(session, month=month, now=SystemClock().now())
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"{'agent':<20} {'benefit':<28} {'told':>5} {'used':>5} {'pend':>5} {'used %':>6} {'95% CI':>15}"
    )
    for row in report["rows"]:
        rate = row["rate"]
        ci = f"{_pct(rate['ci_low'])}–{_pct(rate['ci_high'])}"
        typer.echo(
            f"{row['agent']:<20} {row['benefit']:<28} {row['explained']:>5} {row['used']:>5} "
            f"{row['pending']:>5} {_pct(rate['value']):>6} {ci:>15}"
        )
    overall = report["overall"]
    typer.echo(
        f"{report['explained']} explained in {month}; used within {report['window_days']} days: "
        f"{_pct(overall['value'])} % of {overall['n']} (pending {report['pending']})"
    )


@app.command("send-notices")
def send_notices(
    limit: int = typer.Option(100_000, help="send at most this many notices"),
) -> None:
    """Send pending incident notices by email to PREVENANCE_SMTP_URL (at least once, one Message-ID
    per notice so a resend after a crash is recognisable). A notice the relay refuses is retried
    later (4xx, no connection) or marked failed (5xx); the others go on."""
    from prevenance.settings import get_settings

    smtp_url = get_settings().smtp_url
    if not smtp_url:
        typer.echo("error: PREVENANCE_SMTP_URL is not set", err=True)
        raise typer.Exit(2)
    engine = _engine()
    sent = incidents.send_pending_notices(engine, smtp_url=smtp_url, now=SystemClock().now(), limit=limit)
    with read_session(engine) as session:
        pending, failed = incidents.count_pending(session), incidents.count_failed(session)
    typer.echo(f"{sent} notice(s) sent; {pending} pending; {failed} failed")


register_mail_commands(app)


@app.command("recovery")
def recovery_cases(
    state: str = typer.Option("breached", help="open, due, breached or closed"),
    team: str | None = typer.Option(None, help="only this team's cases"),
    month: str | None = typer.Option(
        None, help="YYYY-MM: print the month's recovery report instead", callback=cli_month
    ),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Service-recovery cases in a state, soonest due first (or, with --month, the recovery report)."""
    from prevenance.desk import recovery

    if state not in ("open", "due", "breached", "closed"):
        typer.echo("error: --state must be open, due, breached or closed", err=True)
        raise typer.Exit(2)
    with read_session(_engine()) as session:
        if month is not None:
            report = recovery.report(session, month=month)
        else:
            rows = recovery.list_cases(session, now=SystemClock().now(), state=state, team=team, limit=500)
    if month is not None:
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        for label, share in (
            ("recovered", report["recovery_rate"]),
            ("next answer a promoter", report["next_answer_promoter"]),
        ):
            ci = f"{_pct(share['ci_low'])}–{_pct(share['ci_high'])}"
            typer.echo(
                f"{label:<24} {share['successes']:>5}/{share['n']:<5} {_pct(share['value'])} %  95% CI {ci}"
            )
        typer.echo(f"{report['opened']} case(s) opened in {month}, {report['closed']} closed")
        return
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['id']}  {row['member_ref']}  {row['team']}  {row['cause']}  due {row['due_at']}  {row['state']}"
        )
    typer.echo(f"{len(rows)} recovery case(s) {state}")
