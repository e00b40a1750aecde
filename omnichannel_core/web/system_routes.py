"""What the server says about itself: ``/``, ``/health``, ``/api/plugins``.

``/`` and ``/health`` answer ``HEAD`` too (same status, no body), for load balancers.
"""

from __future__ import annotations

import asyncio

import falcon
import falcon.asgi
import structlog

from omnichannel_core import __version__
from omnichannel_core.access.policy import Permission
from omnichannel_core.inbox import Inbox
from omnichannel_core.plugins import LoadedPlugins
from omnichannel_core.serialization import to_json

log = structlog.get_logger("omnichannel.health")


class Root:
    """``GET /``: the system's name, version and channels. ``HEAD /``: 200, no body."""

    public_methods = frozenset({"GET", "HEAD"})

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {
            "name": "omnichannel",
            "version": __version__,
            "channels": self.inbox.dispatcher.channels,
            "docs": "/api/openapi.json",
        }

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.status = 200


class Health:
    """``GET /health``: the store and each channel; 503 when the store does not answer.
    ``HEAD /health``: the same status, no body.

    The store and the channels are asked at once, each with its own time limit, so one slow
    channel delays the answer by at most ``inbox.HEALTH_TIMEOUT_SECONDS``.
    """

    public_methods = frozenset({"GET", "HEAD"})

    def __init__(self, inbox: Inbox, plugins: LoadedPlugins) -> None:
        self.inbox = inbox
        self.plugins = plugins

    async def _store_report(self) -> dict:
        try:
            return {"ok": True, **await asyncio.wait_for(self.inbox.store.ping(), timeout=5)}
        except Exception as error:
            log.exception("store_health_failed")
            return {"ok": False, "detail": f"store did not answer: {type(error).__name__}"}

    async def _channel_report(self, channel: str) -> dict:
        if not self.inbox.dispatcher.implements(channel, "health"):
            return {"ok": True, "detail": "no health hook", "checks": {}}
        return to_json(await self.inbox.channel_health(channel))

    async def report(self) -> tuple[int, dict]:
        """The status code and the body of the answer."""
        names = self.inbox.dispatcher.channels
        store, *reports = await asyncio.gather(
            self._store_report(), *(self._channel_report(name) for name in names)
        )
        channels = dict(zip(names, reports, strict=True))
        failed = [failure.name for failure in self.plugins.failures]
        if not store["ok"]:
            status = "down"
        elif failed or not all(report["ok"] for report in channels.values()):
            status = "degraded"
        else:
            status = "ok"
        body = {
            "status": status,
            "version": __version__,
            "store": store,
            "channels": channels,
            "failed_plugins": failed,
        }
        return (503 if status == "down" else 200), body

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.status, resp.media = await self.report()

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.status, _ = await self.report()


class Plugins:
    """``GET /api/plugins``: every plugin with its distribution, version and hooks."""

    permissions = {"GET": Permission.PLUGINS_READ}

    def __init__(self, plugins: LoadedPlugins) -> None:
        self.plugins = plugins

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = plugins_report(self.plugins)


def plugins_report(plugins: LoadedPlugins) -> dict:
    return {
        "items": to_json(plugins.info),
        "failed": to_json(plugins.failures),
        "disabled": list(plugins.disabled),
    }
