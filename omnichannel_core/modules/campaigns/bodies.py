"""What the campaigns API takes. The shapes are checked here; what needs the channel, the
CRM or the media store (a sender, a segment, a rate, an attachment) is checked by
`omnichannel_core.modules.campaigns.service` before anything is stored."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import UNSET, MediaItems, PageQuery, field, media_field
from omnichannel_core.modules.campaigns.records import (
    DEFAULT_REPLY_WINDOW_HOURS,
    AudienceKind,
    CampaignStatus,
    RecipientState,
)

MAX_NAME = 200
MAX_TEXT = 4096
MAX_SUBJECT = 998
MAX_AUDIENCE = 10_000
"""Contacts or addresses one body names (a larger audience is a CRM segment: import the
contacts, tag them, and send to the tag)."""
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
NAME = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
"""A one-line text with something other than spaces in it."""
HOUR_MINUTE = r"^([01]\d|2[0-3]):[0-5]\d$"
AT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?$"
"""ISO 8601; without an offset, a time in the schedule's ``timezone``."""
CONTENT_SID = r"^HX[0-9A-Za-z]{1,62}$"


@attrs.frozen
class CampaignAudienceBody:
    """Who the campaign goes to: one of a segment, contacts, or a list of addresses."""

    kind: AudienceKind
    segment_id: str | None = field(default=None, max_length=100, description="kind segment")
    contact_ids: tuple[str, ...] = field(
        default=(),
        max_items=MAX_AUDIENCE,
        items={"minLength": 1, "maxLength": 100},
        description="kind contacts",
    )
    addresses: tuple[str, ...] = field(
        default=(),
        max_items=MAX_AUDIENCE,
        items={"minLength": 1, "maxLength": 320},
        description="kind list: addresses on the campaign's channel (E.164 phone numbers,"
        " emails...); each is the contact reached there, made when none is",
    )


@attrs.frozen
class CampaignTemplateBody:
    content_sid: str = field(pattern=CONTENT_SID, message="must be a Twilio Content SID (HX...)")
    variables: dict[str, str] = field(
        factory=dict,
        description='the template\'s variables by number ("1", "2"...), each a text with'
        " {{variables}} of its own",
    )


@attrs.frozen
class CampaignMessageBody:
    text: str | None = field(
        default=None, max_length=MAX_TEXT, description="with {{variables}} (docs/campaigns.md)"
    )
    subject: str | None = field(
        default=None, max_length=MAX_SUBJECT, pattern=PRINTABLE, description="email only"
    )
    media: MediaItems | None = media_field()
    template: CampaignTemplateBody | None = None
    defaults: dict[str, str] = field(
        factory=dict, description="a value for each variable a contact has none of"
    )


@attrs.frozen
class CampaignQuietHoursBody:
    start: str = field(pattern=HOUR_MINUTE, message="must be HH:MM")
    end: str = field(pattern=HOUR_MINUTE, message="must be HH:MM")


@attrs.frozen
class CampaignScheduleBody:
    at: str | None = field(
        default=None,
        pattern=AT,
        description="when to start (ISO 8601; without an offset, in timezone); null: at launch",
        message="must be ISO 8601, e.g. 2027-01-31T09:30:00 or 2027-01-31T09:30:00+01:00",
    )
    timezone: str = field(default="UTC", max_length=64, description="an IANA time zone")
    quiet_hours: CampaignQuietHoursBody | None = None


@attrs.frozen
class NewCampaign:
    audience: CampaignAudienceBody
    message: CampaignMessageBody
    name: str = field(
        min_length=1, max_length=MAX_NAME, pattern=NAME, message="must be a one-line text"
    )
    channel: str = field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    sender: str | None = field(
        default=None,
        max_length=64,
        description="how the channel reaches them (sms or whatsapp on Twilio); null: its first",
    )
    schedule: CampaignScheduleBody | None = None
    rate: float | None = field(
        default=None,
        minimum=0.01,
        maximum=10_000,
        description="messages per second at most; null: the channel's rate",
    )
    reply_window_hours: float = field(default=DEFAULT_REPLY_WINDOW_HOURS, minimum=0.1, maximum=720)


@attrs.frozen
class CampaignChange:
    """The fields to change; each left out stays. Only a draft's may change."""

    name: str = field(
        default=UNSET,
        min_length=1,
        max_length=MAX_NAME,
        pattern=NAME,
        message="must be a one-line text",
    )
    audience: CampaignAudienceBody = field(default=UNSET)
    message: CampaignMessageBody = field(default=UNSET)
    sender: str | None = field(default=UNSET, max_length=64)
    schedule: CampaignScheduleBody | None = field(default=UNSET)
    rate: float | None = field(default=UNSET, minimum=0.01, maximum=10_000)
    reply_window_hours: float = field(default=UNSET, minimum=0.1, maximum=720)

    def given(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in attrs.asdict(self, recurse=False).items()
            if value is not UNSET
        }


@attrs.frozen
class CampaignPreviewBody:
    contact_id: str = field(min_length=1, max_length=100)


@attrs.frozen
class CampaignsQuery(PageQuery):
    status: CampaignStatus | None = None


@attrs.frozen
class CampaignRecipientsQuery(PageQuery):
    state: RecipientState | None = None
