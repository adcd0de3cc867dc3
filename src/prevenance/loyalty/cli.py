"""``prevenance ledger``, ``partners`` and ``ingest`` commands."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import typer

from prevenance.common.clock import SystemClock
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import ledger, service

ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners (airlines, hotels, merchants).", no_args_is_help=True)
ingest_app = typer.Typer(help="Bulk loads: members and settlement files.", no_args_is_help=True)


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.cli import engine_from_settings

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


@partners_app.command("export")
def export(
    export_date: str = typer.Option(..., "--date", help="YYYY-MM-DD: miles earned up to the end of this day"),
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
