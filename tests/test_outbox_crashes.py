"""The outbox under fire, through the real server: replies sent while job runners and the
whole server are killed with ``kill -9`` and restarted, on SQLite (1,000 replies) and on the
Firestore emulator (200); a runner killed while the replies it claimed wait for their pace;
and the pace two servers keep between them on Firestore.

A fake receiver of the generic HTTP channel counts, per message (its ``Idempotency-Key``),
what it was sent. At the end:

- no message is left stuck: the outbox is empty and every reply is ``sent``;
- none was sent twice, except the HTTP channel's documented same-key resends of a message
  in doubt: a message received twice or more was attempted as often, always with its own
  key, and one attempted once was received once.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse
from omnichannel_core.testing.server import API_KEY, Deployment, ServerProcess
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique

ALONE = pytest.mark.alone
"""Kills timed against sends in flight, or a pace to keep: alone in a parallel run. The
Firestore crash run is not: its kills wait for sends in flight whatever the load, and it
mostly waits on the emulator (it would hold every other test up for a minute and a half)."""

AUTHORIZED = {"Authorization": f"Bearer {API_KEY}"}
INTAKE_SECONDS = 20.0
"""How long the pacing test gives itself to queue its messages before they are due."""
SETTLE_SECONDS = 90.0
"""How long the outbox may take to settle everything after the last reply was accepted
(a killed runner's sends wait for their lease, 3 s here, then are resent)."""


HOLD_SECONDS = 60.0
"""The longest a held send waits for its answer."""


class CountingReceiver:
    """The generic HTTP channel's receiver: answers each send after a short random delay
    (at most ``delay`` seconds; sends overlap), or holds them all unanswered for a while
    (:meth:`holding`: a kill then cuts sends off for sure), and counts them per key."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.provider = FakeProvider(answer=self._answer, keep_alive=True)
        self.arrivals: list[tuple[float, str]] = []
        self.in_flight = 0
        """Sends received and not yet answered."""
        self._lock = threading.Lock()
        self._answering = threading.Event()
        self._answering.set()

    def _answer(self, request: RecordedRequest) -> ScriptedResponse:
        key = request.headers.get("idempotency-key", "")
        with self._lock:
            self.arrivals.append((time.monotonic(), key))
            self.in_flight += 1
        try:
            self._answering.wait(HOLD_SECONDS)  # the handler's own thread: sends overlap
            time.sleep(random.uniform(0, self.delay))
        finally:
            with self._lock:
                self.in_flight -= 1
        return ScriptedResponse.json(200, {"id": f"remote-{key}"})

    @contextlib.contextmanager
    def holding(self, count: int, seconds: float = 30.0) -> Iterator[None]:
        """Hold every send unanswered until ``count`` are in flight at once, run the body
        (a kill: each runner's sends are cut off), then answer them."""
        self._answering.clear()
        try:
            deadline = time.monotonic() + seconds
            while True:
                with self._lock:
                    if self.in_flight >= count:
                        break
                assert time.monotonic() < deadline, f"never {count} sends in flight at once"
                time.sleep(0.01)
            yield
        finally:
            self._answering.set()

    def wait_for_arrivals(self, count: int, seconds: float = 20.0) -> float:
        """Until ``count`` sends have arrived (or ``seconds`` pass): when the last did
        (``time.monotonic``)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.arrivals) >= count:
                    return self.arrivals[-1][0]
            time.sleep(0.002)
        raise AssertionError(f"{count} sends never arrived")

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(key for _, key in self.arrivals)

    def first_times(self) -> list[float]:
        """When each key first arrived."""
        first: dict[str, float] = {}
        with self._lock:
            for at, key in self.arrivals:
                first.setdefault(key, at)
        return list(first.values())

    def __enter__(self) -> CountingReceiver:
        self.provider.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.provider.__exit__(*exc)


CONVERSATIONS = 20
"""Replies are spread over this many conversations, as an inbox's are."""
SEND_CONCURRENCY = 4
"""Each runner's sends at once: twice this many held in flight, each runner has all of its
own under way when one is killed."""


def _reply(inbox: Deployment, conversation_id: str, key: str, **fields: str) -> str:
    """Send one reply (with ``fields`` in its body) with its Idempotency-Key until the
    server accepts it, as a client does across a server's crash; the message id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with inbox.client() as client:
                response = client.post(
                    f"/api/conversations/{conversation_id}/messages",
                    json={"text": f"reply {key}", **fields},
                    headers={"Idempotency-Key": key},
                )
        except httpx.HTTPError:
            time.sleep(0.2)  # the server is down: try again, same key
            continue
        if response.status_code in (200, 202):
            return str(response.json()["id"])
        assert response.status_code >= 500, response.text  # only an outage is retried
        time.sleep(0.2)
    raise AssertionError(f"reply {key} was never accepted")


def _outbox_empty(inbox: Deployment) -> bool:
    with contextlib.suppress(httpx.HTTPError), inbox.client() as client:
        return bool(client.get("/api/outbox").json()["channels"] == {})
    return False


def crash_run(workdir: Path, env: dict[str, str], receiver: CountingReceiver, count: int) -> None:
    """Send ``count`` replies while a job runner, then the server, then the other runner
    are killed; then check what the receiver got against what the inbox says."""
    inbox = Deployment(workdir, {**env, "OMNICHANNEL_SEND_CONCURRENCY": str(SEND_CONCURRENCY)})
    try:
        with inbox.client() as client:
            conversations = _open_conversations(client)
        keys = [f"crash-{uuid.uuid4().hex[:8]}-{n}" for n in range(count)]
        started = time.monotonic()
        accepted: list[str] = []
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(_reply, inbox, conversations[n % CONVERSATIONS], key)
                for n, key in enumerate(keys)
            ]
            for stage, action, sends_cut_off in (
                (count // 4, lambda: inbox.crash_runner(0), True),
                (count // 2, inbox.crash_server, False),  # it runs no job: no send to cut
                (3 * count // 4, lambda: inbox.crash_runner(1), True),
            ):
                while sum(future.done() for future in futures) < stage:
                    time.sleep(0.01)
                if not sends_cut_off:
                    action()
                    continue
                with receiver.holding(2 * SEND_CONCURRENCY):  # each runner's sends, all
                    action()
                print(f"{time.monotonic() - started:.1f}s: {stage} accepted, killed")
            accepted = [future.result() for future in futures]
        assert len(set(accepted)) == count  # one message per key, whatever was replayed
        print(f"{time.monotonic() - started:.1f}s: all accepted")

        deadline = time.monotonic() + SETTLE_SECONDS
        while not _outbox_empty(inbox) and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"{time.monotonic() - started:.1f}s: outbox empty")
        with inbox.client() as client:
            assert client.get("/api/outbox").json()["channels"] == {}, "messages left stuck"
            stored = {
                message["id"]: message
                for conversation_id in conversations
                for message in _all_messages(client, conversation_id)
                if message["direction"] == "outbound"
            }
    finally:
        inbox.stop()

    assert set(stored) == set(accepted)
    assert Counter(m["status"] for m in stored.values()) == {"sent": count}
    received = receiver.counts()
    assert set(received) == set(accepted), "every message reached the receiver"
    for message_id, copies in received.items():
        attempts = stored[message_id]["attempts"]
        # More than one copy only as the same-key resends of a message in doubt.
        assert copies <= attempts, (message_id, copies, attempts)
        if attempts == 1:
            assert copies == 1
    log = (workdir / "worker.log").read_text()
    doubted, requeued = log.count('"message_in_doubt"'), log.count('"message_requeued"')
    # a kill cut off a send under way (in doubt) or one claimed and not yet made (queued
    # again): either way there was work in flight to lose
    assert doubted + requeued > 0, "no kill cut off a send: the test tested nothing"
    resent = sum(copies - 1 for copies in received.values())
    print(f"\n{count} replies: {resent} same-key resends of messages in doubt")


def _open_conversations(client: httpx.Client) -> list[str]:
    """CONVERSATIONS conversations, each opened by a customer's message; their ids."""
    senders = [unique("+1555") for _ in range(CONVERSATIONS)]
    for sender in senders:
        assert post_webhook(client, inbound_message(sender, "hello")).status_code == 200
    listed = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    conversations = [c["id"] for c in listed if c["address"] in senders]
    assert len(conversations) == CONVERSATIONS
    return conversations


def _all_messages(client: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    messages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/conversations/{conversation_id}/messages", params=params).json()
        messages += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return messages


def _env(receiver: CountingReceiver, **extra: str) -> dict[str, str]:
    return {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HTTP_CHANNEL_SEND_URL": receiver.provider.url + "/inbound",
        "OMNICHANNEL_SEND_LEASE_SECONDS": "3",
        "OMNICHANNEL_JOB_LEASE_SECONDS": "3",
        "OMNICHANNEL_EVENT_POLL_MS": "50",
        **extra,
    }


@pytest.fixture
def receiver() -> Iterator[CountingReceiver]:
    with CountingReceiver() as counting:
        yield counting


@ALONE
def test_a_thousand_replies_survive_kill_9_on_sqlite(tmp_path, receiver):
    """1,000 replies on SQLite, two runners and the server killed mid-run: none stuck,
    none sent twice but as same-key resends of messages in doubt."""
    crash_run(tmp_path, _env(receiver), receiver, 1000)


def test_two_hundred_replies_survive_kill_9_on_firestore(
    tmp_path, receiver, firestore_emulator: Emulator
):
    """The same on the Firestore emulator, with 200 replies (it is slow)."""
    env = _env(
        receiver,
        OMNICHANNEL_STORE=f"firestore://demo-outbox-{uuid.uuid4().hex[:10]}",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
    )
    crash_run(tmp_path, env, receiver, 200)


PACED_RATE = 5
"""Sends per second in the paced crash test: a runner holds two seconds of them (10)
claimed, waiting for their slot, and a kill between two slots (200 ms apart) cuts off no
send."""
PACED_LEAD_SECONDS = 2.0
"""How far ahead the paced crash test schedules its replies: all due at once, however
long they took to queue."""


@ALONE
def test_replies_waiting_for_their_pace_are_sent_once_after_kill_9(tmp_path):
    """A runner killed with kill -9 between two slots of a slow pace, holding claimed
    replies that wait for theirs, never called the channel for them: when their lease ends
    (3 s) they are queued again, not put in doubt, and the restarted runner sends each
    exactly once (one attempt each); none waits for a confirmation, none fails."""
    count = 20
    with CountingReceiver(delay=0) as receiver:
        env = _env(receiver, OMNICHANNEL_SEND_RATES=f"http={PACED_RATE}")
        inbox = Deployment(tmp_path, env, workers=1, runners=1)
        try:
            with inbox.client() as client:
                conversations = _open_conversations(client)
            keys = [f"paced-{uuid.uuid4().hex[:8]}-{n}" for n in range(count)]
            due = datetime.now(UTC) + timedelta(seconds=PACED_LEAD_SECONDS)

            def reply(n: int) -> str:
                conversation = conversations[n % CONVERSATIONS]
                return _reply(inbox, conversation, keys[n], send_at=due.isoformat())

            with ThreadPoolExecutor(8) as pool:
                accepted = list(pool.map(reply, range(count)))
            # Two sends in, half-way to the next slot: no send is under way, and the runner
            # holds two seconds of the pace claimed, waiting.
            arrived = receiver.wait_for_arrivals(max(2, sum(receiver.counts().values()) + 1))
            time.sleep(max(0.0, arrived + 0.5 / PACED_RATE - time.monotonic()))
            received_before = sum(receiver.counts().values())
            inbox.crash_runner(0)
            killed = time.monotonic()
            deadline = killed + 60
            while not _outbox_empty(inbox) and time.monotonic() < deadline:
                time.sleep(0.2)
            settled = time.monotonic() - killed
            print(f"\nkilled with {received_before} of {count} sent; all sent {settled:.1f}s on")
            with inbox.client() as client:
                assert client.get("/api/outbox").json()["channels"] == {}, "messages left stuck"
                stored = {
                    message["id"]: message
                    for conversation_id in conversations
                    for message in _all_messages(client, conversation_id)
                    if message["direction"] == "outbound"
                }
        finally:
            inbox.stop()
        received = receiver.counts()
    assert set(stored) == set(accepted)
    outcomes = Counter((m["status"], m["attempts"], m["in_doubt"]) for m in stored.values())
    assert outcomes == {("sent", 1, False): count}
    assert set(received) == set(accepted)
    assert set(received.values()) == {1}, received.most_common(3)
    log = (tmp_path / "worker.log").read_text()
    assert log.count('"message_in_doubt"') == 0
    assert log.count('"message_requeued"') > 0, "no claimed reply was left waiting"


@ALONE
def test_two_servers_on_firestore_keep_one_pace(tmp_path, receiver, firestore_emulator):
    """Two servers sharing Firestore, each with its job runner, send at the configured rate
    between them: within 5% of 20 messages per second."""
    rate, count = 20, 300
    env = _env(
        receiver,
        OMNICHANNEL_STORE=f"firestore://demo-pace-{uuid.uuid4().hex[:10]}",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
        OMNICHANNEL_SEND_RATES=f"http={rate}",
        # Nothing is killed here: the default leases, not the crash tests' 3 s, which a slow
        # emulator write can outlast (the outbox then resends, by the channel's contract).
        OMNICHANNEL_SEND_LEASE_SECONDS="30",
        OMNICHANNEL_JOB_LEASE_SECONDS="30",
    )
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_server(tmp_path / name, env)) for name in ("a", "b")]
        with servers[0].client() as client:
            conversations = _open_conversations(client)
        clients = [
            stack.enter_context(
                httpx.Client(base_url=server.base_url, headers=AUTHORIZED, timeout=60)
            )
            for server in servers
        ]
        # All due at one time, a little ahead: the pace is measured on a full outbox, not
        # on how fast the emulator takes them in.
        due = datetime.now(UTC) + timedelta(seconds=INTAKE_SECONDS)
        body = {"send_at": due.isoformat()}

        def queue(n: int) -> int:
            path = f"/api/conversations/{conversations[n % CONVERSATIONS]}/messages"
            sent = clients[n % 2].post(path, json={**body, "text": f"paced {n}"})
            return sent.status_code

        with ThreadPoolExecutor(4) as pool:  # half through each server
            assert set(pool.map(queue, range(count))) == {202}
        assert datetime.now(UTC) < due, "queued too slowly to measure the pace"
        deadline = time.monotonic() + INTAKE_SECONDS + count / rate + 30
        while len(receiver.counts()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
    # Each message once: the http channel is resend_safe, so a resend would carry the same
    # Idempotency-Key, and receivers dedupe on it; the pace is that of first arrivals.
    assert len(receiver.counts()) == count
    assert receiver.counts().most_common(1)[0][1] == 1, receiver.counts().most_common(3)
    times = sorted(receiver.first_times())
    achieved = (count - 1) / (times[-1] - times[0])
    print(f"\npaced at {achieved:.2f}/s for {rate}/s configured")
    assert abs(achieved - rate) / rate <= 0.05, achieved


@contextlib.contextmanager
def _server(workdir: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir, env).start()
    try:
        yield server
    finally:
        server.stop()
