"""The access module's plugin: its hook implementations (entry point ``access``)."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    Authenticator,
    Command,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    UserDirectory,
    hookimpl,
    lazy,
)
from omnichannel_core.modules.access.commands import create_admin
from omnichannel_core.modules.access.directory import AccessDirectory
from omnichannel_core.modules.access.permissions import PERMISSIONS
from omnichannel_core.modules.access.routes import access_routes
from omnichannel_core.modules.access.service import Access
from omnichannel_core.modules.access.store import AccessStore
from omnichannel_core.modules.access.store.sqlite.schema import ACCESS_MIGRATIONS

STORE = StoreSpec(
    "access",
    AccessStore,
    sqlite=lazy("omnichannel_core.modules.access.store.sqlite.store", "SqliteAccessStore"),
    firestore=lazy("omnichannel_core.modules.access.store.firestore.store", "FirestoreAccessStore"),
    sqlite_migrations=ACCESS_MIGRATIONS,
)


class AccessModule:
    """The plugin (entry point ``omnichannel.modules: access``)."""

    def __init__(self) -> None:
        self._services: dict[ModuleContext, Access] = {}

    def access(self, context: ModuleContext) -> Access:
        """The service of this server (one per context: each app has its own)."""
        if context not in self._services:
            store = context.store(AccessStore)
            self._services[context] = Access(store, context.audit, context.policy, context.config)
        return self._services[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [STORE]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {UserDirectory: AccessDirectory(context.store(AccessStore))}

    @hookimpl
    def register_authenticators(self, context: ModuleContext) -> list[Authenticator]:
        return [self.access(context).authenticate]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return access_routes(self.access(context), context)

    @hookimpl
    def register_commands(self, context: ModuleContext) -> list[Command]:
        return [create_admin(self.access(context))]
