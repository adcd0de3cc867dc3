"""``prevenance console``: console users (staff sign-in and the member portal)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Web console users.", no_args_is_help=True)


@app.command("create-user")
def create_user(
    username: str = typer.Option(..., help="sign-in name (3-120 characters [A-Za-z0-9._@-])"),
    role: str = typer.Option(..., help="agent, concierge, supervisor, marketing, admin or member"),
    language: str = typer.Option("fr", help="fr or en (a member user takes its member's language)"),
    member_ref: str | None = typer.Option(None, help="for a member user: the member it signs in as"),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="PREVENANCE_CONSOLE_PASSWORD",
        help="at least 10 characters (prompted when not given; or PREVENANCE_CONSOLE_PASSWORD)",
    ),
) -> None:
    """Create a console user; its password is stored as an argon2 hash only."""
    from prevenance.common.clock import SystemClock
    from prevenance.common.problems import PrevenanceError
    from prevenance.console import users
    from prevenance.db import engine_from_settings, unit_of_work

    try:
        with unit_of_work(engine_from_settings()) as session:
            user = users.create_user(
                session,
                username=username,
                password=password,
                role=role,
                language=language,
                member_ref=member_ref,
                now=SystemClock().now(),
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.field or ''}: {error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"created console user {user.username} ({user.role.value}, {user.language})")


@app.command("disable-user")
def disable_user(username: str = typer.Argument(..., help="the user's sign-in name")) -> None:
    """Disable a console or portal user: its sign-in is refused and its open sessions end now."""
    from prevenance.common.problems import PrevenanceError
    from prevenance.console import users
    from prevenance.db import engine_from_settings, unit_of_work

    try:
        with unit_of_work(engine_from_settings()) as session:
            user = users.disable_user(session, username=username)
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    typer.echo(f"disabled console user {user.username} ({user.role.value}); its sessions have ended")


if __name__ == "__main__":
    app()
