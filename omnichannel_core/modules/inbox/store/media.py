"""Naming a provider's media, once the media store keeps it, in the message that holds it:
the rule both backends' ``replace_media`` share."""

from __future__ import annotations

from omnichannel_core.module import Media, Message


def with_kept_media(
    message: Message, index: int, provider_url: str, media: Media
) -> tuple[Media, ...] | None:
    """``message``'s media with item ``index`` replaced by ``media``, while that item is
    still the provider's (``provider_url``, no ``id``); None when it no longer is, or the
    message has no such item: the media job may be late, or run twice."""
    if not 0 <= index < len(message.media):
        return None
    current = message.media[index]
    if current.id is not None or current.url != provider_url:
        return None
    return (*message.media[:index], media, *message.media[index + 1 :])
