"""``prevenance``: the Typer root. Each domain mounts its own sub-app."""

from __future__ import annotations

import typer

from prevenance.common.auth import create_key
from prevenance.common.clock import SystemClock
from prevenance.console.cli import app as console_app
from prevenance.db import make_engine, unit_of_work
from prevenance.demo.cli import app as demo_app
from prevenance.desk.cli import app as desk_app
from prevenance.loyalty.cli import ingest_app, ledger_app, partners_app
from prevenance.offers.cli import app as offers_app
from prevenance.settings import get_settings
from prevenance.stream.cli import app as stream_app
from prevenance.views.benefit_usage import app as benefits_app
from prevenance.voice.cli import app as voice_app

app = typer.Typer(
    help="Prévenance: rewards, service, voice of the customer and offers.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(ledger_app, name="ledger")
app.add_typer(partners_app, name="partners")
app.add_typer(ingest_app, name="ingest")
app.add_typer(demo_app, name="demo")
app.add_typer(desk_app, name="desk")
app.add_typer(stream_app, name="stream")
app.add_typer(voice_app, name="voice")
app.add_typer(offers_app, name="offers")
app.add_typer(benefits_app, name="benefits")
app.add_typer(console_app, name="console")


def engine_from_settings():  # type: ignore[no-untyped-def]
    settings = get_settings()
    return make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision")) -> None:
    """Migrate the schema and install the shipped programme if none is installed."""
    from prevenance.loyalty import programme
    from prevenance.migrate import upgrade

    engine = engine_from_settings()
    upgrade(engine, revision)
    with unit_of_work(engine) as session:
        installed = programme.install_default_if_missing(session, now=SystemClock().now())
    typer.echo(f"schema at {revision}; programme {'installed' if installed else 'already present'}")


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="admin, marketing, supervisor, agent, concierge, member, integrator"),
    name: str = typer.Option(..., help="who or what uses the key"),
    member_ref: str | None = typer.Option(None, help="for a member key: the member it acts for"),
) -> None:
    """Create an API key; the key is printed alone on the last line (it is stored hashed)."""
    from prevenance.common.problems import PrevenanceError

    engine = engine_from_settings()
    try:
        with unit_of_work(engine) as session:
            row, secret = create_key(
                session, role=role, name=name, member_ref=member_ref, now=SystemClock().now()
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"created key {row.id} ({row.role}) for {row.name}")
    typer.echo(secret)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Serve the REST API (OpenAPI UI at /docs). Refuses (exit 2) a weak PREVENANCE_SECRET_KEY
    unless it binds a loopback address only."""
    import os

    import uvicorn

    from prevenance.logging import configure
    from prevenance.secret_key import SERVE_HOST_ENV, judge_server

    verdict = judge_server(get_settings().secret_key, host)
    if verdict.line:
        typer.echo(verdict.line, err=True)
    if verdict.refuse:
        raise typer.Exit(2)
    # The ASGI module checks again in each worker; it learns the bound address from here.
    os.environ[SERVE_HOST_ENV] = host
    configure(json=get_settings().log_json)
    uvicorn.run("prevenance.asgi:app", host=host, port=port, workers=workers, log_level="info")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
