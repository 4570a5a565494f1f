"""The `chuhai` command line without services: help at every level, what people type
turned into request values, fair files, failures in words and exit codes."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import secrets
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import typer
from click.testing import Result
from google.protobuf.message import Message
from typer.main import get_command
from typer.testing import CliRunner

from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from cli import fair_file, notifications, values
from cli.connection import Endpoints, Overrides, ServiceCallFailed, call_metadata
from cli.credentials import TOKEN_ENV, Token, find_token, read_claims, token_file
from cli.events import topic_name
from cli.failures import (
    CommandFailed,
    ExitCode,
    describe_call_failure,
    exit_code_for,
    option_for_field,
)
from cli.main import app
from cli.output import details, enum_text
from runtime.adapters.grpc_errors import status_for
from runtime.adapters.tokens import TokenIssuer
from runtime.kernel.errors import FieldViolation, InvalidArgument
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator
from tests.credit_codes import random_credit_code
from tests.identity import Identities

runner = CliRunner()


def command_paths() -> list[tuple[str, ...]]:
    """Every group and command of the tree, as the words that reach it."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return found


def test_every_group_and_command_has_help_and_a_one_line_summary() -> None:
    paths = command_paths()
    assert len(paths) > 50
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: chuhai" in result.output

    def summaries(command: object, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            assert (sub.help or "").strip(), (*path, name)
            summaries(sub, (*path, name))

    summaries(get_command(app), ())


def test_the_top_level_help_documents_exit_codes_and_addresses() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    for words in ("Exit codes", "invalid argument", "not found", "BOOTH_GRPC_TARGET", "--json"):
        assert words in result.output


def test_usage_errors_exit_two() -> None:
    result = runner.invoke(app, ["exporter", "apply", "canton-1", "--booth-type", "huge"])
    assert result.exit_code == ExitCode.USAGE


def test_an_empty_update_is_refused_before_any_call() -> None:
    result = runner.invoke(app, ["operator", "update", "DE-HAM-01"])
    assert result.exit_code == ExitCode.USAGE
    assert "at least one profile option" in result.output


def test_enum_choices_read_as_words_and_map_back_to_the_proto() -> None:
    assert [c.value for c in values.BoothType] == ["standard", "brand"]
    assert values.LOGISTICS_SERVICES.number(values.LogisticsService("last-mile-delivery")) == (
        warehouse_res.LOGISTICS_SERVICE_LAST_MILE_DELIVERY
    )
    assert values.INCOTERMS.number(None) == expo_res.INCOTERM_UNSPECIFIED
    field = booth_res.BoothApplication.DESCRIPTOR.fields_by_name["state"]
    assert enum_text(field.enum_type, booth_res.APPLICATION_STATE_WAITLISTED) == "waitlisted"
    assert enum_text(field.enum_type, 0) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("USD 12.50", ("USD", 12, 500_000_000)),
        ("80 eur", ("EUR", 80, 0)),
        ("USD 1,200", ("USD", 1200, 0)),
    ],
)
def test_money_is_a_currency_and_an_amount(text: str, expected: tuple[str, int, int]) -> None:
    amount = values.money(text)
    assert (amount.currency, amount.units, amount.nanos) == expected


@pytest.mark.parametrize("text", ["12.50", "USD twelve", "USD 1 2"])
def test_money_without_currency_or_amount_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        values.money(text)


def test_moments_dates_and_places() -> None:
    assert values.moment("2026-06-30", default_days=0).ToJsonString() == "2026-06-30T23:59:59Z"
    assert values.moment("2026-06-30T18:00+08:00", default_days=0).ToJsonString() == (
        "2026-06-30T10:00:00Z"
    )
    in_a_month = values.moment("", default_days=30).ToDatetime(tzinfo=UTC)
    assert abs(in_a_month - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    with pytest.raises(typer.BadParameter):
        values.moment("next tuesday", default_days=0)
    assert values.after("2026-12-25", 14) == "2027-01-08"
    assert values.after("2026-13-01", 14) == ""
    assert values.day("") == datetime.now(UTC).date().isoformat()
    point = values.geo_point("53.55,9.99")
    assert (point.latitude, point.longitude) == (53.55, 9.99)
    with pytest.raises(typer.BadParameter):
        values.geo_point("Hamburg")
    assert values.product("670420: human hair wigs") == booth_res.Product(
        hs_code="670420", name="human hair wigs"
    )


def test_the_fair_template_is_a_valid_fair_file() -> None:
    request = fair_file.parse_fair(fair_file.template("canton-139", date(2026, 3, 1)), "template")
    assert request.fair_id == "canton-139"
    assert list(request.zones[0].hs_headings) == ["6703", "6704"]
    quota = request.booth_quotas[0]
    assert quota.booth_type == booth_res.BOOTH_TYPE_STANDARD
    assert (quota.quota, quota.fee_fen) == (43, 2_500_000)
    assert quota.application_deadline.ToJsonString() == "2026-03-22T23:59:59Z"
    assert request.phases[0].starts_on == "2026-04-30"
    assert not request.HasField("scoring_sheet")


def test_a_fair_file_keeps_what_people_write() -> None:
    text = json.dumps(
        {
            "fair_id": "food-2026",
            "zones": [{"code": "F", "hs_headings": ["0712"]}],
            "booth_quotas": [
                {"booth_type": "BRAND", "quota": 3, "allocation_deadline": "2026-05-01T18:00"}
            ],
        }
    )
    request = fair_file.parse_fair(text, "food.json")
    assert list(request.zones[0].hs_headings) == ["0712"]
    assert request.booth_quotas[0].booth_type == booth_res.BOOTH_TYPE_BRAND
    assert request.booth_quotas[0].allocation_deadline.ToJsonString() == "2026-05-01T18:00:00Z"
    yaml_request = fair_file.parse_fair("zones:\n  - hs_headings: [0712]\n", "food.yaml")
    assert list(yaml_request.zones[0].hs_headings) == ["0712"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("fair_id: x\nquotas: 3\n", "quotas"),
        ("booth_quotas:\n  - quota: many\n", "quota"),
        ("request_id: r1\n", "--request-id"),
        ("- a list\n", "a fair's fields"),
        ("fair_id: [unclosed\n", "not YAML"),
    ],
)
def test_a_wrong_fair_file_is_an_invalid_argument_naming_the_field(text: str, names: str) -> None:
    with pytest.raises(CommandFailed) as refused:
        fair_file.parse_fair(text, "fair.yaml")
    assert refused.value.code == ExitCode.INVALID_ARGUMENT
    assert names in refused.value.message


def test_a_violation_names_the_option_that_sets_the_field() -> None:
    command = get_command(app).commands["exporter"].commands["register"]  # type: ignore[attr-defined]
    assert option_for_field("profile.name", command.params) == "--name"
    assert option_for_field("credit_code", command.params) == "--credit-code"
    assert option_for_field("profile.export_turnover_usd", command.params) == "--turnover-usd"
    assert option_for_field("profile.main_products[0].hs_code", command.params) == ""
    assert option_for_field("exporter_credit_code", command.params) == "--credit-code"
    book = get_command(app).commands["exporter"].commands["book"]  # type: ignore[attr-defined]
    assert option_for_field("warehouse_code", book.params) == "WAREHOUSE_CODE"


def test_statuses_map_to_the_documented_exit_codes() -> None:
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 3,
        grpc.StatusCode.NOT_FOUND: 4,
        grpc.StatusCode.ALREADY_EXISTS: 5,
        grpc.StatusCode.FAILED_PRECONDITION: 5,
        grpc.StatusCode.UNAVAILABLE: 6,
        grpc.StatusCode.DEADLINE_EXCEEDED: 6,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 7,
        grpc.StatusCode.PERMISSION_DENIED: 7,
        grpc.StatusCode.UNAUTHENTICATED: 8,
        grpc.StatusCode.INTERNAL: 1,
    }
    assert {status: int(exit_code_for(status)) for status in expected} == expected


def failed(status: grpc.StatusCode, details: str) -> ServiceCallFailed:
    error = grpc.aio.AioRpcError(status, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
    return ServiceCallFailed(error, "booth", "127.0.0.1:50051")


def test_an_unanswered_change_says_how_to_retry_it_safely() -> None:
    lines = describe_call_failure(
        failed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        [],
        request_id="r-42",
        deadline_seconds=5,
    )
    assert (
        lines[0]
        == "No answer from the booth service at 127.0.0.1:50051 within 5 s (see --timeout)."
    )
    assert "--request-id r-42" in lines[1]
    refused = describe_call_failure(failed(grpc.StatusCode.NOT_FOUND, "no fair 'x'"), [])
    assert refused == ["Not found: no fair 'x'"]


def test_addresses_come_from_the_services_environment_unless_overridden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPO_GRPC_TARGET", "expo.internal:443")
    monkeypatch.setenv("GRPC_HOST", "10.0.0.5")
    monkeypatch.setenv("BUREAU_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("BUREAU_WEB_PORT", "8088")
    monkeypatch.delenv("NOTIFY_GRPC_TARGET", raising=False)
    where = Endpoints.resolve(Overrides(targets={"bureau": "bureau.example:1"}))
    assert where.targets == {
        "booth": "10.0.0.5:50051",
        "expo": "expo.internal:443",
        "warehouse": "10.0.0.5:50053",
        "bureau": "bureau.example:1",
        "notify": "10.0.0.5:50055",
    }
    assert where.bureau_web_url == "http://127.0.0.1:8088"
    assert Endpoints.resolve(
        Overrides(bureau_web_url="https://bureau.example/")
    ).bureau_web_url == ("https://bureau.example")


def test_topics_by_full_or_short_name() -> None:
    assert topic_name("booth.applications") == "chuhai.booth.applications.v1"
    assert topic_name("chuhai.expo.intents.v1") == "chuhai.expo.intents.v1"
    assert topic_name("booth.applications.v1.dlq") == "chuhai.booth.applications.v1.dlq"
    assert topic_name("someone.elses.topic") == "someone.elses.topic"
    assert topic_name("chuhai.booth.applications.v1.dlq") == "chuhai.booth.applications.v1.dlq"


def test_a_record_reads_as_a_table_of_its_fields() -> None:
    from rich.console import Console

    intent = expo_res.Intent(
        intent_id="i-1",
        kind=expo_res.INTENT_KIND_RFQ,
        target_price=expo_res.Money(currency="USD", units=12, nanos=500_000_000),
        recipients=["A", "B"],
        responses=[expo_res.Response(credit_code="A", kind=expo_res.RESPONSE_KIND_QUOTED)],
    )
    console = Console(width=100, record=True)
    console.print(details(intent, "Intent", omit=("responses",)))
    text = console.export_text()
    assert "rfq" in text and "USD 12.50" in text and "A, B" in text
    assert "quoted" not in text


# ----- who the command line calls as


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration directory of the test's own, and no token in the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return tmp_path / "config"


def test_an_unauthenticated_call_says_how_to_log_in_again() -> None:
    lines = describe_call_failure(failed(grpc.StatusCode.UNAUTHENTICATED, "token expired"), [])
    assert lines[0] == "Not signed in: token expired"
    assert "chuhai login --token" in lines[1]
    refused = describe_call_failure(
        failed(grpc.StatusCode.PERMISSION_DENIED, "exporter may not call RunAllocation"), []
    )
    assert refused[0] == "Not permitted: exporter may not call RunAllocation"
    assert "chuhai whoami" in refused[1]


def test_every_call_carries_the_bearer_token_and_none_without_one() -> None:
    assert call_metadata(Token("abc.def.ghi", "--token")) == (
        ("authorization", "Bearer abc.def.ghi"),
    )
    assert call_metadata(None) == ()


def test_the_token_comes_from_the_option_else_the_environment_else_the_saved_file(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_token() is None
    path = token_file()
    assert path == config_home / "chuhai" / "token"
    path.parent.mkdir(parents=True)
    path.write_text("saved\n")
    assert find_token() == Token("saved", str(path))
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert find_token() == Token("from-env", TOKEN_ENV)
    assert find_token(" given ") == Token("given", "--token")
    assert Endpoints.resolve(Overrides(token="given")).token == Token("given", "--token")


def test_login_saves_the_token_for_its_owner_only_and_logout_removes_it(
    config_home: Path, identities: Identities
) -> None:
    code = random_credit_code()
    token = identities.token(Role.EXPORTER, code, subject="export-manager")
    result = runner.invoke(app, ["login", "--token", token])
    assert result.exit_code == 0, result.output
    assert "exporter" in result.output and code in result.output
    path = config_home / "chuhai" / "token"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert find_token() == Token(token, str(path))

    whoami = runner.invoke(app, ["whoami", "--json"])
    assert whoami.exit_code == 0, whoami.output
    shown = json.loads(whoami.output)
    assert (shown["role"], shown["party"], shown["subject"]) == ("exporter", code, "export-manager")
    assert (shown["source"], shown["verified"], shown["expired"]) == (str(path), False, False)
    expires = datetime.fromisoformat(shown["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)
    table = runner.invoke(app, ["whoami"], env={"COLUMNS": "200"})
    assert "not verified" in table.output
    assert code in table.output

    assert runner.invoke(app, ["logout"]).exit_code == 0
    assert not path.exists() and find_token() is None
    assert "No saved token" in runner.invoke(app, ["logout"]).output


def test_whoami_reads_the_option_before_the_saved_token(
    config_home: Path, identities: Identities
) -> None:
    runner.invoke(app, ["login", "--token", identities.token(Role.OFFICER, subject="o-1")])
    buyer = identities.token(Role.BUYER, "b-42", subject="someone")
    shown = json.loads(runner.invoke(app, ["--token", buyer, "whoami", "--json"]).output)
    assert (shown["role"], shown["party"], shown["source"]) == ("buyer", "b-42", "--token")


def test_login_refuses_what_is_not_a_token_or_has_expired(
    config_home: Path, identities: Identities
) -> None:
    garbage = runner.invoke(app, ["login", "--token", "not-a-jwt"])
    assert garbage.exit_code == ExitCode.INVALID_ARGUMENT
    assert "not a JWT" in garbage.output
    expired = identities.token(Role.OFFICER, ttl_seconds=-60)
    late = runner.invoke(app, ["login", "--token", expired])
    assert late.exit_code == ExitCode.UNAUTHENTICATED
    assert "expired" in late.output and "chuhai login --token" in late.output
    assert find_token() is None


def test_whoami_without_a_token_or_with_an_expired_one_exits_eight(
    config_home: Path, identities: Identities
) -> None:
    missing = runner.invoke(app, ["whoami"])
    assert missing.exit_code == ExitCode.UNAUTHENTICATED
    assert "chuhai login --token" in missing.output
    expired = identities.token(Role.OFFICER, ttl_seconds=-60)
    old = runner.invoke(app, ["--token", expired, "whoami"], env={"COLUMNS": "200"})
    assert old.exit_code == ExitCode.UNAUTHENTICATED
    assert "expired" in old.output


def test_login_reads_the_token_from_stdin_when_told(
    config_home: Path, identities: Identities
) -> None:
    token = identities.token(Role.OPERATOR, "henan-logistics")
    assert runner.invoke(app, ["login", "--token", "-"], input=token + "\n").exit_code == 0
    assert find_token() == Token(token, str(token_file()))


def test_claims_are_read_at_the_paths_the_services_read_them(
    monkeypatch: pytest.MonkeyPatch, identities: Identities
) -> None:
    monkeypatch.setenv("AUTH_ROLE_CLAIM", "realm_access.roles")
    issuer = TokenIssuer(
        identities.keys.signing_key_file.read_bytes(),
        issuer="https://idp.example",
        audience="chuhai",
        role_claim="realm_access.roles",
    )
    claims = read_claims(issuer.issue(Principal("u-1", Role.OFFICER)))
    assert (claims.role, claims.party, claims.issuer) == ("officer", "", "https://idp.example")


# The commands that act for the caller's own firm or buyer: the token decides who.
ACTING_FOR_THE_CALLER = {
    ("exporter", "apply"): "--credit-code",
    ("exporter", "applications"): "--credit-code",
    ("exporter", "join"): "--credit-code",
    ("exporter", "publish"): "--credit-code",
    ("exporter", "intents"): "--credit-code",
    ("exporter", "answer"): "--credit-code",
    ("exporter", "book"): "--credit-code",
    ("buyer", "inquire"): "--buyer-id",
    ("buyer", "rfq"): "--buyer-id",
}


@pytest.mark.parametrize(("path", "option"), list(ACTING_FOR_THE_CALLER.items()))
def test_commands_acting_for_the_caller_ask_no_one_who(path: tuple[str, str], option: str) -> None:
    group, name = path
    command = get_command(app).commands[group].commands[name]  # type: ignore[attr-defined]
    assert option not in [flag for param in command.params for flag in param.opts]


def test_the_own_firm_is_asked_for_without_a_token(
    config_home: Path,
) -> None:
    without = runner.invoke(app, ["exporter", "show"])
    assert without.exit_code == ExitCode.USAGE
    assert "--credit-code" in without.output and "exporter's token" in without.output


# ----- notifications, preferences and webhooks, against a notify service of the test's own


class StandInNotify(notify_grpc.NotifyServiceServicer):
    """A notify service in the test's process, served by a real gRPC server (threads, so
    a command's own event loop or an aiohttp test's can call it): it keeps its reader's
    notifications, preferences, webhooks and deliveries in memory, as the API describes,
    and records every call with the bearer token it came with. It reads a token's claims
    without verifying them (the real service's access is tested with the real service);
    a service token is refused as notify refuses it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, Message, str]] = []
        self.notifications: list[notify_res.Notification] = []  # newest first
        self.preferences = notify_res.Preferences()
        self.webhooks: dict[str, notify_res.Webhook] = {}
        self.deliveries: list[notify_res.Delivery] = []  # newest first
        self.answers: dict[str, Message] = {}
        self.published: queue.Queue[notify_res.Notification] = queue.Queue()
        self.watching = threading.Event()
        # When set, every call is refused with this status.
        self.refuse_with: grpc.StatusCode | None = None
        # When set, every call waits this long before answering.
        self.delay_seconds = 0.0

    # What the test sets up.

    def add(
        self,
        title: str,
        *,
        kind: int = notify_res.NOTIFICATION_KIND_QUOTA_FILLED,
        body: str = "",
        read: bool = False,
        minutes_ago: float = 0,
    ) -> notify_res.Notification:
        made = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        notification = notify_res.Notification(
            notification_id=uuid.uuid4().hex,
            kind=kind,
            title=title,
            body=body or f"{title}.",
            language="zh",
            facts={"fair_id": "canton-139"},
            event_id=str(uuid.uuid4()),
        )
        notification.created_at.FromDatetime(made)
        if read:
            notification.read_at.FromDatetime(made)
        with self.lock:
            self.notifications.insert(0, notification)
        return notification

    def publish(self, title: str, **fields: Any) -> notify_res.Notification:
        """A notification made now, streamed to whoever watches."""
        notification = self.add(title, **fields)
        self.published.put(notification)
        return notification

    def requests(self, method: str) -> list[tuple[Message, str]]:
        """The requests of ``method`` received, with the token of each."""
        with self.lock:
            return [(request, token) for name, request, token in self.calls if name == method]

    # The API.

    def _admit(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ")
        with self.lock:
            self.calls.append((method, request, token))
        if self.refuse_with is not None:
            context.abort(self.refuse_with, f"refused by the test ({method})")
        if not token:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        claims = read_claims(token)
        if claims.expired:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        if claims.role not in ("exporter", "buyer", "operator", "officer"):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{claims.role} may not call {method}")
        # Slow, but done once the caller gives up (or the server stops): no thread of
        # the server outlives the test.
        until = time.monotonic() + self.delay_seconds
        while context.is_active() and time.monotonic() < until:
            time.sleep(0.02)

    def _unread(self) -> int:
        return sum(not n.HasField("read_at") for n in self.notifications)

    @staticmethod
    def _page(items: list[Any], request: Any) -> tuple[list[Any], str]:
        start = int(request.page_token or 0)
        size = min(request.page_size or 20, 100)
        end = start + size
        return items[start:end], str(end) if end < len(items) else ""

    def _once(self, request_id: str, answer: Callable[[], Message]) -> Message:
        with self.lock:
            if request_id not in self.answers:
                self.answers[request_id] = answer()
            return self.answers[request_id]

    def ListNotifications(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("ListNotifications", request, context)
        with self.lock:
            wanted = [
                n
                for n in self.notifications
                if not request.unread_only or not n.HasField("read_at")
            ]
            page, token = self._page(wanted, request)
            return notify_pb.ListNotificationsResponse(
                notifications=page, next_page_token=token, unread_count=self._unread()
            )

    def CountUnread(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("CountUnread", request, context)
        with self.lock:
            return notify_pb.CountUnreadResponse(unread_count=self._unread())

    def MarkRead(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("MarkRead", request, context)
        if request.all and request.notification_ids:
            context.abort_with_status(
                status_for(InvalidArgument(FieldViolation("all", "not with notification_ids")))
            )

        def mark() -> Message:
            named = set(request.notification_ids)
            marked = 0
            for notification in self.notifications:
                wanted = request.all or notification.notification_id in named
                if wanted and not notification.HasField("read_at"):
                    notification.read_at.GetCurrentTime()
                    marked += 1
            return notify_pb.MarkReadResponse(marked=marked, unread_count=self._unread())

        return self._once(request.request_id, mark)

    def WatchNotifications(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("WatchNotifications", request, context)
        # As notify does: the watch is on before anything is sent on it.
        context.send_initial_metadata((("chuhai-watch", "accepted"),))
        if request.include_unread:
            with self.lock:
                unread = [n for n in reversed(self.notifications) if not n.HasField("read_at")]
            for notification in unread:
                yield notify_pb.WatchNotificationsResponse(
                    notification=notification, unread_count=self._unread()
                )
        self.watching.set()
        while context.is_active():
            try:
                notification = self.published.get(timeout=0.05)
            except queue.Empty:
                continue
            yield notify_pb.WatchNotificationsResponse(
                notification=notification, unread_count=self._unread()
            )

    def GetPreferences(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("GetPreferences", request, context)
        with self.lock:
            return notify_pb.GetPreferencesResponse(preferences=self.preferences)

    def UpdatePreferences(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("UpdatePreferences", request, context)
        given = request.preferences
        check = Validator()
        check.require(given.language in ("", "zh", "en"), "preferences.language", "zh or en")
        check.require(
            not given.email or "@" in given.email, "preferences.email", "an e-mail address"
        )
        if check.violations:
            context.abort_with_status(status_for(InvalidArgument(list(check.violations))))
        fields = notify_res.Preferences.DESCRIPTOR.fields_by_name
        paths = list(request.update_mask.paths) or list(fields)

        def update() -> Message:
            for path in paths:
                field = fields[path]
                self.preferences.ClearField(path)
                if field.is_repeated:
                    getattr(self.preferences, path).extend(getattr(given, path))
                elif field.message_type is not None:
                    if given.HasField(path):
                        getattr(self.preferences, path).CopyFrom(getattr(given, path))
                else:
                    setattr(self.preferences, path, getattr(given, path))
            return notify_pb.UpdatePreferencesResponse(preferences=self.preferences)

        return self._once(request.request_id, update)

    def RegisterWebhook(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("RegisterWebhook", request, context)
        if not request.url.startswith(("https://", "http://127.0.0.1")):
            context.abort_with_status(
                status_for(InvalidArgument(FieldViolation("url", "https:// or loopback")))
            )

        def register() -> Message:
            webhook = notify_res.Webhook(
                webhook_id=uuid.uuid4().hex, url=request.url, kinds=request.kinds, enabled=True
            )
            webhook.created_at.GetCurrentTime()
            self.webhooks[webhook.webhook_id] = webhook
            return notify_pb.RegisterWebhookResponse(
                webhook=webhook, secret=secrets.token_urlsafe(32)
            )

        return self._once(request.request_id, register)

    def _webhook(self, webhook_id: str, context: grpc.ServicerContext) -> notify_res.Webhook:
        if webhook_id not in self.webhooks:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no webhook {webhook_id!r}")
        return self.webhooks[webhook_id]

    def EnableWebhook(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("EnableWebhook", request, context)
        with self.lock:
            webhook = self._webhook(request.webhook_id, context)
            webhook.enabled, webhook.disabled_reason, webhook.consecutive_failures = True, "", 0
            return notify_pb.EnableWebhookResponse(webhook=webhook)

    def DeleteWebhook(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("DeleteWebhook", request, context)
        with self.lock:
            self._webhook(request.webhook_id, context)
            del self.webhooks[request.webhook_id]
            return notify_pb.DeleteWebhookResponse()

    def ListWebhooks(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("ListWebhooks", request, context)
        with self.lock:
            return notify_pb.ListWebhooksResponse(webhooks=list(self.webhooks.values()))

    def ListDeliveries(self, request, context):  # type: ignore[no-untyped-def]
        self._admit("ListDeliveries", request, context)
        with self.lock:
            wanted = [
                d
                for d in self.deliveries
                if not request.webhook_id
                or (d.channel == notify_res.CHANNEL_WEBHOOK and d.target == request.webhook_id)
            ]
            page, token = self._page(wanted, request)
            return notify_pb.ListDeliveriesResponse(deliveries=page, next_page_token=token)


@contextlib.contextmanager
def serving(notify: StandInNotify) -> Iterator[str]:
    """``notify`` on a real gRPC server at a free loopback port: its address."""
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    notify_grpc.add_NotifyServiceServicer_to_server(notify, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()


@dataclass
class Notify:
    service: StandInNotify
    target: str


@pytest.fixture
def notify(config_home: Path) -> Iterator[Notify]:
    service = StandInNotify()
    with serving(service) as target:
        yield Notify(service, target)


def chuhai(notify: Notify, token: str | None, *args: str) -> Result:
    """The command, against the stand-in, as the bearer of ``token`` (None: nobody)."""
    given = ["--token", token] if token is not None else []
    return runner.invoke(
        app, ["--notify-target", notify.target, *given, *args], env={"COLUMNS": "250"}
    )


def test_kinds_and_channels_are_read_as_people_write_them() -> None:
    allocated = notify_res.NOTIFICATION_KIND_BOOTH_ALLOCATED
    in_app, email, webhook = (
        notify_res.CHANNEL_IN_APP,
        notify_res.CHANNEL_EMAIL,
        notify_res.CHANNEL_WEBHOOK,
    )
    assert values.kind_channels("booth-allocated=in-app,email") == (allocated, [in_app, email])
    assert values.kind_channels("BOOTH_ALLOCATED=in_app,webhook,in-app") == (
        allocated,
        [in_app, webhook],
    )
    assert values.kind_channels("booth-allocated=") == (allocated, [])
    assert values.kind_channels("booth-allocated=none") == (allocated, [])
    assert values.kind_channels("booth-allocated=default") == (allocated, None)
    for wrong in ("booth-allocated", "no-such-kind=email", "booth-allocated=pigeon", "=email"):
        with pytest.raises(typer.BadParameter):
            values.kind_channels(wrong)
    assert values.quiet_hours("22:00-08:00") == ("22:00", "08:00")
    assert values.quiet_hours(" 22:00 - 08:00 ") == ("22:00", "08:00")
    for wrong in ("22:00", "-08:00", "22:00-"):
        with pytest.raises(typer.BadParameter):
            values.quiet_hours(wrong)


def test_kinds_given_replace_their_entry_and_keep_the_others() -> None:
    kinds = notify_res
    current = [
        kinds.KindChannels(kind=kinds.NOTIFICATION_KIND_DAILY_DIGEST, channels=[]),
        kinds.KindChannels(
            kind=kinds.NOTIFICATION_KIND_QUOTA_FILLED, channels=[kinds.CHANNEL_EMAIL]
        ),
    ]
    merged = notifications.merged_kinds(
        current,
        [
            (kinds.NOTIFICATION_KIND_QUOTA_FILLED, None),
            (kinds.NOTIFICATION_KIND_FAIR_OPENED, [kinds.CHANNEL_WEBHOOK]),
        ],
    )
    assert merged == [
        kinds.KindChannels(
            kind=kinds.NOTIFICATION_KIND_FAIR_OPENED, channels=[kinds.CHANNEL_WEBHOOK]
        ),
        kinds.KindChannels(kind=kinds.NOTIFICATION_KIND_DAILY_DIGEST, channels=[]),
    ]


def test_notifications_list_newest_first_with_the_unread_count(
    notify: Notify, identities: Identities
) -> None:
    notify.service.add("配额已满", read=True, minutes_ago=30)
    notify.service.add("分配完成", kind=notify_res.NOTIFICATION_KIND_ALLOCATION_COMPLETED)
    officer = identities.token(Role.OFFICER, subject="officer-1")

    table = chuhai(notify, officer, "notifications", "list")
    assert table.exit_code == 0, table.output
    assert table.stdout.index("分配完成") < table.stdout.index("配额已满")
    assert "allocation-completed" in table.stdout and "unread" in table.stdout
    assert "1 unread." in table.stdout

    listed = json.loads(chuhai(notify, officer, "notifications", "list", "--json").stdout)
    assert [n["title"] for n in listed["notifications"]] == ["分配完成", "配额已满"]
    assert listed["unread_count"] == 1
    unread = json.loads(
        chuhai(notify, officer, "notifications", "list", "--unread", "--json").stdout
    )
    assert [n["title"] for n in unread["notifications"]] == ["分配完成"]
    (request, token), *_ = notify.service.requests("ListNotifications")
    # The caller's own token, and a page as large as the API allows.
    assert token == officer and request.page_size == 20

    cut = chuhai(notify, officer, "notifications", "list", "--limit", "1")
    assert "(1)" in cut.stdout and "More exist" in cut.stdout
    counted = chuhai(notify, officer, "notifications", "unread")
    assert counted.exit_code == 0 and counted.stdout.strip() == "1 unread"
    assert json.loads(chuhai(notify, officer, "notifications", "unread", "--json").stdout) == {
        "unread_count": 1
    }


def test_notifications_read_marks_those_named_or_all_with_a_request_id(
    notify: Notify, identities: Identities
) -> None:
    first, second, third = (notify.service.add(f"n{n}") for n in range(3))
    exporter = identities.token(Role.EXPORTER, random_credit_code())
    named = chuhai(
        notify, exporter, "notifications", "read", first.notification_id, second.notification_id
    )
    assert named.exit_code == 0, named.output
    assert "Marked 2 read; 1 unread remain." in named.stdout
    retried = chuhai(
        notify, exporter, "notifications", "read", "--all", "--request-id", "r-1", "--json"
    )
    assert json.loads(retried.stdout) == {"marked": 1, "unread_count": 0}
    again = chuhai(
        notify, exporter, "notifications", "read", "--all", "--request-id", "r-1", "--json"
    )
    assert json.loads(again.stdout) == {"marked": 1, "unread_count": 0}
    requests = [request for request, _ in notify.service.requests("MarkRead")]
    assert list(requests[0].notification_ids) == [first.notification_id, second.notification_id]
    assert not requests[0].all and requests[0].request_id
    assert requests[1].all and requests[1].request_id == "r-1"
    assert third.notification_id not in requests[0].notification_ids

    for wrong in ((), ("--all", first.notification_id)):
        refused = chuhai(notify, exporter, "notifications", "read", *wrong)
        assert refused.exit_code == ExitCode.USAGE, refused.output
        assert "--all" in refused.output
    assert len(notify.service.requests("MarkRead")) == 3


def test_notifications_watch_prints_the_unread_then_each_new_one(
    notify: Notify, identities: Identities
) -> None:
    notify.service.add("旧的已读", read=True, minutes_ago=5)
    notify.service.add("未读一", minutes_ago=2)
    notify.service.add("未读二", minutes_ago=1)
    buyer = identities.token(Role.BUYER, "buyer-1")

    def publish_once_watched() -> None:
        assert notify.service.watching.wait(30)
        notify.service.publish("新报价", kind=notify_res.NOTIFICATION_KIND_QUOTE_RECEIVED)

    publisher = threading.Thread(target=publish_once_watched)
    publisher.start()
    watched = chuhai(notify, buyer, "notifications", "watch", "--unread", "--count", "3", "--json")
    publisher.join()
    assert watched.exit_code == 0, watched.output
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [line["notification"]["title"] for line in lines] == ["未读一", "未读二", "新报价"]
    assert lines[-1]["notification"]["kind"] == "NOTIFICATION_KIND_QUOTE_RECEIVED"
    assert lines[-1]["unread_count"] == 3
    assert watched.stderr.strip() == notifications.WATCHING
    (request, token), *_ = notify.service.requests("WatchNotifications")
    assert request.include_unread and token == buyer

    # Without --unread only new ones come; --for ends the watch quietly.
    notify.service.watching.clear()
    publisher = threading.Thread(target=publish_once_watched)
    publisher.start()
    table = chuhai(notify, buyer, "notifications", "watch", "--count", "1")
    publisher.join()
    assert table.exit_code == 0, table.output
    assert "新报价" in table.stdout and "未读一" not in table.stdout
    assert "quote-received" in table.stdout and "(4 unread)" in table.stdout
    quiet = chuhai(notify, buyer, "notifications", "watch", "--for", "0.3")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    notify.service.refuse_with = grpc.StatusCode.PERMISSION_DENIED
    refused = chuhai(notify, buyer, "notifications", "watch")
    assert refused.exit_code == ExitCode.REFUSED
    assert notifications.WATCHING not in refused.stderr


def test_preferences_set_sends_only_the_options_given(
    notify: Notify, identities: Identities
) -> None:
    operator = identities.token(Role.OPERATOR, "henan-logistics")
    notify.service.preferences.kinds.add(
        kind=notify_res.NOTIFICATION_KIND_DAILY_DIGEST, channels=[notify_res.CHANNEL_EMAIL]
    )
    notify.service.preferences.email = "old@example.com"

    set_ = chuhai(
        notify, operator, "preferences", "set", "--language", "en",
        "--utilisation-alert", "85", "--json",
    )  # fmt: skip
    assert set_.exit_code == 0, set_.output
    (request, token), *_ = notify.service.requests("UpdatePreferences")
    assert token == operator and request.request_id
    assert list(request.update_mask.paths) == ["language", "utilisation_alert_percent"]
    shown = json.loads(set_.stdout)["preferences"]
    assert (shown["language"], shown["utilisation_alert_percent"]) == ("en", 85)
    assert shown["email"] == "old@example.com"

    chuhai(
        notify, operator, "preferences", "set", "--kind", "booth-allocated=in_app,email",
        "--kind", "daily-digest=default", "--kind", "quota-filled=none",
        "--fair-heading", "8501", "--fair-heading", "6704",
    )  # fmt: skip
    request, _ = notify.service.requests("UpdatePreferences")[-1]
    assert list(request.update_mask.paths) == ["kinds", "fair_hs_headings"]
    assert list(request.preferences.kinds) == [
        notify_res.KindChannels(
            kind=notify_res.NOTIFICATION_KIND_BOOTH_ALLOCATED,
            channels=[notify_res.CHANNEL_IN_APP, notify_res.CHANNEL_EMAIL],
        ),
        notify_res.KindChannels(kind=notify_res.NOTIFICATION_KIND_QUOTA_FILLED, channels=[]),
    ]
    assert list(notify.service.preferences.fair_hs_headings) == ["8501", "6704"]

    hours = chuhai(
        notify, operator, "preferences", "set", "--quiet-hours", "22:00-08:00",
        "--time-zone", "Asia/Shanghai", "--email", "",
    )  # fmt: skip
    assert hours.exit_code == 0, hours.output
    request, _ = notify.service.requests("UpdatePreferences")[-1]
    assert list(request.update_mask.paths) == ["email", "quiet_hours"]
    assert notify.service.preferences.email == ""
    assert "22:00-08:00 Asia/Shanghai" in hours.stdout and "no e-mail" in hours.stdout
    # A time zone alone moves the quiet hours there are; "off" and '' clear.
    chuhai(notify, operator, "preferences", "set", "--time-zone", "Europe/Berlin")
    assert notify.service.preferences.quiet_hours == notify_res.QuietHours(
        start="22:00", end="08:00", time_zone="Europe/Berlin"
    )
    chuhai(notify, operator, "preferences", "set", "--quiet-hours", "off", "--fair-heading", "")
    request, _ = notify.service.requests("UpdatePreferences")[-1]
    assert list(request.update_mask.paths) == ["quiet_hours", "fair_hs_headings"]
    assert not notify.service.preferences.HasField("quiet_hours")
    assert list(notify.service.preferences.fair_hs_headings) == []

    shown_table = chuhai(notify, operator, "preferences", "show")
    assert shown_table.exit_code == 0, shown_table.output
    for words in ("en (English)", "85%", "booth-allocated", "in-app, email", "none: not sent"):
        assert words in shown_table.stdout, words


def test_preferences_set_refuses_what_it_cannot_send(
    notify: Notify, identities: Identities
) -> None:
    exporter = identities.token(Role.EXPORTER, random_credit_code())
    for args, says in (
        ((), "at least one preference"),
        (("--language", "fr"), "--language"),
        (("--kind", "booth-allocated=pigeon"), "no channel"),
        (("--quiet-hours", "22:00"), "START-END"),
        (("--quiet-hours", "off", "--time-zone", "Asia/Shanghai"), "--time-zone"),
        # No quiet hours yet: they need their time zone, and a time zone needs them.
        (("--quiet-hours", "22:00-08:00"), "--time-zone"),
        (("--time-zone", "Asia/Shanghai"), "--quiet-hours"),
        (("--utilisation-alert", "101"), "--utilisation-alert"),
    ):
        refused = chuhai(notify, exporter, "preferences", "set", *args)
        assert refused.exit_code == ExitCode.USAGE, (args, refused.output)
        assert says in refused.output, (args, refused.output)
    assert notify.service.requests("UpdatePreferences") == []
    invalid = chuhai(notify, exporter, "preferences", "set", "--email", "not-an-address")
    assert invalid.exit_code == ExitCode.INVALID_ARGUMENT
    assert "preferences.email (--email): an e-mail address" in invalid.stderr


def test_webhooks_add_shows_the_secret_once_and_the_rest_manage_them(
    notify: Notify, identities: Identities
) -> None:
    exporter = identities.token(Role.EXPORTER, random_credit_code())
    added = chuhai(
        notify, exporter, "webhooks", "add", "https://erp.example.com/chuhai",
        "--kind", "inquiry-received", "--kind", "RFQ-MATCHED",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    (request, token), *_ = notify.service.requests("RegisterWebhook")
    assert token == exporter and request.request_id
    assert list(request.kinds) == [
        notify_res.NOTIFICATION_KIND_INQUIRY_RECEIVED,
        notify_res.NOTIFICATION_KIND_RFQ_MATCHED,
    ]
    secret = re.search(r"secret: (\S+)", added.stdout)
    assert secret is not None and len(secret.group(1)) >= 40
    assert "shown only now" in added.stderr and "shown only now" not in added.stdout
    assert "inquiry-received, rfq-matched" in added.stdout
    scripted = chuhai(notify, exporter, "webhooks", "add", "https://b.example", "--json")
    reply = json.loads(scripted.stdout)
    assert reply["secret"] and reply["webhook"]["kinds"] == []
    assert "shown only now" in scripted.stderr
    [first_id] = [w for w in notify.service.webhooks if w != reply["webhook"]["webhook_id"]]

    notify.service.webhooks[first_id].enabled = False
    notify.service.webhooks[first_id].disabled_reason = "disabled after 10 failed deliveries"
    listed = chuhai(notify, exporter, "webhooks", "list")
    assert "disabled: disabled after 10 failed deliveries" in listed.stdout
    assert "every kind" in listed.stdout and "(2)" in listed.stdout
    enabled = chuhai(notify, exporter, "webhooks", "enable", first_id, "--json")
    assert json.loads(enabled.stdout)["webhook"]["enabled"] is True
    removed = chuhai(notify, exporter, "webhooks", "remove", first_id)
    assert removed.exit_code == 0 and f"Webhook {first_id} removed." in removed.stdout
    gone = chuhai(notify, exporter, "webhooks", "remove", first_id)
    assert gone.exit_code == ExitCode.NOT_FOUND and "Not found" in gone.stderr
    invalid = chuhai(notify, exporter, "webhooks", "add", "http://erp.example.com/")
    assert invalid.exit_code == ExitCode.INVALID_ARGUMENT
    assert "url (URL): https:// or loopback" in invalid.stderr
    wrong_kind = chuhai(notify, exporter, "webhooks", "add", "https://c.example", "--kind", "x")
    assert wrong_kind.exit_code == ExitCode.USAGE


def test_webhooks_deliveries_is_the_log_for_one_webhook_or_all(
    notify: Notify, identities: Identities
) -> None:
    for n, channel, target, status in (
        (1, notify_res.CHANNEL_WEBHOOK, "hook-a", notify_res.DELIVERY_STATUS_DELIVERED),
        (2, notify_res.CHANNEL_WEBHOOK, "hook-b", notify_res.DELIVERY_STATUS_PENDING),
        (3, notify_res.CHANNEL_EMAIL, "a@example.com", notify_res.DELIVERY_STATUS_FAILED),
    ):
        notify.service.deliveries.append(
            notify_res.Delivery(
                delivery_id=f"d-{n}",
                notification_id=f"n-{n}",
                channel=channel,
                target=target,
                status=status,
                attempts=n,
                last_error="HTTP 503" if n > 1 else "",
            )
        )
    officer = identities.token(Role.OFFICER)
    every = chuhai(notify, officer, "webhooks", "deliveries")
    assert every.exit_code == 0, every.output
    for words in ("d-1", "d-3", "a@example.com", "delivered", "pending", "failed", "HTTP 503"):
        assert words in every.stdout
    one = json.loads(
        chuhai(notify, officer, "webhooks", "deliveries", "--webhook", "hook-b", "--json").stdout
    )
    assert [d["delivery_id"] for d in one["deliveries"]] == ["d-2"]
    assert one["deliveries"][0]["status"] == "DELIVERY_STATUS_PENDING"


def test_notify_failures_exit_with_their_documented_codes(
    notify: Notify, identities: Identities
) -> None:
    nobody = chuhai(notify, None, "notifications", "unread")
    assert nobody.exit_code == ExitCode.UNAUTHENTICATED
    assert "chuhai login --token" in nobody.stderr
    expired = chuhai(
        notify, identities.token(Role.OFFICER, ttl_seconds=-60), "notifications", "list"
    )
    assert expired.exit_code == ExitCode.UNAUTHENTICATED and "expired" in expired.stderr
    service = identities.token(Role.SERVICE, "expo", subject="expo")
    refused = chuhai(notify, service, "preferences", "show")
    assert refused.exit_code == ExitCode.REFUSED and "chuhai whoami" in refused.stderr
    notify.service.refuse_with = grpc.StatusCode.FAILED_PRECONDITION
    no_reader = chuhai(notify, identities.token(Role.BUYER), "webhooks", "list")
    assert no_reader.exit_code == ExitCode.CONFLICT and "Not possible now" in no_reader.stderr
    notify.service.refuse_with = grpc.StatusCode.RESOURCE_EXHAUSTED
    limited = chuhai(notify, identities.token(Role.BUYER, "b-1"), "notifications", "unread")
    assert limited.exit_code == ExitCode.REFUSED


def test_an_unreachable_notify_is_unavailable_and_says_how_to_retry(
    config_home: Path, identities: Identities
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{unused.getsockname()[1]}"
    officer = identities.token(Role.OFFICER)
    down = runner.invoke(
        app,
        ["--notify-target", target, "--token", officer, "--timeout", "5",
         "notifications", "read", "--all", "--request-id", "mark-1"],
    )  # fmt: skip
    assert down.exit_code == ExitCode.UNAVAILABLE, down.output
    assert f"notify service at {target}" in down.stderr
    assert "--request-id mark-1" in down.stderr
