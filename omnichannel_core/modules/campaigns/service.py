"""What the campaigns API does: campaigns checked against the channel, the CRM and the media
store before they are stored; their lifecycle; a preview for any contact; their report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from omnichannel_core.module import (
    Audiences,
    BulkSends,
    ChannelUnavailable,
    Conflict,
    HookNotImplemented,
    InvalidInput,
    Media,
    MediaKeeper,
    NotFound,
    Principal,
    Reach,
    audit_entry,
    media_of,
    new_id,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.modules.campaigns.bodies import (
    CampaignAudienceBody,
    CampaignChange,
    CampaignMessageBody,
    CampaignScheduleBody,
    NewCampaign,
)
from omnichannel_core.modules.campaigns.compose import Composed, Deferred, decide
from omnichannel_core.modules.campaigns.records import (
    CAMPAIGN_PREFIX,
    EDITABLE,
    LIVE,
    Audience,
    AudienceKind,
    Campaign,
    CampaignMessage,
    CampaignStatus,
    QuietHours,
    Report,
    Schedule,
    Template,
)
from omnichannel_core.modules.campaigns.render import check_template
from omnichannel_core.modules.campaigns.store import CampaignStore

LONGEST_SCHEDULE_DAYS = 366
MAX_VARIABLE = 64
MAX_VARIABLES = 50


@attrs.frozen
class Preview:
    """What a campaign would send a contact now, or why it would not."""

    __schema_name__ = "CampaignPreview"

    contact_id: str
    address: str | None
    outcome: str = attrs.field(metadata={"description": "send, wait (quiet hours) or skip"})
    template: bool = False
    text: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    media: tuple[Media, ...] = ()
    skip_reason: str | None = None
    detail: str | None = None
    not_before: datetime | None = None


class Campaigns:
    """The campaigns of this server."""

    def __init__(
        self,
        store: CampaignStore,
        bulk: Callable[[], BulkSends],
        audiences: Callable[[], Audiences],
        media: Callable[[], MediaKeeper],
    ) -> None:
        self.store = store
        self._bulk = bulk
        self._audiences = audiences
        self._media = media

    # Making and changing.

    async def create(self, body: NewCampaign, principal: Principal) -> Campaign:
        reach = await self.reach(body.channel, body.sender)
        now = utcnow()
        campaign = Campaign(
            id=new_id(CAMPAIGN_PREFIX),
            name=body.name.strip(),
            channel=body.channel,
            sender=reach.name,
            audience=await self.audience(body.audience),
            message=await self.message(body.message, reach, principal),
            schedule=schedule_of(body.schedule),
            rate=await self.checked_rate(body.channel, reach, body.rate),
            reply_window_hours=body.reply_window_hours,
            created_by=principal.id,
            created_at=now,
            updated_at=now,
        )
        return await self.store.create(campaign)

    async def update(
        self, campaign_id: str, body: CampaignChange, principal: Principal
    ) -> Campaign:
        campaign = await self.store.get(campaign_id)
        require_editable(campaign)
        given = body.given()
        sender = given.get("sender", campaign.sender)
        reach = await self.reach(campaign.channel, sender)
        changes: dict[str, Any] = {"sender": reach.name}
        if "name" in given:
            changes["name"] = given["name"].strip()
        if "audience" in given:
            changes["audience"] = await self.audience(given["audience"])
        if "message" in given:
            changes["message"] = await self.message(given["message"], reach, principal)
        elif "sender" in given:  # the message must suit the new sender
            self.check_message_fits(campaign.message, reach)
        if "schedule" in given:
            changes["schedule"] = schedule_of(given["schedule"])
        rate = given.get("rate", campaign.rate)
        changes["rate"] = await self.checked_rate(campaign.channel, reach, rate)
        if "reply_window_hours" in given:
            changes["reply_window_hours"] = given["reply_window_hours"]
        return await self.store.change(campaign_id, changes, when=EDITABLE)

    async def delete(self, campaign_id: str) -> None:
        require_editable(await self.store.get(campaign_id), "deleted")
        await self.store.delete(campaign_id, when=EDITABLE)

    async def reach(self, channel: str, sender: str | None) -> Reach:
        try:
            reaches = await self._bulk().reaches(channel)
        except (ChannelUnavailable, HookNotImplemented):
            raise InvalidInput(
                f"channel: {channel!r} is not a channel this server can send on", field="channel"
            ) from None
        if sender is None:
            return reaches[0]
        for reach in reaches:
            if reach.name == sender:
                return reach
        names = ", ".join(reach.name for reach in reaches)
        raise InvalidInput(
            f"sender: {channel!r} sends through {names}, not {sender!r}", field="sender"
        )

    async def audience(self, body: CampaignAudienceBody) -> Audience:
        fields = {"segment_id": body.segment_id, "contact_ids": body.contact_ids}
        fields["addresses"] = body.addresses
        wanted = {
            AudienceKind.SEGMENT: "segment_id",
            AudienceKind.CONTACTS: "contact_ids",
            AudienceKind.LIST: "addresses",
        }[body.kind]
        for name, value in fields.items():
            if name != wanted and value:
                raise InvalidInput(
                    f"audience.{name}: not with kind {body.kind.value!r}", field=f"audience.{name}"
                )
            if name == wanted and not value:
                raise InvalidInput(
                    f"audience.{name}: required with kind {body.kind.value!r}",
                    field=f"audience.{name}",
                )
        if body.kind is AudienceKind.SEGMENT:
            assert body.segment_id is not None
            try:
                await self._audiences().audience(body.segment_id)
            except NotFound:
                raise InvalidInput(
                    f"audience.segment_id: no segment {body.segment_id!r}",
                    field="audience.segment_id",
                ) from None
            except LookupError:
                raise InvalidInput(
                    "audience: segments need the CRM module, which is not loaded",
                    field="audience.kind",
                ) from None
        addresses = tuple(address.strip() for address in body.addresses)
        if any(not address for address in addresses):
            raise InvalidInput("audience.addresses: a blank address", field="audience.addresses")
        return Audience(body.kind, body.segment_id, tuple(body.contact_ids), addresses)

    async def message(
        self, body: CampaignMessageBody, reach: Reach, principal: Principal
    ) -> CampaignMessage:
        template = None
        if body.template is not None:
            if len(body.template.variables) > MAX_VARIABLES:
                raise InvalidInput(
                    f"message.template.variables: at most {MAX_VARIABLES}",
                    field="message.template.variables",
                )
            template = Template(body.template.content_sid, dict(body.template.variables))
        media = await self.kept_media(media_of(body.media), principal)
        message = CampaignMessage(body.text, body.subject, media, template, dict(body.defaults))
        self.check_message_fits(message, reach)
        return message

    def check_message_fits(self, message: CampaignMessage, reach: Reach) -> None:
        if message.text is None and not message.media and message.template is None:
            raise InvalidInput("message: give a text, media or a template", field="message")
        if message.template is not None and not reach.templates:
            raise InvalidInput(
                f"message.template: {reach.name!r} does not send templates",
                field="message.template",
            )
        if message.subject is not None and not reach.subject:
            raise InvalidInput(
                f"message.subject: {reach.name!r} messages have no subject",
                field="message.subject",
            )
        if message.text is not None:
            check_template(message.text, "message.text")
        if message.subject is not None:
            check_template(message.subject, "message.subject")
        if message.template is not None:
            for key, value in message.template.variables.items():
                if not key or len(key) > MAX_VARIABLE or len(value) > MAX_VARIABLE * 16:
                    raise InvalidInput(
                        "message.template.variables: keys of 1 to 64 characters, values of"
                        " at most 1,024",
                        field="message.template.variables",
                    )
                check_template(value, f"message.template.variables.{key}")
        for name, value in message.defaults.items():
            if not name or len(name) > MAX_VARIABLE or len(value) > MAX_VARIABLE * 16:
                raise InvalidInput(
                    "message.defaults: names of 1 to 64 characters, values of at most 1,024",
                    field="message.defaults",
                )

    async def kept_media(self, media: tuple[Media, ...], principal: Principal) -> tuple[Media, ...]:
        """Each item kept by the media store, described for ``principal`` (who must be able to
        read it); an item named by URL as it is."""
        if not any(item.id is not None for item in media):
            return media
        try:
            keeper = self._media()
        except LookupError:
            raise InvalidInput("message.media: no media store", field="message.media") from None
        described = []
        for index, item in enumerate(media):
            try:
                described.append(await keeper.describe(item, principal))
            except InvalidInput as unknown:
                raise InvalidInput(
                    f"message.media[{index}].media_id: {unknown.message}",
                    field=f"message.media[{index}].media_id",
                ) from None
        return tuple(described)

    async def checked_rate(self, channel: str, reach: Reach, rate: float | None) -> float | None:
        if rate is None:
            return None
        allowed = await self._bulk().rate(channel, reach)
        if allowed > 0 and rate > allowed:
            raise InvalidInput(
                f"rate: {rate:g} messages per second is more than {channel!r} allows through"
                f" {reach.name!r} ({allowed:g}/s; OMNICHANNEL_SEND_RATES sets it)",
                field="rate",
            )
        return rate

    # The lifecycle.

    async def launch(self, campaign_id: str, principal: Principal, client: str | None) -> Campaign:
        campaign = await self.store.get(campaign_id)
        require_editable(campaign, "launched")
        reach = await self.reach(campaign.channel, campaign.sender)
        await self.checked_rate(campaign.channel, reach, campaign.rate)
        # whoever launches may send only media they may read (another may have set it)
        await self.kept_media(campaign.message.media, principal)
        if campaign.audience.kind is AudienceKind.SEGMENT:
            await self.audience(
                CampaignAudienceBody(AudienceKind.SEGMENT, segment_id=campaign.audience.segment_id)
            )
        now = utcnow()
        audit = audit_entry(
            principal, "campaign.launched", "campaign", campaign_id, {"name": campaign.name}, client
        )
        changes = {"status": CampaignStatus.SCHEDULED, "launched_at": now}
        return await self.store.change(campaign_id, changes, when=EDITABLE, audit=audit)

    async def pause(self, campaign_id: str, principal: Principal, client: str | None) -> Campaign:
        audit = audit_entry(principal, "campaign.paused", "campaign", campaign_id, {}, client)
        return await self._move(
            campaign_id, CampaignStatus.PAUSED, {CampaignStatus.RUNNING}, audit, "paused"
        )

    async def resume(self, campaign_id: str, principal: Principal, client: str | None) -> Campaign:
        audit = audit_entry(principal, "campaign.resumed", "campaign", campaign_id, {}, client)
        return await self._move(
            campaign_id, CampaignStatus.RUNNING, {CampaignStatus.PAUSED}, audit, "resumed"
        )

    async def cancel(self, campaign_id: str, principal: Principal, client: str | None) -> Campaign:
        audit = audit_entry(principal, "campaign.cancelled", "campaign", campaign_id, {}, client)
        changes = {"status": CampaignStatus.CANCELLED, "finished_at": utcnow()}
        campaign = await self._change(campaign_id, changes, LIVE, audit, "cancelled")
        return campaign

    async def _move(
        self,
        campaign_id: str,
        status: CampaignStatus,
        when: set[CampaignStatus],
        audit: Any,
        verb: str,
    ) -> Campaign:
        return await self._change(campaign_id, {"status": status}, when, audit, verb)

    async def _change(
        self,
        campaign_id: str,
        changes: dict[str, Any],
        when: frozenset[CampaignStatus] | set[CampaignStatus],
        audit: Any,
        verb: str,
    ) -> Campaign:
        try:
            return await self.store.change(campaign_id, changes, when=when, audit=audit)
        except Conflict as conflict:
            status = conflict.details.get("status")
            raise Conflict(f"a {status} campaign cannot be {verb}", status=status) from None

    # Reading.

    async def preview(self, campaign_id: str, contact_id: str) -> Preview:
        campaign = await self.store.get(campaign_id)
        reach = await self.reach(campaign.channel, campaign.sender)
        target = await self._bulk().target(campaign.channel, reach, contact_id)
        decision = decide(campaign, target, utcnow())
        contact, address = target.contact.id, target.address
        if isinstance(decision, Composed):
            request = decision.request
            return Preview(
                contact,
                address,
                "send",
                decision.template,
                request.text,
                request.metadata,
                request.media,
            )
        if isinstance(decision, Deferred):
            return Preview(contact, address, "wait", not_before=decision.until)
        return Preview(
            contact,
            address,
            "skip",
            skip_reason=decision.reason.value,
            detail=decision.detail or None,
        )

    async def report(self, campaign_id: str) -> Report:
        campaign = await self.store.get(campaign_id)
        counts = await self.store.counts(campaign_id)
        timeline = tuple(await self.store.timeline(campaign_id))
        return Report(campaign, counts, timeline)


def require_editable(campaign: Campaign, verb: str = "changed") -> None:
    if campaign.status not in EDITABLE:
        raise Conflict(
            f"a {campaign.status.value} campaign cannot be {verb}: only a draft can",
            status=campaign.status.value,
        )


def schedule_of(body: CampaignScheduleBody | None) -> Schedule:
    if body is None:
        return Schedule()
    try:
        where = ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"schedule.timezone: {body.timezone!r} is not an IANA time zone",
            field="schedule.timezone",
        ) from None
    at = None
    if body.at is not None:
        at = local_time(body.at, where)
        if (at - utcnow()).days > LONGEST_SCHEDULE_DAYS:
            raise InvalidInput("schedule.at: at most a year ahead", field="schedule.at")
    quiet = None
    if body.quiet_hours is not None:
        if body.quiet_hours.start == body.quiet_hours.end:
            raise InvalidInput(
                "schedule.quiet_hours: start and end are the same time",
                field="schedule.quiet_hours",
            )
        quiet = QuietHours(body.quiet_hours.start, body.quiet_hours.end)
    return Schedule(at, body.timezone, quiet)


def local_time(text: str, where: ZoneInfo) -> datetime:
    """A checked ``schedule.at``: with its offset, or in ``where`` without one."""
    try:
        if text.endswith("Z") or "+" in text[10:] or "-" in text[10:]:
            return parse_timestamp(text)
        return datetime.fromisoformat(text).replace(tzinfo=where).astimezone(utcnow().tzinfo)
    except (ValueError, OverflowError):
        raise InvalidInput(f"schedule.at: {text!r} is not a time", field="schedule.at") from None
