"""What a plugin is given by the core: :class:`ModuleContext`, one per plugin.

Every module hook receives it (``register_routes(context)``...), and a plugin keeps it for
later: its resources, jobs and subscribers reach their own stores, the services other
plugins offer, the channels, the event log and the audit log through it. It gives narrow
services, never the database itself: a plugin's stores are its own, another plugin's data
comes through that plugin's service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import structlog

from omnichannel_core.bus.news import News
from omnichannel_core.config import Config
from omnichannel_core.events.records import Event, EventTypeSpec
from omnichannel_core.policy import Policy, Principal
from omnichannel_core.services import ChannelInbox, ChannelInboxes
from omnichannel_core.store.protocols import AuditLog, EventLog, SubscriberState

if TYPE_CHECKING:
    from omnichannel_core.plugins.channels import Channels
    from omnichannel_core.plugins.registry import Registry

T = TypeVar("T")

Authenticator = Callable[[str], Awaitable[Principal | None]]
"""``async def authenticate(token) -> Principal | None``: who presents this bearer token;
None when it is not this authenticator's kind of token."""


class EventReader:
    """Reading the event log: what a plugin may do with it (the core prunes it)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def after(self, cursor: str | None, limit: int) -> list[Event]:
        """At most ``limit`` events after ``cursor`` (None: from the oldest kept), in log
        order; EventsExpired when events after it were pruned (see
        `omnichannel_core.store.protocols.EventLog.after`)."""
        return await self._log.after(cursor, limit)

    async def latest(self) -> str | None:
        """The cursor of the newest event; None when the log is empty."""
        return await self._log.latest()


class ModuleContext:
    """A plugin's view of the core.

    :param registry: the registry of the server.
    :param owner: the plugin's name (its stores are registered under it).
    :param channel: the plugin is a channel (named ``owner``): it may store its inbound
        messages from its own jobs (:meth:`channel_inbox`).
    """

    def __init__(self, registry: Registry, owner: str, *, channel: bool = False) -> None:
        self._registry = registry
        self.owner = owner
        self._channel = channel
        self.log = structlog.get_logger(f"omnichannel.{owner}").bind(plugin=owner)
        """A structlog logger whose every line names the plugin (``plugin=...``):
        snake_case events, key/value pairs, never a secret."""

    @property
    def config(self) -> Config:
        """The server's configuration; ``config.environ`` holds every variable, the
        plugin's own settings included."""
        return self._registry.config

    @property
    def policy(self) -> Policy:
        """The permission matrix (built once every plugin contributed its permissions)."""
        return self._registry.policy

    def store(self, interface: type[T]) -> T:
        """This plugin's store registered under ``interface``
        (``register_stores``); KeyError naming it otherwise."""
        return self._registry.store_of(self.owner, interface)

    def service(self, interface: type[T]) -> T:
        """The service some plugin offers under ``interface`` (``register_services``);
        LookupError saying none does, when none does."""
        return self._registry.service(interface, self)

    def optional_service(self, interface: type[T]) -> T | None:
        """The service some plugin offers under ``interface``, or None when none does (its
        module is disabled, or failed to load): for what a module shows only when there."""
        try:
            return self.service(interface)
        except LookupError:
            return None

    @property
    def channels(self) -> Channels:
        return self._registry.channels

    def channel_inbox(self) -> ChannelInbox:
        """A channel's own :class:`~omnichannel_core.services.ChannelInbox`, the one its
        routes get, for the work it does outside a request (a mailbox its job polls):
        ``await context.channel_inbox().receive(result)`` stores inbound messages as a
        webhook's. LookupError for a plugin that is not a channel."""
        if not self._channel:
            raise LookupError(f"{self.owner} is not a channel: only a channel has an inbox")
        return self.service(ChannelInboxes).of(self.owner)

    @property
    def events(self) -> EventReader:
        return EventReader(self._registry.event_log)

    @property
    def event_types(self) -> dict[str, EventTypeSpec]:
        """Every event type the plugins declared, by name."""
        return self._registry.event_types

    @property
    def news(self) -> News:
        """Wakes this process's readers of the event log when it may have grown."""
        return self._registry.news

    @property
    def audit(self) -> AuditLog:
        """The audit log (append-only)."""
        return self._registry.audit_log

    async def resync(self, subscriber: str) -> int:
        """Ask for a resync of one of this plugin's subscribers (named ``<owner>.<name>``):
        the runner feeding it calls its ``resync`` within seconds, or the first to start
        does when none runs. Returns the request's number: :meth:`subscriber_state` tells
        when it is done (``resynced`` at least that; 0: the subscriber has no state yet)."""
        self._own_subscriber(subscriber)
        return await self._registry.job_store.ask_resync(subscriber)

    async def subscriber_state(self, subscriber: str) -> SubscriberState | None:
        """Where one of this plugin's subscribers is: its cursor, failures and whether a
        resync is due (None before any server started it)."""
        self._own_subscriber(subscriber)
        return await self._registry.job_store.subscriber(subscriber)

    def _own_subscriber(self, subscriber: str) -> None:
        if not subscriber.startswith(f"{self.owner}."):
            raise ValueError(f"{subscriber!r} is not one of {self.owner}'s subscribers")

    def on_startup(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when each server or runner process has opened its stores."""
        self._registry.on_startup(self, callback)

    def on_shutdown(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when each process stops, before its stores close."""
        self._registry.on_shutdown(self, callback)

    def on_stopping(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quick, on the event loop) as soon as a web process is told to
        stop (SIGTERM, SIGINT), before it waits for open responses: end anything that never
        ends by itself (a stream, a socket), so the process can finish them and stop."""
        self._registry.on_stopping(self, callback)

    def __repr__(self) -> str:
        return f"<ModuleContext {self.owner}>"


class CoreContext(ModuleContext):
    """The core's own plugin's context: it also sees the whole registry, to report on
    every plugin (``/health``, ``/api/plugins``, the OpenAPI document) and to prune the
    event log."""

    @property
    def registry(self) -> Registry:
        return self._registry
