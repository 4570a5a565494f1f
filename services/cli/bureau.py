"""`chuhai bureau`: the commerce bureau's officers set up fairs and cloud expo editions,
allocate and review booths, watch the live figures and export reports."""

from __future__ import annotations

import contextlib
import email.message
import enum
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from cli import fair_file, values
from cli.connection import AUTHORIZATION, Platform, bearer
from cli.credentials import Token
from cli.exporter import STANDARD_BOOTH, list_applications
from cli.failures import LOGIN_HINT, CommandFailed, ExitCode
from cli.invocation import JsonOutput, Limit, RequestId, endpoints, fail, request_id_of, run
from cli.output import Column, details, enum_label, listing, moment, say, show, stdout, write_json

app = typer.Typer(
    help="The commerce bureau: fairs, booth allocation and review, cloud expo editions, "
    "live figures and reports.",
    epilog="Officers only, with their token (`fair template` needs none, `fair show` any).\n\n"
    "Examples:\n\n"
    "  chuhai bureau fair template --fair-id canton-139 > canton-139.yaml\n\n"
    "  chuhai bureau fair create canton-139.yaml && chuhai bureau fair open canton-139\n\n"
    "  chuhai bureau allocate canton-139 --booth-type standard\n\n"
    "  chuhai bureau watch\n\n"
    "  chuhai bureau report --since 2026-01-01 --format xlsx",
    no_args_is_help=True,
)
fair_app = typer.Typer(
    help="Trade fairs: write one in a file, create it, open it to applications, look at it.",
    no_args_is_help=True,
)
expo_app = typer.Typer(
    help="Cloud expo editions: create one beside a fair, open it to exhibitors and buyers.",
    no_args_is_help=True,
)
app.add_typer(fair_app, name="fair")
app.add_typer(expo_app, name="expo")

FairId = Annotated[
    str, typer.Argument(metavar="FAIR_ID", help="The fair, e.g. canton-139.", show_default=False)
]
BoothTypeOption = Annotated[
    values.BoothType, typer.Option(case_sensitive=False, help="The booth type.")
]


def fair_tables(
    fair: booth_pb.GetFairResponse | booth_pb.CreateFairResponse | booth_pb.OpenFairResponse,
    title: str,
) -> list:
    """A fair's fields, then its booth quotas as a table (with the booths allocated when
    known)."""
    allocated = list(getattr(fair, "allocated", []))
    quotas = [
        (quota, allocated[index] if index < len(allocated) else None)
        for index, quota in enumerate(fair.fair.booth_quotas)
    ]
    return [
        details(fair.fair, title, omit=("booth_quotas",)),
        listing(
            "Booth quotas",
            (
                Column("booth type", lambda q: enum_label(q[0], "booth_type")),
                Column("quota", lambda q: str(q[0].quota), "right"),
                Column("allocated", lambda q: "" if q[1] is None else str(q[1]), "right"),
                Column("applications until", lambda q: moment(q[0].application_deadline)),
                Column("free withdrawal until", lambda q: moment(q[0].allocation_deadline)),
                Column("fee (CNY)", lambda q: f"{q[0].fee_fen / 100:,.2f}", "right"),
            ),
            quotas,
        ),
    ]


@fair_app.command()
def template(
    fair_id: Annotated[str, typer.Option(help="The new fair's id.")] = "canton-139",
    json_output: JsonOutput = False,
) -> None:
    """Print a fair file to edit: every field, explained, with dates weeks ahead."""
    text = fair_file.template(fair_id, datetime.now(UTC).date())
    if json_output:
        write_json(fair_file.parse_fair(text, "the template"))
    else:
        sys.stdout.write(text)


@fair_app.command()
def create(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="The fair file, YAML or JSON (see `fair template`).",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Create a fair from a file: phases, zones, booth quotas, deadlines, fees."""
    try:
        request = fair_file.read_fair(file)
    except CommandFailed as failure:
        raise fail(ctx, failure) from None
    request.request_id = request_id_of(request_id)
    reply = run(ctx, lambda p: p.call(p.booth.CreateFair, request), request_id=request.request_id)
    show(reply, json_output, *fair_tables(reply, "Fair created (draft)"))


@fair_app.command("open")
def open_fair(
    ctx: typer.Context, fair_id: FairId, request_id: RequestId = "", json_output: JsonOutput = False
) -> None:
    """Open a fair to booth applications."""
    request = booth_pb.OpenFairRequest(request_id=request_id_of(request_id), fair_id=fair_id)
    reply = run(ctx, lambda p: p.call(p.booth.OpenFair, request), request_id=request.request_id)
    show(reply, json_output, *fair_tables(reply, "Fair opened"))


@fair_app.command("show")
def show_fair(ctx: typer.Context, fair_id: FairId, json_output: JsonOutput = False) -> None:
    """Show a fair and the booths allocated so far."""
    reply = run(ctx, lambda p: p.call(p.booth.GetFair, booth_pb.GetFairRequest(fair_id=fair_id)))
    show(reply, json_output, *fair_tables(reply, "Fair"))


@app.command()
def applications(
    ctx: typer.Context,
    fair_id: FairId,
    state: Annotated[
        values.ApplicationState | None,
        typer.Option(case_sensitive=False, help="Only in this state."),
    ] = None,
    booth_type: Annotated[
        values.BoothType | None, typer.Option(case_sensitive=False, help="Only for this type.")
    ] = None,
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """Review a fair's applications, in priority order."""
    query = booth_pb.ListApplicationsRequest(
        fair_id=fair_id,
        state=values.APPLICATION_STATES.number(state),
        booth_type=values.BOOTH_TYPES.number(booth_type),
    )
    list_applications(ctx, query, limit, json_output)


@app.command()
def allocate(
    ctx: typer.Context,
    fair_id: FairId,
    booth_type: BoothTypeOption = STANDARD_BOOTH,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Allocate a fair's free booths in priority order; waitlist the other applications."""
    request = booth_pb.RunAllocationRequest(
        request_id=request_id_of(request_id),
        fair_id=fair_id,
        booth_type=values.BOOTH_TYPES.number(booth_type),
    )
    reply = run(
        ctx, lambda p: p.call(p.booth.RunAllocation, request), request_id=request.request_id
    )
    show(
        reply,
        json_output,
        f"Allocated {reply.newly_allocated} more booths ({reply.allocated_total} of "
        f"{reply.quota} now); {reply.newly_waitlisted} applications waitlisted.",
    )


@app.command()
def reject(
    ctx: typer.Context,
    application_id: Annotated[
        str, typer.Argument(metavar="APPLICATION_ID", help="The application.", show_default=False)
    ],
    reason: Annotated[
        str, typer.Option(help="Why, for the exporter and the record.", show_default=False)
    ],
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Reject an application that fails review."""
    request = booth_pb.RejectApplicationRequest(
        request_id=request_id_of(request_id), application_id=application_id, reason=reason
    )
    reply = run(
        ctx, lambda p: p.call(p.booth.RejectApplication, request), request_id=request.request_id
    )
    show(reply, json_output, details(reply.application, "Application rejected"))


EditionId = Annotated[
    str,
    typer.Argument(
        metavar="EDITION_ID", help="The edition, e.g. cloud-expo-2026.", show_default=False
    ),
]


@expo_app.command("create")
def create_edition(
    ctx: typer.Context,
    edition_id: EditionId,
    name: Annotated[str, typer.Option(help="The edition's name.", show_default=False)],
    fair_id: Annotated[
        str,
        typer.Option("--fair", help="The fair whose booth holders exhibit.", show_default=False),
    ],
    starts_on: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.", show_default=False)],
    ends_on: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.", show_default=False)],
    allow_online_only: Annotated[
        bool,
        typer.Option("--allow-online-only", help="Admit exporters without a booth, online only."),
    ] = False,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Create a cloud expo edition linked to a fair."""
    request = expo_pb.CreateEditionRequest(
        request_id=request_id_of(request_id),
        edition_id=edition_id,
        name=name,
        fair_id=fair_id,
        starts_on=starts_on,
        ends_on=ends_on,
        allow_online_only=allow_online_only,
    )
    reply = run(ctx, lambda p: p.call(p.expo.CreateEdition, request), request_id=request.request_id)
    show(reply, json_output, details(reply.edition, "Edition created (draft)"))


@expo_app.command("open")
def open_edition(
    ctx: typer.Context,
    edition_id: EditionId,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Open an edition to exhibitors and buyers."""
    request = expo_pb.OpenEditionRequest(
        request_id=request_id_of(request_id), edition_id=edition_id
    )
    reply = run(ctx, lambda p: p.call(p.expo.OpenEdition, request), request_id=request.request_id)
    show(reply, json_output, details(reply.edition, "Edition opened"))


HEADLINE = (
    ("Firms served", "firms_served"),
    ("Booths allocated", "booths_allocated"),
    ("Countries and regions", "countries"),
    ("Overseas buyers", "buyers"),
    ("Purchase intents", "intents"),
    ("Events applied", "events_applied"),
)


def headline_table(headline: bureau_pb.Headline | None) -> Table:
    table = Table(
        title="Live figures",
        caption=f"as of {moment(headline.as_of)}" if headline else "waiting for the bureau…",
        title_justify="left",
        title_style="bold",
        show_header=False,
    )
    table.add_column("figure")
    table.add_column("value", justify="right", style="bold")
    for label, field in HEADLINE:
        table.add_row(label, f"{getattr(headline, field):,}" if headline else "")
    return table


@app.command()
def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Show the figures now and stop.")] = False,
    count: Annotated[
        int, typer.Option(min=0, help="Stop after this many updates; 0 watches on.")
    ] = 0,
    seconds: Annotated[
        float, typer.Option("--for", min=0, help="Stop after this many seconds; 0 watches on.")
    ] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON line per update (WatchStatsResponse).")
    ] = False,
) -> None:
    """Watch the bureau's headline figures live, updated as events arrive (Ctrl-C stops)."""
    wanted = 1 if once else count

    async def work(p: Platform) -> None:
        updates = p.stream(
            p.bureau.WatchStats, bureau_pb.WatchStatsRequest(), for_seconds=seconds or None
        )
        seen = 0
        with contextlib.ExitStack() as stack:
            # One table redrawn in place on a terminal; elsewhere a table per update.
            live = None
            if not json_output and stdout.is_terminal:
                live = stack.enter_context(
                    Live(headline_table(None), console=stdout, auto_refresh=False)
                )
            async with contextlib.aclosing(updates):
                async for reply in updates:
                    if json_output:
                        write_json(reply, indent=None)
                    elif live is not None:
                        live.update(headline_table(reply.headline), refresh=True)
                    else:
                        stdout.print(headline_table(reply.headline))
                    seen += 1
                    if wanted and seen >= wanted:
                        return

    with contextlib.suppress(KeyboardInterrupt):
        run(ctx, work)


class ReportFormat(enum.Enum):
    csv = "csv"
    xlsx = "xlsx"


CSV = ReportFormat.csv


@app.command()
def report(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Intents from this day, YYYY-MM-DD.")] = "",
    until: Annotated[str, typer.Option(help="Intents before this day, YYYY-MM-DD.")] = "",
    report_format: Annotated[
        ReportFormat, typer.Option("--format", case_sensitive=False, help="CSV, or XLSX for Excel.")
    ] = CSV,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where to save it; '-' writes to stdout.",
            show_default="the dashboard's file name",
        ),
    ] = "",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print where the report went as JSON.")
    ] = False,
) -> None:
    """Export the bureau's report of a period (the dashboard's CSV or XLSX download)."""
    if output == "-" and json_output:
        raise typer.BadParameter("--json and --output - would both write to stdout")
    where = endpoints(ctx)
    query = urllib.parse.urlencode({k: v for k, v in (("since", since), ("until", until)) if v})
    url = f"{where.bureau_web_url}/api/report.{report_format.value}" + (
        f"?{query}" if query else ""
    )
    try:
        body, name = _download(url, where.deadline_seconds, where.token)
    except CommandFailed as failure:
        raise fail(ctx, failure) from None
    if output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    path = Path(output or name)
    path.write_bytes(body)
    if json_output:
        write_json({"path": str(path), "format": report_format.value, "bytes": len(body)})
    else:
        say(f"Report saved to [bold]{escape(str(path))}[/bold] ({len(body):,} bytes).")


def _download(url: str, deadline_seconds: float, token: Token | None) -> tuple[bytes, str]:
    """The report's bytes and the file name the dashboard gives it (to an officer)."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header(AUTHORIZATION, bearer(token))
    try:
        with urllib.request.urlopen(request, timeout=deadline_seconds) as reply:
            body = reply.read()
            disposition = email.message.Message()
            disposition["content-disposition"] = reply.headers.get("Content-Disposition", "")
            name = disposition.get_param("filename", header="content-disposition")
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        if error.code == 400:
            # The dashboard says "since: must be a date YYYY-MM-DD; until: ...".
            violations = dict(part.split(": ", 1) for part in text.split("; ") if ": " in part)
            raise CommandFailed(
                ExitCode.INVALID_ARGUMENT, "The dashboard refused the period.", violations
            ) from None
        if error.code == 401:
            raise CommandFailed(
                ExitCode.UNAUTHENTICATED, f"Not signed in: {text} {LOGIN_HINT}"
            ) from None
        if error.code == 403:
            raise CommandFailed(ExitCode.REFUSED, f"Not permitted: {text}") from None
        raise CommandFailed(
            ExitCode.FAILED, f"The dashboard failed ({error.code}): {text}"
        ) from None
    except (urllib.error.URLError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise CommandFailed(
            ExitCode.UNAVAILABLE, f"Cannot reach the bureau dashboard at {url}: {reason}"
        ) from None
    return body, str(name or Path(urllib.parse.urlparse(url).path).name)
