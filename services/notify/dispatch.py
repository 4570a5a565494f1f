"""The delivery loop: e-mail and webhook deliveries that are due, sent and recorded.

A delivery is a document (see storage) that survives restarts: PENDING with the moment
of its next attempt. The loop looks for due ones every NOTIFY_DISPATCH_POLL_SECONDS,
and at once when this process has just planned some (``wake``). Each is claimed before
it is sent (NotifyStore.claim, a conditional update that also moves its next attempt
to the end of a lease), so two notify instances never send one delivery at the same
time, and one that dies mid-attempt leaves it due again when the lease ends.

The deliveries of one target (one webhook, one address) go one after the other, those
of different targets side by side: a webhook's failures in a row are counted on fresh
state, and a slow receiver holds up only its own deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

from notify import domain, handlers, messages
from notify.domain import Channel, Delivery, DeliveryStatus
from notify.handlers import DeliveryPolicy
from notify.mail import MailSender
from notify.storage import NotifyStore
from notify.templates import render_mail
from notify.webhooks import SendOutcome, WebhookSender, webhook_headers
from runtime.kernel.clock import Clock

log = logging.getLogger(__name__)

# Deliveries taken per look; the loop looks again at once while it finds some.
BATCH_SIZE = 100
# A claim outlasts the longest attempt (the channels' own timeouts) by this much.
LEASE_MARGIN_SECONDS = 30.0
# After a failure of the database the loop waits this long, doubling up to the maximum.
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0

# What became of one attempt, as the deliveries metric counts it.
DELIVERED = "delivered"
RETRYING = "retrying"
FAILED = "failed"

Attempted = Callable[[Channel, str], None]


class Dispatcher:
    """Sends due deliveries through the mail server and webhooks, and records each
    attempt. ``attempted`` hears of each attempt's channel and outcome (for metrics)."""

    def __init__(
        self,
        store: NotifyStore,
        mail: MailSender,
        webhooks: WebhookSender,
        policy: DeliveryPolicy,
        clock: Clock,
        *,
        poll_seconds: float,
        lease_seconds: float,
        attempted: Attempted,
    ) -> None:
        self._store = store
        self._mail = mail
        self._webhooks = webhooks
        self._policy = policy
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._lease = timedelta(seconds=lease_seconds + LEASE_MARGIN_SECONDS)
        self._attempted = attempted
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled. A failing database is waited out, with backoff."""
        backoff = BACKOFF_SECONDS
        while True:
            self._wake.clear()
            try:
                while await self.dispatch_due():
                    pass
                backoff = BACKOFF_SECONDS
                wait = self._poll_seconds
            except Exception:
                log.exception("delivery loop failed; trying again")
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def dispatch_due(self) -> int:
        """Attempt the deliveries due now; how many this process claimed."""
        due = await self._store.due_deliveries(self._clock.now(), BATCH_SIZE)
        by_target: dict[tuple[Channel, str], list[Delivery]] = {}
        for delivery in due:
            by_target.setdefault((delivery.channel, delivery.target), []).append(delivery)
        # A failure (the database gone) stops the other targets' turns too: their
        # claims lapse and the deliveries come due again.
        async with asyncio.TaskGroup() as turns:
            claimed = [turns.create_task(self._send_in_turn(d)) for d in by_target.values()]
        return sum(task.result() for task in claimed)

    async def _send_in_turn(self, deliveries: Sequence[Delivery]) -> int:
        claimed = 0
        for delivery in deliveries:
            claimed += await self._attempt(delivery)
        return claimed

    async def _attempt(self, delivery: Delivery) -> bool:
        """One attempt of ``delivery``, unless another dispatcher claimed it first."""
        claim = uuid.uuid4().hex
        if not await self._store.claim(delivery, self._clock.now() + self._lease, claim):
            return False
        store = self._store
        notification = await store.notification(delivery.notification_id)
        if notification is None:
            await handlers.attempt_impossible(store, delivery, claim, "notification not found")
            self._attempted(delivery.channel, FAILED)
            return True
        if delivery.channel is Channel.EMAIL:
            outcome = await self._mail.send(
                delivery.target, render_mail(notification), message_key=delivery.delivery_id
            )
            await self._record(delivery, claim, None, outcome)
            return True
        webhook = await store.webhook(delivery.target)
        if webhook is None or not webhook.enabled:
            reason = (
                handlers.WEBHOOK_REMOVED
                if webhook is None
                else webhook.disabled_reason or handlers.WEBHOOK_DISABLED
            )
            await handlers.attempt_impossible(store, delivery, claim, reason)
            self._attempted(delivery.channel, FAILED)
            return True
        body = messages.webhook_body(delivery, notification)
        # Signed at the moment of sending: receivers refuse a timestamp far from theirs.
        timestamp = int(self._clock.now().timestamp())
        headers = webhook_headers(
            webhook.webhook_id,
            delivery.delivery_id,
            timestamp,
            domain.sign(webhook.secret, timestamp, body),
        )
        outcome = await self._webhooks.send(webhook.url, headers, body)
        await self._record(delivery, claim, webhook, outcome)
        return True

    async def _record(
        self,
        delivery: Delivery,
        claim: str,
        webhook: domain.Webhook | None,
        outcome: SendOutcome,
    ) -> None:
        now = self._clock.now()
        if outcome.ok:
            await handlers.attempt_succeeded(self._store, delivery, claim, webhook, now)
            self._attempted(delivery.channel, DELIVERED)
            return
        after, _ = await handlers.attempt_failed(
            self._store,
            delivery,
            claim,
            webhook,
            outcome.error,
            outcome.retryable,
            now,
            self._policy,
        )
        given_up = after.status is DeliveryStatus.FAILED
        self._attempted(delivery.channel, FAILED if given_up else RETRYING)
        log.info(
            "delivery attempt failed",
            extra={
                "delivery_id": delivery.delivery_id,
                "channel": delivery.channel.name,
                "attempts": after.attempts,
                "error": outcome.error,
                "given_up": given_up,
            },
        )
