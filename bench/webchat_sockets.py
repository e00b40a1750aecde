"""Webchat visitor sockets: the server's memory per open socket, and the time from an agent's
reply to the visitor's socket, beside a bare Falcon WebSocket app, in one run.

    .venv/bin/python -m bench.webchat_sockets [--sockets 2000] [--replies 500] [--rate 20]
        [--json]

1. Omnichannel: the real server (``omnichannel serve``: gunicorn with ``--workers`` uvicorn
   workers, and its job runner) on SQLite in a temporary folder, only the webchat channel
   loaded, ``WEBCHAT_ALLOWED_ORIGINS=http://bench.example`` and every rate limit raised
   (one client plays every visitor and the agent). N visitors are made over HTTP (``POST
   /api/channels/webchat/session``, then one ``POST .../message`` each, so each has a
   conversation), then N WebSockets are opened from this one asyncio process (the
   ``websockets`` library on uvloop), each saying ``hello`` with its token and the id of its
   message (``since``, as the widget does), until ``ready`` and the history that follows it
   (it ends with a ``conversation`` frame); they come from several loopback addresses
   (:data:`SOCKETS_PER_SOURCE` each), and each sends the widget's ``ping`` every 25 s. The
   server's memory (RSS and PSS summed over ``serve``, the gunicorn master, its workers and
   the job runner: every process under ``serve``'s PID, from /proc) is read before the
   sockets open and after they have been open and idle for a few seconds; its CPU over
   those idle seconds too. Then R replies go
   through the agents' API (``POST /api/conversations/{id}/messages``, the API key as
   Bearer) to R visitors drawn at random, at a fixed rate, each POST on its own task: a
   reply's latency runs from its *intended* send time (so a POST that waits is counted) to
   the moment its visitor's socket reads the first ``message`` frame with its text. Once
   the sockets are open the bench freezes its own heap (``gc.freeze``), so that a full
   collection of its 2000 client connections cannot hold a frame back; the servers are left
   as they are.
2. Baseline: a bare Falcon ASGI app (``bench.webchat_sockets:bare_app``) under the same
   gunicorn settings module and worker count. A socket says ``hello`` with its number and is
   answered ``ready`` with the worker's PID; ``POST /push/{number}`` sends one frame to that
   socket. Sockets are held per worker (in memory), so the bench keeps one keep-alive HTTP
   connection per worker (learnt with ``GET /worker``) and sends each push on the
   connection of the worker that holds the socket. The same sockets, memory readings and
   replies as above.

Checks: every socket ready; every reply answered 2xx and read exactly once, on its own
visitor's socket (a frame repeated for the same message and status, or a reply stored
twice, is a duplicate); no socket closed by the server. Any failed check prints ``FAILED:
...`` and exits 1. The open-file limit (RLIMIT_NOFILE) is raised to its hard limit first,
for this process and the servers (they inherit it); a hard limit too low is a failure.
Every server is stopped by PID. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from bench.command import BenchmarkFailed, run_command
from bench.outbox import ServeProcess, children, command_line
from bench.servers import HOST, GunicornServer, free_port, server_environment
from omnichannel_core.testing.server import channels_except

PREFIX = "/api/channels/webchat"
ORIGIN = "http://bench.example"
BARE_APP = "bench.webchat_sockets:bare_app"
BARE_SOCKET_PATH = "/socket"
BARE_PUSH_PATH = "/push"
BARE_WORKER_PATH = "/worker"
WEBCHAT_ENV = {
    "WEBCHAT_ALLOWED_ORIGINS": ORIGIN,
    # one client plays every visitor and the agent: not a flood to refuse
    "OMNICHANNEL_RATE_LIMIT": "1000000",
    "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "1000000",
    "WEBCHAT_SESSIONS_PER_MINUTE": "100000",
    "WEBCHAT_MESSAGES_PER_MINUTE": "10000",
}
SETUP_CONNECTIONS = 16
"""Keep-alive connections making the visitors (session and first message)."""
OPEN_CONCURRENCY = 100
"""Sockets being opened (handshake, hello, ready, history) at once."""
REPLY_CONNECTIONS = 8
"""Keep-alive connections the agent's replies are sent on (omnichannel)."""
FD_MARGIN = 256
"""Descriptors a process needs beside the sockets (SQLite, logs, pipes, HTTP)."""
OPEN_TIMEOUT_SECONDS = 60.0
IDLE_SECONDS = 5.0
"""How long the sockets sit idle before the memory is read (and the idle CPU measured)."""
DELIVERY_TIMEOUT_SECONDS = 20.0
"""How long after the last reply's intended time a missing one is waited for."""
GRACE_SECONDS = 2.0
"""How long after the last reply arrived frames are still read (duplicates, statuses)."""
CLOSE_TIMEOUT_SECONDS = 30.0
WORKER_PROBES = 64
"""Connections tried to find a keep-alive connection to each bare worker."""
SOCKETS_PER_SOURCE = 100
"""Sockets opened from one loopback source address (127.0.1.1, 127.0.1.2, ...): visitors
come from many addresses, and the webchat keeps at most 200 sockets of one client address
open in one worker (``SOCKETS_PER_ADDRESS`` in omnichannel_webchat/visitors.py)."""
PING_SECONDS = 25.0
"""How often the widget sends ``{"type": "ping"}`` on its socket (the server closes one
silent for 75 s); the bench's pings are spread evenly over the sockets."""
SLICE_SECONDS = 5.0
"""The replies' latency is also summed up per slice of this many seconds of the schedule
(a slow spell shows as such, not only in the tail)."""
LAG_PROBE_SECONDS = 0.01
"""How often the bench checks its own event loop is on time while the replies run."""
SEED = 15
MAX_FRAME_BYTES = 2**20
TAIL_CHARS = 3000


# the baseline: a bare Falcon ASGI WebSocket app ------------------------------------------


class BareSockets:
    """``/socket``: the first frame ``{"socket": name}`` registers the socket under that name
    in this worker's memory; it is answered ``ready`` with the worker's PID, and held open,
    reading (and dropping) whatever comes, until the client goes."""

    def __init__(self) -> None:
        self.open: dict[str, falcon.asgi.WebSocket] = {}

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
        name = None
        try:
            hello = await ws.receive_media()
            name = str(hello["socket"]) if isinstance(hello, dict) else ""
            self.open[name] = ws
            await ws.send_media({"type": "ready", "worker": os.getpid()})
            while True:
                await ws.receive_text()
        except falcon.WebSocketDisconnected:
            pass
        finally:
            if name is not None and self.open.get(name) is ws:
                del self.open[name]


class BarePush:
    """``POST /push/{name}``: the body's text, as one ``message`` frame shaped like the
    webchat's, to the socket of that name if this worker holds it (204), else 404."""

    def __init__(self, sockets: BareSockets) -> None:
        self.sockets = sockets
        self.sent = 0

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str
    ) -> None:
        text = (await req.stream.read()).decode()
        ws = self.sockets.open.get(name)
        if ws is None:
            resp.status = falcon.HTTP_404
            return
        self.sent += 1
        message = {"id": f"bare-{os.getpid()}-{self.sent}", "from": "agent", "text": text}
        await ws.send_media({"type": "message", "message": message | {"status": "sent"}})
        resp.status = falcon.HTTP_204


class BareWorker:
    """``GET /worker``: the PID of the worker that answers (which keep-alive connection
    reaches which worker)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"worker": os.getpid()}


def create_bare_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    sockets = BareSockets()
    app.add_route(BARE_SOCKET_PATH, sockets)
    app.add_route(BARE_PUSH_PATH + "/{name}", BarePush(sockets))
    app.add_route(BARE_WORKER_PATH, BareWorker())
    return app


bare_app = create_bare_app()


# /proc -----------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and every process under it."""
    found, waiting = [], [root]
    while waiting:
        pid = waiting.pop()
        found.append(pid)
        waiting.extend(children(pid))
    return found


def status_kib(pid: int, field_name: str) -> int:
    """A ``kB`` field of /proc/PID/status (``VmRSS``), 0 for a process gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int | None:
    """The process's proportional set size (shared pages split between their users), from
    /proc/PID/smaps_rollup; None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_sockets(pid: int) -> int:
    """How many sockets the process holds (its descriptors that are sockets)."""
    count = 0
    with contextlib.suppress(OSError):
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(entry).startswith("socket:"):
                    count += 1
    return count


def open_files_limit(pid: int) -> int | None:
    """The process's soft RLIMIT_NOFILE, from /proc/PID/limits."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def tree_cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def short_name(pid: int) -> str:
    """What a server process is: ``serve``, ``gunicorn master``, ``worker``, ``job runner``."""
    line = command_line(pid)
    if line[-2:] == ["omnichannel_core.cli", "worker"]:
        return "job runner"
    if "serve" in line and "omnichannel_core.cli" in line:
        return "serve"
    if "gunicorn" in line:
        return "gunicorn"
    return " ".join(line[-2:])


@dataclass
class Memory:
    """The memory of a server's processes at one moment, in KiB."""

    rss: int
    pss: int | None
    processes: dict[int, dict[str, Any]]

    @classmethod
    def read(cls, root: int) -> Memory:
        processes: dict[int, dict[str, Any]] = {}
        for pid in process_tree(root):
            processes[pid] = {
                "name": short_name(pid),
                "rss_kib": status_kib(pid, "VmRSS"),
                "pss_kib": pss_kib(pid),
                "sockets": open_sockets(pid),
            }
        pss = [p["pss_kib"] for p in processes.values()]
        return cls(
            rss=sum(p["rss_kib"] for p in processes.values()),
            pss=None if None in pss else sum(pss),
            processes=processes,
        )

    def as_json(self) -> dict[str, Any]:
        return {"rss_kib": self.rss, "pss_kib": self.pss, "processes": self.processes}


def raise_open_files(sockets: int) -> dict[str, Any]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (the servers inherit it);
    what it was, is, and whether it is enough for ``sockets`` (the bench holds one end of
    each, and a worker may end up holding all of the other ends)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + FD_MARGIN
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed, 1 << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {
        "soft_before": soft,
        "soft": now,
        "hard": hard,
        "needed": needed,
        "enough": now == resource.RLIM_INFINITY or now >= needed,
    }


# a keep-alive HTTP/1.1 connection, one request at a time ---------------------------------


class KeepAlive:
    """One HTTP/1.1 keep-alive connection to the server under test (asyncio streams): it
    stays on the worker that accepted it, which the bare baseline needs, and costs the bench
    far less CPU per request than an HTTP client library."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> KeepAlive:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError(f"the server closed the connection ({method} {path})")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise BenchmarkFailed(f"a chunked answer to {method} {path}: not expected")
        return status, await self.reader.readexactly(length) if length else b""

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


class Pool:
    """Keep-alive connections; a request takes a free one (or waits for one)."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.all: list[KeepAlive] = []
        self.free: asyncio.Queue[KeepAlive] = asyncio.Queue()

    async def open(self) -> Pool:
        for _ in range(self.size):
            connection = await KeepAlive(self.port).open()
            self.all.append(connection)
            self.free.put_nowait(connection)
        return self

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        connection = await self.free.get()
        try:
            return await connection.request(method, path, body, headers)
        finally:
            self.free.put_nowait(connection)

    async def close(self) -> None:
        for connection in self.all:
            await connection.close()


# visitors and their sockets ------------------------------------------------------------


@dataclass
class Visitor:
    index: int
    token: str = ""
    message_id: str | None = None
    conversation: str | None = None
    worker: int | None = None  # the bare baseline: the worker holding the socket
    socket: ClientConnection | None = None


@dataclass
class Expected:
    index: int
    intended: float


@dataclass
class Deliveries:
    """What the sockets read of the replies."""

    expected: dict[str, Expected] = field(default_factory=dict)
    latencies: dict[str, float] = field(default_factory=dict)
    frames: Counter[tuple[int, str, str | None]] = field(default_factory=Counter)
    ids: dict[str, set[str]] = field(default_factory=dict)
    statuses: Counter[str | None] = field(default_factory=Counter)
    misdirected: int = 0
    unexpected: int = 0
    repeated: int = 0
    last_arrival: float = 0.0
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    total: int = 0

    def received(self, index: int, message: dict[str, Any], now: float) -> None:
        text = message.get("text")
        expected = self.expected.get(text) if isinstance(text, str) else None
        if expected is None:
            self.unexpected += 1
            return
        self.last_arrival = now
        key = (index, str(message.get("id")), message.get("status"))
        self.frames[key] += 1
        self.statuses[message.get("status")] += 1
        if self.frames[key] > 1:
            self.repeated += 1
        assert isinstance(text, str)
        self.ids.setdefault(text, set()).add(str(message.get("id")))
        if expected.index != index:
            self.misdirected += 1
            return
        if text not in self.latencies:
            self.latencies[text] = now - expected.intended
            if len(self.latencies) == self.total:
                self.all_arrived.set()


@dataclass
class Sockets:
    """The open sockets and what their readers saw."""

    visitors: list[Visitor]
    deliveries: Deliveries = field(default_factory=Deliveries)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    closing: bool = False
    closed_early: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    history_frames: int = 0
    extensions: str | None = None
    pings: int = 0
    pongs: int = 0
    error_frames: Counter[str] = field(default_factory=Counter)

    @property
    def ready(self) -> list[Visitor]:
        return [visitor for visitor in self.visitors if visitor.socket is not None]

    async def read(self, visitor: Visitor) -> None:
        """Every frame of the socket, until it closes."""
        ws = visitor.socket
        assert ws is not None
        try:
            async for raw in ws:
                now = time.perf_counter()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message" and frame["message"].get("from") == "agent":
                    self.deliveries.received(visitor.index, frame["message"], now)
                elif kind == "pong":
                    self.pongs += 1
                elif kind == "error":
                    self.error_frames[f"{frame.get('error')}: {frame.get('message')}"[:80]] += 1
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed_early[f"{ws.close_code} {ws.close_reason}"[:80]] += 1

    async def ping(self) -> None:
        """``{"type": "ping"}`` on every socket once every :data:`PING_SECONDS`, spread
        evenly, as the widget does (forever: cancelled by the caller)."""
        frame = json.dumps({"type": "ping"})
        while True:
            ready = self.ready
            for visitor in ready:
                assert visitor.socket is not None
                with contextlib.suppress(ConnectionClosed):
                    await visitor.socket.send(frame)
                    self.pings += 1
                await asyncio.sleep(PING_SECONDS / len(ready))
            if not ready:
                return

    async def close(self) -> None:
        self.closing = True
        limit = asyncio.Semaphore(OPEN_CONCURRENCY * 2)

        async def close_one(ws: ClientConnection) -> None:
            async with limit:
                with contextlib.suppress(OSError, ConnectionClosed, TimeoutError):
                    await ws.close()

        closing = [close_one(v.socket) for v in self.visitors if v.socket is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await asyncio.gather(*closing)
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def open_all(
    sockets: Sockets, url: str, hello: Callable[[Visitor], dict[str, Any]], webchat: bool
) -> float:
    """Open a socket for every visitor, :data:`OPEN_CONCURRENCY` at a time: handshake,
    ``hello``, ``ready`` and (the webchat) the history up to its ``conversation`` frame;
    then a reader task each. The seconds it took; failures are counted by kind."""
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(visitor: Visitor) -> None:
        async with limit:
            ws: ClientConnection | None = None
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                    ws = await connect(
                        url,
                        origin=Origin(ORIGIN),
                        ping_interval=None,  # a browser sends no protocol pings
                        max_size=MAX_FRAME_BYTES,
                        open_timeout=OPEN_TIMEOUT_SECONDS,
                        local_addr=(source_address(visitor.index), 0),
                    )
                    if sockets.extensions is None and ws.response is not None:
                        sockets.extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
                    await ws.send(json.dumps(hello(visitor)))
                    ready = None
                    while True:
                        frame = json.loads(await ws.recv())
                        kind = frame.get("type")
                        if kind == "ready":
                            ready = frame
                            if not webchat:
                                visitor.worker = frame["worker"]
                                break
                            visitor.conversation = (frame.get("conversation") or {}).get("id")
                        elif kind == "token":
                            visitor.token = frame["token"]
                        elif ready is not None and kind == "conversation":
                            break  # the end of the history
                        elif ready is not None:
                            sockets.history_frames += 1
            except (OSError, ConnectionClosed, TimeoutError, ValueError) as error:
                detail = getattr(error, "rcvd", None) or error
                sockets.errors[f"{type(error).__name__}: {detail}"[:120]] += 1
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()
                return
            visitor.socket = ws
            sockets.readers.append(asyncio.create_task(sockets.read(visitor)))

    started = time.perf_counter()
    await asyncio.gather(*(open_one(visitor) for visitor in sockets.visitors))
    return time.perf_counter() - started


async def make_visitors(port: int, count: int) -> tuple[list[Visitor], float, Counter[int]]:
    """``count`` webchat visitors, each with a session and one message of their own, over
    :data:`SETUP_CONNECTIONS` keep-alive connections; the seconds it took and the answers."""
    visitors = [Visitor(index) for index in range(count)]
    statuses: Counter[int] = Counter()
    pending: asyncio.Queue[Visitor] = asyncio.Queue()
    for visitor in visitors:
        pending.put_nowait(visitor)
    json_headers = {"Origin": ORIGIN, "Content-Type": "application/json"}

    async def worker() -> None:
        connection = await KeepAlive(port).open()
        try:
            while not pending.empty():
                visitor = pending.get_nowait()
                status, body = await connection.request(
                    "POST", f"{PREFIX}/session", b"{}", json_headers
                )
                statuses[status] += 1
                if status != 200:
                    continue
                visitor.token = json.loads(body)["token"]
                message = json.dumps(
                    {
                        "client_id": f"bench-{visitor.index:08d}",
                        "text": f"hello from visitor {visitor.index}",
                    }
                ).encode()
                headers = json_headers | {"Authorization": f"Bearer {visitor.token}"}
                status, body = await connection.request(
                    "POST", f"{PREFIX}/message", message, headers
                )
                statuses[status] += 1
                if status in (200, 201):
                    visitor.message_id = json.loads(body)["message"]["id"]
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(SETUP_CONNECTIONS)))
    return visitors, time.perf_counter() - started, statuses


# the replies -----------------------------------------------------------------------------


Push = Callable[[Visitor, str], Awaitable[int]]
"""Sends one reply's text to a visitor; the HTTP status it was answered."""


async def send_replies(
    sockets: Sockets, replies: int, rate: float, push: Push, root: int
) -> dict[str, Any]:
    """``replies`` replies to visitors drawn at random (without replacement while there
    are enough), one every ``1/rate`` seconds from a fixed schedule, each POST on a task of
    its own; then wait for every one to arrive (or :data:`DELIVERY_TIMEOUT_SECONDS`), and
    :data:`GRACE_SECONDS` more for duplicates."""
    ready = sockets.ready
    chooser = random.Random(SEED)
    if replies <= len(ready):
        targets = chooser.sample(ready, replies)
    else:
        targets = chooser.choices(ready, k=replies)
    deliveries = sockets.deliveries
    deliveries.total = replies
    answers: Counter[str] = Counter()
    post_ms: list[float] = []
    late_ms: list[float] = []
    run_id = secrets.token_hex(3)

    async def one(visitor: Visitor, text: str, intended: float) -> None:
        started = time.perf_counter()
        late_ms.append((started - intended) * 1000)
        try:
            status = await push(visitor, text)
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as error:
            answers[type(error).__name__] += 1
            return
        post_ms.append((time.perf_counter() - started) * 1000)
        answers[str(status)] += 1

    lag = [0.0]

    async def watch_lag() -> None:
        """The bench's own event loop, late by how much at most (its GC, its CPU)."""
        while True:
            planned = time.perf_counter() + LAG_PROBE_SECONDS
            await asyncio.sleep(LAG_PROBE_SECONDS)
            lag[0] = max(lag[0], time.perf_counter() - planned)

    watcher = asyncio.create_task(watch_lag())
    cpu_before = tree_cpu_seconds(process_tree(root))
    client_before = resource.getrusage(resource.RUSAGE_SELF)
    tasks = []
    texts = []
    start = time.perf_counter() + 0.1
    for number, visitor in enumerate(targets):
        intended = start + number / rate
        await asyncio.sleep(max(0.0, intended - time.perf_counter()))
        text = f"reply {run_id}-{number} to visitor {visitor.index}"
        deliveries.expected[text] = Expected(visitor.index, intended)
        texts.append(text)
        tasks.append(asyncio.create_task(one(visitor, text, intended)))
    await asyncio.gather(*tasks)
    last_intended = start + (replies - 1) / rate
    with contextlib.suppress(TimeoutError):
        timeout = max(0.0, last_intended + DELIVERY_TIMEOUT_SECONDS - time.perf_counter())
        await asyncio.wait_for(deliveries.all_arrived.wait(), timeout)
    await asyncio.sleep(GRACE_SECONDS)
    watcher.cancel()
    seconds = time.perf_counter() - start
    cpu = tree_cpu_seconds(process_tree(root)) - cpu_before
    client_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    latencies = sorted(value * 1000 for value in deliveries.latencies.values())
    first = deliveries.latencies.get(texts[0])
    slices: dict[int, list[float]] = {}
    for text, latency in deliveries.latencies.items():
        slot = int((deliveries.expected[text].intended - start) // SLICE_SECONDS)
        slices.setdefault(slot, []).append(latency * 1000)
    by_slice = [
        {
            "from_s": slot * SLICE_SECONDS,
            "p50_ms": percentile(sorted(values), 0.5),
            "max_ms": round(max(values), 1),
        }
        for slot, values in sorted(slices.items())
    ]
    twice_stored = sum(1 for ids in deliveries.ids.values() if len(ids) > 1)
    return {
        "sent": replies,
        "rate": rate,
        "answers": dict(answers),
        "post_p50_ms": round(statistics.median(post_ms), 1) if post_ms else None,
        "post_max_ms": round(max(post_ms), 1) if post_ms else None,
        "send_late_max_ms": round(max(late_ms), 1) if late_ms else None,
        "arrived": len(latencies),
        "missing": replies - len(latencies),
        "duplicated": deliveries.repeated + twice_stored,
        "misdirected": deliveries.misdirected,
        "unexpected_frames": deliveries.unexpected,
        "status_frames": {str(k): v for k, v in deliveries.statuses.items()},
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "first_ms": None if first is None else round(first * 1000, 1),
        "by_slice": by_slice,
        "bench_loop_lag_max_ms": round(lag[0] * 1000, 1),
        "seconds": round(seconds, 1),
        "server_cpu_ms_per_reply": round(cpu * 1000 / replies, 2),
        "server_cpu_share": round(cpu / seconds, 3),
        "bench_cpu_share": round(client_cpu / seconds, 3),
    }


def source_address(index: int) -> str:
    """The loopback address socket ``index`` is opened from (:data:`SOCKETS_PER_SOURCE`
    sockets each; all of 127.0.0.0/8 is the loopback interface on Linux)."""
    block = index // SOCKETS_PER_SOURCE
    return f"127.0.{1 + block // 254}.{1 + block % 254}"


def percentile(ordered: list[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted values, in ms to 0.1."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)], 1)


# one target: sockets, memory, replies ------------------------------------------------------


async def hold(
    name: str,
    root: int,
    sockets: Sockets,
    url: str,
    hello: Callable[[Visitor], dict[str, Any]],
    webchat: bool,
    args: argparse.Namespace,
    make_push: Callable[[Sockets], Awaitable[tuple[Push, Callable[[], Awaitable[None]]]]],
) -> dict[str, Any]:
    """Open the sockets, read the memory before and once they are idle, send the replies,
    close the sockets; the target's report."""
    await asyncio.sleep(1.0)  # whatever the set-up left running settles
    before = Memory.read(root)
    open_seconds = await open_all(sockets, url, hello, webchat)
    # The bench's own heap (2000 client connections) out of its collector's way, so that a
    # full collection of it cannot hold a frame back (the servers are left as they are).
    gc.collect()
    gc.freeze()
    pinging = asyncio.create_task(sockets.ping())
    cpu_before_idle = tree_cpu_seconds(process_tree(root))
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu = tree_cpu_seconds(process_tree(root)) - cpu_before_idle
    after = Memory.read(root)
    ready = len(sockets.ready)
    push, close_push = await make_push(sockets)
    try:
        replies = await send_replies(sockets, args.replies, args.rate, push, root)
    finally:
        await close_push()
    idle_share = idle_cpu / IDLE_SECONDS
    above_idle = replies["server_cpu_share"] - idle_share
    replies["server_cpu_ms_per_reply_above_idle"] = round(above_idle * 1000 / args.rate, 2)
    still_open = ready - sum(sockets.closed_early.values())
    pinging.cancel()
    await sockets.close()
    gc.unfreeze()
    per_socket = ready or 1
    workers = [
        {"pid": pid, "sockets": info["sockets"] - before.processes.get(pid, {}).get("sockets", 0)}
        for pid, info in after.processes.items()
        if pid in gunicorn_workers(after)
    ]
    problems = []
    if ready < args.sockets:
        problems.append(
            f"{name}: only {ready} of {args.sockets} sockets ready; errors {dict(sockets.errors)}"
        )
    if sockets.closed_early:
        problems.append(f"{name}: sockets closed by the server: {dict(sockets.closed_early)}")
    if sockets.error_frames:
        problems.append(f"{name}: error frames {dict(sockets.error_frames)}")
    bad = {k: v for k, v in replies["answers"].items() if not k.startswith("2")}
    if bad:
        problems.append(f"{name}: replies answered {bad}")
    for what in ("missing", "duplicated", "misdirected"):
        if replies[what]:
            problems.append(f"{name}: {replies[what]} replies {what}")
    return {
        "target": name,
        "sockets_ready": ready,
        "sockets_open_at_end": still_open,
        "open_errors": dict(sockets.errors),
        "open_seconds": round(open_seconds, 2),
        "history_frames": sockets.history_frames,
        "extensions": sockets.extensions,
        "source_addresses": math.ceil(args.sockets / SOCKETS_PER_SOURCE),
        "pings": sockets.pings,
        "pongs": sockets.pongs,
        "memory_before": before.as_json(),
        "memory_after": after.as_json(),
        "rss_per_socket_kib": round((after.rss - before.rss) / per_socket, 2),
        "pss_per_socket_kib": None
        if before.pss is None or after.pss is None
        else round((after.pss - before.pss) / per_socket, 2),
        "sockets_per_worker": workers,
        "idle_cpu_share": round(idle_share, 3),
        "open_files_limit": {pid: open_files_limit(pid) for pid in after.processes},
        "replies": replies,
        "problems": problems,
    }


def gunicorn_workers(memory: Memory) -> set[int]:
    """The gunicorn workers: the children of the gunicorn master."""
    masters = [pid for pid, info in memory.processes.items() if info["name"] == "gunicorn"]
    workers: set[int] = set()
    for pid in masters:
        workers.update(children(pid))
    return workers


async def webchat_target(port: int, root: int, api_key: str, args: argparse.Namespace) -> dict:
    visitors, setup_seconds, setup_answers = await make_visitors(port, args.sockets)
    made = [visitor for visitor in visitors if visitor.message_id is not None]
    sockets = Sockets(made)

    def hello(visitor: Visitor) -> dict[str, Any]:
        return {"type": "hello", "token": visitor.token, "after": None, "since": visitor.message_id}

    async def make_push(sockets: Sockets) -> tuple[Push, Callable[[], Awaitable[None]]]:
        pool = await Pool(port, REPLY_CONNECTIONS).open()
        auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

        async def push(visitor: Visitor, text: str) -> int:
            body = json.dumps({"text": text}).encode()
            path = f"/api/conversations/{visitor.conversation}/messages"
            headers = auth | {"Idempotency-Key": secrets.token_hex(8)}
            status, _ = await pool.request("POST", path, body, headers)
            return status

        return push, pool.close

    url = f"ws://{HOST}:{port}{PREFIX}/socket"
    report = await hold("omnichannel", root, sockets, url, hello, True, args, make_push)
    report["setup"] = {
        "visitors": len(made),
        "seconds": round(setup_seconds, 2),
        "answers": dict(setup_answers),
    }
    if len(made) < args.sockets:
        report["problems"].insert(
            0, f"omnichannel: only {len(made)} of {args.sockets} visitors made: {setup_answers}"
        )
    return report


async def bare_target(port: int, root: int, args: argparse.Namespace) -> dict:
    sockets = Sockets([Visitor(index) for index in range(args.sockets)])

    def hello(visitor: Visitor) -> dict[str, Any]:
        return {"type": "hello", "socket": str(visitor.index)}

    async def make_push(sockets: Sockets) -> tuple[Push, Callable[[], Awaitable[None]]]:
        """A keep-alive connection to each worker holding sockets, found by asking
        ``/worker`` on new connections; the others are closed."""
        wanted = {visitor.worker for visitor in sockets.ready}
        pinned: dict[int, KeepAlive] = {}
        locks: dict[int, asyncio.Lock] = {}
        for _ in range(WORKER_PROBES):
            if wanted <= set(pinned):
                break
            connection = await KeepAlive(port).open()
            _, body = await connection.request("GET", BARE_WORKER_PATH)
            worker = json.loads(body)["worker"]
            if worker in pinned:
                await connection.close()
            else:
                pinned[worker], locks[worker] = connection, asyncio.Lock()
        if not wanted <= set(pinned):
            raise BenchmarkFailed(f"no connection reached workers {wanted - set(pinned)}")

        async def push(visitor: Visitor, text: str) -> int:
            assert visitor.worker is not None
            async with locks[visitor.worker]:
                status, _ = await pinned[visitor.worker].request(
                    "POST", f"{BARE_PUSH_PATH}/{visitor.index}", text.encode()
                )
            return status

        async def close() -> None:
            for connection in pinned.values():
                await connection.close()

        return push, close

    url = f"ws://{HOST}:{port}{BARE_SOCKET_PATH}"
    return await hold("bare falcon", root, sockets, url, hello, False, args, make_push)


# the servers -----------------------------------------------------------------------------


def error_lines(log: str) -> int:
    """How many lines of a server's JSON log are errors (or worse)."""
    count = 0
    for line in log.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(line).get("level") in ("error", "critical", "exception"):
                count += 1
    return count


def measure_webchat(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    api_key = secrets.token_hex(16)
    env = server_environment(workdir, free_port(), args.workers, secrets.token_hex(16), api_key)
    env.update(WEBCHAT_ENV)
    env["OMNICHANNEL_DISABLE_PLUGINS"] = channels_except(["webchat"])  # webchat alone
    server = ServeProcess(workdir, env)
    return measured(server, workdir, lambda pid: webchat_target(server.port, pid, api_key, args))


def measure_bare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = server_environment(
        workdir, free_port(), args.workers, secrets.token_hex(16), secrets.token_hex(16)
    )
    server = GunicornServer("bare", BARE_APP, workdir, env)
    return measured(server, workdir, lambda pid: bare_target(server.port, pid, args))


def measured(
    server: GunicornServer | ServeProcess,
    workdir: Path,
    target: Callable[[int], Coroutine[Any, Any, dict[str, Any]]],
) -> dict[str, Any]:
    """``target(pid)`` run against ``server`` once it has started; its log's tail printed
    if the run fails, and kept in the report if the report names a problem."""
    try:
        server.start()
        assert server.process is not None
        report = uvloop.run(target(server.process.pid))
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- server log ({workdir.name}) ---\n{server.log()[-TAIL_CHARS:]}\n")
        raise
    server.stop()
    log = server.log()
    report["server_errors_logged"] = error_lines(log)
    if report["problems"]:
        report["server_log_tail"] = log[-TAIL_CHARS:]
    return report


# the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    limits = raise_open_files(args.sockets)
    problems = []
    if not limits["enough"]:
        problems.append(
            f"RLIMIT_NOFILE: the hard limit ({limits['hard']}) is below the {limits['needed']}"
            f" descriptors {args.sockets} sockets need; raise it (ulimit -Hn, or"
            " LimitNOFILE=) and run again"
        )
    with tempfile.TemporaryDirectory(prefix="omnichannel-bench-webchat-") as folder:
        root = Path(folder)
        webchat = measure_webchat(args, root / "omnichannel")
        bare = measure_bare(args, root / "bare")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "sockets": args.sockets,
            "replies": args.replies,
            "rate": args.rate,
            "workers": args.workers,
            "open_concurrency": OPEN_CONCURRENCY,
            "idle_seconds": IDLE_SECONDS,
            "python": sys.version.split()[0],
            "cores": os.cpu_count(),
            "load_average": load_before,
            "load_average_after": os.getloadavg()[0],
            "open_files": limits,
        },
        "targets": [webchat, bare],
        "problems": problems + webchat["problems"] + bare["problems"],
    }


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _reply_ms(target: dict[str, Any], key: str) -> str:
    return _ms(target["replies"][key])


def _kib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} KiB"


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    webchat, bare = results["targets"]
    rows: list[tuple[str, str, str]] = []

    def row(label: str, show: Callable[[dict[str, Any]], str]) -> None:
        rows.append((label, show(webchat), show(bare)))

    def spread(target: dict[str, Any]) -> str:
        return " / ".join(str(w["sockets"]) for w in target["sockets_per_worker"]) or "-"

    row("sockets ready", lambda t: f"{t['sockets_ready']} of {settings['sockets']}")
    row("opened in (hello to ready)", lambda t: f"{t['open_seconds']:.1f} s")
    row("sockets per worker", spread)
    row("server processes", lambda t: str(len(t["memory_after"]["processes"])))
    row("RSS before the sockets", lambda t: _mib(t["memory_before"]["rss_kib"]))
    row("RSS, sockets open and idle", lambda t: _mib(t["memory_after"]["rss_kib"]))
    row("RSS per socket", lambda t: _kib(t["rss_per_socket_kib"]))
    row("PSS before the sockets", lambda t: _mib(t["memory_before"]["pss_kib"]))
    row("PSS, sockets open and idle", lambda t: _mib(t["memory_after"]["pss_kib"]))
    row("PSS per socket", lambda t: _kib(t["pss_per_socket_kib"]))
    row("idle CPU, sockets open", lambda t: f"{t['idle_cpu_share']:.1%}")
    row("replies sent", lambda t: f"{t['replies']['sent']} at {t['replies']['rate']:g}/s")
    row(
        "reply POST p50 / max",
        lambda t: f"{t['replies']['post_p50_ms']} / {t['replies']['post_max_ms']} ms",
    )
    for key in ("p50", "p90", "p99", "max"):
        row(f"reply to socket, {key}", functools.partial(_reply_ms, key=f"{key}_ms"))
    row(
        "missing / duplicated / misdirected",
        lambda t: (
            f"{t['replies']['missing']} / {t['replies']['duplicated']}"
            f" / {t['replies']['misdirected']}"
        ),
    )
    row("server CPU while replying", lambda t: f"{t['replies']['server_cpu_share']:.0%}")
    row(
        "server CPU per reply, above idle",
        lambda t: f"{t['replies']['server_cpu_ms_per_reply_above_idle']:.1f} ms",
    )
    width = max(len(label) for label, _, _ in rows)
    lines = [
        f"webchat sockets: {settings['sockets']} visitor sockets held open by one asyncio"
        f" client (from {webchat['source_addresses']} loopback addresses, a ping each every"
        f" {PING_SECONDS:g} s), then {settings['replies']} replies at {settings['rate']:g}/s to"
        f" random visitors; each server {settings['workers']} gunicorn worker(s) (uvicorn);"
        f" {settings['cores']} cores, RLIMIT_NOFILE {settings['open_files']['soft']}, load"
        f" average {settings['load_average']:.2f} before, {settings['load_average_after']:.2f}"
        " after",
        "",
        f"{'':<{width}}  {'omnichannel webchat':>22}  {'bare falcon ws':>18}",
    ]
    lines += [f"{label:<{width}}  {left:>22}  {right:>18}" for label, left, right in rows]
    setup = webchat.get("setup", {})
    ours, theirs = webchat["replies"], bare["replies"]
    lines += [
        "",
        f"webchat: {setup.get('visitors')} visitors made (session + first message) in"
        f" {setup.get('seconds')} s; {webchat['history_frames']} history frames drained;"
        f" frames per reply by status {webchat['replies']['status_frames']};"
        f" pings {webchat['pings']}, pongs {webchat['pongs']}; extension"
        f" {webchat['extensions'] or 'none'}; errors logged {webchat.get('server_errors_logged')}",
        f"webchat reply p50 per {SLICE_SECONDS:g} s of the schedule: "
        + " ".join(f"{part['p50_ms']:.0f}" for part in ours["by_slice"])
        + " ms",
        f"first reply: webchat {_ms(ours['first_ms'])}, bare {_ms(theirs['first_ms'])};"
        f" bench CPU while replying: webchat {ours['bench_cpu_share']:.0%}, bare"
        f" {theirs['bench_cpu_share']:.0%} of a core, its event loop late by at most"
        f" {ours['bench_loop_lag_max_ms']} / {theirs['bench_loop_lag_max_ms']} ms; latency"
        " is from each reply's intended send time",
    ]
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    for target in results["targets"]:
        if target.get("server_log_tail"):
            lines.append(f"--- {target['target']} server log, last lines ---")
            lines.append(target["server_log_tail"])
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webchat_sockets",
        description="Webchat visitor sockets: server memory per socket and reply-to-socket"
        " latency, beside a bare Falcon WebSocket app.",
    )
    parser.add_argument("--sockets", type=int, default=2000, help="visitor sockets held open")
    parser.add_argument("--replies", type=int, default=500, help="agent replies, timed")
    parser.add_argument("--rate", type=float, default=20.0, help="replies per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if not 1 <= args.sockets <= 100_000:
        parser.error("--sockets must be between 1 and 100000")
    if not 1 <= args.replies <= 100_000:
        parser.error("--replies must be between 1 and 100000")
    if not 0 < args.rate <= 1000:
        parser.error("--rate must be above 0 and at most 1000")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
