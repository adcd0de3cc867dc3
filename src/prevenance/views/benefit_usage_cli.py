"""``prevenance benefits``: the monthly benefit usage report and its alerts in a terminal."""

from __future__ import annotations

import json

import typer
from sqlalchemy import Engine

from prevenance.common.inputs import cli_month
from prevenance.common.problems import InvalidInput, PrevenanceError
from prevenance.db import read_session
from prevenance.views.benefit_stats import DEFAULT_ALPHA, DEFAULT_MIN_DROP, DEFAULT_MIN_ENTITLED
from prevenance.views.benefit_usage import AlertPolicy, usage_alerts, usage_report

app = typer.Typer(help="Benefit usage monitoring.", no_args_is_help=True)


def _engine() -> Engine:
    from prevenance.db import engine_from_settings

    engine: Engine = engine_from_settings()
    return engine


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:5.1f}"


def _policy(alpha: float, min_drop: float, min_entitled: int) -> AlertPolicy:
    return AlertPolicy(alpha=alpha, min_drop=min_drop, min_entitled=min_entitled)


@app.command("usage")
def usage_command(
    month: str = typer.Option(..., help="YYYY-MM", callback=cli_month),
    country: str | None = typer.Option(None, help="ISO country code"),
    alpha: float = typer.Option(DEFAULT_ALPHA, help="one-sided significance level of an alert"),
    min_drop: float = typer.Option(DEFAULT_MIN_DROP, help="smallest absolute drop alerted"),
    min_entitled: int = typer.Option(DEFAULT_MIN_ENTITLED, help="smallest group alerted"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Usage rate per benefit, product and country with its 95% CI and the 3 months before."""
    try:
        with read_session(_engine()) as session:
            report = usage_report(
                session, month=month, country=country, policy=_policy(alpha, min_drop, min_entitled)
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    prev = "  ".join(f"{m:>7}" for m in report["baseline_months"])
    typer.echo(f"{'benefit':<28} {'product':<16} {'ctry':<4} {'n':>6} {'rate %':>6} {'95% CI':>13}  {prev}")
    for row in [*report["rows"], *report["totals"]]:
        ci = f"{_pct(row['rate']['ci_low'])}–{_pct(row['rate']['ci_high'])}"
        trend = "  ".join(f"{_pct(t['rate']):>7}" for t in row["trend"])
        flag = "  ALERT" if row["alert"] else ""
        typer.echo(
            f"{row['benefit']:<28} {row['product'] or 'all':<16} {row['country'] or 'all':<4} "
            f"{row['entitled']:>6} {_pct(row['rate']['value']):>6} {ci:>13}  {trend}{flag}"
        )
    typer.echo(f"method: {report['method']}")


@app.command("alerts")
def alerts_command(
    month: str = typer.Option(..., help="YYYY-MM", callback=cli_month),
    country: str | None = typer.Option(None, help="ISO country code"),
    alpha: float = typer.Option(DEFAULT_ALPHA, help="one-sided significance level of an alert"),
    min_drop: float = typer.Option(DEFAULT_MIN_DROP, help="smallest absolute drop alerted"),
    min_entitled: int = typer.Option(DEFAULT_MIN_ENTITLED, help="smallest group alerted"),
    language: str = typer.Option("en", help="fr or en"),
    as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON"),
) -> None:
    """Benefits whose usage rate dropped significantly; exit code 1 when there is at least one."""
    try:
        if language not in ("fr", "en"):
            raise InvalidInput("language must be fr or en", field="language")
        with read_session(_engine()) as session:
            result = usage_alerts(
                session, month=month, country=country, policy=_policy(alpha, min_drop, min_entitled)
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for alert in result["alerts"]:
            typer.echo(alert[f"message_{language}"])
        if not result["alerts"]:
            typer.echo("aucune alerte" if language == "fr" else "no alert")
    if result["alerts"]:
        raise typer.Exit(1)
