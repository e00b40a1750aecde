"""Domain errors. They know nothing of HTTP; `web.errors` maps them to responses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnichannel_core.models import Message


class OmnichannelError(Exception):
    """Base of every error the core raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(OmnichannelError):
    """A configuration value is missing or malformed; start-up stops."""


class SecretKeyRequired(ConfigError):
    """Stored secrets cannot be sealed or opened: ``OMNICHANNEL_SECRET_KEY`` is not set on a
    server whose store other servers share (Firestore), where a key generated into one
    machine's data dir would differ from the others'."""


class SecretUnreadable(OmnichannelError):
    """A sealed secret cannot be opened: it is not a sealed secret, it was altered, or it
    was sealed with another key than the one of the ring that claims its key id."""


class UnknownSecretKey(SecretUnreadable):
    """A sealed secret names a key (``key_id``) that is not in ``OMNICHANNEL_SECRET_KEY``'s
    ring any more: the key it was sealed with was removed before the secret was sealed
    again with the current one."""


class PluginLoadError(OmnichannelError):
    """A plugin could not be imported or registered."""


class InvalidInput(OmnichannelError):
    """A request carried data the core cannot accept."""


class UnsupportedMediaType(InvalidInput):
    """A request's body is in a format the receiver does not take (a webhook's
    ``Content-Type``); answered with 415."""


class NotFound(OmnichannelError):
    """The named object does not exist."""


class Conflict(OmnichannelError):
    """The request contradicts what is already stored (e.g. an idempotency key reused)."""


class EventsExpired(OmnichannelError):
    """A stream asked to resume from a cursor older than the event log keeps: events after
    it were pruned, so the caller must reload what it shows and start again."""


class Unauthenticated(OmnichannelError):
    """No credentials, or credentials that are not valid."""


class Forbidden(OmnichannelError):
    """Authenticated, but not allowed to do this (role, scope, or whose record it is)."""


class RateLimited(OmnichannelError):
    """Too many requests (or failed logins) from one client or credential.

    :param retry_after: seconds until a retry may succeed.
    """

    def __init__(self, message: str, *, retry_after: int, **details: object) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class WebhookRejected(OmnichannelError):
    """A channel refused an inbound request: bad signature, bad token.

    Raised by `receive` and `status` implementations; answered with 403.
    """


class HookNotImplemented(OmnichannelError):
    """The channel has no implementation of the hook behind the requested surface."""

    def __init__(self, channel: str, hook: str) -> None:
        super().__init__(
            f"channel {channel!r} does not implement {hook!r}", channel=channel, hook=hook
        )
        self.channel = channel
        self.hook = hook


class RecipientOptedOut(OmnichannelError):
    """The contact asked not to be messaged on this channel (e.g. replied STOP)."""


class ChannelUnavailable(OmnichannelError):
    """The channel cannot act now, e.g. it is not configured; answered with 503."""


class SendFailed(OmnichannelError):
    """The provider refused or could not take an outbound message.

    :param code: the provider's error code, when it gave one.
    :param retryable: True when the provider provably did not take it and the same request
        may succeed later: a 429 or 5xx answer, or no connection made. The outbox retries
        it with backoff, up to the channel's deadline (docs/delivery.md).
    :param retry_after: seconds the provider asked to wait (``Retry-After``), if it did.
    :param throttled: True for a rate limit (429): the channel's pace slows down.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        throttled: bool = False,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, **details)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.throttled = throttled


class SendOutcomeUnknown(OmnichannelError):
    """The request reached the provider but no answer came back (a read timeout, a connection
    dropped after sending): the message may or may not have been sent.

    Raised by ``send`` implementations instead of retrying, which could deliver twice. The
    core leaves the message ``sending`` and ``in_doubt`` (not failed) for a status callback
    or echo to settle, or the channel's confirmation deadline to fail; it is sent again (with
    the same id) only on a channel whose :class:`~omnichannel_core.hooktypes.SendPolicy` says
    ``resend_safe``.
    """


class ChannelFailed(OmnichannelError):
    """A channel's hook raised something it should not have, or returned the wrong type."""


class DeliveryFailed(OmnichannelError):
    """An outbound message was stored but the channel could not deliver it.

    ``stored`` is the stored message: ``failed``, or ``sending`` when the outcome is unknown
    (:class:`SendOutcomeUnknown`); ``cause`` is what the channel raised.
    """

    def __init__(self, stored: Message, cause: OmnichannelError) -> None:
        super().__init__(cause.message, **cause.details)
        self.stored = stored
        self.cause = cause
