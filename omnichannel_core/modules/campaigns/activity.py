"""The campaigns under way, for the dashboard (the ``CampaignActivity`` service)."""

from __future__ import annotations

from omnichannel_core.module import RunningCampaign
from omnichannel_core.modules.campaigns.records import CampaignStatus
from omnichannel_core.modules.campaigns.store import CampaignStore

SHOWN = 100


class StoreActivity:
    def __init__(self, store: CampaignStore) -> None:
        self.store = store

    async def under_way(self) -> list[RunningCampaign]:
        found = []
        for status in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
            page = await self.store.list_campaigns(status, None, SHOWN)
            found.extend(page.items)
        found.sort(key=lambda campaign: campaign.created_at, reverse=True)
        return [
            RunningCampaign(campaign.id, campaign.name, campaign.channel, campaign.status.value)
            for campaign in found[:SHOWN]
        ]
