"""``prevenance desk mail-in``, ``mail-classifier evaluate`` and ``send-mail``: the inbound mail
listener, the classifier's accuracy on held-out contacts, and the relay of acknowledgements and
answers."""

from __future__ import annotations

import signal
import threading

import typer

from prevenance.common.clock import SystemClock
from prevenance.db import engine_from_settings, is_sqlite, read_session
from prevenance.desk.mail_in import config as mail_config
from prevenance.desk.mail_in import listener, relay, service
from prevenance.settings import get_settings

classifier_app = typer.Typer(help="The suggested reason of incoming e-mail.", no_args_is_help=True)


def mail_in(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(2525, help="SMTP port (the company's mail server forwards to it)"),
    writers: int = typer.Option(0, help="threads storing messages (0: 1 on SQLite, 4 otherwise)"),
) -> None:
    """Accept mail for PREVENANCE_MAIL_IN_ADDRESSES until stopped (Ctrl-C or SIGTERM)."""
    from prevenance.logging import configure

    settings = get_settings()
    configure(json=settings.log_json)
    engine = engine_from_settings()
    addresses = mail_config.addresses(settings.mail_in_addresses)
    if not addresses:
        typer.echo("error: PREVENANCE_MAIL_IN_ADDRESSES is empty", err=True)
        raise typer.Exit(2)
    handler = listener.MailInHandler(
        engine=engine,
        clock=SystemClock(),
        config=listener.ListenerConfig(
            addresses=addresses,
            max_bytes=settings.mail_in_max_bytes,
            attachment_max_bytes=settings.mail_in_attachment_max_bytes,
        ),
        writers=writers or (1 if is_sqlite(engine) else 4),
    )
    handler.model()  # train before the first message
    smtp = listener.controller(handler, host=host, port=port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    smtp.start()
    typer.echo(f"mail-in listening on {host}:{port} for {', '.join(sorted(addresses))}")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        smtp.stop()
        handler.close()
        typer.echo(f"mail-in stopped: {handler.stored} stored, {handler.duplicates} duplicate(s)")


def send_mail(limit: int = typer.Option(100_000, help="send at most this many messages")) -> None:
    """Send pending acknowledgements and agents' answers to PREVENANCE_SMTP_URL (threading headers
    kept; a refusal is retried later or marked failed, as for every mail queue)."""
    smtp_url = get_settings().smtp_url
    if not smtp_url:
        typer.echo("error: PREVENANCE_SMTP_URL is not set", err=True)
        raise typer.Exit(2)
    engine = engine_from_settings()
    sent = relay.send_pending(engine, smtp_url=smtp_url, now=SystemClock().now(), limit=limit)
    with read_session(engine) as session:
        pending = relay.count_pending(session)
    typer.echo(f"{sent} message(s) sent; {pending} pending")


@classifier_app.command("evaluate")
def evaluate(
    held_out: float = typer.Option(0.2, min=0.05, max=0.5, help="share of contacts kept out of training"),
    seed: int = typer.Option(7, help="the split's random seed"),
) -> None:
    """Train on past inbound contacts' notes and measure accuracy on the held-out share."""
    with read_session(engine_from_settings()) as session:
        try:
            result = service.evaluate_classifier(session, held_out=held_out, seed=seed)
        except ValueError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1)
    typer.echo(f"trained on {result.trained_on} contacts, tested on {result.held_out} held out")
    typer.echo(
        f"accuracy {result.accuracy * 100:.1f}% (95% CI {result.low * 100:.1f}-{result.high * 100:.1f}%),"
        f" majority baseline ({result.baseline_reason}) {result.baseline_accuracy * 100:.1f}%"
    )
    for reason, (correct, n) in result.per_reason.items():
        typer.echo(f"  {reason:<28} {correct:>5}/{n:<5} {correct / n * 100:5.1f}%")


def register(app: typer.Typer) -> None:
    """Mount the mail commands on ``prevenance desk``."""
    app.command("mail-in")(mail_in)
    app.command("send-mail")(send_mail)
    app.add_typer(classifier_app, name="mail-classifier")
