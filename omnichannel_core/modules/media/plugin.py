"""The media module's plugin: its hook implementations (entry point ``media``)."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    InboxMedia,
    Job,
    MediaKeeper,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    hookimpl,
    lazy,
)
from omnichannel_core.modules.media.access import MediaAccess
from omnichannel_core.modules.media.blobs import blobs_for
from omnichannel_core.modules.media.fetching import Fetching
from omnichannel_core.modules.media.keeper import Keeper
from omnichannel_core.modules.media.permissions import PERMISSIONS
from omnichannel_core.modules.media.routes import media_routes
from omnichannel_core.modules.media.sqlite import MIGRATIONS, SqliteMediaStore
from omnichannel_core.modules.media.store import MediaStore

STORE = StoreSpec(
    "media",
    MediaStore,
    sqlite=SqliteMediaStore,
    firestore=lazy("omnichannel_core.modules.media.firestore", "FirestoreMediaStore"),
    sqlite_migrations=MIGRATIONS,
)


class MediaModule:
    """The plugin (entry point ``omnichannel.modules: media``)."""

    def __init__(self) -> None:
        self._keepers: dict[ModuleContext, Keeper] = {}

    def keeper(self, context: ModuleContext) -> Keeper:
        """The media store of this server (one per context: each app has its own)."""
        if context not in self._keepers:
            store = context.store(MediaStore)
            access = MediaAccess(store, lambda: context.service(InboxMedia))
            blobs = blobs_for(context.config)
            self._keepers[context] = Keeper(store, blobs, context.config, access)
        return self._keepers[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [STORE]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {MediaKeeper: self.keeper(context)}

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return media_routes(self.keeper(context))

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        fetching = Fetching(
            context.store(MediaStore),
            self.keeper(context),
            context.channels,
            context.config,
            context.news,
            lambda: context.service(InboxMedia),
        )
        return [fetching.job()]
