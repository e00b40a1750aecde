"""The queue as it is now (``GET /api/dashboard``): what is open and waiting, who is online,
what came and went lately, what waits to be sent. Each figure is one read of a count kept
for it, so a console may poll it every few seconds (:data:`REFRESH_SECONDS`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from omnichannel_core.module import (
    BulkSends,
    CampaignActivity,
    ModuleContext,
    Presence,
    PresentUser,
    UserDirectory,
)
from omnichannel_core.modules.dashboard.records import BUCKET, Metric, bucket_of
from omnichannel_core.modules.dashboard.store import DashboardStore
from omnichannel_core.modules.dashboard.views import (
    AgentNow,
    Backlog,
    CampaignNow,
    ChannelMessages,
    Now,
    QueueView,
    Waiting,
)

REFRESH_SECONDS = 5
"""The polling contract: a console asks again after this long (or sooner, on an event)."""
RECENT = timedelta(hours=1)
AWAY = "away"


async def now_view(
    store: DashboardStore, context: ModuleContext, now: datetime, names: bool = True
) -> Now:
    """The view; ``names``: the agents' display names too (a caller who may read users)."""
    present = await _present(context)
    queue = await store.queue([user.user_id for user in present])
    waiting = await store.longest_waiting()
    since = bucket_of(now - RECENT)
    return Now(
        as_of=now,
        refresh_seconds=REFRESH_SECONDS,
        conversations=QueueView(queue.open, queue.pending, queue.unassigned),
        longest_waiting=None
        if waiting is None or waiting.waiting_since is None
        else Waiting(
            waiting.conversation_id,
            waiting.channel,
            waiting.assignee,
            waiting.waiting_since,
            max(0, int((now - waiting.waiting_since).total_seconds())),
        ),
        agents=tuple(
            [
                AgentNow(
                    user_id=user.user_id,
                    name=await _name(context, user.user_id) if names else None,
                    connected_since=user.connected_since,
                    status=AWAY if user.status == AWAY else "online",
                    open_conversations=queue.by_agent.get(user.user_id, 0),
                )
                for user in present
            ]
        ),
        messages_since=since,
        messages=await _messages(store, since, bucket_of(now) + BUCKET),
        outbox=await _outbox(context),
        campaigns=await _campaigns(context),
    )


async def _present(context: ModuleContext) -> list[PresentUser]:
    presence = context.optional_service(Presence)
    return [] if presence is None else await presence.present()


async def _name(context: ModuleContext, user_id: str) -> str | None:
    directory = context.optional_service(UserDirectory)
    user = None if directory is None else await directory.user(user_id)
    return None if user is None else user.display_name


async def _messages(
    store: DashboardStore, since: datetime, until: datetime
) -> tuple[ChannelMessages, ...]:
    counts: dict[str, list[int]] = {}
    messages = (Metric.MESSAGES_IN, Metric.MESSAGES_OUT)
    for row in await store.rollups([since, until], by_channel=True, metrics=messages):
        if row.metric in messages:
            pair = counts.setdefault(row.channel, [0, 0])
            pair[row.metric is Metric.MESSAGES_OUT] += row.count
    return tuple(ChannelMessages(name, *pair) for name, pair in sorted(counts.items()))


async def _outbox(context: ModuleContext) -> tuple[Backlog, ...]:
    sends, channels = context.optional_service(BulkSends), context.channels
    if sends is None:
        return ()
    return tuple(
        [
            Backlog(name, await sends.backlog(name))
            for name in channels.names
            if channels.loaded(name) and channels.implements(name, "send")
        ]
    )


async def _campaigns(context: ModuleContext) -> tuple[CampaignNow, ...]:
    activity = context.optional_service(CampaignActivity)
    if activity is None:
        return ()
    return tuple(
        CampaignNow(each.id, each.name, each.channel, each.status)
        for each in await activity.under_way()
    )
