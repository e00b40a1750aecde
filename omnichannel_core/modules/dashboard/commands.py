"""``omnichannel dashboard rebuild``: count every figure again from the store."""

from __future__ import annotations

import argparse
import asyncio
import time

from omnichannel_core.module import Command, ModuleContext
from omnichannel_core.modules.dashboard.rollups import SUBSCRIBER

POLL_SECONDS = 1.0
NOTICE_SECONDS = 15.0
"""How long the command waits before saying no job runner has begun the rebuild yet."""


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="give up waiting after this many seconds (the rebuild goes on; default 3600)",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="ask for the rebuild and return at once"
    )


def rebuild_command(context: ModuleContext) -> Command:
    async def run(args: argparse.Namespace) -> int:
        if await context.subscriber_state(SUBSCRIBER) is None:
            print(
                "no server has run the dashboard yet: it builds itself from the store when"
                " the first one starts"
            )
            return 0
        asked = await context.resync(SUBSCRIBER)
        print("rebuild asked: the job runner that counts the dashboard starts it within seconds")
        if args.no_wait:
            return 0
        started, noticed = time.monotonic(), False
        while time.monotonic() - started < args.timeout:
            state = await context.subscriber_state(SUBSCRIBER)
            if state is not None and state.resynced >= asked:
                print("rebuilt: every figure was counted again from the store")
                return 0
            if not noticed and time.monotonic() - started > NOTICE_SECONDS:
                noticed = True
                print(
                    "still waiting: is a server (or `omnichannel worker`) running against this"
                    " store? Its job runner does the rebuild."
                )
            await asyncio.sleep(POLL_SECONDS)
        print("gave up waiting; the rebuild goes on when a job runner takes it")
        return 1

    return Command(
        "dashboard",
        "rebuild",
        "count the dashboard's figures again from the store",
        run,
        _arguments,
        description="Ask the job runner to count every figure of the dashboard again from the"
        " store (the conversations' messages and history), and wait until it is done: after"
        " restoring a backup, or when figures are in doubt. Figures read meanwhile are"
        " partial. Events arriving during the rebuild are counted once, after it.",
        group_help="the dashboard's figures",
    )
