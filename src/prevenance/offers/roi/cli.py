"""``prevenance offers roi CAMPAIGN``: the ROI report from the command line."""

from __future__ import annotations

import json
from typing import Any

import typer
from sqlalchemy import Engine

from prevenance.common.clock import SystemClock
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session
from prevenance.offers.roi import rules as roi
from prevenance.offers.roi import service as roi_service


def _engine() -> Engine:
    from prevenance.db import engine_from_settings

    engine: Engine = engine_from_settings()
    return engine


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _line(label: str, block: dict[str, Any], digits: int = 2) -> str:
    return (
        f"{label:<14} {_fmt(block.get('did', block.get('value')), digits):>12}   "
        f"[{_fmt(block.get('ci_low'), digits)} ; {_fmt(block.get('ci_high'), digits)}]"
    )


def roi_command(
    offer_id: str = typer.Argument(..., help="the campaign (offer id)"),
    before_days: int = typer.Option(roi.DEFAULT_BEFORE_DAYS, min=1, max=730, help="days before t0"),
    after_days: int = typer.Option(roi.DEFAULT_AFTER_DAYS, min=1, max=730, help="days after t0"),
    country: str | None = typer.Option(None, help="ISO country code: analyse only its members"),
    min_arm: int = typer.Option(roi.DEFAULT_MIN_ARM, min=2, help="smallest group analysed"),
    ci: str = typer.Option("welch", help="interval method: welch or bootstrap"),
    seed: int = typer.Option(0, min=0, help="bootstrap seed"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Difference in differences against the control group and ROI, each with a 95% CI."""
    try:
        with read_session(_engine()) as session:
            report = roi_service.roi_report(
                session,
                offer_id=offer_id,
                now=SystemClock().now(),
                before_days=before_days,
                after_days=after_days,
                country=country,
                min_arm=min_arm,
                ci=ci,
                seed=seed,
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2 if error.status == 422 else 1)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    window = report["window"]
    typer.echo(
        f"offer {report['offer_id']}{' in ' + report['country'] if report['country'] else ''}: "
        f"{report['treatment']['n']} treated, {report['control']['n']} control, "
        f"windows {window['before_days']} d before / {window['after_days']} d after t0 "
        f"({report['ci_method']} 95% CI)"
    )
    typer.echo(f"{'':<14} {'estimate':>12}   95% CI")
    typer.echo(_line("spend EUR", report["spend"]))
    typer.echo(_line("transactions", report["transactions"], 3))
    typer.echo(_line("attrition", report["attrition"], 3))
    typer.echo(_line("margin EUR", report["incremental_margin_eur"]))
    typer.echo(f"{'cost EUR':<14} {report['cost_eur']:>12}   ({report['rewarded']} rewards posted)")
    typer.echo(_line("ROI", report["roi"], 3))
    liability = report["liability"]
    typer.echo(
        f"liability      {liability['points']:>12,} points at {liability['eur_per_point'] or 0:.4f} EUR "
        f"(cost {liability['cost_eur']} EUR; {liability['point_cost']['basis']})"
    )
    verdict = report["verdict"]
    typer.echo(f"verdict        {verdict['label']}: {verdict['reason']}")
    for cut in report["by_country"]:
        if "refused" in cut:
            typer.echo(f"  {cut['country']}: {cut['refused']}")
        else:
            typer.echo("  " + _line(cut["country"] + " ROI", cut["roi"], 3))
    if window["after_still_open"]:
        typer.echo(f"note: {window['after_still_open']} member(s) have an after window still open")
    programme = report.get("programme_holdout")
    if programme and "refused" not in programme:
        typer.echo(
            f"programme vs holdout ({programme['holdout']['n']} held out since "
            f"{programme['period']['started_at'][:10]}): "
            + _line("spend EUR", programme["spend"]).strip()
            + f"  verdict {programme['verdict']['label']}"
        )
    elif programme:
        typer.echo(f"programme vs holdout: {programme['refused']}")
    typer.echo(f"method: {report['method']}")


holdout_app = typer.Typer(help="The programme-wide holdout: members who receive no marketing offer.")


@holdout_app.command("start")
def holdout_start(
    share: str = typer.Option("0.03", help="share of members held out (at most 0.2)"),
    min_days: int = typer.Option(150, min=150, help="days the period runs at least"),
) -> None:
    """Start a new holdout period with a fresh salt (refused while the open one is younger than its minimum)."""
    from prevenance.db import unit_of_work
    from prevenance.offers import service

    try:
        with unit_of_work(_engine()) as session:
            period = service.start_programme_holdout(
                session, share=share, min_days=min_days, now=SystemClock().now(), by="cli"
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2 if error.status == 422 else 1)
    typer.echo(json.dumps(period, indent=2))


@holdout_app.command("show")
def holdout_show() -> None:
    """The holdout periods and the whole programme's value against the open one, as JSON."""
    from prevenance.offers import service

    with read_session(_engine()) as session:
        body = {
            "periods": service.programme_holdout_periods(session),
            "report": roi_service.programme_holdout_for(session, now=SystemClock().now()),
        }
    typer.echo(json.dumps(body, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``roi`` and ``holdout`` to a Typer app (the lead mounts it on ``prevenance offers``)."""
    app.command("roi")(roi_command)
    app.add_typer(holdout_app, name="holdout")
