"""Per-channel dispatch: a hook runs only for its own channel (plus wrappers), sync hooks
in a worker thread, coroutine hooks on the loop, and a slow sync hook never stalls the
server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichannel_core import hookimpl
from omnichannel_core.dispatch import ChannelDispatcher
from omnichannel_core.errors import HookNotImplemented, NotFound
from omnichannel_core.hooktypes import ChannelHealth, OutboundMessage, SendResult
from omnichannel_core.plugins import load_plugins
from tests.fixtures.distributions import install_distributions
from tests.support.server import ServerProcess, running_server

SLOW_SECONDS = 2.0


class RecordingChannel:
    """A channel whose hooks record the thread they ran on and what they were given."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sends: list[tuple[str, str]] = []
        self.threads: dict[str, int] = {}

    @hookimpl
    def send(self, channel: str, message: OutboundMessage) -> SendResult:
        self.sends.append((channel, message.id))
        self.threads["send"] = threading.get_ident()
        return SendResult(provider_message_id=f"{self.name}-{message.id}")

    @hookimpl
    async def health(self) -> ChannelHealth:
        asyncio.get_running_loop()  # raises unless it runs on the loop
        self.threads["health"] = threading.get_ident()
        return ChannelHealth(ok=True, detail=self.name)


class CallCounter:
    """A cross-cutting plugin whose send wrapper counts calls per channel."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl(wrapper=True)
    def send(self, channel: str):
        self.calls.append(channel)
        return (yield)


def _outbound(message_id: str) -> OutboundMessage:
    return OutboundMessage(id=message_id, conversation_id="c1", to="someone", text="hi")


@pytest.fixture
def two_channels() -> tuple[ChannelDispatcher, RecordingChannel, RecordingChannel]:
    alpha, beta = RecordingChannel("alpha"), RecordingChannel("beta")
    plugins = load_plugins(None, extra=[("alpha", alpha), ("beta", beta)])
    return ChannelDispatcher(plugins), alpha, beta


def test_send_runs_only_the_named_channel(two_channels):
    """Calling send for alpha runs alpha's implementation and never beta's, and vice versa."""
    dispatcher, alpha, beta = two_channels
    result = asyncio.run(dispatcher.call("alpha", "send", message=_outbound("m1"), config=None))
    assert result == SendResult(provider_message_id="alpha-m1")
    assert alpha.sends == [("alpha", "m1")]
    assert beta.sends == []
    asyncio.run(dispatcher.call("beta", "send", message=_outbound("m2"), config=None))
    assert alpha.sends == [("alpha", "m1")]
    assert beta.sends == [("beta", "m2")]


def test_wrapper_runs_for_each_channel_once(two_channels):
    """A cross-cutting wrapper registered beside the channels runs once per call, with the
    name of the channel it wraps."""
    dispatcher, alpha, _ = two_channels
    counter = CallCounter()
    dispatcher.manager.register(counter, name="counter")
    dispatcher = ChannelDispatcher(dispatcher.plugins)  # fresh hook callers
    asyncio.run(dispatcher.call("alpha", "send", message=_outbound("m1"), config=None))
    asyncio.run(dispatcher.call("beta", "send", message=_outbound("m2"), config=None))
    assert counter.calls == ["alpha", "beta"]
    assert alpha.sends == [("alpha", "m1")]


def test_sync_hook_runs_in_a_thread_and_async_on_the_loop(two_channels):
    """A plain-function hook runs off the event loop's thread; a coroutine hook runs on it."""
    dispatcher, alpha, _ = two_channels

    async def scenario() -> int:
        await dispatcher.call("alpha", "send", message=_outbound("m1"), config=None)
        await dispatcher.call("alpha", "health", config=None)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert alpha.threads["health"] == loop_thread
    assert alpha.threads["send"] != loop_thread


def test_unknown_channel_and_missing_hook(two_channels):
    """An unknown channel raises NotFound; a hook the channel lacks raises HookNotImplemented
    naming both, even when a cross-cutting wrapper exists for that hook."""
    dispatcher, _, _ = two_channels
    with pytest.raises(NotFound):
        asyncio.run(dispatcher.call("gamma", "send", message=_outbound("m1"), config=None))
    with pytest.raises(HookNotImplemented) as missing:
        asyncio.run(dispatcher.call("alpha", "receive", request=None, config=None))
    assert (missing.value.channel, missing.value.hook) == ("alpha", "receive")


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A single-worker real server with the pip-installed ``slow`` channel."""
    root = tmp_path_factory.mktemp("slow")
    site = install_distributions(root / "packages", "slow")
    env = {
        "PYTHONPATH": str(site),
        "SLOW_SECONDS": str(SLOW_SECONDS),
        "SLOW_STARTED_FILE": str(root / "slow-started"),
    }
    with running_server(root / "server", env, workers=1) as server:
        yield server


def test_slow_sync_hook_does_not_stall_health(slow_server):
    """While a sync receive sleeps 2 s in the only worker, GET /health still answers in well
    under a second, and the slow webhook then completes and is stored."""
    started = Path(slow_server.env["SLOW_STARTED_FILE"])
    outcome: dict[str, object] = {}

    def post_slow_webhook() -> None:
        begun = time.monotonic()
        with httpx.Client(base_url=slow_server.base_url, timeout=30) as client:
            outcome["response"] = client.post("/api/channels/slow/webhook", content=b"slow-1")
        outcome["seconds"] = time.monotonic() - begun

    poster = threading.Thread(target=post_slow_webhook)
    poster.start()
    try:
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.exists(), "the slow receive never started"
        begun = time.monotonic()
        health = slow_server.client(None).get("/health", timeout=5)
        health_seconds = time.monotonic() - begun
    finally:
        poster.join(timeout=30)
    assert health.status_code == 200
    assert health_seconds < 1.0
    assert outcome["response"].status_code == 200
    assert outcome["seconds"] >= SLOW_SECONDS
    conversations = slow_server.client().get("/api/conversations").json()["items"]
    assert [c["address"] for c in conversations] == ["slow-sender"]
