"""What every command does around its calls: the options they share, a request id per
invocation, one event loop, and failures turned into words on stderr and an exit code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from google.protobuf.message import Message
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from cli.connection import Endpoints, Overrides, Platform, ServiceCallFailed
from cli.credentials import NotAToken, find_token, read_claims
from cli.failures import (
    CommandFailed,
    describe_call_failure,
    describe_violations,
    exit_code_for,
)
from cli.output import Column, listing, say, show, stderr

T = TypeVar("T")

JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print the API's reply as JSON on stdout, for scripts.")
]
RequestId = Annotated[
    str,
    typer.Option(
        "--request-id",
        help="Id of this change; a retry with the same id is applied once.",
        show_default="a new uuid",
    ),
]
Limit = Annotated[
    int,
    typer.Option("--limit", min=0, help="List at most this many; 0 lists them all."),
]


def request_id_of(given: str) -> str:
    return given or str(uuid.uuid4())


def overrides(ctx: typer.Context) -> Overrides:
    """What the top-level options said."""
    return ctx.find_object(Overrides) or Overrides()


def endpoints(ctx: typer.Context) -> Endpoints:
    return Endpoints.resolve(overrides(ctx))


def token_party(ctx: typer.Context) -> str:
    """The firm, buyer or operator the caller's token acts for ("" when there is no
    token or it names none), as a default for options that name the caller's own."""
    found = find_token(overrides(ctx).token)
    if found is None:
        return ""
    try:
        return read_claims(found.value).party
    except NotAToken:
        # The service will say what is wrong with it.
        return ""


def fail(ctx: typer.Context, failure: CommandFailed) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {escape(failure.message)}", soft_wrap=True)
    for line in describe_violations(failure.violations, ctx.command.params):
        stderr.print(line, markup=False, soft_wrap=True)
    return typer.Exit(int(failure.code))


def run(
    ctx: typer.Context,
    work: Callable[[Platform], Awaitable[T]],
    *,
    request_id: str = "",
) -> T:
    """Run a command's calls on one event loop. A refused or failed call ends the
    command: its reasons on stderr, the exit code its status means."""
    where = endpoints(ctx)

    async def session() -> T:
        platform = Platform(where)
        try:
            return await work(platform)
        finally:
            await platform.close()

    try:
        return asyncio.run(session())
    except ServiceCallFailed as failure:
        lines = describe_call_failure(
            failure,
            ctx.command.params,
            request_id=request_id,
            deadline_seconds=where.deadline_seconds,
        )
        stderr.print(f"[red]error:[/red] {escape(lines[0])}", soft_wrap=True)
        for line in lines[1:]:
            stderr.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(int(exit_code_for(failure.error.code()))) from None
    except CommandFailed as failure:
        raise fail(ctx, failure) from None


# How a list command names its RPC: the platform's channels exist only inside ``run``.
ListRpc = Callable[[Platform], Callable[..., Awaitable[Message]]]


async def _every_page(
    call: Callable[[Message], Awaitable[Message]],
    request: Message,
    *,
    items: str,
    limit: int,
    page_size: int,
    what: str,
) -> Message:
    """The reply to ``request`` with the ``items`` of page after page until ``limit``
    (0: all), with a progress bar on a terminal's stderr. Its other fields are the last
    page's: the token of the next page (empty when there is none) and any count the API
    makes over all pages."""
    found: list[Any] = []
    token = ""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task(f"fetching {what}", total=limit or None)
        while True:
            # A copy per page: the caller's request stays as it was given.
            page = type(request)()
            page.CopyFrom(request)
            page.page_token = token  # type: ignore[attr-defined]
            page.page_size = (  # type: ignore[attr-defined]
                page_size if not limit else min(page_size, limit - len(found))
            )
            reply = await call(page)
            found.extend(getattr(reply, items))
            progress.update(task, completed=len(found))
            token = reply.next_page_token  # type: ignore[attr-defined]
            if not token or (limit and len(found) >= limit):
                whole = type(reply)()
                whole.CopyFrom(reply)
                whole.ClearField(items)
                getattr(whole, items).extend(found)
                return whole


def show_all_pages(
    ctx: typer.Context,
    *,
    rpc: ListRpc,
    request: Message,
    items: str,
    what: str,
    page_size: int,
    limit: int,
    title: str,
    columns: Sequence[Column],
    json_output: bool,
) -> Message:
    """A list RPC's ``items`` (the name of its reply's repeated field) over as many
    pages of ``page_size`` as ``limit`` asks: the API's reply with --json, else a table
    of ``columns``; and, when the list was cut short, how to see more. Returns the reply,
    for what a command says after the table."""
    reply = run(
        ctx,
        lambda p: _every_page(
            lambda page: p.call(rpc(p), page),
            request,
            items=items,
            limit=limit,
            page_size=page_size,
            what=what,
        ),
    )
    show(reply, json_output, listing(title, columns, getattr(reply, items)))
    more_hint(reply.next_page_token, json_output)  # type: ignore[attr-defined]
    return reply


def more_hint(next_page_token: str, json_output: bool) -> None:
    """Tell people a list was cut at --limit (scripts see next_page_token)."""
    if next_page_token and not json_output:
        say("[dim]More exist: raise --limit, or 0 for all.[/dim]")
