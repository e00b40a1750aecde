"""Request payloads and query parameters: parsed and checked, with a clear message for each
mistake. Resources call these; nothing here touches the store."""

from __future__ import annotations

import re
from typing import Any

import falcon.asgi

from omnichannel_core.errors import InvalidInput
from omnichannel_core.inbox import OutboundRequest
from omnichannel_core.models import ConversationStatus, Media

MAX_TEXT = 65_536
MAX_MEDIA = 10
MAX_URL = 2_048
MAX_TAGS = 100
MAX_NAME = 200
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def field_error(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field}: {problem}", field=field)


def reject_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise field_error(unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}")


def optional_str(data: dict[str, Any], field: str, max_length: int) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise field_error(field, "must be a string")
    if len(value) > max_length:
        raise field_error(field, f"must be at most {max_length} characters")
    return value


def media_list(value: Any) -> tuple[Media, ...]:
    """A media list from JSON: at most 10 items, each a URL string or ``{url, content_type?,
    filename?}``; only http(s) URLs. The one check for media from API clients and providers."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error("media", "must be a list of {url, content_type?, filename?}")
    if len(value) > MAX_MEDIA:
        raise field_error("media", f"at most {MAX_MEDIA} items")
    items = []
    for index, item in enumerate(value):
        field = f"media[{index}]"
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            raise field_error(field, "must be an object with a url")
        reject_unknown(item, {"url", "content_type", "filename"})
        url = optional_str(item, "url", MAX_URL)
        if not url or not url.startswith(("https://", "http://")):
            raise field_error(f"{field}.url", "must be an http(s) URL")
        items.append(
            Media(
                url=url,
                content_type=optional_str(item, "content_type", 255),
                filename=optional_str(item, "filename", 255),
            )
        )
    return tuple(items)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise field_error("metadata", "must be an object")
    return value


def outbound_request(data: dict[str, Any], extra: set[str] = frozenset()) -> OutboundRequest:
    """``{"text", "media", "metadata"}``: at least text or one media item."""
    reject_unknown(data, {"text", "media", "metadata", *extra})
    text = optional_str(data, "text", MAX_TEXT)
    media = media_list(data.get("media"))
    if not (text and text.strip()) and not media:
        raise field_error("text", "give a non-empty text or at least one media item")
    return OutboundRequest(text=text, media=media, metadata=_metadata(data.get("metadata")))


def send_request(data: dict[str, Any]) -> tuple[str, str | None, OutboundRequest]:
    """``{"to", "name"?, "text", "media", "metadata"}`` for a channel's messages route."""
    to = optional_str(data, "to", 320)
    if not to or not to.strip():
        raise field_error("to", "required: the recipient's address on this channel")
    name = optional_str(data, "name", MAX_NAME)
    return to.strip(), name, outbound_request(data, extra={"to", "name"})


def contact_update(data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``Store.update_contact``: only the fields given."""
    reject_unknown(data, {"display_name", "tags", "attributes"})
    if not data:
        raise InvalidInput("give at least one of display_name, tags, attributes")
    changes: dict[str, Any] = {}
    if "display_name" in data:
        changes["display_name"] = optional_str(data, "display_name", MAX_NAME)
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise field_error("tags", "must be a list of non-empty strings")
        if len(tags) > MAX_TAGS:
            raise field_error("tags", f"at most {MAX_TAGS} tags")
        changes["tags"] = tuple(dict.fromkeys(tags))
    if "attributes" in data:
        if not isinstance(data["attributes"], dict):
            raise field_error("attributes", "must be an object")
        changes["attributes"] = data["attributes"]
    return changes


def conversation_update(data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``Store.update_conversation``: status, assignee, and
    ``unread_count: 0`` to mark the conversation read."""
    reject_unknown(data, {"status", "assignee", "unread_count"})
    if not data:
        raise InvalidInput("give at least one of status, assignee, unread_count")
    changes: dict[str, Any] = {}
    if "status" in data:
        changes["status"] = conversation_status(data["status"], "status")
    if "assignee" in data:
        changes["assignee"] = optional_str(data, "assignee", MAX_NAME)
    if "unread_count" in data:
        if type(data["unread_count"]) is not int or data["unread_count"] != 0:
            raise field_error("unread_count", "may only be set to 0 (mark the conversation read)")
        changes["unread_count"] = 0
    return changes


def conversation_status(value: Any, field: str) -> ConversationStatus:
    try:
        return ConversationStatus(value)
    except ValueError:
        choices = ", ".join(status.value for status in ConversationStatus)
        raise field_error(field, f"must be one of {choices}") from None


def idempotency_key(req: falcon.asgi.Request) -> str | None:
    value = req.get_header("Idempotency-Key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise field_error("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    return value


def page_params(req: falcon.asgi.Request) -> tuple[str | None, int]:
    """``cursor`` and ``limit`` (1..200, default 50) from the query string."""
    raw = req.get_param("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_LIMIT))
        if not digits or not 1 <= int(raw) <= MAX_LIMIT:
            raise field_error("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw)
    cursor = req.get_param("cursor") or None
    return cursor, limit


def filter_param(req: falcon.asgi.Request, name: str) -> str | None:
    value = req.get_param(name)
    if value is not None and len(value) > MAX_NAME:
        raise field_error(name, f"must be at most {MAX_NAME} characters")
    return value or None
