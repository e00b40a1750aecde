"""What the server says about itself: ``/``, ``/health``, ``/api/plugins``."""

from __future__ import annotations

import asyncio

import falcon
import falcon.asgi
import structlog

from omnichannel_core import __version__
from omnichannel_core.inbox import Inbox
from omnichannel_core.plugins import LoadedPlugins
from omnichannel_core.serialization import to_json

log = structlog.get_logger("omnichannel.health")


class Root:
    """``GET /``: the system's name, version and channels."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {
            "name": "omnichannel",
            "version": __version__,
            "channels": self.inbox.dispatcher.channels,
            "docs": "/api/openapi.json",
        }


class Health:
    """``GET /health``: the store and each channel; 503 when the store does not answer."""

    def __init__(self, inbox: Inbox, plugins: LoadedPlugins) -> None:
        self.inbox = inbox
        self.plugins = plugins

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            store = {"ok": True, **await asyncio.wait_for(self.inbox.store.ping(), timeout=5)}
        except Exception as error:
            log.exception("store_health_failed")
            store = {"ok": False, "detail": f"store did not answer: {type(error).__name__}"}
        channels = {}
        for channel in self.inbox.dispatcher.channels:
            if self.inbox.dispatcher.implements(channel, "health"):
                channels[channel] = to_json(await self.inbox.channel_health(channel))
            else:
                channels[channel] = {"ok": True, "detail": "no health hook", "checks": {}}
        failed = [failure.name for failure in self.plugins.failures]
        if not store["ok"]:
            status = "down"
        elif failed or not all(report["ok"] for report in channels.values()):
            status = "degraded"
        else:
            status = "ok"
        resp.status = 503 if status == "down" else 200
        resp.media = {
            "status": status,
            "version": __version__,
            "store": store,
            "channels": channels,
            "failed_plugins": failed,
        }


class Plugins:
    """``GET /api/plugins``: every plugin with its distribution, version and hooks."""

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
