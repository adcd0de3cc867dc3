"""``prevenance``: the Typer root. Each domain mounts its own sub-app."""

from __future__ import annotations

from typing import Any

import typer

from prevenance import wiring
from prevenance.common.auth import create_key, list_keys, revoke_key
from prevenance.common.clock import SystemClock
from prevenance.common.outbox_cli import app as outbox_app
from prevenance.common.proxies import parse_networks
from prevenance.common.text import is_utf8
from prevenance.console.cli import app as console_app
from prevenance.db import engine_from_settings, unit_of_work
from prevenance.demo.cli import app as demo_app
from prevenance.demo.cli import demo_users
from prevenance.desk.cli import app as desk_app
from prevenance.loyalty.cli import ingest_app, ledger_app, loyalty_app, partners_app
from prevenance.offers.cli import app as offers_app
from prevenance.settings import Settings, get_settings
from prevenance.stream.cli import app as stream_app
from prevenance.views.benefit_usage_cli import app as benefits_app
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
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(demo_app, name="demo")
app.add_typer(desk_app, name="desk")
app.add_typer(stream_app, name="stream")
app.add_typer(outbox_app, name="outbox")
app.add_typer(voice_app, name="voice")
app.add_typer(offers_app, name="offers")
app.add_typer(benefits_app, name="benefits")
app.add_typer(console_app, name="console")
# Demo sign-ins belong to the demo data, yet `make demo` prints them as a console command.
console_app.command("demo-users")(demo_users)


@app.callback()
def wire() -> None:
    """Prévenance: rewards, service, voice of the customer and offers."""
    wiring.install()  # offers decided on earns (and trained) know the desk's side


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
    member_ref: str | None = typer.Option(None, help="for a member key: the member it acts for (must exist)"),
) -> None:
    """Create an API key; the key is printed alone on the last line (it is stored hashed)."""
    from prevenance.common.problems import PrevenanceError
    from prevenance.customers import service as customers

    if member_ref and not is_utf8(member_ref):
        # Bytes the shell could not decode reach Python as lone surrogates: no member has such a
        # ref, and the database driver would fail to encode it (a traceback).
        typer.echo(f"error: member_ref: no member with ref {member_ref!r}", err=True)
        raise typer.Exit(2)
    engine = engine_from_settings()
    try:
        with unit_of_work(engine) as session:
            if member_ref:
                # A key for a ref nobody holds yet would act for whoever is given that ref later.
                customers.get_member_for_body(session, ref=member_ref, field="member_ref")
            row, secret = create_key(
                session, role=role, name=name, member_ref=member_ref, now=SystemClock().now()
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.field + ': ' if error.field else ''}{error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"created key {row.id} ({row.role}) for {row.name}")
    typer.echo(secret)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="the key's id (key_…), as `keys list` shows it"),
) -> None:
    """Revoke an API key: every API process refuses it (401) from the next request on."""
    from prevenance.common.problems import PrevenanceError

    try:
        with unit_of_work(engine_from_settings()) as session:
            row = revoke_key(session, key_id=key_id, now=SystemClock().now())
            revoked_at = row.revoked_at
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"revoked key {key_id} ({row.role}, {row.name}) at {revoked_at:%Y-%m-%dT%H:%M:%SZ}")


@keys_app.command("list")
def keys_list() -> None:
    """List the keys: id, role, name, member, the key's first characters, created, revoked."""
    from prevenance.db import read_session

    with read_session(engine_from_settings()) as session:
        for row in list_keys(session):
            revoked = f"revoked {row.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if row.revoked_at else "live"
            typer.echo(
                f"{row.id}  {row.role:<10} {row.name:<24} {row.member_ref or '-':<12} {row.prefix}…  "
                f"{row.created_at:%Y-%m-%dT%H:%M:%SZ}  {revoked}"
            )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``serve`` tells uvicorn about proxies and its access log: it believes forwarded headers
    from the same proxies as the application (none unless ``PREVENANCE_TRUSTED_PROXIES`` names them;
    uvicorn's own default would trust 127.0.0.1 and ``FORWARDED_ALLOW_IPS``), and its access log goes
    through the redaction filter (survey tokens, search terms), as JSON when ``PREVENANCE_LOG_JSON`` is set."""
    from prevenance.logging import uvicorn_log_config

    proxies = ",".join(str(network) for network in parse_networks(settings.trusted_proxies))
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
        "log_config": uvicorn_log_config(json=settings.log_json),
    }


WORKER_HEALTHCHECK_SECONDS = 60


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
    from prevenance.serving import balanced_workers_supported, run_balanced_workers

    verdict = judge_server(get_settings().secret_key, host)
    if verdict.line:
        typer.echo(verdict.line, err=True)
    if verdict.refuse:
        raise typer.Exit(2)
    # The ASGI module checks again in each worker; it learns the bound address from here.
    os.environ[SERVE_HOST_ENV] = host
    configure(json=get_settings().log_json)
    options = uvicorn_options(get_settings())  # trusted proxies, redacted access log
    # A worker busy importing the app on a loaded machine cannot answer the supervisor's health
    # ping at once; uvicorn's 5-s default kills such workers before they ever serve.
    serving = {
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": "info",
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
        **options,
    }
    if workers > 1 and balanced_workers_supported():
        # One listening socket per worker, so keep-alive clients spread over every worker.
        run_balanced_workers(uvicorn.Config("prevenance.asgi:app", **serving))
        return
    uvicorn.run("prevenance.asgi:app", **serving)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
