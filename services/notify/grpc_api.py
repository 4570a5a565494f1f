"""The notify service's public gRPC API: a reader's notifications, preferences, webhooks
and delivery log.

Each call decodes its request (messages), runs one use case (handlers) and encodes the
answer. A mutating call runs through the UseCaseRunner like every service's: one
transaction, and a retried request id answered with its first response. Notify records
no events, so its outbox stays empty.

Every method is for exporters, buyers, operators and officers, about the caller's own
reader (the token's party; the bureau for an officer); services have no notifications.

WatchNotifications streams what the caller's reader is told as it is made: it looks at
the store every WATCH_POLL_SECONDS, and at once when this process made notifications
(the Bell), so a watcher of another notify instance learns of them within the poll."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc

from chuhai.notify.v1 import notify_service_pb2 as pb
from chuhai.notify.v1 import notify_service_pb2_grpc as pb_grpc
from notify import handlers, messages
from notify.domain import Notification, Reader
from notify.storage import NotifyStore, ensure_indexes
from runtime.adapters.auth import Access, caller, roles
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext
from runtime.adapters.unit_of_work import OutgoingEvent, UseCaseRunner
from runtime.kernel.identity import Role

READERS = roles(Role.EXPORTER, Role.BUYER, Role.OPERATOR, Role.OFFICER)
ACCESS: Access = {
    "ListNotifications": READERS,
    "CountUnread": READERS,
    "MarkRead": READERS,
    "WatchNotifications": READERS,
    "GetPreferences": READERS,
    "UpdatePreferences": READERS,
    "RegisterWebhook": READERS,
    "EnableWebhook": READERS,
    "DeleteWebhook": READERS,
    "ListWebhooks": READERS,
    "ListDeliveries": READERS,
}

WATCH_POLL_SECONDS = 0.5
# A watch looks this far behind the newest notification it sent: one made a little
# earlier but stored a little later (a slow event beside a quick one) is still found.
# Those already sent are known by id.
WATCH_LOOKBACK = timedelta(seconds=5)
# At most this many unread notifications open a watch, and are found per look.
WATCH_BATCH = 500
# Tells a watcher that its watch is established before anything is sent on it.
WATCH_ACCEPTED = (("chuhai-watch", "accepted"),)


class Bell:
    """Rings when this process made notifications, so that watchers look at once."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()
        self._rung = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        """Taken before looking at the store: a ring after that is not missed."""
        return self._rung

    @staticmethod
    async def wait(ticket: asyncio.Event, seconds: float) -> None:
        """Until the bell rang since ``ticket`` was taken, or ``seconds`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), seconds)


def _encode_event(event: Any) -> OutgoingEvent:
    # The runner's encoder, never called: notify's use cases record no events.
    raise TypeError(f"notify records no events, got {type(event).__name__}")


class NotifyApi(pb_grpc.NotifyServiceServicer):
    def __init__(self, runner: UseCaseRunner[NotifyStore], bell: Bell) -> None:
        self._runner = runner
        self._bell = bell

    # Notifications.

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNotificationsResponse:
        unread_only, page = messages.notification_listing(request)
        listed = await handlers.list_notifications(
            self._runner.reader(), caller(), unread_only, page
        )
        return pb.ListNotificationsResponse(
            notifications=[messages.notification_message(n) for n in listed.notifications],
            next_page_token=listed.next_page_token,
            unread_count=listed.unread_count,
        )

    async def CountUnread(
        self, request: pb.CountUnreadRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountUnreadResponse:
        unread = await handlers.count_unread(self._runner.reader(), caller())
        return pb.CountUnreadResponse(unread_count=unread)

    async def MarkRead(
        self, request: pb.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkReadResponse:
        command = messages.mark_read(request)
        return await self._runner.run_once(
            "MarkRead",
            request,
            pb.MarkReadResponse,
            lambda uow: handlers.mark_read(uow, command),
            lambda marked: pb.MarkReadResponse(
                marked=marked.marked, unread_count=marked.unread_count
            ),
            actor=caller(),
        )

    async def WatchNotifications(
        self, request: pb.WatchNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchNotificationsResponse]:
        principal = caller()
        reader = Reader.of(principal)
        if reader is None:
            # Nothing is ever made for nobody.
            return
        await context.send_initial_metadata(WATCH_ACCEPTED)
        store = self._runner.reader()
        # What is made from now on comes through the looks below. What was made before
        # is no news (counted as sent): of that, the unread are sent first, when asked.
        horizon = self._runner.clock.now()
        sent = {
            n.notification_id: n.created_at
            for n in await handlers.made_since(store, reader, horizon - WATCH_LOOKBACK, WATCH_BATCH)
        }
        if request.include_unread:
            unread = await handlers.unread_oldest_first(store, reader, WATCH_BATCH)
            count = await handlers.count_unread(store, principal)
            for notification in unread:
                sent[notification.notification_id] = notification.created_at
                yield _watched(notification, count)
        while True:
            ticket = self._bell.ticket()
            made = await handlers.made_since(store, reader, horizon - WATCH_LOOKBACK, WATCH_BATCH)
            for notification in made:
                if notification.notification_id in sent:
                    continue
                sent[notification.notification_id] = notification.created_at
                horizon = max(horizon, notification.created_at)
                count = await handlers.count_unread(store, principal)
                yield _watched(notification, count)
            # Ids that fell out of the lookback cannot be found again: forget them.
            for notification_id, made_at in list(sent.items()):
                if made_at < horizon - WATCH_LOOKBACK:
                    del sent[notification_id]
            await Bell.wait(ticket, WATCH_POLL_SECONDS)

    # Preferences.

    async def GetPreferences(
        self, request: pb.GetPreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPreferencesResponse:
        preferences = await handlers.get_preferences(self._runner.reader(), caller())
        return pb.GetPreferencesResponse(preferences=messages.preferences_message(preferences))

    async def UpdatePreferences(
        self, request: pb.UpdatePreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdatePreferencesResponse:
        update = messages.preferences_update(request)
        return await self._runner.run_once(
            "UpdatePreferences",
            request,
            pb.UpdatePreferencesResponse,
            lambda uow: handlers.update_preferences(uow, update),
            lambda preferences: pb.UpdatePreferencesResponse(
                preferences=messages.preferences_message(preferences)
            ),
            actor=caller(),
        )

    # Webhooks.

    async def RegisterWebhook(
        self, request: pb.RegisterWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWebhookResponse:
        registration = messages.webhook_registration(request)
        return await self._runner.run_once(
            "RegisterWebhook",
            request,
            pb.RegisterWebhookResponse,
            lambda uow: handlers.register_webhook(uow, registration),
            lambda registered: pb.RegisterWebhookResponse(
                webhook=messages.webhook_message(registered.webhook), secret=registered.secret
            ),
            actor=caller(),
        )

    async def EnableWebhook(
        self, request: pb.EnableWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnableWebhookResponse:
        webhook_id = messages.webhook_reference(request)
        return await self._runner.run_once(
            "EnableWebhook",
            request,
            pb.EnableWebhookResponse,
            lambda uow: handlers.enable_webhook(uow, webhook_id),
            lambda webhook: pb.EnableWebhookResponse(webhook=messages.webhook_message(webhook)),
            actor=caller(),
        )

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteWebhookResponse:
        webhook_id = messages.webhook_reference(request)
        return await self._runner.run_once(
            "DeleteWebhook",
            request,
            pb.DeleteWebhookResponse,
            lambda uow: handlers.delete_webhook(uow, webhook_id),
            lambda _: pb.DeleteWebhookResponse(),
            actor=caller(),
        )

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        webhooks = await handlers.list_webhooks(self._runner.reader(), caller())
        return pb.ListWebhooksResponse(webhooks=[messages.webhook_message(w) for w in webhooks])

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDeliveriesResponse:
        webhook_id, page = messages.delivery_listing(request)
        listed = await handlers.list_deliveries(self._runner.reader(), caller(), webhook_id, page)
        return pb.ListDeliveriesResponse(
            deliveries=[messages.delivery_message(d) for d in listed.deliveries],
            next_page_token=listed.next_page_token,
        )


def _watched(notification: Notification, unread: int) -> pb.WatchNotificationsResponse:
    return pb.WatchNotificationsResponse(
        notification=messages.notification_message(notification), unread_count=unread
    )


def binding(runner: UseCaseRunner[NotifyStore], bell: Bell) -> ServiceBinding:
    return ServiceBinding(
        full_name=pb.DESCRIPTOR.services_by_name["NotifyService"].full_name,
        servicer=NotifyApi(runner, bell),
        add_to_server=pb_grpc.add_NotifyServiceServicer_to_server,
        access=ACCESS,
    )


def runner_for(context: ServiceContext) -> UseCaseRunner[NotifyStore]:
    return UseCaseRunner(context.outbox, NotifyStore, _encode_event, context.clock)


async def build(context: ServiceContext) -> list[ServiceBinding]:
    """The API alone, without the consumer and the dispatcher (notify.host runs those):
    what serves the calls of a notify instance."""
    await ensure_indexes(context.db)
    return [binding(runner_for(context), Bell())]
