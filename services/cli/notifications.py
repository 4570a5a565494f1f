"""`chuhai notifications`, `chuhai preferences` and `chuhai webhooks`: what the notify
service told you, how it reaches you, and where it POSTs. Everyone's own: the reader is
the firm, buyer or operator the caller's token is bound to, or the bureau for an officer
(officers share the bureau's notifications and what is read of them)."""

from __future__ import annotations

import contextlib
import enum
from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import resources_pb2 as notify_res
from cli import values
from cli.connection import Platform
from cli.failures import CommandFailed, ExitCode
from cli.invocation import JsonOutput, Limit, RequestId, request_id_of, run, show_all_pages
from cli.output import (
    Column,
    details,
    enum_label,
    enum_text,
    listing,
    moment,
    say,
    show,
    stderr,
    stdout,
    write_json,
)

READER = (
    "Yours are those of the firm, buyer or operator your token is bound to; an officer's "
    "are the bureau's, shared by every officer (chuhai whoami)."
)

app = typer.Typer(
    help="Your notifications: list them, count the unread, mark them read, watch them arrive.",
    epilog=f"{READER}\n\n"
    "Examples:\n\n"
    "  chuhai notifications list --unread\n\n"
    "  chuhai notifications read --all\n\n"
    "  chuhai notifications watch --unread --json | jq -r .notification.title",
    no_args_is_help=True,
)
preferences_app = typer.Typer(
    help="How notifications reach you: language, e-mail, quiet hours, channels by kind.",
    epilog=f"{READER}\n\n"
    "Examples:\n\n"
    "  chuhai preferences set --language en --email export@example.com\n\n"
    "  chuhai preferences set --quiet-hours 22:00-08:00 --time-zone Asia/Shanghai\n\n"
    "  chuhai preferences set --kind rfq-matched=in-app,webhook --kind daily-digest=none",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(
    help="Webhooks your notifications are POSTed to, signed: add, list, enable, remove, "
    "and the delivery log.",
    epilog=f"{READER}\n\n"
    "Each delivery is signed: Chuhai-Signature: v1=<hex HMAC-SHA256 of "
    '"<Chuhai-Timestamp>.<body>" keyed with the secret `add` prints>.\n\n'
    "Examples:\n\n"
    "  chuhai webhooks add https://erp.example.com/chuhai --kind inquiry-received "
    "--kind rfq-matched\n\n"
    "  chuhai webhooks deliveries --webhook <webhook id>",
    no_args_is_help=True,
)

# ListNotifications' and ListDeliveries' largest page.
NOTIFY_PAGE = 100
# The newest notifications matter: a short list unless asked.
NOTIFICATIONS_SHOWN = 20
DEFAULT_ALERT_PERCENT = 90
LANGUAGE_NAMES = {"zh": "zh (中文)", "en": "en (English)"}
QUIET_HOURS_OFF = "off"
WATCHING = "Watching your notifications (Ctrl-C stops)."
KINDS = f"Kinds: {', '.join(values.NOTIFICATION_KINDS.words)}."


def _read_state(notification: notify_res.Notification) -> str:
    return moment(notification.read_at) if notification.HasField("read_at") else "unread"


NOTIFICATION_COLUMNS = (
    Column("notification", lambda n: n.notification_id),
    Column("made", lambda n: moment(n.created_at)),
    Column("kind", lambda n: enum_label(n, "kind")),
    Column("title", lambda n: n.title),
    Column("body", lambda n: n.body),
    Column("read", _read_state),
)


@app.command("list")
def list_(
    ctx: typer.Context,
    unread: Annotated[bool, typer.Option("--unread", help="Only the unread ones.")] = False,
    limit: Limit = NOTIFICATIONS_SHOWN,
    json_output: JsonOutput = False,
) -> None:
    """List your notifications, newest first."""
    reply = show_all_pages(
        ctx,
        rpc=lambda p: p.notify.ListNotifications,
        request=notify_pb.ListNotificationsRequest(unread_only=unread),
        items="notifications",
        what="notifications",
        page_size=NOTIFY_PAGE,
        limit=limit,
        title="Unread notifications" if unread else "Notifications",
        columns=NOTIFICATION_COLUMNS,
        json_output=json_output,
    )
    if not json_output:
        say(f"{reply.unread_count:,} unread.")  # type: ignore[attr-defined]


@app.command()
def unread(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Count your unread notifications."""
    reply = run(ctx, lambda p: p.call(p.notify.CountUnread, notify_pb.CountUnreadRequest()))
    show(reply, json_output, f"{reply.unread_count:,} unread")


@app.command()
def read(
    ctx: typer.Context,
    notification_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IDS",
            help="The notifications to mark read (the first column of `list`).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Mark every unread notification read.")
    ] = False,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Mark notifications read: those named, or all of them with --all."""
    if bool(notification_ids) == every:
        raise typer.BadParameter("name the notifications to mark read, or give --all (not both)")
    request_id = request_id_of(request_id)
    request = notify_pb.MarkReadRequest(
        request_id=request_id, notification_ids=notification_ids or [], all=every
    )
    reply = run(ctx, lambda p: p.call(p.notify.MarkRead, request), request_id=request_id)
    show(
        reply,
        json_output,
        f"Marked {reply.marked:,} read; {reply.unread_count:,} unread remain.",
    )


def notification_text(notification: notify_res.Notification, unread_count: int) -> Group:
    """One notification as it arrives: when, what kind, its title, then its body."""
    heading = Text.assemble(
        (moment(notification.created_at), "dim"),
        "  ",
        (enum_label(notification, "kind"), "cyan"),
        "  ",
        (notification.title, "bold"),
        (f"  ({unread_count:,} unread)", "dim"),
    )
    lines: list[RenderableType] = [heading]
    if notification.body:
        lines.append(Text(f"  {notification.body}"))
    lines.append(Text(f"  {notification.notification_id}", "dim"))
    return Group(*lines)


@app.command()
def watch(
    ctx: typer.Context,
    unread: Annotated[
        bool, typer.Option("--unread", help="First the unread ones, oldest first.")
    ] = False,
    count: Annotated[
        int, typer.Option(min=0, help="Stop after this many notifications; 0 watches on.")
    ] = 0,
    seconds: Annotated[
        float, typer.Option("--for", min=0, help="Stop after this many seconds; 0 watches on.")
    ] = 0,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="One JSON line per notification (WatchNotificationsResponse)."),
    ] = False,
) -> None:
    """Print your notifications as they are made, until Ctrl-C (or --count, --for)."""

    async def work(p: Platform) -> None:
        updates = p.stream(
            p.notify.WatchNotifications,
            notify_pb.WatchNotificationsRequest(include_unread=unread),
            for_seconds=seconds or None,
            # On stderr, for people and for scripts waiting until the watch is on.
            opened=lambda: stderr.print(WATCHING, soft_wrap=True),
        )
        seen = 0
        async with contextlib.aclosing(updates):
            async for reply in updates:
                if json_output:
                    write_json(reply, indent=None)
                else:
                    stdout.print(notification_text(reply.notification, reply.unread_count))
                seen += 1
                if count and seen >= count:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        run(ctx, work)


# ----- preferences


class Language(enum.Enum):
    zh = "zh"
    en = "en"


def preferences_view(preferences: notify_res.Preferences, title: str) -> Group:
    """Preferences as people read them: every setting (with what an empty one means),
    then the kinds given their own channels."""
    table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
    table.add_column("preference", style="dim")
    table.add_column("value", overflow="fold")
    hours = preferences.quiet_hours
    alert = preferences.utilisation_alert_percent
    for label, value in (
        ("language", LANGUAGE_NAMES.get(preferences.language or "zh", preferences.language)),
        ("e-mail", preferences.email or "none: no e-mail"),
        (
            "quiet hours",
            f"{hours.start}-{hours.end} {hours.time_zone}"
            if preferences.HasField("quiet_hours")
            else "none",
        ),
        (
            "fair headings (exporters)",
            ", ".join(preferences.fair_hs_headings) or "those of your registered main products",
        ),
        (
            "utilisation alert (operators)",
            f"{alert}%" if alert else f"{DEFAULT_ALERT_PERCENT}% (the default)",
        ),
    ):
        table.add_row(label, value)
    shown: list[RenderableType] = [table]
    if preferences.kinds:
        field = notify_res.KindChannels.DESCRIPTOR.fields_by_name["channels"]
        shown.append(
            listing(
                "Channels by kind",
                (
                    Column("kind", lambda k: enum_label(k, "kind")),
                    Column(
                        "channels",
                        lambda k: (
                            ", ".join(enum_text(field.enum_type, c) for c in k.channels)
                            or "none: not sent"
                        ),
                    ),
                ),
                preferences.kinds,
            )
        )
    other = "Every other kind" if preferences.kinds else "Every kind"
    shown.append(
        Text(
            f"{other}: in the platform, by e-mail when an address is set, and to each "
            "webhook subscribed to it.",
            "dim",
        )
    )
    return Group(*shown)


@preferences_app.command("show")
def show_preferences(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Show your preferences."""
    reply = run(ctx, lambda p: p.call(p.notify.GetPreferences, notify_pb.GetPreferencesRequest()))
    show(reply, json_output, preferences_view(reply.preferences, "Your preferences"))


def merged_kinds(
    current: list[notify_res.KindChannels], changes: list[tuple[int, list[int] | None]]
) -> list[notify_res.KindChannels]:
    """The kinds' channels after ``changes``: a kind given replaces its entry (or drops
    it when its channels are None, the default), the others stay as they are."""
    channels: dict[int, list[int]] = {entry.kind: list(entry.channels) for entry in current}
    for kind, wanted in changes:
        if wanted is None:
            channels.pop(kind, None)
        else:
            channels[kind] = wanted
    return [
        notify_res.KindChannels(kind=kind, channels=channels[kind]) for kind in sorted(channels)
    ]


@preferences_app.command("set")
def set_preferences(
    ctx: typer.Context,
    language: Annotated[
        Language | None,
        typer.Option(help="Language of your notifications and mail.", show_default=False),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(help="Where your e-mail goes; '' for none.", show_default=False),
    ] = None,
    quiet_hours: Annotated[
        str | None,
        typer.Option(
            metavar="START-END",
            help="e.g. 22:00-08:00: e-mail and webhooks wait until the end (in-app ones "
            f"do not); '{QUIET_HOURS_OFF}' for none.",
            show_default=False,
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(
            help="The IANA time zone of the quiet hours, e.g. Asia/Shanghai.",
            show_default="that of your quiet hours now",
        ),
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            metavar="KIND=CHANNELS",
            help="Where a kind goes, e.g. booth-allocated=in-app,email; "
            f"'{values.NO_CHANNEL}' turns it off, '{values.DEFAULT_CHANNELS}' puts it back; "
            f"repeatable; kinds not given keep theirs. Channels: "
            f"{', '.join(values.CHANNELS.words)}. {KINDS}",
            show_default=False,
        ),
    ] = None,
    fair_hs_headings: Annotated[
        list[str] | None,
        typer.Option(
            "--fair-heading",
            metavar="HEADING",
            help="Exporters: a 4-digit HS heading whose fairs you hear of, e.g. 8501; "
            "repeatable, replaces the list; '' goes back to your registered products'.",
            show_default=False,
        ),
    ] = None,
    utilisation_alert_percent: Annotated[
        int | None,
        typer.Option(
            "--utilisation-alert",
            metavar="PERCENT",
            min=0,
            max=100,
            help="Operators: announce a booking taking a warehouse to this share of its "
            f"capacity or above; 0 for the default, {DEFAULT_ALERT_PERCENT}.",
            show_default=False,
        ),
    ] = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Change the preferences you give; the others stay as they are."""
    given = (language, email, quiet_hours, time_zone, kinds, fair_hs_headings)
    if all(option is None for option in given) and utilisation_alert_percent is None:
        raise typer.BadParameter("give at least one preference to change")
    kind_changes = [values.kind_channels(text) for text in kinds or []]
    hours_off = quiet_hours is not None and quiet_hours.strip().lower() in ("", QUIET_HOURS_OFF)
    hours = values.quiet_hours(quiet_hours) if quiet_hours is not None and not hours_off else None
    if hours_off and time_zone:
        raise typer.BadParameter(
            "the time zone is that of quiet hours: not with --quiet-hours off",
            param_hint="--time-zone",
        )
    request_id = request_id_of(request_id)

    async def work(p: Platform) -> notify_pb.UpdatePreferencesResponse:
        # Read first: a time zone alone changes the quiet hours there are, and --kind
        # changes the kinds given, keeping the others.
        current = (
            await p.call(p.notify.GetPreferences, notify_pb.GetPreferencesRequest())
        ).preferences
        request = notify_pb.UpdatePreferencesRequest(request_id=request_id)
        wanted, paths = request.preferences, []
        if language is not None:
            wanted.language = language.value
            paths.append("language")
        if email is not None:
            wanted.email = email.strip()
            paths.append("email")
        if quiet_hours is not None or time_zone is not None:
            paths.append("quiet_hours")
            if not hours_off:
                wanted.quiet_hours.CopyFrom(_quiet_hours(current, hours, time_zone))
        if kind_changes:
            wanted.kinds.extend(merged_kinds(list(current.kinds), kind_changes))
            paths.append("kinds")
        if fair_hs_headings is not None:
            wanted.fair_hs_headings.extend(h.strip() for h in fair_hs_headings if h.strip())
            paths.append("fair_hs_headings")
        if utilisation_alert_percent is not None:
            wanted.utilisation_alert_percent = utilisation_alert_percent
            paths.append("utilisation_alert_percent")
        request.update_mask.CopyFrom(FieldMask(paths=paths))
        return await p.call(p.notify.UpdatePreferences, request)

    reply = run(ctx, work, request_id=request_id)
    show(reply, json_output, preferences_view(reply.preferences, "Preferences updated"))


def _quiet_hours(
    current: notify_res.Preferences, hours: tuple[str, str] | None, time_zone: str | None
) -> notify_res.QuietHours:
    """The quiet hours asked for: the hours and time zone given, the missing one taken
    from the current quiet hours."""
    now = current.quiet_hours if current.HasField("quiet_hours") else None
    if hours is None and now is None:
        raise CommandFailed(
            ExitCode.USAGE, "You have no quiet hours to move: give --quiet-hours START-END too."
        )
    start, end = hours or (now.start, now.end)  # type: ignore[union-attr]
    zone = (time_zone or "").strip() or (now.time_zone if now is not None else "")
    if not zone:
        raise CommandFailed(
            ExitCode.USAGE, "Give the quiet hours' time zone: --time-zone, e.g. Asia/Shanghai."
        )
    return notify_res.QuietHours(start=start, end=end, time_zone=zone)


# ----- webhooks

WebhookId = Annotated[
    str,
    typer.Argument(
        metavar="WEBHOOK_ID", help="The webhook (the first column of `list`).", show_default=False
    ),
]


def _kinds_of(webhook: notify_res.Webhook) -> str:
    field = webhook.DESCRIPTOR.fields_by_name["kinds"]
    return ", ".join(enum_text(field.enum_type, kind) for kind in webhook.kinds) or "every kind"


def _state_of(webhook: notify_res.Webhook) -> str:
    if webhook.enabled:
        return "enabled"
    return f"disabled: {webhook.disabled_reason}" if webhook.disabled_reason else "disabled"


def webhook_view(webhook: notify_res.Webhook, title: str) -> Table:
    table = details(webhook, title, omit=("kinds", "enabled", "disabled_reason"))
    table.add_row("kinds", _kinds_of(webhook))
    table.add_row("state", _state_of(webhook))
    return table


@webhooks_app.command()
def add(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Argument(
            metavar="URL",
            help="Where deliveries are POSTed: https://, or http:// to a loopback address.",
            show_default=False,
        ),
    ],
    kinds: Annotated[
        list[values.NotificationKind] | None,  # type: ignore[valid-type]
        typer.Option(
            "--kind",
            metavar="KIND",
            case_sensitive=False,
            help=f"Only this kind of notification; repeatable. {KINDS}",
            show_default="every kind",
        ),
    ] = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Register a webhook; prints the secret its deliveries are signed with, this once."""
    request_id = request_id_of(request_id)
    request = notify_pb.RegisterWebhookRequest(
        request_id=request_id,
        url=url,
        kinds=[values.NOTIFICATION_KINDS.number(kind) for kind in kinds or []],
    )
    reply = run(ctx, lambda p: p.call(p.notify.RegisterWebhook, request), request_id=request_id)
    show(reply, json_output, webhook_view(reply.webhook, "Webhook registered"))
    if not json_output:
        say(f"secret: [bold]{escape(reply.secret)}[/bold]")
    # On stderr, so a script reading --json keeps a clean stdout and still warns.
    stderr.print(
        "[yellow]warning:[/yellow] the secret is shown only now; keep it where your receiver "
        "checks the Chuhai-Signature of each delivery. Lost, it cannot be shown again: "
        "remove the webhook and add a new one.",
        soft_wrap=True,
    )


WEBHOOK_COLUMNS = (
    Column("webhook", lambda w: w.webhook_id),
    Column("url", lambda w: w.url),
    Column("kinds", _kinds_of),
    Column("state", _state_of),
    Column("failures in a row", lambda w: f"{w.consecutive_failures:,}", "right"),
    Column("added", lambda w: moment(w.created_at)),
)


@webhooks_app.command("list")
def list_webhooks(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """List your webhooks."""
    reply = run(ctx, lambda p: p.call(p.notify.ListWebhooks, notify_pb.ListWebhooksRequest()))
    show(reply, json_output, listing("Webhooks", WEBHOOK_COLUMNS, reply.webhooks))


@webhooks_app.command()
def enable(
    ctx: typer.Context,
    webhook_id: WebhookId,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Enable a webhook again (one disabled after failed deliveries); its failures
    count from zero."""
    request_id = request_id_of(request_id)
    request = notify_pb.EnableWebhookRequest(request_id=request_id, webhook_id=webhook_id)
    reply = run(ctx, lambda p: p.call(p.notify.EnableWebhook, request), request_id=request_id)
    show(reply, json_output, webhook_view(reply.webhook, "Webhook enabled"))


@webhooks_app.command()
def remove(
    ctx: typer.Context,
    webhook_id: WebhookId,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Remove a webhook; its deliveries still waiting fail."""
    request_id = request_id_of(request_id)
    request = notify_pb.DeleteWebhookRequest(request_id=request_id, webhook_id=webhook_id)
    reply = run(ctx, lambda p: p.call(p.notify.DeleteWebhook, request), request_id=request_id)
    show(reply, json_output, f"Webhook {escape(webhook_id)} removed.")


def _next_step(delivery: notify_res.Delivery) -> str:
    if delivery.status == notify_res.DELIVERY_STATUS_DELIVERED:
        return f"delivered {moment(delivery.delivered_at)}"
    if delivery.status == notify_res.DELIVERY_STATUS_PENDING:
        return f"next try {moment(delivery.next_attempt_at)}"
    return ""


DELIVERY_COLUMNS = (
    Column("delivery", lambda d: d.delivery_id),
    Column("notification", lambda d: d.notification_id),
    Column("channel", lambda d: enum_label(d, "channel")),
    Column("target", lambda d: d.target),
    Column("status", lambda d: enum_label(d, "status")),
    Column("attempts", lambda d: f"{d.attempts:,}", "right"),
    Column("last error", lambda d: d.last_error),
    Column("when", _next_step),
)


@webhooks_app.command()
def deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[
        str,
        typer.Option("--webhook", help="Only this webhook's.", show_default="every channel's"),
    ] = "",
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """The delivery log of your notifications (webhooks and e-mail), newest first."""
    show_all_pages(
        ctx,
        rpc=lambda p: p.notify.ListDeliveries,
        request=notify_pb.ListDeliveriesRequest(webhook_id=webhook_id),
        items="deliveries",
        what="deliveries",
        page_size=NOTIFY_PAGE,
        limit=limit,
        title="Deliveries",
        columns=DELIVERY_COLUMNS,
        json_output=json_output,
    )
