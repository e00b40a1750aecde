"""The inbox module's plugin: its hook implementations (entry point ``inbox``)."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    AutomatedReplies,
    BulkSends,
    ChannelInboxes,
    ContactBook,
    EventTypeSpec,
    InboxHistory,
    InboxMedia,
    InboxReader,
    Job,
    LiveEvents,
    MediaKeeper,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    hookimpl,
    lazy,
)
from omnichannel_core.modules.inbox.automations import InboxAutomatedReplies
from omnichannel_core.modules.inbox.bulk import InboxBulkSends
from omnichannel_core.modules.inbox.channel_inbox import ChannelInboxesService
from omnichannel_core.modules.inbox.channel_routes import channels_routes
from omnichannel_core.modules.inbox.contact_book import StoreContactBook
from omnichannel_core.modules.inbox.delivery import Delivery
from omnichannel_core.modules.inbox.events import event_types
from omnichannel_core.modules.inbox.media import MessageMedia
from omnichannel_core.modules.inbox.outbox_routes import OutboxHealth, outbox_routes
from omnichannel_core.modules.inbox.permissions import PERMISSIONS
from omnichannel_core.modules.inbox.reader import StoreHistory, StoreReader
from omnichannel_core.modules.inbox.routes import inbox_routes
from omnichannel_core.modules.inbox.send_policies import SendPolicies
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.inbox.store.firestore_steps import FIRESTORE_MIGRATIONS
from omnichannel_core.modules.inbox.store.sqlite.schema import INBOX_MIGRATIONS

STORE = StoreSpec(
    "inbox",
    InboxStore,
    sqlite=lazy("omnichannel_core.modules.inbox.store.sqlite.store", "SqliteInboxStore"),
    firestore=lazy("omnichannel_core.modules.inbox.store.firestore.store", "FirestoreInboxStore"),
    sqlite_migrations=INBOX_MIGRATIONS,
    firestore_migrations=FIRESTORE_MIGRATIONS,
)


class InboxModule:
    """The plugin (entry point ``omnichannel.modules: inbox``)."""

    def __init__(self) -> None:
        self._services: dict[ModuleContext, Inbox] = {}

    def inbox(self, context: ModuleContext) -> Inbox:
        """The service of this server (one per context: each app has its own)."""
        if context not in self._services:
            store = context.store(InboxStore)
            self._services[context] = Inbox(
                store,
                context.channels,
                context.config,
                context.news,
                media=lambda: context.service(MediaKeeper),
            )
        return self._services[context]

    def channel_inboxes(self, context: ModuleContext) -> ChannelInboxesService:
        """Each channel's inbox; ``follow`` draws on the events module's hub."""
        return ChannelInboxesService(self.inbox(context), live=lambda: context.service(LiveEvents))

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [STORE]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {
            InboxReader: StoreReader(context.store(InboxStore)),
            ChannelInboxes: self.channel_inboxes(context),
            InboxMedia: MessageMedia(context.store(InboxStore)),
            ContactBook: StoreContactBook(
                context.store(InboxStore), media=lambda: context.service(MediaKeeper)
            ),
            BulkSends: InboxBulkSends(
                self.inbox(context), SendPolicies(context.channels, context.config)
            ),
            AutomatedReplies: InboxAutomatedReplies(self.inbox(context)),
            InboxHistory: StoreHistory(context.store(InboxStore)),
        }

    @hookimpl
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        return event_types(context.store(InboxStore))

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        inbox = self.inbox(context)
        return [
            *inbox_routes(inbox, context),
            *outbox_routes(inbox, context),
            *channels_routes(inbox, context),
        ]

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        store = context.store(InboxStore)
        policies = SendPolicies(context.channels, context.config)
        inboxes = self.channel_inboxes(context)
        delivery = Delivery(
            store, context.channels, context.config, context.news, policies, inboxes
        )
        health = OutboxHealth(self.inbox(context), context.config)
        return [delivery.job(health.report)]
