"""``prevenance voice`` commands: send invitations, import answers and barometers, print scores,
write and publish monthly scorecards, build the quarterly report."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prevenance.common.clock import SystemClock
from prevenance.common.inputs import cli_month, cli_quarter
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session, run_in_transaction
from prevenance.voice import invitations, service

app = typer.Typer(help="Voice of the customer: surveys, scores, scorecards, reports.", no_args_is_help=True)
barometers_app = typer.Typer(help="Competitor and market barometers.", no_args_is_help=True)
app.add_typer(barometers_app, name="barometers")
console = Console()

IMPORT_HELP = """Import survey answers from another channel (post-call phone surveys) from a CSV file.

Columns (header required, UTF-8, comma-separated):

  id            the answer's id in the source system (required; the import is idempotent on it)\n
  member_ref    the member's reference (required)\n
  answered_at   ISO 8601 time, UTC when no offset (required)\n
  agent, team   who handled the contact (required)\n
  channel       phone, email, chat, social, web or letter (required)\n
  reason        the contact reason code (required)\n
  recommend     0-10 (recommend to a friend)\n
  interaction   1-5 (poor, fair, good, very good, excellent); recommend or interaction is required\n
  comment, suggestion   free text (optional)\n
  language      fr or en (default: the member's)\n
  contact_id    the desk contact answered about (optional)\n
  product, country      default: the member's

All lines or none: a faulty line rejects the file, listing each line and its reason (exit 2).
"""


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.db import engine_from_settings

    return engine_from_settings()


def _fail(error: PrevenanceError) -> NoReturn:
    typer.echo(f"error: {error.detail}", err=True)
    for item in error.extra.get("errors", [])[:50]:
        typer.echo(f"  line {item['line']}: {item['field']}: {item['reason']}", err=True)
    raise typer.Exit(2)


def _read_csv(path: Path) -> list[dict[str, str | None]]:
    """Every line of a small CSV file (barometers); a file that is not CSV at all (bytes that are not
    UTF-8, a field over the csv module's limit) is a clear error and exit 2, as for the answers import."""
    if not path.exists():
        typer.echo(f"error: no file {path}", err=True)
        raise typer.Exit(2)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            return list(reader)
        except (csv.Error, UnicodeDecodeError) as error:
            typer.echo(f"error: {path}: unreadable CSV near line {reader.line_num + 1}: {error}", err=True)
            raise typer.Exit(2) from None


@app.command("send-invitations")
def send_invitations() -> None:
    """Send the pending survey invitations through PREVENANCE_SMTP_URL. The links are signed with
    PREVENANCE_SECRET_KEY: a weak one is refused (exit 2) unless the relay and database are local."""
    from prevenance.secret_key import judge_mailer
    from prevenance.settings import get_settings

    settings = get_settings()
    if not settings.smtp_url:
        typer.echo("error: set PREVENANCE_SMTP_URL (smtp://host:port)", err=True)
        raise typer.Exit(2)
    verdict = judge_mailer(
        settings.secret_key, smtp_url=settings.smtp_url, database_url=settings.database_url
    )
    if verdict.line:
        typer.echo(verdict.line, err=True)
    if verdict.refuse:
        raise typer.Exit(2)
    engine = _engine()
    sent = invitations.send_pending_invitations(
        engine, smtp_url=settings.smtp_url, now=SystemClock().now(), settings=settings
    )
    with read_session(engine) as session:
        unsent = invitations.count_unsent(session)
    typer.echo(f"{sent} invitation(s) sent; {unsent['pending']} pending; {unsent['failed']} failed")


@app.command("import", help=IMPORT_HELP)
def import_answers(file: Path = typer.Argument(..., help="CSV file of answers")) -> None:
    if not file.exists():
        typer.echo(f"error: no file {file}", err=True)
        raise typer.Exit(2)
    engine = _engine()
    with (
        file.open(newline="", encoding="utf-8-sig") as handle,
        Progress(
            TextColumn("[bold]importing"), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress,
    ):
        task = progress.add_task("lines", total=None)

        reader: csv.DictReader[str] | None = None

        def run(session: Any) -> dict[str, int]:
            nonlocal reader
            handle.seek(0)  # a retried transaction reads the file again from the start
            reader = csv.DictReader(handle)
            return service.import_answers(
                session,
                rows=reader,
                now=SystemClock().now(),
                progress=lambda done: progress.update(task, completed=done),
            )

        try:
            result = run_in_transaction(engine, run)
        except PrevenanceError as error:
            progress.stop()
            _fail(error)
        except (csv.Error, UnicodeDecodeError) as error:
            # Not a CSV line at all (a field over the csv module's limit, bytes that are not UTF-8):
            # the transaction is rolled back like for a faulty line, nothing is written.
            progress.stop()
            line = reader.line_num + 1 if reader is not None else 1
            typer.echo(f"error: {file}: unreadable CSV near line {line}: {error}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{result['imported']} answer(s) imported, {result['unchanged']} already there")


def _fmt(score: dict[str, Any] | None) -> tuple[str, str]:
    if not score or score.get("value") is None:
        return "-", "-"
    low, high = score.get("ci_low"), score.get("ci_high")
    ci = "-" if low is None or high is None else f"{low:.1f} – {high:.1f}"
    return f"{score['value']:.1f}", ci


@app.command("scores")
def scores(
    by: str = typer.Option("agent", help="agent, team, channel, reason, country, product or month"),
    month: str = typer.Option(..., help="YYYY-MM", callback=cli_month),
    as_json: bool = typer.Option(False, "--json", help="print the scores as JSON"),
) -> None:
    """RTF and excellence rate for a month with n and 95% intervals (method: docs/methods.md)."""
    try:
        with read_session(_engine()) as session:
            report = service.scores(session, by=by, month=month)
    except PrevenanceError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    table = Table(title=f"Voice of the customer — {month}, by {by} ({report['n']} answers)")
    for column in (by, "n", "RTF", "RTF 95% CI", "excellence %", "excellence 95% CI"):
        table.add_column(column, justify="left" if column == by else "right")
    shrunk = by == "agent"
    if shrunk:
        table.add_column("RTF shrunk", justify="right")
        table.add_column("P(above target)", justify="right")
    for item in report["items"]:
        cells = [str(item["key"]), str(item["n"]), *_fmt(item.get("rtf")), *_fmt(item.get("excellence"))]
        if shrunk:
            probability = item.get("p_above_target")
            cells += [_fmt(item.get("rtf_shrunk"))[0], "-" if probability is None else f"{probability:.2f}"]
        table.add_row(*cells)
    console.print(table)
    console.print(f"method: {report['method']}")


def _write_scorecard(rows: list[dict[str, Any]], out: Path, month: str, version: int) -> tuple[Path, Path]:
    """The scorecard as scorecards-M-vN.csv and .xlsx in ``out`` (no cell is ever a formula:
    ``voice.spreadsheets``)."""
    from prevenance.voice import spreadsheets

    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"scorecards-{month}-v{version}"
    csv_path, xlsx_path = stem.with_suffix(".csv"), stem.with_suffix(".xlsx")
    csv_path.write_bytes(spreadsheets.to_csv(rows))
    xlsx_path.write_bytes(spreadsheets.to_xlsx(rows, f"{month} v{version}", freeze="B2"))
    return csv_path, xlsx_path


@app.command("scorecards")
def scorecards(
    month: str = typer.Option(..., help="YYYY-MM", callback=cli_month),
    out: Path = typer.Option(Path("."), help="directory for the CSV and XLSX files"),
    publish: bool = typer.Option(False, "--publish", help="freeze this scorecard as a new published version"),
    by: str | None = typer.Option(None, "--by", help="who publishes (with --publish)"),
    reason: str | None = typer.Option(
        None, "--reason", help="why: first publication, correction… (with --publish)"
    ),
) -> None:
    """Write the monthly scorecard per agent (n, RTF raw and shrunk with CI, excellence, FCR, payout
    band) as scorecards-M-vN.csv and .xlsx. Without --publish, N is the version a publication would
    get (the latest published one when nothing changed) and nothing is stored."""
    engine = _engine()
    now = SystemClock().now()
    try:
        if publish:
            if not by or not reason:
                typer.echo("error: --publish needs --by and --reason", err=True)
                raise typer.Exit(2)
            outcome = run_in_transaction(
                engine, lambda s: service.publish_scorecard(s, month=month, by=by, reason=reason, now=now)
            )
            with read_session(engine) as session:
                card = service.get_scorecard(session, month=month, version=int(outcome.body["version"]))
            rows, version = card["rows"], int(card["version"])
            state = "already published" if outcome.replayed else "published"
        else:
            with read_session(engine) as session:
                rows = service.compute_scorecard(session, month=month, now=now)
                try:
                    latest: dict[str, Any] | None = service.get_scorecard(session, month=month)
                except PrevenanceError:
                    latest = None
            same = latest is not None and latest["rows"] == rows
            version = int(latest["version"]) + (0 if same else 1) if latest else 1
            state = "same as published" if same else "draft, not published"
    except PrevenanceError as error:
        _fail(error)
    csv_path, xlsx_path = _write_scorecard(rows, out, month, version)
    typer.echo(f"{len(rows)} agent(s), version {version} ({state})")
    typer.echo(str(csv_path))
    typer.echo(str(xlsx_path))


@app.command("report")
def report(
    quarter: str = typer.Option(..., help="e.g. 2026Q3", callback=cli_quarter),
    lang: str = typer.Option("fr", "--lang", help="fr or en"),
    out: Path = typer.Option(Path("."), help="directory for the report"),
    pdf: bool = typer.Option(False, "--pdf", help="also print a PDF with headless chromium"),
) -> None:
    """Build the quarterly executive report (self-contained HTML, and PDF with --pdf)."""
    from prevenance.voice import report as quarterly

    try:
        with read_session(_engine()) as session:
            data = service.report_data(session, quarter=quarter, language=lang, now=SystemClock().now())
    except PrevenanceError as error:
        _fail(error)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / f"voice-report-{quarter}-{lang}.html"
    pdf_path = out / f"voice-report-{quarter}-{lang}.pdf" if pdf else None
    quarterly.build_quarterly_report(data, html_path, pdf_path)
    typer.echo(str(html_path))
    if pdf_path is not None:
        typer.echo(str(pdf_path))


@barometers_app.command("import")
def barometers_import(
    file: Path = typer.Argument(..., help="CSV: source,country,quarter,metric,value,n"),
) -> None:
    """Import competitor and market barometers (n may be empty); one figure per source, country,
    quarter and metric: importing again changes nothing, a new value corrects the stored one."""
    rows = _read_csv(file)
    try:
        result = run_in_transaction(
            _engine(), lambda s: service.import_barometers(s, rows=rows, now=SystemClock().now())
        )
    except PrevenanceError as error:
        _fail(error)
    typer.echo(f"{result['inserted']} inserted, {result['updated']} updated, {result['unchanged']} unchanged")
