"""The hooks a channel (or a cross-cutting plugin) implements.

Every hook receives ``channel``, the name of the channel it is called for: the core
dispatches per channel, so a channel's implementation only ever runs for its own name, while
a cross-cutting plugin's ``wrapper=True`` implementation runs around every channel's.

Implementations may be plain functions or coroutine functions. A plain function runs in a
worker thread, so a blocking SDK call never stalls the event loop; a coroutine function runs
on the loop and must not block. Arguments are opt-in: declare only those you use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnichannel_core import hookspec

if TYPE_CHECKING:
    from omnichannel_core.config import Config
    from omnichannel_core.hooktypes import (
        ChannelHealth,
        ChannelRoute,
        OutboundMessage,
        SendResult,
        WebhookRequest,
        WebhookResult,
    )
    from omnichannel_core.inbox import Inbox


@hookspec(firstresult=True)
def receive(channel: str, request: WebhookRequest, config: Config) -> WebhookResult | None:
    """Turn a provider's webhook into inbound messages (and any status updates it carries).

    Called for ``POST /api/channels/{channel}/webhook``. Authenticate the request first
    (signature, token) and raise :class:`omnichannel_core.errors.WebhookRejected` when it
    fails: the provider gets 403 and nothing is stored. The core stores every message before
    the provider gets ``result.response``.

    :param channel: the channel's name (its entry point name).
    :param request: the request, with its raw body.
    :param config: the server's configuration; ``config.environ`` holds the channel's settings.
    :returns: a :class:`WebhookResult`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def status(channel: str, request: WebhookRequest, config: Config) -> WebhookResult | None:
    """Turn a provider's delivery-status callback into status updates.

    Called for ``POST /api/channels/{channel}/status``. Authenticate as in :func:`receive`.
    The core applies each update forward-only; an update for an unknown message is
    acknowledged and logged, not stored.

    :param channel: the channel's name.
    :param request: the request, with its raw body.
    :param config: the server's configuration.
    :returns: a :class:`WebhookResult` whose ``statuses`` are applied. Stops at first
        non-None result.
    """


@hookspec(firstresult=True)
def send(channel: str, message: OutboundMessage, config: Config) -> SendResult | None:
    """Deliver a stored, queued outbound message through the provider.

    Called after the message is stored, for replies in conversations and for
    ``POST /api/channels/{channel}/messages``. Raise
    :class:`omnichannel_core.errors.SendFailed` when the provider refuses it (with its error
    code; ``retryable=True`` for rate limits and outages), or
    :class:`omnichannel_core.errors.ChannelUnavailable` when the channel is not configured.

    :param channel: the channel's name.
    :param message: what to send and to whom; ``message.id`` is stable across retries.
    :param config: the server's configuration.
    :returns: a :class:`SendResult` with the provider's message id. Stops at first
        non-None result.
    """


@hookspec(firstresult=True)
def health(channel: str, config: Config) -> ChannelHealth | None:
    """Report whether the channel can work: configuration present, credentials accepted.

    Called for ``GET /api/channels/{channel}/health`` and ``GET /health``. Keep it fast;
    cache any check against the provider's API.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :returns: a :class:`ChannelHealth`. Stops at first non-None result.
    """


@hookspec
def channel_routes(channel: str, config: Config, inbox: Inbox) -> list[ChannelRoute] | None:
    """Contribute extra routes under ``/api/channels/{channel}/``.

    Called once at start-up. Use it for verification GETs, WebSockets, inbound-parse
    endpoints or channel-specific send routes. A route may share its path with a generic
    route (``webhook``, ``status``, ``messages``, ``health``) as long as it only adds
    methods the generic route does not serve; anything else (or an exception raised here)
    unloads the channel, reported as a failed plugin.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :param inbox: the core's inbox service, to store and send from a route.
    :returns: a list of :class:`ChannelRoute`. Results of all implementations are joined.
    """
