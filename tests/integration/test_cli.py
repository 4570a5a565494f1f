"""The installed `chuhai` command, run as a subprocess against the five services running
in-process on their own Kafka broker: every command once, in the order people use them,
each person with their own token (CHUHAI_TOKEN, or the one `chuhai login` saved)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import booth.grpc_api
import expo.grpc_api
import warehouse.grpc_api
from bureau.host import BureauHost
from cli.notifications import WATCHING
from launcher.embedded import EmbeddedInfrastructure
from notify.host import NotifyHost
from runtime.adapters.service import ServiceHost
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import provision_topics
from runtime.kernel.identity import Role
from tests.conftest import Infrastructure, settings_for
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.waiting import eventually

pytestmark = pytest.mark.integration

CHUHAI = Path(sys.executable).parent / "chuhai"
OPERATOR_ID = "henan-overseas-logistics"


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@dataclass
class Running:
    """The services' addresses as a user's environment, and a work directory."""

    env: dict[str, str]
    workdir: Path

    async def chuhai(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        process = await asyncio.create_subprocess_exec(
            str(CHUHAI),
            *args,
            env={**self.env, **(env or {})},
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Outcome(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        outcome = await self.chuhai(*args, env=env)
        assert outcome.code == 0, f"chuhai {' '.join(args)}: {outcome.stderr}"
        return outcome

    @contextlib.asynccontextmanager
    async def watching(
        self, *args: str, env: dict[str, str] | None = None
    ) -> AsyncIterator[asyncio.subprocess.Process]:
        """`chuhai notifications watch ...` in the background, once it says its watch is
        on (nothing made from then on is missed); killed if still running at the end."""
        process = await asyncio.create_subprocess_exec(
            str(CHUHAI),
            "notifications",
            "watch",
            *args,
            env={**self.env, **(env or {})},
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            said = b""
            while WATCHING.encode() not in said:
                line = await asyncio.wait_for(process.stderr.readline(), 60)
                assert line, f"the watch ended: {said.decode()}"
                said += line
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def as_(token: str) -> dict[str, str]:
    """The environment of a command run by the bearer of ``token``."""
    return {"CHUHAI_TOKEN": token}


@pytest.fixture(scope="module")
async def running(
    infra: Infrastructure,
    tmp_path_factory: pytest.TempPathFactory,
    identity_keys: DevelopmentKeys,
) -> AsyncIterator[Running]:
    """Booth, expo, warehouse and bureau on port 0, on a broker of their own: the bureau
    and `events tail` see this story's events only. The services trust the session's
    test key pair; the commands find no token but the one each test gives."""
    assert CHUHAI.exists(), "install the project: pip install -e . puts chuhai in the venv"
    unique = uuid.uuid4().hex[:10]
    with EmbeddedInfrastructure(tmp_path_factory.mktemp("cli-kafka")) as broker:
        broker.start(mongo=False)
        provision_topics(broker.kafka_bootstrap_servers)
        settings = settings_for(
            infra,
            identity_keys,
            unique,
            kafka_bootstrap_servers=broker.kafka_bootstrap_servers,
            bureau_web_port=0,
            bureau_consumer_group=f"bureau-{unique}",
        )
        notify_host = NotifyHost(
            settings.model_copy(update={"notify_consumer_group": f"notify-{unique}"})
        )
        await notify_host.start()
        # The dashboard's bell asks this notify.
        settings = settings.model_copy(update={"notify_grpc_target": notify_host.server.address})
        booth_host = ServiceHost("booth", booth.grpc_api.build, settings)
        warehouse_host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
        bureau_host = BureauHost(settings)
        for host in (booth_host, warehouse_host, bureau_host):
            await host.start()
        expo_host = ServiceHost(
            "expo",
            expo.grpc_api.build,
            settings.model_copy(
                update={
                    "booth_grpc_target": booth_host.server.address,
                    "warehouse_grpc_target": warehouse_host.server.address,
                }
            ),
        )
        await expo_host.start()
        hosts = (expo_host, booth_host, warehouse_host, bureau_host, notify_host)
        try:
            assert bureau_host.web is not None
            env = {
                **os.environ,
                "BOOTH_GRPC_TARGET": booth_host.server.address,
                "EXPO_GRPC_TARGET": expo_host.server.address,
                "WAREHOUSE_GRPC_TARGET": warehouse_host.server.address,
                "BUREAU_GRPC_TARGET": bureau_host.server.address,
                "NOTIFY_GRPC_TARGET": notify_host.server.address,
                "BUREAU_WEB_HOST": "127.0.0.1",
                "BUREAU_WEB_PORT": str(bureau_host.web.port),
                "KAFKA_BOOTSTRAP_SERVERS": broker.kafka_bootstrap_servers,
                "CHUHAI_TIMEOUT": "20",
                # Wide tables, so a long id is never folded across lines.
                "COLUMNS": "250",
                # No token saved by whoever runs the tests.
                "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("cli-config")),
            }
            for name in ("CHUHAI_TOKEN", "BUREAU_WEB_URL", "AUTH_ROLE_CLAIM", "AUTH_PARTY_CLAIM"):
                env.pop(name, None)
            yield Running(env=env, workdir=tmp_path_factory.mktemp("cli-work"))
        finally:
            for host in hosts:
                await host.stop()


GROUPS = {
    (): [
        "exporter", "buyer", "operator", "bureau", "notifications", "preferences",
        "webhooks", "events", "login", "logout", "whoami",
    ],
    ("exporter",): [
        "register", "show", "apply", "applications", "withdraw", "join", "publish",
        "intents", "answer", "warehouses", "book",
    ],
    ("buyer",): ["register", "exhibitors", "products", "inquire", "rfq", "answers"],
    ("operator",): ["register", "update", "bookings", "utilisation"],
    ("bureau",): ["fair", "expo", "applications", "allocate", "reject", "watch", "report"],
    ("bureau", "fair"): ["template", "create", "open", "show"],
    ("bureau", "expo"): ["create", "open"],
    ("events",): ["topics", "tail"],
    ("notifications",): ["list", "unread", "read", "watch"],
    ("preferences",): ["show", "set"],
    ("webhooks",): ["add", "list", "enable", "remove", "deliveries"],
}  # fmt: skip


async def test_help_lists_every_group_and_command_with_the_exit_codes(running: Running) -> None:
    outcomes = await asyncio.gather(
        *(running.chuhai(*group, "--help") for group in GROUPS),
        running.chuhai("--show-completion", "bash"),
    )
    for (group, commands), outcome in zip(GROUPS.items(), outcomes, strict=False):
        assert outcome.code == 0, outcome.stderr
        for command in commands:
            assert f" {command} " in outcome.stdout, (group, command)
    assert "Exit codes" in outcomes[0].stdout and "BOOTH_GRPC_TARGET" in outcomes[0].stdout
    # Typer's shell completion stays on.
    assert outcomes[-1].code == 0 and "complete" in outcomes[-1].stdout


async def test_a_season_from_fair_to_warehouse_through_the_command_line(
    running: Running, identities: Identities
) -> None:
    ok = running.ok
    fair_id = f"canton-{uuid.uuid4().hex[:6]}"
    edition_id = f"cloud-{fair_id}"
    officer = as_(identities.token(Role.OFFICER, subject="officer-1"))

    # The bureau writes the fair down, creates and opens it.
    template = await ok("bureau", "fair", "template", "--fair-id", fair_id)
    fair_path = running.workdir / f"{fair_id}.yaml"
    fair_path.write_text(template.stdout)
    created = (await ok("bureau", "fair", "create", str(fair_path), "--json", env=officer)).json()
    assert created["fair"]["fair_id"] == fair_id
    assert created["fair"]["status"] == "FAIR_STATUS_DRAFT"
    assert created["fair"]["booth_quotas"][0]["booth_type"] == "BOOTH_TYPE_STANDARD"
    assert (await ok("bureau", "fair", "open", fair_id, "--json", env=officer)).json()["fair"][
        "status"
    ] == "FAIR_STATUS_OPEN"

    # Three exporters register, each with its own token (which names the firm), and apply.
    firms = [random_credit_code() for _ in range(3)]
    first = firms[0]
    exporter = {code: as_(identities.token(Role.EXPORTER, code)) for code in firms}
    registered = await asyncio.gather(
        *(
            ok(
                "exporter", "register", "--name", f"许昌发制品 {n}", "--district", "建安区",
                "--product", "670420:human hair wigs", "--turnover-usd", str(5_000_000 * (3 - n)),
                "--brand-owner", "--past-fair", "Canton Fair 135", "--json",
                env=exporter[code],
            )
            for n, code in enumerate(firms)
        )
    )  # fmt: skip
    assert [r.json()["exporter"]["credit_code"] for r in registered] == firms
    shown = (await ok("exporter", "show", "--json", env=exporter[first])).json()
    assert shown["exporter"]["main_products"] == [{"name": "human hair wigs", "hs_code": "670420"}]
    assert shown["exporter"]["export_turnover_usd"] == 15_000_000
    table = await ok("exporter", "show", "--credit-code", first, env=officer)
    assert "许昌发制品 0" in table.stdout and "670420" in table.stdout

    applications = {}
    for code in firms:
        reply = await ok(
            "exporter", "apply", fair_id, "--hs-code", "670420", "--json", env=exporter[code]
        )
        applications[code] = reply.json()["application"]["application_id"]
    kept, withdrawing, rejected = (applications[code] for code in firms)

    # The bureau rejects one on review and allocates; an exporter withdraws.
    reply = await ok(
        "bureau", "reject", rejected, "--reason", "incomplete licence", "--json", env=officer
    )
    assert reply.json()["application"]["state"] == "APPLICATION_STATE_REJECTED"
    allocation = (await ok("bureau", "allocate", fair_id, "--json", env=officer)).json()
    assert (allocation["quota"], allocation["newly_allocated"]) == (43, 2)
    allocated_text = await ok("bureau", "allocate", fair_id, env=officer)
    assert "Allocated 0 more booths (2 of 43 now)" in allocated_text.stdout
    withdrawal = await ok(
        "exporter", "withdraw", withdrawing, "--reason", "no stock", "--json",
        env=exporter[firms[1]],
    )  # fmt: skip
    assert withdrawal.json()["application"]["state"] == "APPLICATION_STATE_WITHDRAWN"
    mine = (await ok("exporter", "applications", "--json", env=exporter[first])).json()
    assert [a["application_id"] for a in mine["applications"]] == [kept]
    assert mine["applications"][0]["state"] == "APPLICATION_STATE_ALLOCATED"
    review = (
        await ok("bureau", "applications", fair_id, "--state", "allocated", "--json", env=officer)
    ).json()
    assert [a["application_id"] for a in review["applications"]] == [kept]
    every = await ok("bureau", "applications", fair_id, "--limit", "2", env=officer)
    assert "(2)" in every.stdout and "More exist" in every.stdout
    fair = (await ok("bureau", "fair", "show", fair_id, "--json", env=officer)).json()
    assert fair["allocated"] == [1]

    # The cloud expo: the bureau opens an edition, the booth holder exhibits.
    today = datetime.now(UTC).date()
    await ok(
        "bureau", "expo", "create", edition_id, "--name", "Xuchang cloud expo", "--fair", fair_id,
        "--starts-on", today.isoformat(), "--ends-on", (today + timedelta(days=90)).isoformat(),
        "--allow-online-only", env=officer,
    )  # fmt: skip
    opened = (await ok("bureau", "expo", "open", edition_id, "--json", env=officer)).json()
    assert opened["edition"]["status"] == "EDITION_STATUS_OPEN"
    joined = (await ok("exporter", "join", edition_id, "--json", env=exporter[first])).json()
    assert joined["exhibitor"]["kind"] == "EXHIBITOR_KIND_BOOTH"
    product = (
        await ok(
            "exporter", "publish", edition_id, "--name", "Remy human hair wig",
            "--hs-code", "670420", "--moq", "50", "--price-min", "USD 12.50",
            "--price-max", "USD 80", "--certification", "CE", "--json", env=exporter[first],
        )
    ).json()["product"]  # fmt: skip
    assert product["price_min"] == {"currency": "USD", "units": 12, "nanos": 500_000_000}

    # An operator registers a warehouse in Hamburg and raises its capacity.
    operator = as_(identities.token(Role.OPERATOR, OPERATOR_ID))
    code = f"DE-HAM-{uuid.uuid4().hex[:4].upper()}"
    await ok(
        "operator", "register", code, "--name", "Hamburg public overseas warehouse",
        "--operator-name", "Henan Overseas Logistics", "--country", "DE", "--city", "Hamburg",
        "--address", "Am Sandtorkai 1", "--location", "53.55,9.99", "--area-m2", "12000",
        "--pallets", "2000", "--cubic-metres", "20000",
        "--service", "storage", "--service", "customs-clearance", "--delivers-to", "PL",
        env=operator,
    )  # fmt: skip
    updated = await ok("operator", "update", code, "--pallets", "2500", "--json", env=operator)
    assert updated.json()["warehouse"]["profile"]["capacity"] == {
        "pallet_positions": 2500,
        "cubic_metres": 20000,
    }

    # A buyer from Germany registers (its token not bound to a buyer yet), then, with a
    # token bound to its buyer id, browses, inquires and sends an RFQ.
    buyer = (
        await ok(
            "buyer", "register", "--company", "Hamburg Hair GmbH", "--country", "DE",
            "--buyer-type", "new", "--email", "einkauf@example.com", "--json",
            env=as_(identities.token(Role.BUYER, subject="hamburg-hair")),
        )
    ).json()["buyer"]  # fmt: skip
    as_buyer = as_(identities.token(Role.BUYER, buyer["buyer_id"], subject="hamburg-hair"))
    exhibitors = (await ok("buyer", "exhibitors", edition_id, "--json", env=as_buyer)).json()
    assert [e["credit_code"] for e in exhibitors["exhibitors"]] == [first]
    products = (
        await ok("buyer", "products", edition_id, "--hs-heading", "6704", "--json", env=as_buyer)
    ).json()
    assert [p["product_id"] for p in products["products"]] == [product["product_id"]]
    inquiry = (
        await ok(
            "buyer", "inquire", edition_id, "--exhibitor", first, "--product",
            product["product_id"], "--hs-code", "670420", "--quantity", "200",
            "--target-price", "USD 11", "--incoterm", "cif", "--destination-country", "DE",
            "--destination-port", "Hamburg", "--json", env=as_buyer,
        )
    ).json()  # fmt: skip
    assert inquiry["intent"]["recipients"] == [first]
    assert inquiry["intent"]["buyer_id"] == buyer["buyer_id"]
    assert code in [w["code"] for w in inquiry["warehouses"]]
    rfq = (
        await ok(
            "buyer", "rfq", edition_id, "--hs-code", "670490", "--quantity", "1000",
            "--destination-country", "DE", "--max-quotes", "3", "--json", env=as_buyer,
        )
    ).json()["intent"]  # fmt: skip
    assert rfq["kind"] == "INTENT_KIND_RFQ" and rfq["recipients"] == [first]

    # The exhibitor answers: a quote for the inquiry, a decline for the RFQ.
    reached = (await ok("exporter", "intents", edition_id, "--json", env=exporter[first])).json()
    assert {i["intent_id"] for i in reached["intents"]} == {
        inquiry["intent"]["intent_id"],
        rfq["intent_id"],
    }
    await ok(
        "exporter", "answer", inquiry["intent"]["intent_id"],
        "--unit-price", "USD 12.80", "--moq", "100", "--lead-time-days", "20",
        "--incoterm", "cif", "--valid-until", (today + timedelta(days=20)).isoformat(),
        env=exporter[first],
    )  # fmt: skip
    declined = await ok(
        "exporter", "answer", rfq["intent_id"], "--decline", "--reason", "fully booked",
        "--json", env=exporter[first],
    )  # fmt: skip
    assert declined.json()["intent"]["state"] == "INTENT_STATE_DECLINED"
    answers = (
        await ok("buyer", "answers", inquiry["intent"]["intent_id"], "--json", env=as_buyer)
    ).json()
    quote = answers["intent"]["responses"][0]
    assert (quote["kind"], quote["unit_price"]["units"], quote["lead_time_days"]) == (
        "RESPONSE_KIND_QUOTED",
        12,
        20,
    )
    answers_table = await ok("buyer", "answers", inquiry["intent"]["intent_id"], env=as_buyer)
    assert "USD 12.80" in answers_table.stdout and "quoted" in answers_table.stdout

    # The exporter finds the warehouse and books space; the operator sees it.
    found = (
        await ok("exporter", "warehouses", "--serving", "PL", "--json", env=exporter[first])
    ).json()
    assert code in [m["warehouse"]["code"] for m in found["matches"]]
    nearest = await ok(
        "exporter", "warehouses", "--near", "53.0,10.0", "--service", "customs-clearance",
        "--from", today.isoformat(), "--until", (today + timedelta(days=30)).isoformat(),
        "--min-pallets", "100", env=exporter[first],
    )  # fmt: skip
    assert code in nearest.stdout
    booking = (
        await ok(
            "exporter", "book", code, "--pallets", "120",
            "--until", (today + timedelta(days=30)).isoformat(), "--json", env=exporter[first],
        )
    ).json()["reservation"]  # fmt: skip
    assert booking["status"] == "RESERVATION_STATUS_CONFIRMED"
    assert booking["exporter_credit_code"] == first
    bookings = (await ok("operator", "bookings", code, "--json", env=operator)).json()
    assert [r["reservation_id"] for r in bookings["reservations"]] == [booking["reservation_id"]]
    utilisation = (await ok("operator", "utilisation", code, "--json", env=operator)).json()
    assert len(utilisation["days"]) == 14
    assert utilisation["days"][0]["reserved"]["pallet_positions"] == 120

    # The bureau's live figures and report follow the events.
    async def intents_seen() -> int:
        watched = (await ok("bureau", "watch", "--once", "--json", env=officer)).json()
        return watched["headline"]["intents"]

    await eventually(intents_seen, equals=2, within_seconds=30, every=0.5)
    watched = (await ok("bureau", "watch", "--once", "--json", env=officer)).json()["headline"]
    assert (watched["firms_served"], watched["booths_allocated"], watched["buyers"]) == (3, 1, 0)
    live_table = await ok("bureau", "watch", "--count", "1", env=officer)
    assert "Purchase intents" in live_table.stdout
    saved = (await ok("bureau", "report", "--json", env=officer)).json()
    rows = list(csv.reader(io.StringIO((running.workdir / saved["path"]).read_text())))
    assert ["headline", "firms_served", "3"] in rows
    assert ["intents_by_country", "DE", "2"] in rows
    xlsx = await ok("bureau", "report", "--format", "xlsx", "-o", "season.xlsx", env=officer)
    assert "season.xlsx" in xlsx.stdout
    assert (running.workdir / "season.xlsx").read_bytes()[:2] == b"PK"

    # Every event is on its topic, decoded, with who made it.
    tail = await ok(
        "events", "tail", "booth.exporters", "--from-beginning", "--max", "3",
        "--timeout", "20", "--json",
    )  # fmt: skip
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted(e["key"] for e in events) == sorted(firms)
    assert {e["envelope"]["type"] for e in events} == {"chuhai.booth.v1.ExporterRegistered"}
    assert all(e["envelope"]["producer"] == "booth" for e in events)
    assert sorted(e["envelope"]["actor"]["party"] for e in events) == sorted(firms)
    assert {e["envelope"]["actor"]["role"] for e in events} == {"exporter"}
    pretty = await ok(
        "events", "tail", "chuhai.booth.fairs.v1", "--from-beginning", "--max", "1",
        "--timeout", "20",
    )  # fmt: skip
    assert "FairCreated" in pretty.stdout and fair_id in pretty.stdout
    listed = (await ok("events", "topics", "--json")).json()
    assert {"name": "chuhai.expo.intents.v1", "partitions": 6, "compacted": False,
            "exists": True} in listed  # fmt: skip

    # Retrying a change with its request id changes nothing and answers the same.
    newcomer, request_id = random_credit_code(), f"retry-{uuid.uuid4()}"
    as_newcomer = as_(identities.token(Role.EXPORTER, newcomer))
    retried = [
        await ok("exporter", "register", "--name", "许昌新企业", "--request-id", request_id,
                 "--json", env=as_newcomer)
        for _ in range(2)
    ]  # fmt: skip
    assert retried[0].json() == retried[1].json()


async def test_login_whoami_and_logout_keep_the_token_between_commands(
    running: Running, identities: Identities, tmp_path: Path
) -> None:
    home = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    code = random_credit_code()
    token = identities.token(Role.EXPORTER, code, subject="export-manager")
    logged_in = await running.ok("login", "--token", token, env=home)
    assert code in logged_in.stdout
    saved = tmp_path / "config" / "chuhai" / "token"
    assert saved.stat().st_mode & 0o777 == 0o600

    who = (await running.ok("whoami", "--json", env=home)).json()
    assert (who["role"], who["party"], who["subject"]) == ("exporter", code, "export-manager")
    assert (who["source"], who["verified"]) == (str(saved), False)
    # The saved token is the caller of every command from now on.
    registered = await running.ok("exporter", "register", "--name", "许昌登录企业", env=home)
    assert code in registered.stdout
    assert code in (await running.ok("exporter", "show", env=home)).stdout

    await running.ok("logout", env=home)
    assert not saved.exists()
    gone = await running.chuhai("exporter", "show", "--credit-code", code, env=home)
    assert gone.code == 8, gone.stderr
    assert "chuhai login --token" in gone.stderr


async def test_no_token_a_bad_one_or_the_wrong_role_exit_with_their_codes(
    running: Running, identities: Identities, tmp_path: Path
) -> None:
    run = running.chuhai
    exporter = as_(identities.token(Role.EXPORTER, random_credit_code()))
    missing, expired, foreign, refused = await asyncio.gather(
        run("bureau", "fair", "show", "canton-1"),
        run("bureau", "fair", "show", "canton-1",
            env=as_(identities.token(Role.OFFICER, ttl_seconds=-120))),
        run("bureau", "fair", "show", "canton-1", env=as_(_signed_by_a_stranger(tmp_path))),
        run("bureau", "allocate", "canton-1", env=exporter),
    )  # fmt: skip
    for unauthenticated in (missing, expired, foreign):
        assert unauthenticated.code == 8, unauthenticated.stderr
        assert "Not signed in" in unauthenticated.stderr
        assert "chuhai login --token" in unauthenticated.stderr
    assert "expired" in expired.stderr
    assert refused.code == 7, refused.stderr
    assert "Not permitted" in refused.stderr and "chuhai whoami" in refused.stderr
    # The dashboard's report is the bureau's too.
    report, report_refused = await asyncio.gather(
        run("bureau", "report", "-o", "-"), run("bureau", "report", "-o", "-", env=exporter)
    )
    assert report.code == 8 and "chuhai login --token" in report.stderr
    assert report_refused.code == 7, report_refused.stderr


def _signed_by_a_stranger(directory: Path) -> str:
    """A well-formed token for the right issuer and audience, signed by a key nobody
    trusts."""
    return Identities(DevelopmentKeys.ensure(directory)).token(Role.OFFICER)


async def test_failures_exit_with_their_documented_code_and_name_the_field(
    running: Running, identities: Identities
) -> None:
    run = running.chuhai
    officer = as_(identities.token(Role.OFFICER, subject="officer-1"))
    malformed = "91411000MA0000000X"
    invalid, missing, unknown_topic, unknown_fair = await asyncio.gather(
        run("exporter", "register", "--credit-code", malformed, "--name", " ",
            env=as_(identities.token(Role.EXPORTER, malformed))),
        run("exporter", "show", "--credit-code", random_credit_code(), env=officer),
        run("events", "tail", "chuhai.nowhere.v1", "--max", "1"),
        run("bureau", "fair", "open", "no-such-fair", env=officer),
    )  # fmt: skip
    assert invalid.code == 3, invalid.stderr
    assert "credit_code (--credit-code)" in invalid.stderr
    assert "profile.name (--name)" in invalid.stderr
    assert missing.code == 4 and "Not found" in missing.stderr
    assert unknown_topic.code == 4 and "events topics" in unknown_topic.stderr
    assert unknown_fair.code == 4

    code = random_credit_code()
    exporter = as_(identities.token(Role.EXPORTER, code))
    await running.ok("exporter", "register", "--name", "First", env=exporter)
    again = await run("exporter", "register", "--name", "Second", env=exporter)
    assert again.code == 5 and "Already exists" in again.stderr

    usage, unreachable, bad_period, bad_file = await asyncio.gather(
        run("exporter", "apply", "canton-1", "--booth-type", "huge", "--hs-code", "1",
            env=exporter),
        run("--booth-target", "127.0.0.1:9", "--timeout", "2", "exporter", "register",
            "--name", "X", "--request-id", "try-1", env=exporter),
        run("bureau", "report", "--since", "2026-13-01", env=officer),
        run("bureau", "fair", "create", str(_bad_fair_file(running.workdir)), env=officer),
    )  # fmt: skip
    assert usage.code == 2
    assert unreachable.code == 6 and "--request-id try-1" in unreachable.stderr
    assert bad_period.code == 3 and "since (--since): must be a date" in bad_period.stderr
    assert bad_file.code == 3 and "quotas" in bad_file.stderr


def _bad_fair_file(workdir: Path) -> Path:
    path = workdir / "bad-fair.yaml"
    path.write_text("fair_id: bad\nquotas: 3\n")
    return path


async def test_notifications_preferences_and_webhooks_through_the_command_line(
    running: Running, identities: Identities
) -> None:
    """An exporter hears of its application and its booth, on a watch and in its list;
    nobody else does. Its webhook's delivery shows in the log, its preferences change
    only where it asks. The bureau's bell reaches the same notify with the officer's
    token."""
    ok = running.ok
    officer = as_(identities.token(Role.OFFICER, subject="officer-1"))
    fair_id = f"notify-{uuid.uuid4().hex[:6]}"
    fair_path = running.workdir / f"{fair_id}.yaml"
    fair_path.write_text((await ok("bureau", "fair", "template", "--fair-id", fair_id)).stdout)
    await ok("bureau", "fair", "create", str(fair_path), env=officer)
    await ok("bureau", "fair", "open", fair_id, env=officer)
    firm, bystander = random_credit_code(), random_credit_code()
    exporter = as_(identities.token(Role.EXPORTER, firm))
    await ok(
        "exporter", "register", "--name", "许昌通知发制品", "--product", "670420:human hair wigs",
        env=exporter,
    )  # fmt: skip
    hook = (
        await ok(
            "webhooks", "add", "http://127.0.0.1:9/chuhai", "--kind", "booth-allocated",
            "--json", env=exporter,
        )
    ).json()  # fmt: skip
    assert hook["secret"] and hook["webhook"]["enabled"]
    hook_id = hook["webhook"]["webhook_id"]

    # Watching before applying: the application's score arrives on the watch.
    async with running.watching("--count", "1", "--json", env=exporter) as watch:
        applied = await ok("exporter", "apply", fair_id, "--hs-code", "670420", "--json",
                           env=exporter)  # fmt: skip
        application_id = applied.json()["application"]["application_id"]
        out, err = await asyncio.wait_for(watch.communicate(), 60)
    assert watch.returncode == 0, err.decode()
    watched = json.loads(out)
    assert watched["notification"]["kind"] == "NOTIFICATION_KIND_APPLICATION_SCORED"
    assert application_id in watched["notification"]["facts"].values()

    await ok("bureau", "allocate", fair_id, env=officer)

    async def kinds() -> list[str]:
        listed = (await ok("notifications", "list", "--json", env=exporter)).json()
        return sorted(n["kind"] for n in listed["notifications"])

    await eventually(
        kinds,
        equals=["NOTIFICATION_KIND_APPLICATION_SCORED", "NOTIFICATION_KIND_BOOTH_ALLOCATED"],
        within_seconds=60,
        every=0.5,
    )
    table = await ok("notifications", "list", "--unread", env=exporter)
    assert "booth-allocated" in table.stdout and "2 unread." in table.stdout
    unread = (await ok("notifications", "unread", "--json", env=exporter)).json()
    assert unread == {"unread_count": 2}
    marked = (await ok("notifications", "read", "--all", "--json", env=exporter)).json()
    assert marked == {"marked": 2, "unread_count": 0}
    # Another firm reads none of them.
    others = as_(identities.token(Role.EXPORTER, bystander))
    assert (await ok("notifications", "list", "--json", env=others)).json()["notifications"] == []

    # The booth allocated went to the webhook too; nothing listens there, so it waits.
    async def attempted() -> bool:
        log = (
            await ok("webhooks", "deliveries", "--webhook", hook_id, "--json", env=exporter)
        ).json()["deliveries"]
        return bool(log) and log[0]["attempts"] >= 1

    await eventually(attempted, equals=True, within_seconds=60, every=0.5)
    [delivery] = (await ok("webhooks", "deliveries", "--json", env=exporter)).json()["deliveries"]
    assert (delivery["channel"], delivery["target"]) == ("CHANNEL_WEBHOOK", hook_id)
    assert delivery["status"] in ("DELIVERY_STATUS_PENDING", "DELIVERY_STATUS_FAILED")
    assert delivery["last_error"]
    listed = (await ok("webhooks", "list", "--json", env=exporter)).json()["webhooks"]
    assert [w["webhook_id"] for w in listed] == [hook_id]
    await ok("webhooks", "enable", hook_id, env=exporter)
    await ok("webhooks", "remove", hook_id, env=exporter)
    assert (await running.chuhai("webhooks", "remove", hook_id, env=exporter)).code == 4
    refused_url = await running.chuhai("webhooks", "add", "http://erp.example.com/", env=exporter)
    assert refused_url.code == 3 and "url (URL)" in refused_url.stderr

    # Preferences: only what is given changes.
    updated = (
        await ok(
            "preferences", "set", "--language", "en", "--email", "export@example.com",
            "--kind", "daily-digest=none", "--fair-heading", "6704", "--json", env=exporter,
        )
    ).json()["preferences"]  # fmt: skip
    assert (updated["language"], updated["email"]) == ("en", "export@example.com")
    assert updated["fair_hs_headings"] == ["6704"]
    assert updated["kinds"] == [{"kind": "NOTIFICATION_KIND_DAILY_DIGEST", "channels": []}]
    hours = (
        await ok(
            "preferences", "set", "--quiet-hours", "22:00-08:00", "--time-zone",
            "Asia/Shanghai", "--json", env=exporter,
        )
    ).json()["preferences"]  # fmt: skip
    assert hours["quiet_hours"] == {"start": "22:00", "end": "08:00", "time_zone": "Asia/Shanghai"}
    assert (hours["language"], hours["fair_hs_headings"]) == ("en", ["6704"])
    shown = (await ok("preferences", "show", "--json", env=exporter)).json()["preferences"]
    assert shown == hours
    wrong = await running.chuhai(
        "preferences", "set", "--quiet-hours", "25:00-08:00", "--time-zone", "Mars/Olympus",
        env=exporter,
    )  # fmt: skip
    assert wrong.code == 3, wrong.stderr
    assert "quiet_hours" in wrong.stderr and "time_zone" in wrong.stderr

    # Who may not: a service, and nobody.
    service = as_(identities.token(Role.SERVICE, "expo", subject="expo"))
    assert (await running.chuhai("notifications", "list", env=service)).code == 7
    assert (await running.chuhai("notifications", "unread")).code == 8

    # The bureau's bell: the dashboard asks notify with the officer's own token.
    dashboard = f"http://{running.env['BUREAU_WEB_HOST']}:{running.env['BUREAU_WEB_PORT']}"
    officer_token = officer["CHUHAI_TOKEN"]
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(
            f"{dashboard}/api/notifications",
            headers={"Authorization": f"Bearer {officer_token}"},
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()
        bell = await reply.json()
    assert isinstance(bell["unread_count"], int)
    assert all(n["kind"] != "BOOTH_ALLOCATED" for n in bell["notifications"])
