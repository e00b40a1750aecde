"""Per-channel dispatch: a hook runs only for its own channel (plus wrappers), sync hooks
in the channel's own thread pool, coroutine hooks on the loop, and slow sync hooks never
stall the server nor starve another channel."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.errors import HookNotImplemented, NotFound
from omnichannel_core.hooktypes import ChannelHealth, OutboundMessage, SendResult
from omnichannel_core.plugins import channels as channels_module
from omnichannel_core.plugins.dispatch import ChannelDispatcher
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import install_distributions

SLOW_SECONDS = 2.0
SLOW_CALLS = 12  # more than asyncio's default executor has threads on a small machine


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
    result = asyncio.run(
        dispatcher.call("alpha", "send", message=_outbound("m1"), config=None, inbox=None)
    )
    assert result == SendResult(provider_message_id="alpha-m1")
    assert alpha.sends == [("alpha", "m1")]
    assert beta.sends == []
    asyncio.run(dispatcher.call("beta", "send", message=_outbound("m2"), config=None, inbox=None))
    assert alpha.sends == [("alpha", "m1")]
    assert beta.sends == [("beta", "m2")]


def test_wrapper_runs_for_each_channel_once(two_channels):
    """A cross-cutting wrapper registered beside the channels runs once per call, with the
    name of the channel it wraps."""
    dispatcher, alpha, _ = two_channels
    counter = CallCounter()
    dispatcher.manager.register(counter, name="counter")
    dispatcher = ChannelDispatcher(dispatcher.plugins)  # fresh hook callers
    asyncio.run(dispatcher.call("alpha", "send", message=_outbound("m1"), config=None, inbox=None))
    asyncio.run(dispatcher.call("beta", "send", message=_outbound("m2"), config=None, inbox=None))
    assert counter.calls == ["alpha", "beta"]
    assert alpha.sends == [("alpha", "m1")]


def test_sync_hook_runs_in_a_thread_and_async_on_the_loop(two_channels):
    """A plain-function hook runs off the event loop's thread; a coroutine hook runs on it."""
    dispatcher, alpha, _ = two_channels

    async def scenario() -> int:
        await dispatcher.call("alpha", "send", message=_outbound("m1"), config=None, inbox=None)
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
        asyncio.run(
            dispatcher.call("gamma", "send", message=_outbound("m1"), config=None, inbox=None)
        )
    with pytest.raises(HookNotImplemented) as missing:
        asyncio.run(dispatcher.call("alpha", "receive", request=None, config=None))
    assert (missing.value.channel, missing.value.hook) == ("alpha", "receive")


REQUEST_MARK: contextvars.ContextVar[str] = contextvars.ContextVar("request_mark")


class ThreadReporter:
    """A channel whose sync send reports its thread's name and what the caller's context
    held."""

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        seen = f"{threading.current_thread().name}|{REQUEST_MARK.get('unset')}"
        return SendResult(provider_message_id=seen)


def test_each_channel_runs_sync_hooks_in_its_own_pool():
    """A sync hook runs in its channel's own pool (threads named ``hook-<channel>``), not in
    asyncio's default executor, and sees the caller's context variables (request id and
    channel bound for the logs); shutdown stops the pools."""
    plugins = load_plugins(None, extra=[("alpha", ThreadReporter()), ("beta", ThreadReporter())])
    dispatcher = ChannelDispatcher(plugins, threads_per_channel=2)

    async def scenario() -> list[str]:
        REQUEST_MARK.set("request-7")
        return [
            (
                await dispatcher.call(
                    name, "send", message=_outbound("m1"), config=None, inbox=None
                )
            ).provider_message_id
            for name in ("alpha", "beta", "alpha")
        ]

    alpha, beta, alpha_again = asyncio.run(scenario())
    assert alpha.startswith("hook-alpha") and alpha.endswith("|request-7")
    assert beta.startswith("hook-beta") and beta.endswith("|request-7")
    assert alpha_again.startswith("hook-alpha")
    pool = dispatcher.thread_pool("alpha")
    assert pool is dispatcher.thread_pool("alpha")
    assert pool is not dispatcher.thread_pool("beta")
    dispatcher.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(print)


class HangingHealth:
    """A channel whose sync health blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def health(self) -> ChannelHealth:
        self.release.wait(timeout=10)
        return ChannelHealth(ok=True, detail="late")


class PromptHealth:
    @hookimpl
    def health(self) -> ChannelHealth:
        return ChannelHealth(ok=True, detail="prompt")


def test_health_times_out_a_hanging_channel(tmp_path, monkeypatch):
    """GET /health asks the channels at once, each under a time limit: a channel whose health
    hangs is reported ok=false 'health check timed out' (its own route answers 503) while
    the others report normally."""
    monkeypatch.setattr(channels_module, "HEALTH_TIMEOUT_SECONDS", 0.2)
    hanging = HangingHealth()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        health = (await conductor.simulate_get("/health")).json
        assert health["status"] == "degraded"
        assert health["channels"]["hanging"] == {
            "ok": False,
            "detail": "health check timed out",
            "checks": {},
        }
        assert health["channels"]["prompt"]["detail"] == "prompt"
        own = await conductor.simulate_get("/api/channels/hanging/health", headers=AUTH)
        assert (own.status_code, own.json["detail"]) == (503, "health check timed out")
        head = await conductor.simulate_head("/health")
        assert (head.status_code, head.content) == (200, b"")

    try:
        run_app(tmp_path, {"hanging": hanging, "prompt": PromptHealth()}, scenario)
    finally:
        hanging.release.set()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A single-worker real server with the pip-installed ``slow`` and ``quick`` channels."""
    root = tmp_path_factory.mktemp("slow")
    site = install_distributions(root / "packages", "slow")
    started = root / "slow-started"
    started.mkdir()
    env = {
        "PYTHONPATH": str(site),
        "SLOW_SECONDS": str(SLOW_SECONDS),
        "SLOW_STARTED_DIR": str(started),
    }
    with running_server(root / "server", env, workers=1) as server:
        yield server


def _post_timed(server: ServerProcess, channel: str, body: str) -> tuple[httpx.Response, float]:
    begun = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.post(f"/api/channels/{channel}/webhook", content=body.encode())
    return response, time.monotonic() - begun


@pytest.mark.alone  # answers within a second while twelve hooks sleep
def test_slow_sync_hooks_do_not_stall_health_or_other_channels(slow_server):
    """Twelve webhooks whose sync receive sleeps 2 s, in the only worker (more than asyncio's
    default executor has threads), all sleep at once in the slow channel's own thread pool;
    meanwhile GET /health and HEAD /health answer in well under a second and the sync
    receive of another channel (quick) is not starved; then every slow webhook completes
    and is stored."""
    started_dir = Path(slow_server.env["SLOW_STARTED_DIR"])
    ids = [f"slow-{number}" for number in range(SLOW_CALLS)]
    with ThreadPoolExecutor(max_workers=SLOW_CALLS) as posters:
        slow_calls = [posters.submit(_post_timed, slow_server, "slow", body) for body in ids]
        deadline = time.monotonic() + 10
        while len(list(started_dir.iterdir())) < SLOW_CALLS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(list(started_dir.iterdir())) == SLOW_CALLS, "not every slow receive began"

        with slow_server.client(None) as client:
            begun = time.monotonic()
            health = client.get("/health", timeout=5)
            health_seconds = time.monotonic() - begun
            begun = time.monotonic()
            head = client.head("/health", timeout=5)
            head_seconds = time.monotonic() - begun
        quick, quick_seconds = _post_timed(slow_server, "quick", "quick-1")
        still_sleeping = sum(not call.done() for call in slow_calls)
        outcomes = [call.result(timeout=30) for call in slow_calls]

    assert still_sleeping == SLOW_CALLS  # the checks above ran while every call slept
    assert (health.status_code, head.status_code) == (200, 200)
    assert health.json()["channels"]["slow"]["detail"] == "no health hook"
    assert health_seconds < 1.0
    assert head_seconds < 1.0
    assert quick.status_code == 200
    assert quick_seconds < 1.0
    starts = [float((started_dir / message_id).read_text()) for message_id in ids]
    assert max(starts) - min(starts) < SLOW_SECONDS  # all at once, not six, then six
    assert all(response.status_code == 200 for response, _ in outcomes)
    assert all(seconds >= SLOW_SECONDS for _, seconds in outcomes)

    client = slow_server.client()
    conversations = client.get("/api/conversations").json()["items"]
    by_address = {c["address"]: c for c in conversations}
    assert set(by_address) == {"slow-sender", "quick-sender"}
    slow_messages = client.get(
        f"/api/conversations/{by_address['slow-sender']['id']}/messages", params={"limit": 50}
    ).json()["items"]
    assert sorted(m["provider_message_id"] for m in slow_messages) == sorted(ids)


class BlockingChannel:
    """A channel whose sync send holds its thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[str] = []

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        self.release.wait(10)
        self.sent.append(message.id)
        return SendResult(provider_message_id=message.id)


def test_started_runs_once_a_thread_takes_the_call_and_can_stop_it():
    """A call's ``started`` runs on the loop only when a thread of the channel's pool takes
    the call (one queued behind busy threads has not started); when it raises, the hook
    does not run and the caller gets what it raised."""
    blocking = BlockingChannel()
    plugins = load_plugins(None, extra=[("slow", blocking)])
    dispatcher = ChannelDispatcher(plugins, threads_per_channel=1)
    started: list[str] = []

    def marker(message_id: str, refuse: bool = False):
        async def mark() -> None:
            asyncio.get_running_loop()  # on the loop
            started.append(message_id)
            if refuse:
                raise LookupError(message_id)

        return mark

    async def scenario() -> None:
        def send(message_id: str, refuse: bool = False):
            return dispatcher.call(
                "slow",
                "send",
                started=marker(message_id, refuse),
                message=_outbound(message_id),
                config=None,
                inbox=None,
            )

        first = asyncio.create_task(send("m1"))
        queued = asyncio.create_task(send("m2", refuse=True))
        await asyncio.sleep(0.3)
        assert started == ["m1"]  # m2 waits for the one thread: not started
        blocking.release.set()
        assert await first == SendResult(provider_message_id="m1")
        with pytest.raises(LookupError):
            await queued

    try:
        asyncio.run(scenario())
    finally:
        dispatcher.shutdown()
    assert started == ["m1", "m2"]
    assert blocking.sent == ["m1"]


def test_started_runs_before_a_coroutine_hook_on_the_loop(two_channels):
    dispatcher, alpha, _ = two_channels
    order: list[str] = []

    async def mark() -> None:
        order.append("started")

    asyncio.run(dispatcher.call("alpha", "health", started=mark, config=None))
    assert order == ["started"] and alpha.threads["health"]
