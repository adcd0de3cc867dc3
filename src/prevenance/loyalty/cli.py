"""``prevenance ledger``, ``partners`` and ``ingest`` commands."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from prevenance.common.clock import SystemClock
from prevenance.common.inputs import cli_day, cli_month
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import goodwill, ledger, service

if TYPE_CHECKING:
    from prevenance.loyalty.ingest import ChunkStats, Report

ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners (airlines, hotels, merchants).", no_args_is_help=True)
ingest_app = typer.Typer(help="Bulk loads: members and settlement files.", no_args_is_help=True)
loyalty_app = typer.Typer(help="The rewards programme's loops: referrals.", no_args_is_help=True)
referrals_app = typer.Typer(help="Member-gets-member referrals.", no_args_is_help=True)
loyalty_app.add_typer(referrals_app, name="referrals")
goodwill_app = typer.Typer(
    help="Goodwill gestures: late cards and incidents made right.", no_args_is_help=True
)
loyalty_app.add_typer(goodwill_app, name="goodwill")


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.db import engine_from_settings

    return engine_from_settings()


@ledger_app.command("audit")
def audit(as_json: bool = typer.Option(False, "--json", help="print the full report as JSON")) -> None:
    """Prove the ledger invariants; exit 1 loudly when one is broken."""
    with read_session(_engine()) as session:
        report = ledger.audit(session)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        for check in report["checks"]:
            mark = "ok  " if check["ok"] else "FAIL"
            typer.echo(f"{mark} {check['name']}: {check['detail']}")
            for failure in check["failures"]:
                typer.echo(f"       {failure}")
        typer.echo(f"postings={report['postings']} accounts={report['accounts']} issued={report['issued']}")
    if not report["ok"]:
        typer.secho("LEDGER INVARIANTS BROKEN", fg=typer.colors.RED, err=True, bold=True)
        raise typer.Exit(1)
    typer.echo("ledger audit: all invariants hold")


@ledger_app.command("release-expired")
def release_expired() -> None:
    """Release travel holds that were not confirmed in time."""
    with unit_of_work(_engine()) as session:
        count = service.release_expired_holds(session, now=SystemClock().now())
    typer.echo(f"released {count} expired hold(s)")


@ledger_app.command("expire")
def expire(
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="YYYY-MM-DD: expire what is due by the end of this day (default today)",
        callback=cli_day,
    ),
    as_json: bool = typer.Option(False, "--json", help="print the run's report as JSON"),
) -> None:
    """Run the programme's points expiry policy: expire the lots due, queue the warnings owed.

    Running it again for the same day changes nothing; with the default policy (none) nothing expires."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from prevenance.common.problems import PrevenanceError
    from prevenance.loyalty import expiry

    now = SystemClock().now()
    day = date.fromisoformat(as_of) if as_of else now.date()
    columns = (TextColumn("[bold]members[/bold]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("expire", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = expiry.expire(_engine(), as_of=day, now=now, on_progress=on_progress)
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(
        f"expiry as of {report.as_of} (policy {report.policy}): members={report.members} "
        f"expired={report.members_expired} points={report.points_expired} warnings={report.warnings} "
        f"already_run={report.skipped_already_run}"
    )


@referrals_app.command("report")
def referrals_report(
    month: str = typer.Option(
        ..., "--month", help="YYYY-MM: referrals made in this month", callback=cli_month
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """The month's referrals: made, converted, conversion rate with its 95 % Wilson interval, bonuses paid."""
    with read_session(_engine()) as session:
        report = service.referral_report(session, month=month)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    rate = report["conversion_rate"]
    interval = report["conversion_interval"]
    shown = (
        f"{rate:.1%} (95% CI {interval['low']:.1%}–{interval['high']:.1%})"
        if rate is not None and interval is not None
        else "n/a (no referral made)"
    )
    typer.echo(
        f"referrals {report['month']}: made={report['made']} converted={report['converted']} "
        f"conversion={shown} rewarded_in_month={report['rewarded_in_month']} "
        f"points_paid={report['points_paid']} miles_paid={report['miles_paid']}"
    )


@goodwill_app.command("report")
def goodwill_report(
    month: str = typer.Option(
        ..., "--month", help="YYYY-MM: goodwill granted in this month", callback=cli_month
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """The month's goodwill: count, cost, points and statement credits, by reason, country and team."""
    with read_session(_engine()) as session:
        report = goodwill.report(session, month=month)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"goodwill {report['month']}: count={report['count']} capped={report['capped']} "
        f"points={report['points']} credit_eur={report['credit_eur']} cost_eur={report['cost_eur']}"
    )
    for heading, rows in (
        ("reason", report["by_reason"]),
        ("country", report["by_country"]),
        ("team", report["by_team"]),
    ):
        for row in rows:
            typer.echo(
                f"  {heading:<8} {row['key'] or '-':<16} count={row['count']} points={row['points']} "
                f"credit_eur={row['credit_eur']} cost_eur={row['cost_eur']}"
            )


@partners_app.command("export")
def export(
    export_date: str = typer.Option(
        ..., "--date", help="YYYY-MM-DD: miles earned up to the end of this day", callback=cli_day
    ),
    out: Path = typer.Option(Path("exports"), help="folder for the partner files"),
) -> None:
    """Write the co-brand miles each airline is owed; exporting twice never sends a mile twice."""
    try:
        day = date.fromisoformat(export_date)
    except ValueError:
        typer.echo("error: --date must be YYYY-MM-DD", err=True)
        raise typer.Exit(2)
    with unit_of_work(_engine()) as session:
        files = service.export_miles(session, export_date=day, now=SystemClock().now())
    out.mkdir(parents=True, exist_ok=True)
    for item in files:
        path = out / f"miles_{item['partner']}_{item['export_date']}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["partner", "export_date", "member_ref", "miles"])
            for ref, miles in item["members"]:
                writer.writerow([item["partner"], item["export_date"], ref, miles])
        typer.echo(
            f"{path}: {len(item['members'])} member(s), {item['total_miles']} miles "
            f"from {item['postings']} posting(s)"
        )


# --- ingest: bulk loads ------------------------------------------------------------------------

_CHUNK_HELP = "rows per database transaction (each chunk commits on its own)"
_REJECTS_HELP = "where refused rows go (default: <file>.rejects.csv beside the input)"


def _ingest(kind: str, file: Path, run: Callable[[Callable[[ChunkStats], None]], Report]) -> None:
    """Run one bulk load behind a Rich progress bar; exit 1 when rows were refused, 2 when the
    file cannot be read (nothing written), 3 when the load stopped part-way (committed chunks stay,
    and one line says exactly which rows landed)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from sqlalchemy.exc import SQLAlchemyError

    from prevenance.common.problems import PrevenanceError
    from prevenance.loyalty.ingest import (
        MEMBER_COLUMNS,
        TRANSACTION_COLUMNS,
        FileError,
        LoadStopped,
        file_format,
        verify_file,
    )

    try:
        file_format(file)
        # The whole file is checked before the progress bar and before any write: an unreadable
        # file is one line and exit 2, with nothing loaded.
        total = verify_file(file, MEMBER_COLUMNS if kind == "members" else TRANSACTION_COLUMNS)
    except FileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    columns = (
        TextColumn(f"[bold]{kind}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task(kind, total=total, rejected=0)
            rejected = 0

            def on_chunk(stats: ChunkStats) -> None:
                nonlocal rejected
                rejected += len(stats.rejects)
                progress.update(task, advance=stats.rows, rejected=rejected)

            report = run(on_chunk)
            progress.update(task, total=report.rows, completed=report.rows)
    except FileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    except LoadStopped as stopped:
        typer.echo(f"error: the load stopped: {stopped.reason}", err=True)
        typer.echo(f"{kind}: {stopped.summary()}")
        typer.echo(
            "run the same file again to finish: the committed rows are replayed, not doubled", err=True
        )
        raise typer.Exit(3)
    except (SQLAlchemyError, PrevenanceError) as error:
        typer.echo(f"error: the load stopped: {getattr(error, 'detail', error)}", err=True)
        typer.echo("chunks already committed stay; run the same file again to finish", err=True)
        raise typer.Exit(3)
    counts = " ".join(f"{name}={value}" for name, value in report.counts.items())
    if report.retries:
        counts += f" retries={report.retries}"
    typer.echo(
        f"{kind}: rows={report.rows} {counts} rejected={report.rejected} "
        f"chunks={report.chunks} seconds={report.seconds:.1f}"
    )
    if report.rejected:
        typer.echo(f"{report.rejected} row(s) refused: see {report.rejects_path}", err=True)
        raise typer.Exit(1)


@ingest_app.command("members")
def ingest_members(
    file: Path = typer.Argument(
        ..., help="CSV or Parquet: ref,name,email,language,country,product[,city][,phone]"
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help=_REJECTS_HELP),
    chunk_size: int = typer.Option(10_000, "--chunk-size", min=1, help=_CHUNK_HELP),
) -> None:
    """Create or update members in bulk, with the rules of PUT /v1/members/{ref}."""
    from prevenance.loyalty import ingest

    engine = _engine()
    _ingest(
        "members",
        file,
        lambda on_chunk: ingest.ingest_members(
            engine, file, chunk_size=chunk_size, rejects_path=rejects, on_chunk=on_chunk
        ),
    )


@ingest_app.command("transactions")
def ingest_transactions(
    file: Path = typer.Argument(
        ..., help="CSV or Parquet: id,member_ref,amount,currency,merchant,category,occurred_at"
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help=_REJECTS_HELP),
    chunk_size: int = typer.Option(10_000, "--chunk-size", min=1, help=_CHUNK_HELP),
    row_by_row: bool = typer.Option(
        False, "--row-by-row", hidden=True, help="the service function per row (reference path, slow)"
    ),
    no_hooks: bool = typer.Option(
        False,
        "--no-hooks",
        help="do not run the transaction hooks (offer decisions): for back-filling history only",
    ),
) -> None:
    """Earn points for a settlement file, with the rules, idempotency and hooks (offers) of
    POST /v1/transactions."""
    from prevenance.loyalty import ingest

    engine = _engine()
    _ingest(
        "transactions",
        file,
        lambda on_chunk: ingest.ingest_transactions(
            engine,
            file,
            chunk_size=chunk_size,
            rejects_path=rejects,
            method="rowwise" if row_by_row else "batch",
            on_chunk=on_chunk,
            hooks=not no_hooks,
        ),
    )
