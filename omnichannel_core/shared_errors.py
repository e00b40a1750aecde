"""The error answers operations share, by name: ``Operation(errors=("NotFound",))`` names
those an operation may give, and the OpenAPI document describes each once (its status, the
schema of its body, and what it means). A route naming an error that is not here is refused
when it is registered."""

from __future__ import annotations

ERRORS: dict[str, tuple[str, str, str]] = {
    # name: (status, schema, description)
    "BadRequest": (
        "400",
        "Error",
        "Invalid input: `invalid_input`, with `field` when one is at fault.",
    ),
    "Unauthorized": (
        "401",
        "Error",
        "`unauthenticated`: no `Authorization: Bearer` credentials, or bad ones: an unknown or"
        " revoked API key, an access token that has expired, is not valid or whose session has"
        " ended.",
    ),
    "Forbidden": (
        "403",
        "ForbiddenError",
        "`forbidden`: the caller may not do this: their role or API key scopes lack the"
        " permission the operation needs (`permission` names it), the record is not theirs"
        " (an agent and another's conversation), or a current password is wrong.",
    ),
    "WebhookRejected": ("403", "Error", "`webhook_rejected`: the channel refused the request."),
    "NotFound": ("404", "Error", "`not_found`: no such record, route or channel."),
    "Conflict": ("409", "Error", "`conflict`: the Idempotency-Key was used for another message."),
    "EmailTaken": ("409", "Error", "`conflict`: a user with this email (in any case) exists."),
    "LastAdmin": (
        "409",
        "Error",
        "`conflict`: the change would leave no active admin; nothing was changed.",
    ),
    "AssigneeChanged": (
        "409",
        "Error",
        "`conflict`: the assignee changed since the conversation was read (someone else took"
        " it); nothing was changed. Read it again.",
    ),
    "EventsExpired": (
        "410",
        "Error",
        "`events_expired`: events after `Last-Event-ID` are no longer kept"
        " (OMNICHANNEL_EVENT_RETENTION_HOURS), or it is ahead of the event log (the store was"
        " reset or restored); reload, then open a stream without it.",
    ),
    "PayloadTooLarge": ("413", "Error", "The body is larger than OMNICHANNEL_MAX_BODY_BYTES."),
    "UnsupportedMediaType": ("415", "Error", "Send the body as application/json."),
    "TooManyRequests": (
        "429",
        "RateLimitError",
        "`too_many_requests`: a rate limit was hit (per client address, per credential, or on"
        " login and refresh), or too many failed logins locked the email for a while. Retry"
        " after `Retry-After` seconds.",
    ),
    "SendRejected": (
        "422",
        "SendRejection",
        "`send_rejected`: the provider refused the message (stored, now `failed`); or"
        " `recipient_opted_out`: the contact opted out on this channel (nothing stored).",
    ),
    "NotImplemented": ("501", "Error", "`not_implemented`: the channel lacks the hook."),
    "ChannelFailed": ("502", "Error", "`channel_failed`: the channel's hook misbehaved."),
    "SendFailed": (
        "502",
        "DeliveryError",
        "`provider_unavailable` (retry later) or `channel_failed`: not delivered.",
    ),
    "ChannelUnavailable": ("503", "Error", "`channel_unavailable`: the channel is not configured."),
    "SendOutcomeUnknown": (
        "504",
        "DeliveryError",
        "`send_outcome_unknown`: the provider got the request but its answer was lost; the"
        " message stays `sending` until a status callback settles it. Do not resend.",
    ),
    "SendUnavailable": (
        "503",
        "DeliveryError",
        "`channel_unavailable`: the channel cannot send now (e.g. not configured).",
    ),
}
