"""The campaigns module's plugin: its hook implementations (entry point ``campaigns``).
docs/campaigns.md says what it does. It sends through the inbox's ``BulkSends`` and takes
segments from the CRM's ``Audiences``."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    Audiences,
    BulkSends,
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
from omnichannel_core.modules.campaigns.outcomes import Outcomes
from omnichannel_core.modules.campaigns.permissions import CAMPAIGNS_READ, PERMISSIONS
from omnichannel_core.modules.campaigns.routes import campaign_routes
from omnichannel_core.modules.campaigns.runner import CampaignRunner
from omnichannel_core.modules.campaigns.service import Campaigns
from omnichannel_core.modules.campaigns.store import (
    CAMPAIGN_UPDATED,
    CampaignStore,
    campaign_store_spec,
)


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
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        store = context.store(CampaignStore)

        async def load(campaign_id: str) -> Any:
            try:
                campaign = await store.get(campaign_id)
            except NotFound:
                return None
            return to_json(campaign) | {"counts": to_json(await store.counts(campaign_id))}

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
            lambda: context.service(ContactBook),
        )
        return [runner.job()]
