"""What a plugin's ModuleContext gives it, beyond the hooks' own tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from falcon import testing
from structlog.testing import capture_logs

from omnichannel_core.channel import InboundMessage, WebhookResult
from omnichannel_core.module import Job, JobControl, ModuleContext, Route, hookimpl
from omnichannel_core.testing import AUTH, run_app


class Chatty:
    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        context.log.info("chatty_started", routes=0)
        return []


def test_a_plugins_log_lines_name_the_plugin(tmp_path):
    """Every line a plugin logs through ``context.log`` carries ``plugin``: its name."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        pass

    with capture_logs() as logs:
        run_app(tmp_path, {}, scenario, modules={"chatty": Chatty()})
    [line] = [entry for entry in logs if entry["event"] == "chatty_started"]
    assert line["plugin"] == "chatty"
    assert line["routes"] == 0


class Poller:
    """A channel (or a module) whose job stores a message through ``context.channel_inbox()``,
    as the email channel's IMAP job does."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        async def take(control: JobControl) -> None:
            try:
                inbox = context.channel_inbox()
            except LookupError as error:
                self.refused.append(str(error))
                return
            message = InboundMessage("polled-1", "someone@example.org", text="from a job")
            await inbox.receive(WebhookResult(messages=(message,)))

        return [Job(f"{context.owner}.take", take, every=timedelta(hours=1))]


def test_a_channels_job_stores_through_its_own_channel_inbox(tmp_path):
    """``context.channel_inbox()`` gives a channel its own ChannelInbox (what its job takes
    is stored as the channel's inbound message); a module that is not a channel gets
    LookupError."""
    channel, module = Poller(), Poller()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for _ in range(200):
            listed = await conductor.simulate_get(
                "/api/conversations", params={"channel": "poller"}, headers=AUTH
            )
            if listed.json["items"] and module.refused:
                break
            await asyncio.sleep(0.05)
        [conversation] = listed.json["items"]
        assert conversation["address"] == "someone@example.org"
        assert module.refused == ["notachannel is not a channel: only a channel has an inbox"]

    run_app(
        tmp_path,
        {"poller": channel},
        scenario,
        modules={"notachannel": module},
        jobs=True,
    )
    assert channel.refused == []
