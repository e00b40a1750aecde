"""The error responses the OpenAPI document shares between operations, and the schemas of
error bodies: what `omnichannel_core.web.errors` writes, described by hand, since an error
body is built from the error's details rather than declared as a class.

An operation names the errors it may give (``Operation(errors=("NotFound",))``); the
document adds those every operation of its kind may give (401, 403 and 429 for an
authenticated one; 400, 413 and 415 for one that reads a JSON body).
"""

from __future__ import annotations

from typing import Any

from omnichannel_core.shared_errors import ERRORS

Schema = dict[str, Any]
JSON = "application/json"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(type_: str) -> Schema:
    return {"type": [type_, "null"]}


RETRY_AFTER: Schema = {
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


def error_schemas() -> dict[str, Schema]:
    """The bodies of errors."""
    return {
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
    }


def errors(*names: str) -> dict[str, Schema]:
    """``responses`` entries referring to the shared error responses ``names``."""
    return {ERRORS[name][0]: {"$ref": f"#/components/responses/{name}"} for name in names}


AUTHENTICATED = ("Unauthorized", "Forbidden", "TooManyRequests")
"""What any authenticated operation may answer besides its own responses."""
BODY_ERRORS = ("BadRequest", "PayloadTooLarge", "UnsupportedMediaType")
"""What any operation that reads a JSON body may answer."""
HEAD_TOO_MANY_REQUESTS: Schema = {
    "429": {"description": "Too many requests; no body.", "headers": RETRY_AFTER}
}
"""A HEAD answer has no body, so its 429 documents only the header."""
