"""The CRM module's plugin: its hook implementations (entry point ``crm``). docs/crm.md
says what it does; the contacts themselves live in the inbox's store, reached through the
inbox's ``ContactBook`` service."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    Audiences,
    ContactBook,
    InboxReader,
    Job,
    MediaKeeper,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    Subscriber,
    hookimpl,
)
from omnichannel_core.modules.crm.permissions import PERMISSIONS
from omnichannel_core.modules.crm.routes import crm_routes
from omnichannel_core.modules.crm.service import Crm
from omnichannel_core.modules.crm.store import CrmStore, crm_store_spec
from omnichannel_core.modules.crm.timeline import CONTACT_ERASED, TIMELINE_EVENTS
from omnichannel_core.modules.crm.transfer.declarations import (
    transfer_jobs,
    transfer_store_spec,
)
from omnichannel_core.modules.crm.transfer.declared import declared_attributes
from omnichannel_core.modules.crm.transfer.routes import transfer_routes


class CrmModule:
    """The plugin (entry point ``omnichannel.modules: crm``)."""

    def __init__(self) -> None:
        self._services: dict[ModuleContext, Crm] = {}

    def crm(self, context: ModuleContext) -> Crm:
        """The CRM of this server (one per context: each app has its own)."""
        if context not in self._services:
            self._services[context] = Crm(
                context.store(CrmStore),
                lambda: context.service(ContactBook),
                lambda: context.service(InboxReader),
                lambda: context.service(MediaKeeper),
            )
        return self._services[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [crm_store_spec(), transfer_store_spec()]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        crm = self.crm(context)
        attributes = declared_attributes(crm.attributes)
        return crm_routes(crm, context) + transfer_routes(context, crm.audience, attributes)

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {Audiences: self.crm(context)}

    @hookimpl
    def register_subscribers(self, context: ModuleContext) -> list[Subscriber]:
        declared = set(context.event_types)
        wanted = {name for name in {*TIMELINE_EVENTS, CONTACT_ERASED} if name in declared}
        return [self.crm(context).projection.subscriber(wanted)]

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        return transfer_jobs(context, declared_attributes(self.crm(context).attributes))
