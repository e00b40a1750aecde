"""The schemas of the OpenAPI document (``components.schemas``): JSON Schema 2020-12.

Models as ``serialization.to_json`` writes them, the list envelope, errors, the server's
reports about itself, and request bodies as ``web.payloads`` accepts them. The access API's
schemas are in ``openapi_access``; ``openapi`` gathers both.
"""

from __future__ import annotations

from typing import Any

from omnichannel_core.models import ConversationStatus, DeliveryStatus, Direction
from omnichannel_core.web import payloads

Schema = dict[str, Any]
HTTP_URL = "^https?://"

CHANNEL_HEALTH: dict[str, Schema] = {
    "ok": {"type": "boolean"},
    "detail": {"type": "string"},
    "checks": {"type": "object", "description": "channel specific"},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(type_: str) -> Schema:
    return {"type": [type_, "null"]}


def timestamp(description: str) -> Schema:
    return {"type": "string", "format": "date-time", "description": description}


def strict_object(properties: dict[str, Schema], description: str) -> Schema:
    """An object with exactly these properties, all present (null where allowed)."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def page_of(name: str) -> Schema:
    return {
        "allOf": [ref("Page")],
        "properties": {"items": {"type": "array", "items": ref(name)}},
        "description": f"One page of {name} records.",
    }


# components: models ------------------------------------------------------------------


def model_schemas() -> dict[str, Schema]:
    """Contact, Identity, Conversation, Message, Media: as ``serialization.to_json`` writes."""
    return {
        "Identity": strict_object(
            {
                "channel": {"type": "string"},
                "address": {"type": "string", "description": "phone, email, page-scoped id"},
            },
            "How a contact is reached on one channel.",
        ),
        "Contact": strict_object(
            {
                "id": {"type": "string"},
                "display_name": nullable("string"),
                "identities": {"type": "array", "items": ref("Identity")},
                "tags": {"type": "array", "items": {"type": "string"}},
                "attributes": {"type": "object", "description": "custom attributes"},
                "opted_out": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "channels on which the contact asked not to be messaged",
                },
                "created_at": timestamp("when the contact was first seen"),
                "updated_at": timestamp("last change"),
            },
            "A customer, reachable on one or more channels.",
        ),
        "Conversation": strict_object(
            {
                "id": {"type": "string"},
                "contact_id": {"type": "string"},
                "channel": {"type": "string"},
                "address": {"type": "string", "description": "the contact's address here"},
                "status": {"enum": [s.value for s in ConversationStatus]},
                "assignee": nullable("string"),
                "unread_count": {"type": "integer", "minimum": 0},
                "last_activity_at": timestamp("last message in or out"),
                "created_at": timestamp("when the conversation opened"),
                "updated_at": timestamp("last change"),
                "last_inbound_at": {
                    **nullable("string"),
                    "format": "date-time",
                    "description": "when the customer last wrote (the provider's time of"
                    " their newest message, or when it was stored); null until they write."
                    " Providers such as Messenger allow free-form replies only within a"
                    " window after it",
                },
            },
            "The one thread between a contact and the business on one channel.",
        ),
        "Media": strict_object(
            {
                "url": {"type": "string"},
                "content_type": nullable("string"),
                "filename": nullable("string"),
            },
            "One attachment.",
        ),
        "Message": strict_object(
            {
                "id": {"type": "string"},
                "conversation_id": {"type": "string"},
                "contact_id": {"type": "string"},
                "channel": {"type": "string"},
                "direction": {"enum": [d.value for d in Direction]},
                "status": {
                    "enum": [s.value for s in DeliveryStatus],
                    "description": "Outbound: queued < sending < sent < delivered < read, "
                    "forward only; failed and undelivered are terminal. Inbound: received.",
                },
                "text": nullable("string"),
                "media": {"type": "array", "items": ref("Media")},
                "provider_message_id": nullable("string"),
                "idempotency_key": nullable("string"),
                "error_code": nullable("string"),
                "error_message": nullable("string"),
                "metadata": {"type": "object"},
                "created_at": timestamp("when it was stored"),
                "updated_at": timestamp("last status change"),
            },
            "One message, in or out, with its delivery status.",
        ),
    }


# components: envelopes, errors, reports -------------------------------------------------


def envelope_schemas() -> dict[str, Schema]:
    return {
        "Page": strict_object(
            {
                "items": {"type": "array"},
                "next_cursor": {
                    **nullable("string"),
                    "description": "pass as `cursor` for the next page; null on the last",
                },
            },
            "The one list envelope.",
        ),
        "ContactPage": page_of("Contact"),
        "ConversationPage": page_of("Conversation"),
        "MessagePage": page_of("Message"),
        "Error": {
            "type": "object",
            "description": "Every error. Details depend on the error: `field` names the "
            "input at fault and `parameter` the query parameter, `channel` and `hook` a "
            "missing implementation, `message_id` the message an idempotency key belongs to, "
            "`id` or `email` the record a conflict is about, `permission` what a `forbidden` "
            "caller lacks, `retry_after` and `limit` a rate limit, `request_id` an internal "
            "error.",
            "properties": {
                "error": {"type": "string", "description": "a stable snake_case code"},
                "message": {"type": "string", "description": "what is wrong, for humans"},
                "field": {"type": "string"},
                "parameter": {"type": "string"},
                "channel": {"type": "string"},
                "hook": {"type": "string"},
                "message_id": {"type": "string"},
                "id": {"type": "string"},
                "email": {"type": "string"},
                "permission": {"type": "string"},
                "retry_after": {"type": "integer"},
                "limit": {"type": "string"},
                "request_id": nullable("string"),
            },
            "required": ["error", "message"],
        },
        "ForbiddenError": {
            "allOf": [ref("Error")],
            "description": "Authenticated, but not allowed (403).",
            "properties": {
                "error": {"const": "forbidden"},
                "permission": {
                    "type": "string",
                    "description": "the permission the caller's role or API key scopes lack, "
                    "when one is at fault (`agent` when an agent asks for a conversation "
                    "assigned to someone else)",
                },
            },
        },
        "RateLimitError": {
            "allOf": [ref("Error")],
            "description": "Too many requests (429); the `Retry-After` header says the same "
            "as `retry_after`.",
            "properties": {
                "error": {"const": "too_many_requests"},
                "retry_after": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "seconds until a retry may succeed",
                },
                "limit": {
                    "enum": ["address", "credential", "login"],
                    "description": "the rate limit that was hit; absent for a login lockout",
                },
            },
            "required": ["retry_after"],
        },
        "DeliveryError": {
            "allOf": [ref("Error")],
            "description": (
                "The message was stored but not delivered: now `failed` (`sending` for 504)."
            ),
            "properties": {
                "message_id": {"type": "string"},
                "code": {**nullable("string"), "description": "the provider's error code"},
                "stored_message": ref("Message"),
            },
            "required": ["message_id", "stored_message"],
        },
        "SendRejection": {
            "oneOf": [ref("DeliveryError"), ref("OptedOut")],
            "description": "Why a message was not sent (422).",
        },
        "OptedOut": {
            "allOf": [ref("Error")],
            "properties": {
                "error": {"const": "recipient_opted_out"},
                "channel": {"type": "string"},
                "contact_id": {"type": "string"},
            },
            "required": ["channel", "contact_id"],
        },
        "ChannelHealth": strict_object(
            CHANNEL_HEALTH, "A channel's own report: ready to send and receive, and why not."
        ),
    }


def report_schemas() -> dict[str, Schema]:
    """What the server says about itself."""
    plugin = {
        "name": {"type": "string"},
        "kind": {"enum": ["channel", "plugin", "local"]},
        "distribution": nullable("string"),
        "version": nullable("string"),
        "source": {"type": "string", "description": "entry point or file"},
        "hooks": {"type": "array", "items": {"type": "string"}},
    }
    failure = {key: plugin[key] for key in ("name", "kind", "distribution", "source")}
    return {
        "Root": strict_object(
            {
                "name": {"const": "omnichannel"},
                "version": {"type": "string"},
                "channels": {"type": "array", "items": {"type": "string"}},
                "docs": {"type": "string", "description": "where this document is"},
            },
            "The system's name, version and channels.",
        ),
        "Health": strict_object(
            {
                "status": {"enum": ["ok", "degraded", "down"]},
                "version": {"type": "string"},
                "store": {
                    "type": "object",
                    "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}},
                    "required": ["ok"],
                    "description": "backend specific details beside `ok`",
                },
                "channels": {"type": "object", "additionalProperties": ref("ChannelHealth")},
                "failed_plugins": {"type": "array", "items": {"type": "string"}},
            },
            "The store and each channel; `degraded` when a channel or plugin is not well.",
        ),
        "PluginInfo": strict_object(plugin, "A loaded plugin and the hooks it implements."),
        "PluginFailure": strict_object(
            {**failure, "error": {"type": "string"}}, "A plugin that failed to load, and why."
        ),
        "Plugins": strict_object(
            {
                "items": {"type": "array", "items": ref("PluginInfo")},
                "failed": {"type": "array", "items": ref("PluginFailure")},
                "disabled": {"type": "array", "items": {"type": "string"}},
            },
            "Every plugin.",
        ),
        "ChannelHealthReport": strict_object(
            {"channel": {"type": "string"}, **CHANNEL_HEALTH}, "A channel's own report, named."
        ),
    }


def request_schemas() -> dict[str, Schema]:
    media = {
        "type": ["array", "null"],
        "maxItems": payloads.MAX_MEDIA,
        "items": {
            "oneOf": [
                {"type": "string", "pattern": HTTP_URL, "maxLength": payloads.MAX_URL},
                {
                    "type": "object",
                    "properties": {
                        "url": {
                            "type": "string",
                            "pattern": HTTP_URL,
                            "maxLength": payloads.MAX_URL,
                        },
                        "content_type": {"type": "string"},
                        "filename": {"type": "string"},
                    },
                    "required": ["url"],
                    "additionalProperties": False,
                },
            ]
        },
    }
    outbound = {
        "text": {**nullable("string"), "maxLength": payloads.MAX_TEXT},
        "media": media,
        "metadata": {"type": ["object", "null"], "description": "passed to the channel"},
    }
    note = "Give a non-empty text or at least one media item."
    return {
        "Reply": {
            "type": "object",
            "properties": outbound,
            "additionalProperties": False,
            "description": note,
        },
        "ChannelSend": {
            "type": "object",
            "properties": {
                "to": {
                    "type": "string",
                    "pattern": r"\S",
                    "maxLength": 320,
                    "description": "the recipient's address on this channel",
                },
                "name": {**nullable("string"), "maxLength": payloads.MAX_NAME},
                **outbound,
            },
            "required": ["to"],
            "additionalProperties": False,
            "description": note + " Opens the contact and conversation when new.",
        },
        "ContactUpdate": {
            "type": "object",
            "properties": {
                "display_name": {**nullable("string"), "maxLength": payloads.MAX_NAME},
                "tags": {
                    "type": "array",
                    "maxItems": payloads.MAX_TAGS,
                    "items": {"type": "string", "minLength": 1},
                },
                "attributes": {"type": "object", "description": "replaces the attributes"},
            },
            "minProperties": 1,
            "additionalProperties": False,
        },
        "ConversationUpdate": {
            "type": "object",
            "properties": {
                "status": {"enum": [s.value for s in ConversationStatus]},
                "assignee": {
                    **nullable("string"),
                    "maxLength": payloads.MAX_NAME,
                    "description": "the id of an active user, or null to unassign",
                },
                "unread_count": {
                    "const": 0,
                    "description": "0 marks the conversation read; no other value is accepted",
                },
            },
            "minProperties": 1,
            "additionalProperties": False,
        },
    }
