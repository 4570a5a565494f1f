"""The `chuhai` command line without services: help at every level, what people type
turned into request values, fair files, failures in words and exit codes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from cli import fair_file, values
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
from runtime.adapters.tokens import TokenIssuer
from runtime.kernel.identity import Principal, Role
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
    assert len(paths) > 35
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
    where = Endpoints.resolve(Overrides(targets={"bureau": "bureau.example:1"}))
    assert where.targets == {
        "booth": "10.0.0.5:50051",
        "expo": "expo.internal:443",
        "warehouse": "10.0.0.5:50053",
        "bureau": "bureau.example:1",
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
