"""Faults under load (issue 11): steady load through the public APIs of booth, expo and
warehouse while every fault of the list is injected in turn; afterwards every request of
the history is checked against MongoDB, the outboxes and the bureau, and notify's
notifications and e-mails against what the outboxes imply (issue 14). The suite fails
unless nothing acknowledged is missing, nothing is counted twice, nothing refused was
written, the reconciliation finds no difference, no notification is missing or made
twice and every e-mail was delivered and caught. Prints the report table and keeps it in
tests/reliability/results.json."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from launcher.reconcile import reconcile
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Role
from tests.identity import Identities
from tests.reliability import report
from tests.reliability.checker import check, check_notify
from tests.reliability.cluster import Cluster
from tests.reliability.driver import LoadDriver, Principals, Targets
from tests.reliability.faults import Faults
from tests.reliability.observe import bureau_figures, observe, observe_notify

pytestmark = pytest.mark.integration

# The whole run, start to stop, is bounded; so is the load.
SUITE_SECONDS = 600
LOAD_RATE = 8.0
LOAD_LIMIT = 4000
LOAD_PARALLEL = 8


async def reconciliation(cluster: Cluster, identities: Identities) -> tuple[list[str], int]:
    """The differences `chuhai-platform reconcile` finds and how many figures it compared."""
    token = identities.token(Role.OFFICER, subject="reliability-officer")
    found = await reconcile(cluster.settings, token)
    return [str(difference) for difference in found.differences], len(found.figures)


async def test_faults_under_load(
    tmp_path: Path, identity_keys: DevelopmentKeys, identities: Identities
) -> None:
    begun = time.monotonic()
    cluster = Cluster(tmp_path, identity_keys)
    mongo: AsyncMongoClient | None = None
    targets: Targets | None = None
    load: asyncio.Task[int] | None = None
    stop = asyncio.Event()
    try:
        async with asyncio.timeout(SUITE_SECONDS):
            await asyncio.to_thread(cluster.start_infrastructure)
            await cluster.start_mail()
            cluster.declare()
            await cluster.start("booth", "warehouse", "bureau", "notify")
            await cluster.start("expo")
            mongo = AsyncMongoClient(cluster.mongo.mongodb_uri, tz_aware=True)
            services = cluster.services
            targets = Targets(
                {n: [services[n].target] for n in ("booth", "expo", "warehouse", "notify")}
            )
            driver = LoadDriver(targets, Principals(identities), "rel")
            await driver.setup()
            load = asyncio.create_task(
                driver.run(stop, rate=LOAD_RATE, limit=LOAD_LIMIT, parallel=LOAD_PARALLEL)
            )
            faults = Faults(cluster, driver, mongo)
            world = driver.world

            async def warmed_up() -> bool:
                return (
                    len(world.exhibitors) >= 3 and len(world.buyers) >= 3 and bool(world.warehouses)
                )

            await faults.until("the load has exhibitors, buyers and warehouses", warmed_up)
            for name in ("booth", "expo", "warehouse"):
                await faults.kill_service(name)
            await faults.kill_notify()
            await faults.kill_one_of_two_booths()
            await faults.kill_bureau_mid_batch()
            await faults.kill_relay_with_unpublished_rows()
            await faults.stop_dependencies()
            await faults.redeliver()
            await faults.kill_broker()
            await faults.poison()
            await faults.kill_database()
            stop.set()
            await load
            await faults.caught_up(time.monotonic())
            await faults.notify_settled()
            figures = await bureau_figures(
                services["bureau"].target, driver.principals.officer(), world.fair_id
            )
            seen = await observe(mongo, cluster.settings, driver.history, figures)
            verdict = check(driver.history, seen)
            reconciled = await reconciliation(cluster, identities)
            notified = check_notify(
                seen.events,
                await observe_notify(
                    mongo, cluster.settings, cluster.mailbox.directory, world.mail
                ),
            )
        driver.history.write(tmp_path / "history.jsonl")
        results = report.results(
            driver.history,
            verdict,
            notified,
            faults.results,
            poison_records=faults.poison_records,
            reconciled=reconciled,
            seconds=time.monotonic() - begun,
        )
        report.write(results)
        sys.stdout.write("\n" + report.table(results) + "\n")
        assert verdict.findings == [], "\n".join(map(str, verdict.findings[:30]))
        assert results["writes_missing"] == results["double_counts"] == 0
        assert reconciled[0] == [], reconciled
        assert notified.findings == [], "\n".join(map(str, notified.findings[:30]))
    finally:
        stop.set()
        if load is not None and not load.done():
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        if targets is not None:
            await targets.close()
        if mongo is not None:
            await mongo.close()
        await asyncio.to_thread(cluster.stop)
        await cluster.stop_mail()
