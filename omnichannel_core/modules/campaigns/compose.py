"""What one recipient is sent, or why not yet, or why never: the campaign's message made
for them (:mod:`render`), the channel's messaging window, quiet hours in their own zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from omnichannel_core.module import Author, AuthorKind, BulkTarget, OutboundRequest
from omnichannel_core.modules.campaigns.records import (
    Campaign,
    CampaignMessage,
    QuietHours,
    SkipReason,
)
from omnichannel_core.modules.campaigns.render import MissingVariable, render

MAX_RENDERED = 4096
"""The longest text a recipient is sent, variables filled (as long as a campaign's text)."""

CAMPAIGN_AUTHOR = "campaign"
"""The automation a campaign's messages name as their author (``Author.id``; its ``ref`` is
the campaign's id)."""


@attrs.frozen
class TooLong(Exception):
    """The text, its variables filled, is longer than :data:`MAX_RENDERED`."""

    length: int


@attrs.frozen
class Composed:
    """The message for one recipient, and whether it is the template."""

    request: OutboundRequest
    template: bool


@attrs.frozen
class Deferred:
    """Not now: the recipient's quiet hours last until ``until``."""

    until: datetime


@attrs.frozen
class Skipped:
    reason: SkipReason
    detail: str = ""


Decision = Composed | Deferred | Skipped


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The zone ``name`` (a contact's), else ``fallback`` (the campaign's), else UTC."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def clock_time(text: str) -> time:
    """``HH:MM`` as a time of day; ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{text!r} is not HH:MM")
    return time(int(hours), int(minutes))


def quiet_until(quiet: QuietHours, now: datetime, where: ZoneInfo) -> datetime | None:
    """When the quiet hours ``now`` falls in (in ``where``) end, in UTC; None outside them."""
    local = now.astimezone(where)
    start, end = clock_time(quiet.start), clock_time(quiet.end)
    today = local.time()
    inside = start <= today < end if start < end else (today >= start or today < end)
    if not inside:
        return None
    ends = datetime.combine(local.date(), end, tzinfo=where).astimezone(now.tzinfo)
    if ends <= now:  # compared in UTC: a clock turned back repeats local times
        ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=where)
    return ends.astimezone(now.tzinfo)


def decide(campaign: Campaign, target: BulkTarget, now: datetime) -> Decision:
    """What to do for ``target`` now: send (:class:`Composed`), wait, or skip."""
    if target.address is None:
        return Skipped(SkipReason.NO_ADDRESS)
    if target.opted_out:
        return Skipped(SkipReason.OPTED_OUT)
    quiet = campaign.schedule.quiet_hours
    if quiet is not None:
        until = quiet_until(quiet, now, zone(target.contact.timezone, campaign.schedule.timezone))
        if until is not None:
            return Deferred(until)
    message = campaign.message
    free_form = message.text is not None or bool(message.media)
    use_template = message.template is not None and (not free_form or not target.window_open(now))
    if not use_template and not target.window_open(now):
        return Skipped(SkipReason.WINDOW_CLOSED)
    try:
        return Composed(compose(campaign, target, use_template), use_template)
    except MissingVariable as missing:
        return Skipped(SkipReason.MISSING_VARIABLE, missing.name)
    except TooLong as long:
        return Skipped(SkipReason.TOO_LONG, f"{long.length} characters")


def compose(campaign: Campaign, target: BulkTarget, template: bool) -> OutboundRequest:
    """The request for ``target``: the template, or the text with its media; the subject on
    a channel that takes one. MissingVariable for a required value they lack."""
    message: CampaignMessage = campaign.message
    contact, defaults = target.contact, message.defaults
    metadata: dict[str, Any] = {"campaign": {"id": campaign.id, "name": campaign.name}}
    author = Author(AuthorKind.AUTOMATION, CAMPAIGN_AUTHOR, campaign.name, campaign.id)
    if template:
        assert message.template is not None
        metadata["content_sid"] = message.template.content_sid
        metadata["content_variables"] = {
            key: render(value, contact, defaults)
            for key, value in message.template.variables.items()
        }
        return OutboundRequest(metadata=metadata, author=author)
    if message.subject is not None and target.reach.subject:
        metadata["email"] = {"subject": render(message.subject, contact, defaults)}
    text = None if message.text is None else render(message.text, contact, defaults)
    if text is not None and len(text) > MAX_RENDERED:
        raise TooLong(len(text))
    return OutboundRequest(text=text, media=message.media, metadata=metadata, author=author)
