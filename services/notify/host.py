"""The notify process on the runtime's ServiceHost, like every service: it serves its API
at once and runs beside it the consumer of the domain topics, the delivery loop and the
officers' daily digest, each a background task the host cancels at stop.

Notify records no events of its own, so it has no outbox relay and serves without
waiting for Kafka; while Kafka or MongoDB is away, the consumer and the loops wait it
out, and the other services never notice (nothing waits for notify)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter

from notify import domain, grpc_api, handlers
from notify.consumer import NotifyConsumer
from notify.dispatch import Dispatcher
from notify.domain import Channel, Fact, RetryPolicy
from notify.grpc_api import Bell
from notify.handlers import DeliveryPolicy, Handled
from notify.mail import MailSender
from notify.storage import NotifyStore, ensure_indexes
from notify.webhooks import WebhookSender
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext, ServiceHost
from runtime.adapters.settings import Settings
from runtime.kernel.clock import Clock

log = logging.getLogger(__name__)

# How often the digest loop asks whether a day's digest is due.
DIGEST_CHECK_SECONDS = 60.0


class NotifyMetrics:
    """Notify's counts, in its host's registry (see runtime.adapters.metrics).

    - ``chuhai_notify_events_handled_total`` (counter): events turned into
      notifications (none, one or several each) for the first time.
    - ``chuhai_notify_notifications_total`` (counter; kind): notifications made.
    - ``chuhai_notify_deliveries_total`` (counter; channel, outcome): attempts of e-mail
      and webhook deliveries, by what came of them: "delivered", "retrying" (failed,
      tried again later) or "failed" (given up).
    - ``chuhai_notify_dead_letters_total`` (counter; topic): records sent to the topic's
      .dlq twin.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.events_handled = Counter(
            "chuhai_notify_events_handled",
            "Events handled for the first time.",
            registry=registry,
        )
        self.notifications = Counter(
            "chuhai_notify_notifications", "Notifications made.", ("kind",), registry=registry
        )
        self.deliveries = Counter(
            "chuhai_notify_deliveries",
            "Attempts of e-mail and webhook deliveries, by outcome.",
            ("channel", "outcome"),
            registry=registry,
        )
        self.dead_letters = Counter(
            "chuhai_notify_dead_letters",
            "Records sent to the dead-letter twin of their topic.",
            ("topic",),
            registry=registry,
        )

    def made(self, handled: Handled) -> None:
        for notification in handled.notifications:
            self.notifications.labels(notification.kind.name).inc()

    def attempted(self, channel: Channel, outcome: str) -> None:
        self.deliveries.labels(channel.name, outcome).inc()

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters.labels(topic).inc()


def delivery_policy(settings: Settings, mail_configured: bool) -> DeliveryPolicy:
    return DeliveryPolicy(
        stale_after_hours=settings.notify_stale_after_hours,
        mail_configured=mail_configured,
        retry=RetryPolicy(
            base=settings.notify_retry_base_seconds,
            max=settings.notify_retry_max_seconds,
            max_attempts=settings.notify_max_attempts,
        ),
        webhook_disable_after=settings.notify_webhook_disable_after,
    )


class NotifyHost(ServiceHost):
    """Notify's ServiceHost: the API, the consumer, the delivery loop and the digest;
    its counts are in ``notify_metrics`` (the host's registry)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        super().__init__(
            "notify",
            self._build_notify,
            settings,
            clock,
            relays_outbox=False,
            tracer_provider=tracer_provider,
        )
        self.notify_metrics = NotifyMetrics(self.metrics.registry)

    async def _build_notify(self, context: ServiceContext) -> list[ServiceBinding]:
        settings = context.settings
        await ensure_indexes(context.db)
        store = NotifyStore(context.db)
        mail = MailSender.from_settings(settings)
        webhooks = WebhookSender(settings.notify_webhook_timeout_seconds)
        policy = delivery_policy(settings, mail.configured)
        metrics = self.notify_metrics
        bell = Bell()
        dispatcher = Dispatcher(
            store,
            mail,
            webhooks,
            policy,
            context.clock,
            poll_seconds=settings.notify_dispatch_poll_seconds,
            lease_seconds=max(
                settings.notify_webhook_timeout_seconds, settings.smtp_timeout_seconds
            ),
            attempted=metrics.attempted,
        )

        def made(handled: Handled) -> None:
            metrics.made(handled)
            if handled.deliveries:
                dispatcher.wake()
            if handled.notifications:
                bell.ring()

        async def handle(events: Sequence[tuple[Fact, str]]) -> None:
            for handled in await handlers.handle_events(store, events, context.clock.now(), policy):
                if handled.fresh:
                    metrics.events_handled.inc()
                made(handled)

        async def digests() -> None:
            await _make_digests(store, settings, context.clock, policy, made)

        consumer = NotifyConsumer(settings, handle, metrics.dead_lettered)
        context.run_in_background("consumer", consumer.run)
        context.run_in_background("dispatcher", dispatcher.run)
        context.run_in_background("digest", digests)
        context.on_stop(webhooks.close)
        log.info(
            "notify ready",
            extra={"group": settings.notify_consumer_group, "mail": mail.configured},
        )
        return [grpc_api.binding(grpc_api.runner_for(context), bell)]


async def _make_digests(
    store: NotifyStore,
    settings: Settings,
    clock: Clock,
    policy: DeliveryPolicy,
    made: Callable[[Handled], None],
) -> None:
    """Make each day's digest once its hour has come (once per process; a digest made
    before, here or by another instance, is recognised by its id)."""
    zone = settings.notify_bureau_time_zone
    done = None
    while True:
        try:
            day = domain.digest_day_due(clock.now(), settings.notify_digest_hour, zone)
            if day is not None and day != done:
                made(await handlers.make_digest(store, day, zone, clock.now(), policy))
                done = day
        except Exception:
            log.exception("daily digest not made; trying again later")
        await asyncio.sleep(DIGEST_CHECK_SECONDS)
