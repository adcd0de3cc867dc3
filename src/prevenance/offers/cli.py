"""``prevenance offers`` commands: train the propensity model, list offers and models."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from prevenance.common.clock import SystemClock
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session, unit_of_work
from prevenance.offers import service
from prevenance.offers.roi import cli as roi_cli

app = typer.Typer(help="The offers domain.", no_args_is_help=True)
roi_cli.register(app)


def _engine():  # type: ignore[no-untyped-def]
    from prevenance.db import engine_from_settings

    return engine_from_settings()


@app.command("train")
def train(
    l2: float = typer.Option(1.0, help="L2 penalty on the standardised coefficients"),
    as_json: bool = typer.Option(False, "--json", help="print the stored model as JSON"),
) -> None:
    """Fit the propensity model on the history and store it as the next version (used at once)."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            with unit_of_work(_engine()) as session:
                stored = service.train_model(session, now=SystemClock().now(), progress=progress, l2=l2)
        except PrevenanceError as error:
            typer.echo(f"error: {error.detail}", err=True)
            raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(stored, indent=2))
        return
    metrics = stored["metrics"]
    auc = metrics.get("auc_holdout") or {}
    typer.echo(f"model version {stored['version']}: n={metrics['n']} positives={metrics['positives']}")
    if auc.get("value") is not None:
        typer.echo(
            f"held-out AUC {auc['value']:.3f} (95% CI {auc['ci_low']:.3f}–{auc['ci_high']:.3f}, n={auc['n']})"
        )
    for name, weight in zip(stored["features"], stored["coefficients"]["weights"], strict=True):
        typer.echo(f"  {name:<28} {weight:+.4f}")


@app.command("list")
def list_offers(status: str | None = typer.Option(None, help="active, paused or ended")) -> None:
    """The catalogue: id, status, reward, budget spent."""
    with read_session(_engine()) as session:
        rows = service.list_offers(session, status=status)
    for row in rows:
        budget = "∞" if row["budget_points"] is None else str(row["budget_points"])
        typer.echo(
            f"{row['id']:<30} {row['status']:<7} {row['reward_kind']:<20} {row['spent_points']}/{budget} points"
        )


@app.command("models")
def models() -> None:
    """Stored model versions, newest first, with held-out AUC."""
    with read_session(_engine()) as session:
        rows = service.list_models(session)
    for row in rows:
        auc = (row["metrics"].get("auc_holdout") or {}).get("value")
        typer.echo(f"v{row['version']:<4} {row['created_at']}  n={row['metrics']['n']:<8} AUC={auc}")
