"""The paths of the OpenAPI document, and the shared responses and parameters they use.

The access API's paths are in ``openapi_access``; ``openapi`` gathers both.
"""

from __future__ import annotations

from omnichannel_core.access.policy import ROLE_PERMISSIONS, SCOPE_PRESETS, Permission
from omnichannel_core.models import ConversationStatus
from omnichannel_core.web import payloads
from omnichannel_core.web.openapi_schemas import Schema, ref

JSON = "application/json"

# components: responses and parameters --------------------------------------------------

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


RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "seconds until a retry may succeed",
    }
}


def error_responses() -> dict[str, Schema]:
    responses = {
        name: {"description": description, "content": {JSON: {"schema": ref(schema)}}}
        for name, (_, schema, description) in ERRORS.items()
    }
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm"}
    }
    responses["TooManyRequests"]["headers"] = RETRY_AFTER
    return responses


def errors(*names: str) -> dict[str, Schema]:
    return {ERRORS[name][0]: {"$ref": f"#/components/responses/{name}"} for name in names}


def ok(schema: str, description: str, status: str = "200") -> dict[str, Schema]:
    return {status: {"description": description, "content": {JSON: {"schema": ref(schema)}}}}


def no_content(description: str) -> dict[str, Schema]:
    return {"204": {"description": description}}


# A HEAD answer has no body, so its 429 documents only the header.
HEAD_TOO_MANY_REQUESTS = {
    "429": {"description": "Too many requests; no body.", "headers": RETRY_AFTER}
}


def body(schema: str) -> Schema:
    return {"required": True, "content": {JSON: {"schema": ref(schema)}}}


def path_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def query_parameter(name: str, description: str, schema: Schema | None = None) -> Schema:
    schema = schema or {"type": "string", "maxLength": payloads.MAX_NAME}
    return {"name": name, "in": "query", "description": description, "schema": schema}


def shared_parameters() -> dict[str, Schema]:
    return {
        "Cursor": query_parameter(
            "cursor", "`next_cursor` of the previous page", {"type": "string"}
        ),
        "Limit": query_parameter(
            "limit",
            "page size",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": payloads.MAX_LIMIT,
                "default": payloads.DEFAULT_LIMIT,
            },
        ),
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "A retried request with the same key sends once and answers 200 "
            "with the stored message; the same key with a different message answers 409.",
            "schema": {"type": "string", "pattern": payloads.IDEMPOTENCY_KEY.pattern},
        },
    }


def shared(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


PAGING = [shared("Cursor"), shared("Limit")]


# who may call ---------------------------------------------------------------------------


def _either(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def who_may(permission: Permission) -> str:
    """Who has ``permission``, read from the policy itself so the document cannot drift."""
    if permission is Permission.OWN_ACCOUNT:
        return "Any caller: every user and every API key has `account:own`."
    roles = [role.value for role, granted in ROLE_PERMISSIONS.items() if permission in granted]
    presets = [name for name, granted in SCOPE_PRESETS.items() if permission in granted]
    return (
        f"Needs `{permission.value}`: a user with the role {_either(roles)}, or an API key"
        f" with the scope {_either([permission.value, *presets])}."
    )


def needs(permission: Permission, *notes: str) -> Schema:
    """An operation's description and ``x-permission``: the permission the route declares
    (``tests/test_openapi_routes.py`` compares the two)."""
    return {
        "description": " ".join([who_may(permission), *notes]),
        "x-permission": permission.value,
    }


AUTHENTICATED = ("Unauthorized", "Forbidden", "TooManyRequests")
"""What any authenticated operation may answer besides its own responses."""


# paths ---------------------------------------------------------------------------------

PUBLIC: list[Schema] = []  # `security: []`: no credentials


def system_paths() -> dict[str, Schema]:
    return {
        "/": {
            "get": {
                "summary": "Name the system, its version and channels",
                "operationId": "getRoot",
                "tags": ["system"],
                "security": PUBLIC,
                "responses": {**ok("Root", "The system."), **errors("TooManyRequests")},
            },
            "head": {
                "summary": "Answer 200 with no body, for load balancers",
                "operationId": "headRoot",
                "tags": ["system"],
                "security": PUBLIC,
                "responses": {
                    "200": {"description": "The server is up."},
                    **HEAD_TOO_MANY_REQUESTS,
                },
            },
        },
        "/health": {
            "get": {
                "summary": "Report on the store and each channel",
                "operationId": "getHealth",
                "tags": ["system"],
                "security": PUBLIC,
                "responses": {
                    **ok("Health", "Up: `ok`, or `degraded` when a channel or plugin is not."),
                    **ok("Health", "Down: the store does not answer.", "503"),
                    **errors("TooManyRequests"),
                },
            },
            "head": {
                "summary": "The status GET /health would answer, with no body",
                "operationId": "headHealth",
                "tags": ["system"],
                "security": PUBLIC,
                "responses": {
                    "200": {"description": "Up: `ok` or `degraded`."},
                    "503": {"description": "Down: the store does not answer."},
                    **HEAD_TOO_MANY_REQUESTS,
                },
            },
        },
        "/api/plugins": {
            "get": {
                "summary": "List plugins, failed plugins and disabled plugins",
                "operationId": "listPlugins",
                "tags": ["system"],
                **needs(Permission.PLUGINS_READ),
                "responses": {**ok("Plugins", "Every plugin."), **errors(*AUTHENTICATED)},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "getOpenApi",
                "tags": ["system"],
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **errors("TooManyRequests"),
                },
            }
        },
    }


AGENTS_SEE_THEIRS = (
    "An agent may work only conversations assigned to them or to nobody; any other answers"
    " 403 `forbidden`."
)


def inbox_paths() -> dict[str, Schema]:
    contact_id = [path_parameter("contact_id", "the contact's id")]
    conversation_id = [path_parameter("conversation_id", "the conversation's id")]
    status_filter = {"enum": [s.value for s in ConversationStatus]}
    return {
        "/api/contacts": {
            "get": {
                "summary": "List contacts, newest first, or search them",
                "operationId": "listContacts",
                "tags": ["contacts"],
                **needs(Permission.CONTACTS_READ),
                "parameters": [
                    query_parameter("q", "search display names and addresses"),
                    *PAGING,
                ],
                "responses": {
                    **ok("ContactPage", "One page of contacts."),
                    **errors("BadRequest", *AUTHENTICATED),
                },
            }
        },
        "/api/contacts/{contact_id}": {
            "parameters": contact_id,
            "get": {
                "summary": "Get a contact",
                "operationId": "getContact",
                "tags": ["contacts"],
                **needs(Permission.CONTACTS_READ),
                "responses": {
                    **ok("Contact", "The contact."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
            "patch": {
                "summary": "Change a contact's display name, tags or attributes",
                "operationId": "updateContact",
                "tags": ["contacts"],
                **needs(Permission.CONTACTS_WRITE),
                "requestBody": body("ContactUpdate"),
                "responses": {
                    **ok("Contact", "The contact as changed."),
                    **errors(*WRITE_ERRORS, "NotFound"),
                },
            },
        },
        "/api/conversations": {
            "get": {
                "summary": "List conversations by last activity, newest first",
                "operationId": "listConversations",
                "tags": ["conversations"],
                **needs(
                    Permission.CONVERSATIONS_READ,
                    "An agent gets only the conversations assigned to them or to nobody.",
                ),
                "parameters": [
                    query_parameter("status", "only this status", status_filter),
                    query_parameter("channel", "only this channel"),
                    query_parameter("assignee", "only this assignee"),
                    *PAGING,
                ],
                "responses": {
                    **ok("ConversationPage", "One page of conversations."),
                    **errors("BadRequest", *AUTHENTICATED),
                },
            }
        },
        "/api/conversations/{conversation_id}": {
            "parameters": conversation_id,
            "get": {
                "summary": "Get a conversation",
                "operationId": "getConversation",
                "tags": ["conversations"],
                **needs(Permission.CONVERSATIONS_READ, AGENTS_SEE_THEIRS),
                "responses": {
                    **ok("Conversation", "The conversation."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
            "patch": {
                "summary": "Change a conversation's status or assignee",
                "operationId": "updateConversation",
                "tags": ["conversations"],
                **needs(
                    Permission.CONVERSATIONS_WRITE,
                    AGENTS_SEE_THEIRS,
                    "An agent may take an unassigned conversation or give back their own, and"
                    " assign it to no one else. Assignments are written to the audit log.",
                ),
                "requestBody": body("ConversationUpdate"),
                "responses": {
                    **ok("Conversation", "The conversation as changed."),
                    **errors(*WRITE_ERRORS, "NotFound", "AssigneeChanged"),
                },
            },
        },
        "/api/conversations/{conversation_id}/messages": {
            "parameters": conversation_id,
            "get": {
                "summary": "List a conversation's messages, oldest first",
                "operationId": "listMessages",
                "tags": ["messages"],
                **needs(Permission.CONVERSATIONS_READ, AGENTS_SEE_THEIRS),
                "parameters": PAGING,
                "responses": {
                    **ok("MessagePage", "One page of messages, in order."),
                    **errors("BadRequest", *AUTHENTICATED, "NotFound"),
                },
            },
            "post": {
                "summary": "Reply: send through the conversation's channel",
                "operationId": "reply",
                "tags": ["messages"],
                **needs(
                    Permission.CONVERSATIONS_REPLY,
                    AGENTS_SEE_THEIRS,
                    "The message is stored `queued` first, then sent.",
                ),
                "parameters": [shared("IdempotencyKey")],
                "requestBody": body("Reply"),
                "responses": send_responses(),
            },
        },
        "/api/messages/{message_id}": {
            "get": {
                "summary": "Get a message with its delivery status",
                "operationId": "getMessage",
                "tags": ["messages"],
                **needs(
                    Permission.CONVERSATIONS_READ,
                    "An agent may read only messages of conversations assigned to them or to"
                    " nobody; any other answers 403 `forbidden`.",
                ),
                "parameters": [path_parameter("message_id", "the message's id")],
                "responses": {
                    **ok("Message", "The message."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            }
        },
    }


WRITE_ERRORS = ("BadRequest", *AUTHENTICATED, "PayloadTooLarge", "UnsupportedMediaType")
"""What any authenticated operation that reads a JSON body may answer."""


def events_paths() -> dict[str, Schema]:
    stream = (
        '`text/event-stream`. First `event: ready` (`data: {"after": <cursor or null>}`),'
        " then one event per change: `id: <cursor>`, `event: <type>` (`message.created`,"
        " `message.status_changed`, `conversation.updated`, `contact.updated`), `data:"
        ' {"type", "at", "conversation_id", "<message|conversation|contact>":'
        " <the record as it is now>}`. Comments keep an idle connection alive. The stream"
        " ends with `event: ended` when the credential stops being valid, or `event:"
        " expired` when it fell behind the kept history."
    )
    return {
        "/api/events": {
            "get": {
                "summary": "Stream what changes in the inbox (server-sent events)",
                "operationId": "streamEvents",
                "tags": ["events"],
                **needs(
                    Permission.CONVERSATIONS_READ,
                    "Contact events need contacts:read. An agent is told only of the"
                    " conversations assigned to them or to nobody (before or after the"
                    " change).",
                ),
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "resume after this event id: every event since comes"
                        " first, in order",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                    query_parameter(
                        "after",
                        "the same as Last-Event-ID, for clients that cannot set headers",
                        {"type": "string", "maxLength": 200},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": stream,
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors("BadRequest", *AUTHENTICATED, "EventsExpired"),
                },
            }
        }
    }


def send_responses() -> dict[str, Schema]:
    return {
        **ok("Message", "Sent: the new message with its delivery status.", "201"),
        **ok("Message", "Replayed: the message this Idempotency-Key already sent."),
        **errors(*WRITE_ERRORS, "NotFound", "Conflict", "SendRejected", "NotImplemented"),
        **errors("SendFailed", "SendOutcomeUnknown", "SendUnavailable"),
    }


def provider_callback(hook: str, summary: str, operation_id: str) -> Schema:
    """A public POST whose body and answer are the provider's, authenticated by the channel.
    Never rate limited: providers burst from many addresses."""
    return {
        "summary": summary,
        "description": f"Handled by the channel's `{hook}` hook, which authenticates the "
        "request itself (signature, token). What is accepted is stored before the answer. "
        "The generic `http` channel takes JSON signed with `X-Omnichannel-Signature: "
        "sha256=<hex HMAC-SHA256 of the raw body with WEBHOOK_SECRET>`. Not rate limited.",
        "operationId": operation_id,
        "tags": ["channels"],
        "security": PUBLIC,
        "requestBody": {
            "description": "The provider's own format.",
            "content": {"*/*": {"schema": {}}},
        },
        "responses": {
            "2XX": {
                "description": "Accepted. Status (200 unless the channel says otherwise), body "
                "and media type are the channel's: what its provider expects (the `http` "
                "channel answers 200 with an empty text/plain body).",
                "content": {"*/*": {"schema": {}}},
            },
            **errors("BadRequest", "WebhookRejected", "NotFound", "PayloadTooLarge"),
            **errors("NotImplemented", "ChannelFailed", "ChannelUnavailable"),
        },
    }


def channel_paths() -> dict[str, Schema]:
    prefix = "/api/channels/{channel}"
    channel = [path_parameter("channel", "a loaded channel's name; any other answers 404")]
    return {
        f"{prefix}/webhook": {
            "parameters": channel,
            "post": provider_callback(
                "receive", "Take the provider's inbound messages", "receiveWebhook"
            ),
        },
        f"{prefix}/status": {
            "parameters": channel,
            "post": provider_callback(
                "status", "Take the provider's delivery statuses", "receiveStatus"
            ),
        },
        f"{prefix}/messages": {
            "parameters": channel,
            "post": {
                "summary": "Send to an address on this channel",
                "operationId": "sendOnChannel",
                "tags": ["channels"],
                **needs(Permission.MESSAGES_SEND),
                "parameters": [shared("IdempotencyKey")],
                "requestBody": body("ChannelSend"),
                "responses": send_responses(),
            },
        },
        f"{prefix}/health": {
            "parameters": channel,
            "get": {
                "summary": "The channel's own health report",
                "operationId": "getChannelHealth",
                "tags": ["channels"],
                **needs(Permission.CHANNELS_READ),
                "responses": {
                    **ok("ChannelHealthReport", "The channel is ready."),
                    **ok("ChannelHealthReport", "The channel is not ready.", "503"),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
        },
    }
