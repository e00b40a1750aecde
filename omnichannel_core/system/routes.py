"""What the server says about itself: ``/``, ``/health``, ``/api/plugins`` and
``/api/openapi.json``.

``/`` and ``/health`` answer ``HEAD`` too (same status, no body), for load balancers.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import attrs
import falcon
import falcon.asgi
import structlog

from omnichannel_core import __version__
from omnichannel_core.errors import EventsExpired, HookNotImplemented
from omnichannel_core.hooktypes import ChannelHealth
from omnichannel_core.jobs.specs import Job, JobReport
from omnichannel_core.plugins.loading import PluginFailure, PluginInfo
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.routes import Operation, Response
from omnichannel_core.serialization import to_json
from omnichannel_core.timestamps import utcnow
from omnichannel_core.web.openapi import openapi_document

log = structlog.get_logger("omnichannel.health")

PLUGINS_READ = "plugins:read"
STORE_TIMEOUT_SECONDS = 5.0


@attrs.frozen
class RootInfo:
    """The system's name, version and channels."""

    name: str
    version: str
    channels: list[str]
    docs: str


@attrs.frozen
class SubscriberHealth:
    """Where an event subscriber is.

    ``lag_seconds``: how old the oldest event it has yet to handle is (0: none waiting);
    ``failures``: its handler's failures in a row on that event; ``behind``: retention
    pruned events it had not read (it resynchronises when it runs); ``resyncing``: a resync
    was asked for (a subscriber that starts with one, or a rebuild asked by a command), which
    degrades nothing; ``started``: it has its cursor, which every process gives a new
    subscriber as it starts, before any runner runs it.
    """

    ok: bool
    started: bool
    lag_seconds: float
    failures: int
    behind: bool
    resyncing: bool = False


@attrs.frozen
class JobHealth:
    """A singleton job: whether a runner holds it now, and when it last finished a run
    (None for a job every runner runs); a job with a ``health`` function: its ``report``
    (``ok``, ``detail``, ``figures``), which degrades the server when not ok."""

    running: bool | None
    last_run_at: datetime | None
    report: JobReport | None = None


@attrs.frozen
class HealthReport:
    """The store, each channel, each event subscriber and job; ``degraded`` when a channel,
    a plugin or a subscriber is not well, ``down`` when the store does not answer."""

    status: str
    version: str
    store: dict[str, Any]
    channels: dict[str, ChannelHealth]
    failed_plugins: list[str]
    subscribers: dict[str, SubscriberHealth]
    jobs: dict[str, JobHealth]


@attrs.frozen
class PluginsReport:
    """Every plugin, those that failed to load and those disabled."""

    items: list[PluginInfo]
    failed: list[PluginFailure]
    disabled: list[str]


class Root:
    """``GET /``: the system's name, version and channels. ``HEAD /``: 200, no body."""

    operations = {
        "GET": Operation(
            "Name the system, its version and channels",
            public=True,
            operation_id="getRoot",
            tags=("system",),
            responses={200: Response(RootInfo, "The system.")},
        ),
        "HEAD": Operation(
            "Answer 200 with no body, for load balancers",
            public=True,
            operation_id="headRoot",
            tags=("system",),
            responses={200: Response(None, "The server is up.")},
        ),
    }

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        info = RootInfo(
            "omnichannel", __version__, self.registry.channels.names, "/api/openapi.json"
        )
        resp.media = to_json(info)

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.status = 200


class Health:
    """``GET /health``: the store, each channel, each subscriber and singleton job; 503
    when the store does not answer. ``HEAD /health``: the same status, no body.

    The store and the channels are asked at once, each with its own time limit, so one slow
    channel delays the answer by at most the channels' health timeout.
    """

    operations = {
        "GET": Operation(
            "Report on the store, each channel, subscriber and job",
            public=True,
            operation_id="getHealth",
            tags=("system",),
            responses={
                200: Response(HealthReport, "Up: `ok`, or `degraded` when something is not."),
                503: Response(HealthReport, "Down: the store does not answer."),
            },
        ),
        "HEAD": Operation(
            "The status GET /health would answer, with no body",
            public=True,
            operation_id="headHealth",
            tags=("system",),
            responses={
                200: Response(None, "Up: `ok` or `degraded`."),
                503: Response(None, "Down: the store does not answer."),
            },
        ),
    }

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def _store_report(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                facts = await self.registry.database.ping()
            return {"ok": True, **facts}
        except Exception as error:
            log.exception("store_health_failed")
            return {"ok": False, "detail": f"store did not answer: {type(error).__name__}"}

    async def _channel_report(self, channel: str) -> ChannelHealth:
        try:
            return await self.registry.channels.health(channel, config=self.registry.config)
        except HookNotImplemented:
            return ChannelHealth(ok=True, detail="no health hook")

    async def _subscribers(self) -> dict[str, SubscriberHealth]:
        registered = self.registry.subscribers
        if not registered:
            return {}
        states = {state.name: state for state in await self.registry.job_store.subscribers()}
        report = {}
        now = utcnow()
        for subscriber in registered:
            state = states.get(subscriber.name)
            behind = state is not None and state.behind
            lag = 0.0
            if state is not None and not behind:
                try:
                    waiting = await self.registry.event_log.after(state.cursor, 1)
                except EventsExpired:
                    behind, waiting = True, []
                if waiting:
                    lag = max(0.0, (now - waiting[0].at).total_seconds())
            failures = state.failures if state is not None else 0
            report[subscriber.name] = SubscriberHealth(
                ok=not behind and failures == 0,
                started=state is not None,
                lag_seconds=round(lag, 3),
                failures=failures,
                behind=behind,
                resyncing=state is not None and state.resync,
            )
        return report

    async def _jobs(self) -> dict[str, JobHealth]:
        shown = sorted(
            (job for job in self.registry.jobs if job.singleton or job.health is not None),
            key=lambda job: job.name,
        )
        if not shown:
            return {}
        leases = {lease.name: lease for lease in await self.registry.job_store.leases()}
        now = utcnow()
        reports = await asyncio.gather(*(self._job_report(job) for job in shown))
        return {
            job.name: JobHealth(
                running=(job.name in leases and leases[job.name].expires_at > now)
                if job.singleton
                else None,
                last_run_at=leases[job.name].last_run_at if job.name in leases else None,
                report=report,
            )
            for job, report in zip(shown, reports, strict=True)
        }

    async def _job_report(self, job: Job) -> JobReport | None:
        if job.health is None:
            return None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                return await job.health()
        except Exception as error:
            log.exception("job_health_failed", job=job.name)
            return JobReport(ok=False, detail=f"no report: {type(error).__name__}")

    async def report(self) -> tuple[int, HealthReport]:
        """The status code and the body of the answer."""
        names = self.registry.channels.names
        store, *channels = await asyncio.gather(
            self._store_report(), *(self._channel_report(name) for name in names)
        )
        subscribers: dict[str, SubscriberHealth] = {}
        jobs: dict[str, JobHealth] = {}
        if store["ok"]:
            try:
                subscribers, jobs = await asyncio.gather(self._subscribers(), self._jobs())
            except Exception:
                log.exception("job_health_failed")
        failed = [failure.name for failure in self.registry.plugins.failures]
        if not store["ok"]:
            status = "down"
        elif (
            failed
            or not all(report.ok for report in channels)
            or not all(report.ok for report in subscribers.values())
            or not all(job.report.ok for job in jobs.values() if job.report is not None)
        ):
            status = "degraded"
        else:
            status = "ok"
        body = HealthReport(
            status=status,
            version=__version__,
            store=store,
            channels=dict(zip(names, channels, strict=True)),
            failed_plugins=failed,
            subscribers=subscribers,
            jobs=jobs,
        )
        return (503 if status == "down" else 200), body

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        status, body = await self.report()
        resp.status = status
        resp.media = to_json(body)

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.status, _ = await self.report()


class Plugins:
    """``GET /api/plugins``: every plugin with its distribution, version and hooks."""

    operations = {
        "GET": Operation(
            "List plugins, failed plugins and disabled plugins",
            permission=PLUGINS_READ,
            operation_id="listPlugins",
            tags=("system",),
            responses={200: Response(PluginsReport, "Every plugin.")},
        )
    }

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = to_json(plugins_report(self.registry))


def plugins_report(registry: Registry) -> PluginsReport:
    plugins = registry.plugins
    return PluginsReport(list(plugins.info), list(plugins.failures), list(plugins.disabled))


class OpenApiDocument:
    """``GET /api/openapi.json``: the document, built from every registered route on the
    first request (every plugin has registered by then)."""

    operations = {
        "GET": Operation(
            "This document",
            public=True,
            operation_id="getOpenApi",
            tags=("system",),
            responses={200: Response(None, "The OpenAPI 3.1 document.", schema={"type": "object"})},
        )
    }

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            routes = [route for _, route in self.registry.routes]
            self._document = openapi_document(routes, self.registry.policy)
        return self._document

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.document()
