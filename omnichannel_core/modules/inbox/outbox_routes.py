"""The outbox's controls: what it holds (``GET /api/outbox``, and the same figures in
``/health``), another attempt for a failed message and cancelling a scheduled one."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import (
    SEND_ANSWERS,
    Config,
    JobReport,
    Message,
    ModuleContext,
    Operation,
    Response,
    Route,
    answer_sent,
    audit_entry,
    caller_address,
    field,
    prefer_wait,
    to_json,
    utcnow,
)
from omnichannel_core.modules.inbox.permissions import CONVERSATIONS_REPLY, OUTBOX_READ
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.store.outbox import ChannelBacklog
from omnichannel_core.modules.inbox.visibility import check_message_visible


@attrs.frozen
class ChannelOutbox:
    """A channel's part of the outbox."""

    queued: int = field(description="due now, waiting for a runner or the channel's pace")
    scheduled: int = field(description="to be sent later (send_at)")
    retrying: int = field(description="failed once or more, waiting for another attempt")
    sending: int = field(description="being sent now")
    in_doubt: int = field(description="sent, maybe: waiting for the provider to confirm")
    oldest_due_at: datetime | None = field(
        description="when the longest-waiting message was due (scheduled ones and those in"
        " doubt, which wait for their provider, left out)"
    )
    oldest_age_seconds: float = field(description="how long it has waited (0: none waits)")


@attrs.frozen
class OutboxReport:
    """What the outbox holds, per channel (channels with nothing in it are left out)."""

    channels: dict[str, ChannelOutbox]
    oldest_age_seconds: float = field(description="the longest wait of any channel")
    max_age_seconds: int = field(
        description="OMNICHANNEL_OUTBOX_MAX_AGE_SECONDS: /health degrades past it"
    )


def outbox_report(backlog: dict[str, ChannelBacklog], max_age: int) -> OutboxReport:
    now = utcnow()
    channels = {
        name: ChannelOutbox(
            **attrs.asdict(counts),
            oldest_age_seconds=round((now - counts.oldest_due_at).total_seconds(), 3)
            if counts.oldest_due_at is not None
            else 0.0,
        )
        for name, counts in backlog.items()
    }
    oldest = max((c.oldest_age_seconds for c in channels.values()), default=0.0)
    return OutboxReport(channels, oldest, max_age)


class OutboxHealth:
    """The delivery job's report in ``/health``: the outbox's figures; not ok when a message
    due has waited longer than ``OMNICHANNEL_OUTBOX_MAX_AGE_SECONDS`` (one in doubt waits
    for its provider, not for us, and does not count). ``/health`` is public and polled:
    the figures are read at most every :data:`HEALTH_CACHE_SECONDS` per process."""

    def __init__(self, inbox: Inbox, config: Config) -> None:
        self.inbox = inbox
        self.max_age = config.outbox_max_age_seconds
        self._read: tuple[float, dict[str, ChannelBacklog]] | None = None

    async def _backlog(self) -> dict[str, ChannelBacklog]:
        if self._read is None or time.monotonic() - self._read[0] > HEALTH_CACHE_SECONDS:
            self._read = (time.monotonic(), await self.inbox.backlog())
        return self._read[1]

    async def report(self) -> JobReport:
        report = outbox_report(await self._backlog(), self.max_age)
        ok = report.oldest_age_seconds <= self.max_age
        detail = (
            "the outbox keeps up"
            if ok
            else f"a message has waited {report.oldest_age_seconds:.0f} s to be sent"
            f" (more than {self.max_age} s)"
        )
        return JobReport(ok=ok, detail=detail, figures=to_json(report))


HEALTH_CACHE_SECONDS = 2.0


class Outbox:
    """``GET /api/outbox``."""

    operations = {
        "GET": Operation(
            "What the outbox holds, per channel",
            permission=OUTBOX_READ,
            responses={200: Response(OutboxReport, "The outbox's figures.")},
            notes="Queued, scheduled, retrying, sending and in-doubt messages per channel,"
            " and how long the oldest has waited. `/health` shows the same under"
            " `jobs.inbox.deliver`.",
            operation_id="getOutbox",
            tags=("messages",),
        )
    }

    def __init__(self, inbox: Inbox, context: ModuleContext) -> None:
        self.inbox = inbox
        self.max_age = context.config.outbox_max_age_seconds

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = to_json(outbox_report(await self.inbox.backlog(), self.max_age))


class _MessageControl:
    def __init__(self, inbox: Inbox, context: ModuleContext) -> None:
        self.inbox = inbox
        self.config = context.config

    async def _audited(
        self, req: falcon.asgi.Request, message_id: str, action: str
    ) -> tuple[Message, Any]:
        message = await self.inbox.store.get_message(message_id)
        principal = req.context.principal
        await check_message_visible(self.inbox.store, principal, message)
        audit = audit_entry(
            principal,
            action,
            "message",
            message_id,
            {"status": str(message.status), "channel": message.channel},
            caller_address(req, self.config),
        )
        return message, audit


class MessageRetry(_MessageControl):
    """``POST /api/messages/{message_id}/retry``."""

    operations = {
        "POST": Operation(
            "Send a failed message again",
            permission=CONVERSATIONS_REPLY,
            responses=SEND_ANSWERS,
            errors=("NotFound", "Conflict", "SendRejected", "SendFailed", "SendOutcomeUnknown"),
            notes="Only a `failed` outbound message: it is queued again with the same id"
            " (its error and provider id cleared; audited as `message.retried`), answered"
            " `202`, or with `Prefer: wait=N` once the attempt is over. Any other status"
            " answers 409. An agent may retry only in conversations assigned to them or"
            " to nobody.",
            operation_id="retryMessage",
            tags=("messages",),
        )
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        _, audit = await self._audited(req, message_id, "message.retried")
        message = await self.inbox.retry(message_id, audit)
        wait = prefer_wait(req)
        if wait:
            message = await self.inbox.outcome(message, wait)
        answer_sent(resp, message, True, wait)


class MessageCancel(_MessageControl):
    """``POST /api/messages/{message_id}/cancel``."""

    operations = {
        "POST": Operation(
            "Cancel a message not yet sent",
            permission=CONVERSATIONS_REPLY,
            responses={200: Response(Message, "Cancelled: the message, `cancelled`.")},
            errors=("NotFound", "Conflict"),
            notes="A message still waiting in the outbox (a scheduled one, or one waiting for"
            " its pace or a retry) becomes `cancelled` and is never sent (audited as"
            " `message.cancelled`). Once a runner is sending it, or it was sent, 409.",
            operation_id="cancelMessage",
            tags=("messages",),
        )
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        _, audit = await self._audited(req, message_id, "message.cancelled")
        resp.media = to_json(await self.inbox.cancel(message_id, audit))


def outbox_routes(inbox: Inbox, context: ModuleContext) -> list[Route]:
    return [
        Route("/api/outbox", Outbox(inbox, context)),
        Route("/api/messages/{message_id}/retry", MessageRetry(inbox, context)),
        Route("/api/messages/{message_id}/cancel", MessageCancel(inbox, context)),
    ]
