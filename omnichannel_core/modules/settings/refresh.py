"""Each process's copy of the settings, kept current without a restart.

Every web worker and job runner loads the settings as it starts, hands the channels' stored
values (secrets opened) to ``config.stored_settings``, and then asks the store for the
settings' version every :data:`REFRESH_SECONDS`: when it moved, it loads them again. So a
credential changed through the API is used by every process's next send within a couple of
seconds, and the process that made the change uses it at once. The channels get only the
values of variables a loaded channel declares storable. A stored secret that will not open
(its key left ``OMNICHANNEL_SECRET_KEY``) is left out, and logged by its name alone, once per
version; one left out because the key itself could not be had (its file unreadable) is
tried again at every poll until it opens. A version counts as taken only once its values
were handed over: one that failed half-way is loaded again at the next poll. Each process
logs ``settings_loaded`` (the version, the stored variables' names, its pid) as it takes a
version: who runs what, and since when, is in the log.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import structlog

from omnichannel_core.module import Business, Setting, StoredSettings, cancel_and_wait
from omnichannel_core.modules.settings.channel_values import ChannelValues
from omnichannel_core.modules.settings.records import Settings
from omnichannel_core.modules.settings.store import SettingsStore

log = structlog.get_logger("omnichannel.settings")

REFRESH_SECONDS = 2.0
"""How often each process asks whether the settings changed (one read of their version)."""


class Refresher:
    """This process's settings: loaded at start-up, reloaded when their version moves."""

    def __init__(
        self,
        store: SettingsStore,
        values: ChannelValues,
        stored_settings: StoredSettings,
        every: float = REFRESH_SECONDS,
    ) -> None:
        self.store = store
        self.values = values
        self.stored_settings = stored_settings
        self.every = every
        self._settings: Settings | None = None
        self._business: Business | None = None
        self._task: asyncio.Task[None] | None = None
        self._reported: tuple[int, tuple[str, ...], tuple[str, ...]] | None = None
        self._incomplete = False
        """Values were left out because the secret key could not be had: load again."""

    async def start(self) -> None:
        """Load the settings, then follow their version (the process's startup). Says so
        when stored secrets can be neither sealed nor opened here: a shared store without
        ``OMNICHANNEL_SECRET_KEY``."""
        problem = self.values.key_problem()
        if problem is not None:
            log.warning("secret_key_unavailable", detail=problem)
        await self.load()
        self._task = asyncio.create_task(self._follow(), name="settings.refresh")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def load(self) -> Settings:
        """The settings as stored now, taken in."""
        settings = await self.store.get()
        await self.take(settings)
        return settings

    async def fresh(self) -> Settings:
        """The settings as stored now: reloaded when their version moved since this process
        last looked (one read of the version when it did not)."""
        if self._settings is None or await self.store.version() != self._settings.version:
            return await self.load()
        return self._settings

    async def current(self) -> Settings:
        """The settings as this process last loaded them (loaded now, the first time)."""
        if self._settings is None:
            return await self.load()
        return self._settings

    async def business(self) -> Business:
        """The business the settings describe, as this process last loaded them."""
        if self._business is None:
            await self.load()
        assert self._business is not None
        return self._business

    async def take(self, settings: Settings) -> None:
        """Hold ``settings`` (unless this process holds a newer version already) and hand
        their channel values to the channels."""
        self.hold(settings, await self.values.by_name())

    def hold(self, settings: Settings, declared: Mapping[str, Setting]) -> None:
        """:meth:`take` once the declared variables are known: nothing is held unless all
        of it went through (a failure leaves the version held before, loaded again next
        time)."""
        held = self._settings
        if held is not None and settings.version < held.version:
            return
        business = settings.business()
        opened = self.values.open_all(settings.channel_values, declared)
        self.stored_settings.replace(opened.values, settings.version)
        self._settings, self._business = settings, business
        self._incomplete = opened.key_problem is not None
        if held is None or settings.version != held.version:
            log.info(
                "settings_loaded",
                version=settings.version,
                stored=sorted(opened.values),  # names only: values may be secrets
                pid=os.getpid(),
            )
        reported = (settings.version, opened.unreadable, opened.ignored)
        if opened.unreadable and self._reported != reported:
            log.warning(
                "stored_secrets_unreadable",
                names=list(opened.unreadable),
                version=settings.version,
                detail=opened.key_problem
                or "sealed with a key OMNICHANNEL_SECRET_KEY no longer holds, altered, or a"
                " secret stored unsealed: left out; put the key back, run omnichannel"
                " settings rotate-key, or store the values again",
            )
        if opened.ignored and self._reported != reported:
            log.warning(
                "stored_values_ignored",
                names=list(opened.ignored),
                version=settings.version,
                detail="these variables are set in the environment only (where a channel"
                " connects): the stored values are not used; remove them",
            )
        self._reported = reported

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                version = await self.store.version()
                if self._settings is None or version != self._settings.version or self._incomplete:
                    await self.load()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be down a while: try again next time
                log.exception("settings_refresh_failed")
