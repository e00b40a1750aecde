"""``/api/campaigns``: campaigns, their lifecycle, a preview for any contact, their
recipients, report and per-recipient CSV export (docs/campaigns.md)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable

import falcon
import falcon.asgi

from omnichannel_core.module import (
    Config,
    Operation,
    PageOf,
    Principal,
    Response,
    Route,
    caller_address,
    format_timestamp,
    safe_cell,
    to_json,
    utcnow,
)
from omnichannel_core.modules.campaigns.bodies import (
    CampaignChange,
    CampaignPreviewBody,
    CampaignRecipientsQuery,
    CampaignsQuery,
    NewCampaign,
)
from omnichannel_core.modules.campaigns.permissions import (
    CAMPAIGNS_LAUNCH,
    CAMPAIGNS_READ,
    CAMPAIGNS_WRITE,
)
from omnichannel_core.modules.campaigns.records import Campaign, Recipient, Report
from omnichannel_core.modules.campaigns.service import Campaigns, Preview

TAGS = ("campaigns",)
CONTACTS_READ = "contacts:read"
"""The inbox's permission to read contacts, which a preview shows."""
EXPORT_PAGE = 500
EXPORT_COLUMNS = (
    "contact_id",
    "seq",
    "state",
    "skip_reason",
    "message_id",
    "status",
    "in_doubt",
    "error_code",
    "queued_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "replied_at",
    "opted_out_at",
)
EDIT_NOTES = "409 once the campaign is launched: only a draft's audience and message change."


class CampaignList:
    """``GET`` and ``POST /api/campaigns``."""

    operations = {
        "GET": Operation(
            "List campaigns, newest first",
            permission=CAMPAIGNS_READ,
            query=CampaignsQuery,
            responses={200: Response(PageOf(Campaign), "One page of campaigns.")},
            operation_id="listCampaigns",
            tags=TAGS,
        ),
        "POST": Operation(
            "Create a campaign (a draft)",
            permission=CAMPAIGNS_WRITE,
            body=NewCampaign,
            responses={201: Response(Campaign, "The draft.")},
            notes="400 naming the field for a channel or sender that cannot send, a segment"
            " that does not exist, an unknown {{variable}}, media the caller may not read, a"
            " template on a sender without templates, or a rate above the channel's.",
            operation_id="createCampaign",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: CampaignsQuery = req.context.query
        page = await self.campaigns.store.list_campaigns(query.status, query.cursor, query.limit)
        resp.media = to_json(page)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        campaign = await self.campaigns.create(req.context.body, req.context.principal)
        resp.status = falcon.HTTP_201
        resp.media = to_json(campaign)


class CampaignItem:
    """``GET``, ``PATCH`` and ``DELETE /api/campaigns/{campaign_id}``."""

    operations = {
        "GET": Operation(
            "Get a campaign",
            permission=CAMPAIGNS_READ,
            responses={200: Response(Campaign, "The campaign.")},
            errors=("NotFound",),
            operation_id="getCampaign",
            tags=TAGS,
        ),
        "PATCH": Operation(
            "Change a draft campaign",
            permission=CAMPAIGNS_WRITE,
            body=CampaignChange,
            responses={200: Response(Campaign, "The campaign as changed.")},
            errors=("NotFound", "Conflict"),
            notes=EDIT_NOTES,
            operation_id="updateCampaign",
            tags=TAGS,
        ),
        "DELETE": Operation(
            "Delete a draft campaign",
            permission=CAMPAIGNS_WRITE,
            responses={204: Response(None, "Deleted.")},
            errors=("NotFound", "Conflict"),
            notes="409 once launched: cancel it instead.",
            operation_id="deleteCampaign",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        resp.media = to_json(await self.campaigns.store.get(campaign_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        campaign = await self.campaigns.update(campaign_id, req.context.body, req.context.principal)
        resp.media = to_json(campaign)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        await self.campaigns.delete(campaign_id)
        resp.status = falcon.HTTP_204


Action = Callable[[str, Principal, str | None], Awaitable[Campaign]]


class CampaignAction:
    """``POST /api/campaigns/{campaign_id}/{launch,pause,resume,cancel}``."""

    def __init__(self, action: Action, operation: Operation, config: Config) -> None:
        self.action = action
        self.config = config
        self.operations = {"POST": operation}

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        client = caller_address(req, self.config)
        resp.media = to_json(await self.action(campaign_id, req.context.principal, client))


def _action(
    summary: str, operation_id: str, notes: str, errors: tuple[str, ...] = ("NotFound", "Conflict")
) -> Operation:
    return Operation(
        summary,
        permission=CAMPAIGNS_LAUNCH,
        responses={200: Response(Campaign, "The campaign after.")},
        errors=errors,
        notes=notes,
        operation_id=operation_id,
        tags=TAGS,
    )


class CampaignPreview:
    """``POST /api/campaigns/{campaign_id}/preview``."""

    operations = {
        "POST": Operation(
            "Preview what a campaign would send a contact now",
            permission=CAMPAIGNS_WRITE,
            body=CampaignPreviewBody,
            responses={200: Response(Preview, "The message made for them, or why not.")},
            errors=("NotFound",),
            notes="Any contact, in the audience or not; nothing is sent or stored. The"
            " message shows the contact's profile: the caller needs `contacts:read` too"
            " (403 without it).",
            operation_id="previewCampaign",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        body: CampaignPreviewBody = req.context.body
        req.context.principal.require(CONTACTS_READ)  # the preview shows their profile
        resp.media = to_json(await self.campaigns.preview(campaign_id, body.contact_id))


class CampaignRecipients:
    """``GET /api/campaigns/{campaign_id}/recipients``."""

    operations = {
        "GET": Operation(
            "List a campaign's recipients, in sending order",
            permission=CAMPAIGNS_READ,
            query=CampaignRecipientsQuery,
            responses={200: Response(PageOf(Recipient), "One page of recipients.")},
            errors=("NotFound",),
            notes="Empty until the campaign starts: its audience is frozen then.",
            operation_id="listCampaignRecipients",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        query: CampaignRecipientsQuery = req.context.query
        await self.campaigns.store.get(campaign_id)  # 404 for an unknown one
        page = await self.campaigns.store.recipients(
            campaign_id, query.state, query.cursor, query.limit
        )
        resp.media = to_json(page)


class CampaignReport:
    """``GET /api/campaigns/{campaign_id}/report``."""

    operations = {
        "GET": Operation(
            "A campaign's counts and its sends and deliveries per minute",
            permission=CAMPAIGNS_READ,
            responses={200: Response(Report, "The report.")},
            errors=("NotFound",),
            notes="The event stream's campaign.updated tells when it moved.",
            operation_id="getCampaignReport",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        resp.media = to_json(await self.campaigns.report(campaign_id))


class CampaignExport:
    """``GET /api/campaigns/{campaign_id}/export``."""

    operations = {
        "GET": Operation(
            "Export a campaign's recipients and their outcomes as CSV",
            permission=CAMPAIGNS_READ,
            responses={
                200: Response(
                    None,
                    "One row per recipient, in sending order.",
                    schema={"type": "string"},
                    media_type="text/csv",
                    headers={"Content-Disposition": {"type": "string"}},
                )
            },
            errors=("NotFound",),
            operation_id="exportCampaignRecipients",
            tags=TAGS,
        ),
    }

    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, campaign_id: str
    ) -> None:
        await self.campaigns.store.get(campaign_id)
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        resp.content_type = "text/csv; charset=utf-8"
        resp.set_header("Content-Disposition", f'attachment; filename="{campaign_id}-{stamp}.csv"')
        resp.stream = self.rows(campaign_id)

    async def rows(self, campaign_id: str) -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        cursor: str | None = None
        while True:
            page = await self.campaigns.store.recipients(campaign_id, None, cursor, EXPORT_PAGE)
            for recipient in page.items:
                writer.writerow(recipient_row(recipient))
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            cursor = page.next_cursor
            if cursor is None:
                return


def recipient_row(recipient: Recipient) -> list[str]:
    cells = [
        recipient.contact_id,
        str(recipient.seq),
        recipient.state.value,
        "" if recipient.skip_reason is None else recipient.skip_reason.value,
        recipient.message_id or "",
        recipient.status or "",
        "yes" if recipient.in_doubt else "",
        recipient.error_code or "",
        *(
            "" if at is None else format_timestamp(at)
            for at in (
                recipient.queued_at,
                recipient.sent_at,
                recipient.delivered_at,
                recipient.read_at,
                recipient.failed_at,
                recipient.replied_at,
                recipient.opted_out_at,
            )
        ),
    ]
    return [safe_cell(cell) for cell in cells]


def campaign_routes(campaigns: Campaigns, config: Config) -> list[Route]:
    prefix = "/api/campaigns/{campaign_id}"
    actions = [
        (
            "launch",
            campaigns.launch,
            _action(
                "Launch a draft campaign",
                "launchCampaign",
                "It is scheduled, and starts at schedule.at (or at once): its audience is"
                " frozen then. 409 unless a draft; 400 when what it was checked against"
                " changed since (its segment deleted, its channel or sender gone, a rate now"
                " above the channel's).",
                ("BadRequest", "NotFound", "Conflict"),
            ),
        ),
        (
            "pause",
            campaigns.pause,
            _action(
                "Pause a running campaign",
                "pauseCampaign",
                "Nothing more is queued; messages already in the outbox (a couple of seconds"
                " of its rate) still go. 409 unless running.",
            ),
        ),
        (
            "resume",
            campaigns.resume,
            _action("Resume a paused campaign", "resumeCampaign", "409 unless paused."),
        ),
        (
            "cancel",
            campaigns.cancel,
            _action(
                "Cancel a campaign for good",
                "cancelCampaign",
                "Recipients not yet sent to are skipped (cancelled). 409 unless scheduled,"
                " running or paused.",
            ),
        ),
    ]
    return [
        Route("/api/campaigns", CampaignList(campaigns)),
        Route(prefix, CampaignItem(campaigns)),
        *(
            Route(f"{prefix}/{name}", CampaignAction(action, operation, config))
            for name, action, operation in actions
        ),
        Route(f"{prefix}/preview", CampaignPreview(campaigns)),
        Route(f"{prefix}/recipients", CampaignRecipients(campaigns)),
        Route(f"{prefix}/report", CampaignReport(campaigns)),
        Route(f"{prefix}/export", CampaignExport(campaigns)),
    ]
