"""``/api/dashboard``: the queue now, and a period's figures (docs/dashboard.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import falcon
import falcon.asgi

from omnichannel_core.module import (
    InvalidInput,
    ModuleContext,
    Operation,
    Response,
    Route,
    to_json,
    utcnow,
)
from omnichannel_core.modules.dashboard.now import REFRESH_SECONDS, now_view
from omnichannel_core.modules.dashboard.permissions import REPORTS_READ
from omnichannel_core.modules.dashboard.records import Interval
from omnichannel_core.modules.dashboard.report import Period, report
from omnichannel_core.modules.dashboard.store import DashboardStore
from omnichannel_core.modules.dashboard.views import Now, Report, ReportQuery

TAGS = ("dashboard",)
USERS_READ = "users:read"
"""Access control's permission to read users: agents' names are shown only with it (a
read-scoped API key has none)."""
MAX_DAYS = {Interval.HOUR: 31, Interval.DAY: 366}
"""The longest period a report covers, per interval (744 hours; a year of days)."""
DEFAULT_DAYS = 7
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9999, 12, 30)
"""The days a report may name: a day more inside the calendar's ends, so that its bounds in
any time zone are still dates."""

Business = Callable[[], Awaitable[tuple[ZoneInfo, timedelta]]]
"""The business's zone and first response target, as the settings say now."""


class DashboardNow:
    """``GET /api/dashboard``."""

    operations = {
        "GET": Operation(
            "The queue now: conversations open and waiting, agents online, recent messages,"
            " the outbox and the campaigns under way",
            permission=REPORTS_READ,
            responses={200: Response(Now, "The queue as it is now.")},
            notes=f"Poll it every `refresh_seconds` ({REFRESH_SECONDS}), or sooner on a"
            " `message.created` or `conversation.updated` event of the stream: each figure is"
            " one read of a count kept for it. Agents' `name` is null for a caller without"
            " `users:read`. docs/dashboard.md defines each.",
            operation_id="getDashboard",
            tags=TAGS,
        )
    }

    def __init__(self, store: DashboardStore, context: ModuleContext) -> None:
        self.store = store
        self.context = context

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        names = USERS_READ in req.context.principal.permissions
        resp.media = to_json(await now_view(self.store, self.context, utcnow(), names))
        resp.cache_control = ["no-store"]


class DashboardReport:
    """``GET /api/dashboard/report``."""

    operations = {
        "GET": Operation(
            "A period's figures, by hour or day of the business's zone, in total, per channel"
            " and per agent",
            permission=REPORTS_READ,
            query=ReportQuery,
            responses={200: Response(Report, "The period's figures.")},
            notes="Days are the business's (its settings' time zone); `end` is included. At"
            f" most {MAX_DAYS[Interval.HOUR]} days by hour, {MAX_DAYS[Interval.DAY]} by day."
            " Counted from rollups an event subscriber keeps, so a call costs the buckets"
            " read, not the messages; a figure lags the event log by its subscriber's lag"
            " (`/health`). docs/dashboard.md defines each figure.",
            operation_id="getDashboardReport",
            tags=TAGS,
        )
    }

    def __init__(self, store: DashboardStore, business: Business) -> None:
        self.store = store
        self.business = business

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: ReportQuery = req.context.query
        zone, sla = await self.business()
        now = utcnow()
        period = period_of(query, now.astimezone(zone).date())
        resp.media = to_json(await report(self.store, period, zone, sla, now))


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: not a date like 2026-01-31", parameter=name) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{name}: a day from {FIRST_DAY} to {LAST_DAY}", parameter=name)
    return day


def period_of(query: ReportQuery, today: date) -> Period:
    """The period a query asks for (defaults: the week to today); InvalidInput for one
    that ends before it starts or is longer than its interval allows."""
    last = _day(query.end, "end") or today
    first = _day(query.start, "start") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidInput("start: after end", parameter="start")
    longest = MAX_DAYS[query.interval]
    if (last - first).days + 1 > longest:
        raise InvalidInput(
            f"the period is longer than {longest} days by {query.interval}", parameter="start"
        )
    return Period(first, last, query.interval, query.channel, query.agent)


def dashboard_routes(
    store: DashboardStore, context: ModuleContext, business: Business
) -> list[Route]:
    return [
        Route("/api/dashboard", DashboardNow(store, context)),
        Route("/api/dashboard/report", DashboardReport(store, business)),
    ]
