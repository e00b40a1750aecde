"""The campaigns module's plugin: its hook implementations (entry point ``campaigns``).
docs/campaigns.md says what it does. It sends through the inbox's ``BulkSends`` and takes
segments from the CRM's ``Audiences``."""

from __future__ import annotations

import time
from typing import Any

from omnichannel_core.module import (
    Audiences,
    BulkSends,
    CampaignActivity,
    ContactBook,
    EventTypeSpec,
    InboxReader,
    Job,
    MediaKeeper,
    ModuleContext,
    NotFound,
    PermissionSpec,
    Route,
    StoreSpec,
    Subscriber,
    hookimpl,
    to_json,
)
from omnichannel_core.modules.campaigns.activity import StoreActivity
from omnichannel_core.modules.campaigns.outcomes import Outcomes
from omnichannel_core.modules.campaigns.permissions import CAMPAIGNS_READ, PERMISSIONS
from omnichannel_core.modules.campaigns.records import Counts
from omnichannel_core.modules.campaigns.routes import campaign_routes
from omnichannel_core.modules.campaigns.runner import CampaignRunner
from omnichannel_core.modules.campaigns.service import Campaigns
from omnichannel_core.modules.campaigns.store import (
    CAMPAIGN_UPDATED,
    CampaignStore,
    campaign_store_spec,
)

COUNTS_SECONDS = 2.0
"""How long an event's counts are reused (each stream, and each replay, reads them)."""


class RecentCounts:
    """A campaign's counts, counted at most every :data:`COUNTS_SECONDS` in this process:
    however many streams are open, or replay old events, a campaign is counted once a
    while (on Firestore, a count reads each recipient)."""

    def __init__(self, store: CampaignStore) -> None:
        self.store = store
        self._counted: dict[str, tuple[float, Counts]] = {}

    async def of(self, campaign_id: str) -> Counts:
        now = time.monotonic()
        counted = self._counted.get(campaign_id)
        if counted is None or now - counted[0] > COUNTS_SECONDS:
            if len(self._counted) > 1000:
                self._counted.clear()
            counted = (now, await self.store.counts(campaign_id))
            self._counted[campaign_id] = counted
        return counted[1]


class CampaignsModule:
    """The plugin (entry point ``omnichannel.modules: campaigns``)."""

    def __init__(self) -> None:
        self._services: dict[ModuleContext, Campaigns] = {}

    def campaigns(self, context: ModuleContext) -> Campaigns:
        """The campaigns of this server (one per context: each app has its own)."""
        if context not in self._services:
            self._services[context] = Campaigns(
                context.store(CampaignStore),
                lambda: context.service(BulkSends),
                lambda: context.service(Audiences),
                lambda: context.service(MediaKeeper),
            )
        return self._services[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [campaign_store_spec()]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {CampaignActivity: StoreActivity(context.store(CampaignStore))}

    @hookimpl
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        store = context.store(CampaignStore)
        counts = RecentCounts(store)

        async def load(campaign_id: str) -> Any:
            try:
                campaign = await store.get(campaign_id)
            except NotFound:
                return None
            record = to_json(campaign)
            record["audience"] |= {"contact_ids": [], "addresses": []}  # GET it for those
            return record | {"counts": to_json(await counts.of(campaign_id))}

        return [
            EventTypeSpec(
                CAMPAIGN_UPDATED,
                "campaign",
                CAMPAIGNS_READ,
                load,
                "a campaign changed (its status, its message...) or its counts moved",
            )
        ]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return campaign_routes(self.campaigns(context), context.config)

    @hookimpl
    def register_subscribers(self, context: ModuleContext) -> list[Subscriber]:
        outcomes = Outcomes(
            context.store(CampaignStore),
            lambda: context.service(InboxReader),
            lambda: context.service(ContactBook),
        )
        return [outcomes.subscriber(set(context.event_types))]

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        runner = CampaignRunner(
            context.store(CampaignStore),
            lambda: context.service(BulkSends),
            lambda: context.service(Audiences),
        )
        return [runner.job()]
