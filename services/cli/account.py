"""`chuhai login`, `logout` and `whoami`: keep the token from the bureau's identity
provider for later commands, forget it, and show what it says."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.credentials import (
    TOKEN_ENV,
    Claims,
    NotAToken,
    find_token,
    forget_token,
    read_claims,
    save_token,
)
from cli.failures import LOGIN_HINT, CommandFailed, ExitCode
from cli.invocation import JsonOutput, fail, overrides
from cli.output import say, stdout, write_json


def login(
    ctx: typer.Context,
    token: Annotated[
        str,
        typer.Option(
            "--token",
            help="The JWT your identity provider issued; '-' reads it from stdin (keeps it "
            "out of the shell's history).",
            show_default=False,
        ),
    ],
) -> None:
    """Save your token for the commands that follow (readable by you only)."""
    if token == "-":
        token = sys.stdin.readline()
    token = token.strip()
    try:
        claims = read_claims(token)
    except NotAToken as error:
        raise fail(ctx, CommandFailed(ExitCode.INVALID_ARGUMENT, str(error))) from None
    if claims.expired:
        raise fail(ctx, _expired(claims)) from None
    path = save_token(token)
    say(f"Logged in as {escape(_who(claims))}; token saved to {escape(str(path))}.")
    say(f"[dim]The services check the token on every call; it ends {escape(_when(claims))}.[/dim]")


def logout() -> None:
    """Forget the saved token."""
    removed = forget_token()
    say(f"Logged out: removed {escape(str(removed))}." if removed else "No saved token.")
    if os.environ.get(TOKEN_ENV, "").strip():
        say(f"[yellow]{TOKEN_ENV} is still set: commands keep using it.[/yellow]")


def whoami(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Show who your token says you are: role, firm or buyer, subject, expiry.

    Read from the token itself, not verified: only the services can tell a genuine one."""
    found = find_token(overrides(ctx).token)
    if found is None:
        raise fail(
            ctx, CommandFailed(ExitCode.UNAUTHENTICATED, f"No token. {LOGIN_HINT}")
        ) from None
    try:
        claims = read_claims(found.value)
    except NotAToken as error:
        failure = CommandFailed(ExitCode.UNAUTHENTICATED, f"{error} (from {found.source}).")
        raise fail(ctx, failure) from None
    if json_output:
        write_json({**claims.as_dict(), "source": found.source, "verified": False})
    else:
        table = Table(
            title="Your token as it reads (not verified here: the services verify it)",
            title_justify="left",
            title_style="bold",
            show_header=False,
        )
        table.add_column("claim", style="dim")
        table.add_column("value")
        for label, value in (
            ("role", claims.role or "(none the platform knows)"),
            ("acts for", claims.party or "-"),
            ("subject", claims.subject),
            ("issuer", claims.issuer),
            ("audience", claims.audience),
            ("expires", _when(claims)),
            ("from", found.source),
        ):
            table.add_row(label, value)
        stdout.print(table)
    if claims.expired:
        raise fail(ctx, _expired(claims))


def _who(claims: Claims) -> str:
    party = f" {claims.party}" if claims.party else ""
    return f"{claims.role or 'no known role'}{party} ({claims.subject})"


def _when(claims: Claims) -> str:
    if claims.expires_at is None:
        return "never (no expiry claim)"
    return _moment(claims) + (" (expired)" if claims.expired else "")


def _moment(claims: Claims) -> str:
    return f"{claims.expires_at:%Y-%m-%d %H:%M:%S} UTC"


def _expired(claims: Claims) -> CommandFailed:
    return CommandFailed(
        ExitCode.UNAUTHENTICATED, f"The token expired at {_moment(claims)}. {LOGIN_HINT}"
    )
