"""A campaign through the real server to a fake Twilio: its throughput beside the same
messages queued through the outbox directly, its pacing (agents' replies timed meanwhile),
and a provider throttling it mid-run, in one run.

    .venv/bin/python -m bench.campaign [--recipients N] [--paced-recipients N] [--rate R]
        [--channel-rate R] [--throttled-recipients N] [--throttle-seconds S]
        [--reply-every S] [--warmup N] [--workers W] [--json]

Each part has a fresh temporary folder, a fresh fake Twilio (``FakeTwilio`` of the Twilio
channel's tests: real HTTP on loopback, in this process, answering at once) and a fresh
real server (``omnichannel serve``: gunicorn with its uvicorn workers and the job runner,
on SQLite), with the Twilio channel configured to send to the fake. Every campaign is
``{"audience": {"kind": "list", "addresses": [...]}}``: the runner makes each address's
contact while it freezes the audience.

1. Throughput: unpaced (``OMNICHANNEL_SEND_RATES=*=0``, the campaign's rate null), N
   recipients; from the launch to the last recipient's request at the fake: recipients
   per second, and the server's CPU (job runner and web workers, from /proc) per
   recipient until the store holds every recipient sent. Beside it, on a server of its
   own, the same N messages queued through the outbox directly (``POST
   /api/channels/twilio/send/sms``, an Idempotency-Key each, over keep-alive connections
   as ``bench.outbox`` queues them): messages per second and CPU per message.
2. Pacing: a campaign at R per second (the channel's rate above it), N recipients: the time
   from the first to the last request at the fake beside (N - 1) / R. Meanwhile an agent
   replies every half second to an existing conversation of another contact (``POST
   /api/conversations/{id}/messages``): the time from the POST to the fake receiving that
   reply (matched by ``To`` and text), p50 / p99 / max.
3. Throttling: a smaller campaign at R per second; once a share of it went out, the fake
   answers every request 429 (Twilio error 20429) for S seconds: the send rate before,
   during and after the window, and every recipient still sent exactly once.

Checks, each part: the fake got exactly one ``Messages.json`` request per recipient number
(none twice, none missing, none to a number nobody sent to; under throttling, one accepted
request per number: its requests are the message's attempts in the store, and all but
the 429s answered were accepted), every message ``sent`` in the store, the campaign
``completed`` with every recipient counted sent in its report. Any failed check prints
``FAILED: ...`` and exits 1; a stall (no request for a while) fails at once. Every server is
stopped by PID. See docs/benchmarks.md ("Campaigns").
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.command import BenchmarkFailed, run_command
from bench.crm import Api
from bench.outbox import ServeProcess, most_within, queue
from bench.servers import HOST, REPO_ROOT, free_port
from bench.twilio_webhooks import TwilioAccount, twilio_environment

sys.path.insert(0, str(REPO_ROOT / "omnichannel-twilio" / "tests"))
from fake_twilio import TOO_MANY_REQUESTS, FakeTwilio, MessageAnswer, TwilioRequest
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    post_webhook,
    sms_form,
)

SEND_PATH = "/api/channels/twilio/send/sms"
RECIPIENT_PREFIX = "+1555"
WARMUP_PREFIX = "+1557"
AGENT_PREFIX = "+1558"
MESSAGE = "Hi {{first_name|there}}, our spring sale starts today."
STALL_SECONDS = 60.0
"""A part fails when the fake got no request for this long while recipients are left."""
THROTTLED_STALL_SECONDS = 600.0
"""The same after a provider's 429s, which may hold a pace back for minutes."""
SETTLE_SECONDS = 120.0
"""How long the store may take to show every send once the fake got them all."""
REPLY_ARRIVAL_SECONDS = 30.0
POLL_SECONDS = 0.2
QUEUE_CONCURRENCY = 32
THROTTLE_ANSWERS = 1_000_000
"""429s scripted when the window opens: more than can be asked for; the rest are dropped."""
THROTTLE_AFTER = 0.3
"""The share of the throttled campaign's recipients sent when the window opens."""


# the server and its fake Twilio ---------------------------------------------------------


@contextlib.contextmanager
def running_server(
    workdir: Path, fake: FakeTwilio, send_rates: str, workers: int
) -> Iterator[tuple[ServeProcess, Api]]:
    """``omnichannel serve`` with the Twilio channel sending to ``fake`` at ``send_rates``
    (``OMNICHANNEL_SEND_RATES``); yields it and its API as an admin."""
    account = TwilioAccount(ACCOUNT_SID, AUTH_TOKEN)
    settings = argparse.Namespace(workers=workers, log_level="warning")
    env = twilio_environment(workdir, free_port(), account, settings)
    env.update(
        {
            "TWILIO_API_BASE_URL": fake.url,
            "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,  # what the webhooks we post are signed for
            "OMNICHANNEL_SEND_RATES": send_rates,
            # one client makes every call: not a flood to refuse
            "OMNICHANNEL_RATE_LIMIT": "0",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "0",
        }
    )
    server = ServeProcess(workdir, env)
    api: Api | None = None
    try:
        server.start()
        api = Api(server.port, env["OMNICHANNEL_API_KEY"])
        yield server, api
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- server log ({workdir.name}) ---\n{server.log()[-4000:]}\n")
        raise
    finally:
        if api is not None:
            api.close()
    server.stop()


def numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{number:07d}" for number in range(count)]


def requests_to(fake: FakeTwilio, wanted: set[str]) -> list[TwilioRequest]:
    """The ``Messages.json`` requests the fake got for the numbers ``wanted``."""
    return [request for request in fake.message_requests() if request.param("To") in wanted]


def wait_for_requests(
    fake: FakeTwilio,
    wanted: set[str],
    what: str,
    least: int | None = None,
    stall: float = STALL_SECONDS,
) -> list[TwilioRequest]:
    """Wait until every number of ``wanted`` got a request (or ``least`` requests came);
    BenchmarkFailed when none came for ``stall`` seconds."""
    target = len(wanted) if least is None else least
    count, changed = -1, time.monotonic()
    while True:
        got = requests_to(fake, wanted)
        reached = len({request.param("To") for request in got}) if least is None else len(got)
        if reached >= target:
            return got
        if len(got) != count:
            count, changed = len(got), time.monotonic()
        elif time.monotonic() - changed > stall:
            raise BenchmarkFailed(
                f"{what}: stalled: {reached} of {target} reached the fake Twilio, and no"
                f" request came in {stall:g} s"
            )
        time.sleep(POLL_SECONDS)


def send_requests(api_key: str, port: int, to: list[str], phase: str) -> list[bytes]:
    """Whole HTTP requests, each ``POST send/sms`` to one number, with its own
    Idempotency-Key."""
    run_id = secrets.token_hex(4)
    requests = []
    for number, phone in enumerate(to):
        body = json.dumps(
            {"to": phone, "message": f"Hi there, our spring sale starts today ({number})."},
            separators=(",", ":"),
        ).encode()
        head = (
            f"POST {SEND_PATH} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\n"
            f"Idempotency-Key: bench-{run_id}-{phase}-{number}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        ).encode()
        requests.append(head + body)
    return requests


def warm_up(server: ServeProcess, fake: FakeTwilio, count: int) -> list[str]:
    """Send ``count`` messages through the outbox (the runner's HTTP client set up, the
    code paths loaded), wait for them; the problems met."""
    if not count:
        return []
    phones = numbers(WARMUP_PREFIX, count)
    requests = send_requests(server.env["OMNICHANNEL_API_KEY"], server.port, phones, "warmup")
    problems = [f"warm-up {problem}" for problem in queue(server.port, requests, 8)["problems"]]
    wait_for_requests(fake, set(phones), "warm-up")
    return problems


def server_cpu(server: ServeProcess) -> dict[str, float]:
    """CPU so far of the job runner, the web workers, and this process (the fake Twilio's
    threads, and the bench polling it)."""
    return {"runner": server.runner_cpu(), "web": server.web_cpu(), "bench": time.process_time()}


def cpu_used(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """CPU per message (microseconds): the runner's, the web workers', both (the server),
    and this process's."""
    runner, web = after["runner"] - before["runner"], after["web"] - before["web"]
    return {
        "runner_us": runner / count * 1e6,
        "web_us": web / count * 1e6,
        "server_us": (runner + web) / count * 1e6,
        "bench_us": (after["bench"] - before["bench"]) / count * 1e6,
    }


# the campaign through the API ------------------------------------------------------------


def create_campaign(api: Api, to: list[str], rate: float | None, name: str) -> dict[str, Any]:
    body = {
        "name": name,
        "channel": "twilio",
        "sender": "sms",
        "audience": {"kind": "list", "addresses": to},
        "message": {"text": MESSAGE},
        "rate": rate,
    }
    return api.call("POST", "/api/campaigns", 201, json=body)


def launch(api: Api, campaign_id: str) -> float:
    """Launch the campaign; when (the monotonic clock) it was asked to."""
    launched = time.monotonic()
    api.call("POST", f"/api/campaigns/{campaign_id}/launch")
    return launched


def stored_campaign(database: Path, campaign_id: str) -> tuple[str | None, int]:
    """The campaign's status and how many of its recipients the store counts sent; read
    through a read-only connection of our own (no work for the server)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT status FROM campaigns WHERE id = ?", (campaign_id,))
        found = row.fetchone()
        (sent,) = connection.execute(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = ?"
            " AND sent_at IS NOT NULL",
            (campaign_id,),
        ).fetchone()
    finally:
        connection.close()
    return (found[0] if found else None), sent


def campaign_settled(database: Path, campaign_id: str, count: int) -> tuple[str | None, int]:
    """Wait until the campaign is completed with ``count`` recipients sent (or the
    deadline); its status and recipients sent then."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        status, sent = stored_campaign(database, campaign_id)
        if (status == "completed" and sent >= count) or time.monotonic() >= deadline:
            return status, sent
        time.sleep(POLL_SECONDS)


def seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def report_figures(api: Api, campaign_id: str) -> dict[str, Any]:
    """What the campaign's report says: its status, counts and the freeze's length."""
    report = api.call("GET", f"/api/campaigns/{campaign_id}/report")
    campaign = report["campaign"]
    return {
        "status": campaign["status"],
        "counts": report["counts"],
        "freeze_seconds": seconds_between(campaign.get("launched_at"), campaign.get("started_at")),
        "run_seconds": seconds_between(campaign.get("started_at"), campaign.get("finished_at")),
    }


def report_problems(report: dict[str, Any], count: int, what: str) -> list[str]:
    counts = report["counts"]
    problems = []
    if report["status"] != "completed":
        problems.append(f"{what}: the campaign is {report['status']}, not completed")
    wanted = {"targeted": count, "sent": count, "pending": 0, "in_doubt": 0, "queued": 0}
    got = {name: counts.get(name, 0) for name in wanted}
    if got != wanted or counts.get("skipped") or counts.get("failed"):
        problems.append(f"{what}: the report counts {counts}, expected {wanted}")
    return problems


# checks ----------------------------------------------------------------------------------


def once_each(
    requests: list[TwilioRequest], expected: list[str], known: set[str], what: str
) -> tuple[dict[str, int], list[str]]:
    """Whether the fake got exactly one request per number of ``expected``, and none for a
    number outside ``known``: the figures and the problems."""
    counts = Counter(request.param("To") for request in requests)
    wanted = set(expected)
    twice = {to: n for to, n in counts.items() if to in wanted and n > 1}
    missing = [to for to in expected if to not in counts]
    strangers = {to: n for to, n in counts.items() if to not in known}
    problems = []
    if twice:
        sample = dict(list(twice.items())[:3])
        problems.append(f"{what}: {len(twice)} numbers got more than one request, e.g. {sample}")
    if missing:
        problems.append(f"{what}: {len(missing)} numbers got no request, e.g. {missing[:3]}")
    if strangers:
        sample = dict(list(strangers.items())[:3])
        problems.append(f"{what}: requests to {len(strangers)} unknown numbers, e.g. {sample}")
    figures = {
        "numbers": len(expected),
        "requested": sum(counts[to] for to in wanted),
        "twice": len(twice),
        "missing": len(missing),
        "unknown": len(strangers),
    }
    return figures, problems


def stored_sends(database: Path) -> tuple[list[tuple[str, str, int, bool]], int]:
    """Every outbound message (the number it went to, its status, attempts, and whether the
    provider took it: it has the provider's id), and the outbox's entries; read through a
    read-only connection of our own (no work for the server)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT c.address, m.status, m.attempts, m.provider_message_id IS NOT NULL"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.direction = 'outbound'"
        ).fetchall()
        (entries,) = connection.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        connection.close()
    return [(row[0], row[1], row[2], bool(row[3])) for row in rows], entries


def sends_settled(database: Path, count: int) -> dict[str, Any]:
    """Wait until ``count`` outbound messages are stored, each taken by the provider, and
    the outbox is empty (or the deadline); what the store then holds. (Twilio answers a
    send ``queued``: a message it took stays ``queued`` until its status callback.)"""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        rows, entries = stored_sends(database)
        taken = sum(1 for row in rows if row[3])
        done = len(rows) >= count and taken == len(rows) and entries == 0
        if done or time.monotonic() >= deadline:
            return {
                "rows": rows,
                "messages": len(rows),
                "taken": taken,
                "by_status": dict(Counter(row[1] for row in rows)),
                "outbox_entries": entries,
                "extra_attempts": sum(max(0, row[2] - 1) for row in rows),
            }
        time.sleep(POLL_SECONDS)


def store_problems(store: dict[str, Any], count: int, what: str) -> list[str]:
    problems = []
    if store["messages"] != count or store["taken"] != count:
        problems.append(
            f"{what}: {store['taken']} of {store['messages']} stored messages taken by the"
            f" provider, {count} expected ({store['by_status']})"
        )
    if store["outbox_entries"]:
        problems.append(f"{what}: {store['outbox_entries']} entries left in the outbox")
    return problems


def stored_figures(store: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in store.items() if name != "rows"}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (sorted here)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# 1. throughput ---------------------------------------------------------------------------


def measure_outbox(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The baseline: the same messages queued through ``send/sms``, unpaced."""
    to = numbers(RECIPIENT_PREFIX, args.recipients)
    known = set(to) | set(numbers(WARMUP_PREFIX, args.warmup))
    with (
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake,
        running_server(root / "outbox", fake, "*=0", args.workers) as (server, _),
    ):
        problems = warm_up(server, fake, args.warmup)
        sends_settled(server.database, args.warmup)
        requests = send_requests(server.env["OMNICHANNEL_API_KEY"], server.port, to, "timed")
        server.idle_runner_cpu()
        before = server_cpu(server)
        queued = queue(server.port, requests, QUEUE_CONCURRENCY)
        problems += queued["problems"]
        sent = wait_for_requests(fake, set(to), "outbox")
        at_last = server_cpu(server)
        store = sends_settled(server.database, args.warmup + args.recipients)
        after = server_cpu(server)
        every = fake.message_requests()
    checks, found = once_each(every, to, known, "outbox")
    problems += found + store_problems(store, args.warmup + args.recipients, "outbox")
    seconds = max(request.at for request in sent) - queued["started"]
    return {
        "target": "outbox",
        "messages": args.recipients,
        "seconds": seconds,
        "per_second": args.recipients / seconds,
        "queueing": {key: queued[key] for key in ("seconds", "per_second", "statuses")},
        "cpu_at_last_request": cpu_used(before, at_last, args.recipients),
        "cpu": cpu_used(before, after, args.recipients),
        "checks": checks,
        "stored": stored_figures(store),
        "problems": problems,
    }


def measure_throughput(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The campaign, unpaced, to ``--recipients`` numbers."""
    to = numbers(RECIPIENT_PREFIX, args.recipients)
    known = set(to) | set(numbers(WARMUP_PREFIX, args.warmup))
    with (
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake,
        running_server(root / "campaign", fake, "*=0", args.workers) as (server, api),
    ):
        problems = warm_up(server, fake, args.warmup)
        sends_settled(server.database, args.warmup)
        campaign = create_campaign(api, to, None, "throughput")
        server.idle_runner_cpu()
        before = server_cpu(server)
        launched = launch(api, campaign["id"])
        sent = wait_for_requests(fake, set(to), "campaign")
        at_last = server_cpu(server)
        status, recorded = campaign_settled(server.database, campaign["id"], args.recipients)
        after = server_cpu(server)
        store = sends_settled(server.database, args.warmup + args.recipients)
        report = report_figures(api, campaign["id"])
        every = fake.message_requests()
    checks, found = once_each(every, to, known, "campaign")
    problems += found + store_problems(store, args.warmup + args.recipients, "campaign")
    problems += report_problems(report, args.recipients, "campaign")
    first, last = min(r.at for r in sent), max(r.at for r in sent)
    seconds = last - launched
    return {
        "target": "campaign",
        "recipients": args.recipients,
        "seconds": seconds,
        "per_second": args.recipients / seconds,
        "first_request_seconds": first - launched,
        "sending_seconds": last - first,
        "sending_per_second": (args.recipients - 1) / (last - first) if last > first else 0.0,
        "cpu_at_last_request": cpu_used(before, at_last, args.recipients),
        "cpu": cpu_used(before, after, args.recipients),
        "recorded": {"status": status, "sent": recorded},
        "report": report,
        "checks": checks,
        "stored": stored_figures(store),
        "problems": problems,
    }


# 2. pacing, and agents' replies meanwhile ------------------------------------------------


def open_conversations(server: ServeProcess, api: Api, count: int) -> list[dict[str, str]]:
    """``count`` customers write in over Twilio (signed webhooks): their conversations,
    each ``{"id", "address"}``."""
    phones = numbers(AGENT_PREFIX, count)
    with httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=30) as client:
        for phone in phones:
            answer = post_webhook(client, sms_form(phone, "Hello, is my order on its way?"))
            if answer.status_code != 200:
                raise BenchmarkFailed(f"inbound webhook answered {answer.status_code}")
    page = api.call("GET", "/api/conversations", params={"channel": "twilio", "limit": 100})
    found = [
        {"id": item["id"], "address": item["address"]}
        for item in page["items"]
        if item["address"] in set(phones)
    ]
    if len(found) != count:
        raise BenchmarkFailed(f"{len(found)} of the {count} customers' conversations found")
    return found


class Replier(threading.Thread):
    """An agent answering: one reply every ``every`` seconds, in turn to each conversation,
    until stopped; each reply's text, number, and when it was posted."""

    def __init__(self, api: Api, conversations: list[dict[str, str]], every: float) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.conversations = conversations
        self.every = every
        self.stopped = threading.Event()
        self.replies: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        started = time.monotonic()
        number = 0
        while not self.stopped.is_set():
            conversation = self.conversations[number % len(self.conversations)]
            text = f"Your order ships tomorrow (reply {number})."
            posted = time.monotonic()
            try:
                answer = self.api.client.post(
                    f"/api/conversations/{conversation['id']}/messages", json={"text": text}
                )
            except httpx.HTTPError as error:
                self.errors.append(repr(error))
            else:
                if answer.status_code != 202:
                    self.errors.append(f"{answer.status_code} {answer.text[:200]}")
                self.replies.append(
                    {
                        "to": conversation["address"],
                        "text": text,
                        "posted": posted,
                        "answered": time.monotonic(),
                    }
                )
            number += 1
            self.stopped.wait(max(0.0, started + number * self.every - time.monotonic()))


def reply_latencies(
    fake: FakeTwilio, replies: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """Each reply's time from its POST to the fake receiving it; wait for them first."""
    wanted = {reply["to"] for reply in replies}
    deadline = time.monotonic() + REPLY_ARRIVAL_SECONDS
    while True:
        arrived = {(r.param("To"), r.param("Body")): r.at for r in requests_to(fake, wanted)}
        missing = [r for r in replies if (r["to"], r["text"]) not in arrived]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    counts = Counter((r.param("To"), r.param("Body")) for r in requests_to(fake, wanted))
    twice = sum(1 for n in counts.values() if n > 1)
    latencies = [
        (arrived[(r["to"], r["text"])] - r["posted"]) * 1000
        for r in replies
        if (r["to"], r["text"]) in arrived
    ]
    answers = [(r["answered"] - r["posted"]) * 1000 for r in replies]
    problems = []
    if missing:
        problems.append(f"replies: {len(missing)} of {len(replies)} never reached the fake")
    if twice:
        problems.append(f"replies: {twice} reached the fake more than once")
    if not replies:
        problems.append("replies: none was posted while the campaign ran")
    figures: dict[str, Any] = {"posted": len(replies), "arrived": len(latencies)}
    if latencies:
        figures |= {
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies),
            "post_p50_ms": statistics.median(answers),
        }
    return figures, problems


def measure_pacing(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    to = numbers(RECIPIENT_PREFIX, args.paced_recipients)
    agents = numbers(AGENT_PREFIX, args.conversations)
    with (
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake,
        running_server(root / "paced", fake, f"twilio={args.channel_rate:g}", args.workers) as (
            server,
            api,
        ),
    ):
        conversations = open_conversations(server, api, args.conversations)
        campaign = create_campaign(api, to, args.rate, "paced")
        launched = launch(api, campaign["id"])
        wait_for_requests(fake, set(to), "paced campaign", least=1)
        replier = Replier(api, conversations, args.reply_every)
        replier.start()
        try:
            sent = wait_for_requests(fake, set(to), "paced campaign")
        finally:
            replier.stopped.set()
            replier.join(timeout=30)
        replies, problems = reply_latencies(fake, replier.replies)
        status, recorded = campaign_settled(server.database, campaign["id"], len(to))
        store = sends_settled(server.database, len(to) + len(replier.replies))
        report = report_figures(api, campaign["id"])
        every = fake.message_requests()
    problems += store_problems(store, len(to) + len(replier.replies), "paced")
    if replier.errors:
        problems.append(f"replies: {len(replier.errors)} POSTs failed: {replier.errors[:3]}")
    known = set(to) | set(agents)
    checks, found = once_each(every, to, known, "paced")
    problems += found + report_problems(report, len(to), "paced")
    arrivals = sorted(request.at for request in sent)
    span = arrivals[-1] - arrivals[0]
    expected = (len(to) - 1) / args.rate
    return {
        "target": "paced",
        "recipients": len(to),
        "rate": args.rate,
        "channel_rate": args.channel_rate,
        "first_request_seconds": arrivals[0] - launched,
        "span_seconds": span,
        "expected_seconds": expected,
        "error_percent": (span - expected) / expected * 100 if expected else 0.0,
        "achieved_per_second": (len(to) - 1) / span if span else 0.0,
        "most_in_any_second": most_within(arrivals, 1.0),
        "longest_gap_ms": max((b - a for a, b in itertools.pairwise(arrivals)), default=0) * 1000,
        "replies": replies,
        "reply_every_seconds": args.reply_every,
        "conversations": args.conversations,
        "recorded": {"status": status, "sent": recorded},
        "report": report,
        "checks": checks,
        "stored": stored_figures(store),
        "problems": problems,
    }


# 3. throttling ---------------------------------------------------------------------------


def rate_between(arrivals: list[float], start: float, end: float) -> float:
    inside = sum(1 for at in arrivals if start <= at < end)
    return inside / (end - start) if end > start else 0.0


def throttle(fake: FakeTwilio, seconds: float) -> tuple[float, float, int]:
    """Answer every ``Messages.json`` request 429 (Twilio's 20429) for ``seconds``: when the
    window opened and closed (the monotonic clock), and how many requests it answered."""
    fake.queue(*[MessageAnswer.error(TOO_MANY_REQUESTS)] * THROTTLE_ANSWERS)
    opened = time.monotonic()
    time.sleep(seconds)
    closed = time.monotonic()
    answered = THROTTLE_ANSWERS - len(fake.script)
    fake.reset()
    return opened, closed, answered


def throttled_problems(
    requests: list[TwilioRequest], store: dict[str, Any], to: list[str], answered: int
) -> list[str]:
    """Whether each number got exactly one accepted request: every number's requests are
    its message's attempts (each attempt but the last failed), the provider took every
    message, and the requests beyond one per number are the 429s the fake answered."""
    counts = Counter(request.param("To") for request in requests)
    attempts = {row[0]: (row[2], row[3]) for row in store["rows"]}
    problems = store_problems(store, len(to), "throttled")
    missing = [phone for phone in to if phone not in counts]
    if missing:
        problems.append(f"throttled: {len(missing)} numbers got no request, e.g. {missing[:3]}")
    unlike = {
        phone: (counts[phone], attempts.get(phone))
        for phone in to
        if attempts.get(phone, (0, False))[0] != counts[phone]
    }
    if unlike:
        sample = dict(list(unlike.items())[:3])
        problems.append(
            f"throttled: {len(unlike)} numbers' requests are not their message's attempts"
            f" (requests, (attempts, taken)), e.g. {sample}"
        )
    if len(requests) - answered != len(to):
        problems.append(
            f"throttled: {len(requests)} requests, {answered} answered 429:"
            f" {len(requests) - answered} accepted for {len(to)} numbers"
        )
    return problems


def measure_throttling(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    to = numbers(RECIPIENT_PREFIX, args.throttled_recipients)
    wanted = set(to)
    with (
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake,
        running_server(root / "throttled", fake, f"twilio={args.channel_rate:g}", args.workers) as (
            server,
            api,
        ),
    ):
        campaign = create_campaign(api, to, args.rate, "throttled")
        launched = launch(api, campaign["id"])
        share = max(1, round(len(to) * THROTTLE_AFTER))
        wait_for_requests(fake, wanted, "throttled campaign", least=share)
        opened, closed, answered = throttle(fake, args.throttle_seconds)
        # every number asked once more than its 429s, failing on a stall
        wait_for_requests(
            fake,
            wanted,
            "throttled campaign",
            least=len(to) + answered,
            stall=THROTTLED_STALL_SECONDS,
        )
        status, recorded = campaign_settled(server.database, campaign["id"], len(to))
        store = sends_settled(server.database, len(to))
        report = report_figures(api, campaign["id"])
        sent = requests_to(fake, wanted)
        every = fake.message_requests()
    problems = throttled_problems(sent, store, to, answered)
    problems += report_problems(report, len(to), "throttled")
    strangers = {request.param("To") for request in every} - wanted
    if strangers:
        problems.append(f"throttled: requests to {len(strangers)} unknown numbers")
    # a number's last request was accepted (checked above), any before it answered 429
    last: dict[str | None, float] = {}
    for request in sent:
        last[request.param("To")] = max(request.at, last.get(request.param("To"), 0.0))
    arrivals = sorted(last.values())
    first, end = arrivals[0], arrivals[-1]
    by_second = Counter(int(at - first) for at in arrivals)
    per_second = [by_second.get(second, 0) for second in range(int(end - first) + 1)]
    after = closed - first
    recovered = next(
        (
            second - after
            for second, n in enumerate(per_second)
            if second >= after and n >= args.rate * 0.95
        ),
        None,
    )
    return {
        "target": "throttled",
        "recipients": len(to),
        "rate": args.rate,
        "channel_rate": args.channel_rate,
        "first_request_seconds": first - launched,
        "window_opened_seconds": opened - first,
        "window_seconds": closed - opened,
        "answered_429": answered,
        "requests": len(sent),
        "retried_numbers": sum(1 for n in Counter(r.param("To") for r in sent).values() if n > 1),
        "rate_before": rate_between(arrivals, first, opened),
        "rate_in_window": rate_between(arrivals, opened, closed),
        "rate_after_10s": rate_between(arrivals, closed, min(end, closed + 10)),
        "rate_last_10s": rate_between(arrivals, max(closed, end - 10), end),
        "accepted_per_second": per_second,
        "longest_silence_seconds": max(
            (b - a for a, b in itertools.pairwise(arrivals)), default=0.0
        ),
        "recovered_after_seconds": recovered,
        "span_seconds": end - first,
        "unthrottled_seconds": (len(to) - 1) / args.rate,
        "recorded": {"status": status, "sent": recorded},
        "report": report,
        "stored": stored_figures(store),
        "problems": problems,
    }


# the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "recipients": args.recipients,
            "paced_recipients": args.paced_recipients,
            "throttled_recipients": args.throttled_recipients,
            "rate": args.rate,
            "channel_rate": args.channel_rate,
            "throttle_seconds": args.throttle_seconds,
            "reply_every": args.reply_every,
            "conversations": args.conversations,
            "warmup": args.warmup,
            "workers": args.workers,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "targets": [],
    }
    with tempfile.TemporaryDirectory(prefix="omnichannel-bench-campaign-") as folder:
        root = Path(folder)
        targets = results["targets"]
        targets.append(measure_throughput(args, root))
        targets.append(measure_outbox(args, root))
        if args.paced_recipients:
            targets.append(measure_pacing(args, root))
        if args.throttled_recipients:
            targets.append(measure_throttling(args, root))
    results["problems"] = [problem for target in targets for problem in target["problems"]]
    return results


def runs(values: list[int]) -> str:
    """``values`` spelled with each run of three or more equal ones as ``value x count``."""
    spelled = []
    for value, group in itertools.groupby(values):
        count = len(list(group))
        spelled += [f"{value}x{count}"] if count >= 3 else [str(value)] * count
    return " ".join(spelled)


def _cpu(figures: dict[str, float]) -> str:
    return (
        f"{figures['server_us']:.0f} us (runner {figures['runner_us']:.0f},"
        f" web {figures['web_us']:.0f})"
    )


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    parts = {target["target"]: target for target in results["targets"]}
    campaign, outbox = parts["campaign"], parts["outbox"]
    load = " / ".join(f"{value:.2f}" for value in settings["load_average_at_start"])
    lines = [
        f"campaigns: the real server ({settings['workers']} web workers + the job runner,"
        f" SQLite) sending to a fake Twilio on loopback; load at start {load}",
        "",
        f"throughput, unpaced: {campaign['recipients']} recipients",
        f"{'path':<22} {'seconds':>8} {'per s':>7}  server CPU per message (until stored)",
        f"{'campaign (list)':<22} {campaign['seconds']:>8.2f} {campaign['per_second']:>7.0f}"
        f"  {_cpu(campaign['cpu'])}",
        f"{'outbox (send/sms)':<22} {outbox['seconds']:>8.2f} {outbox['per_second']:>7.0f}"
        f"  {_cpu(outbox['cpu'])}",
        f"ratio campaign/outbox: {campaign['per_second'] / outbox['per_second']:.2f} in"
        f" messages/s, {campaign['cpu']['server_us'] / outbox['cpu']['server_us']:.2f}x the"
        " CPU per message",
        f"campaign: first request {campaign['first_request_seconds']:.2f} s after the launch"
        f" (freeze {campaign['report']['freeze_seconds'] or 0:.2f} s by the store's clock),"
        f" then {campaign['sending_per_second']:.0f}/s to the last",
        f"outbox: queued in {outbox['queueing']['seconds']:.2f} s"
        f" ({outbox['queueing']['per_second']:.0f}/s); the bench's process (the fake Twilio)"
        f" {campaign['cpu']['bench_us']:.0f} us per message beside the campaign,"
        f" {outbox['cpu']['bench_us']:.0f} us beside the outbox",
        f"checks: campaign {campaign['checks']}, report {campaign['report']['status']}"
        f" sent {campaign['report']['counts']['sent']}; outbox {outbox['checks']},"
        f" stored {outbox['stored']}",
    ]
    paced = parts.get("paced")
    if paced:
        replies = paced["replies"]
        lines += [
            "",
            f"pacing: {paced['recipients']} recipients at {paced['rate']:g}/s (channel"
            f" {paced['channel_rate']:g}/s); first request {paced['first_request_seconds']:.2f}"
            " s after the launch",
            f"first to last request {paced['span_seconds']:.2f} s, expected"
            f" {paced['expected_seconds']:.2f} s ((N - 1) / rate): error"
            f" {paced['error_percent']:+.2f}%; {paced['achieved_per_second']:.2f}/s; most in"
            f" any 1 s {paced['most_in_any_second']}, longest gap"
            f" {paced['longest_gap_ms']:.0f} ms",
            f"agents' replies meanwhile (one every {paced['reply_every_seconds']:g} s to"
            f" {paced['conversations']} conversations): {replies['arrived']} of"
            f" {replies['posted']} reached the fake; POST to the fake p50"
            f" {replies.get('p50_ms', 0):.0f} ms, p99 {replies.get('p99_ms', 0):.0f} ms, max"
            f" {replies.get('max_ms', 0):.0f} ms (the POST's own answer p50"
            f" {replies.get('post_p50_ms', 0):.0f} ms)",
            f"checks: {paced['checks']}, report {paced['report']['status']} sent"
            f" {paced['report']['counts']['sent']}",
        ]
    throttled = parts.get("throttled")
    if throttled:
        recovered = throttled["recovered_after_seconds"]
        lines += [
            "",
            f"throttling: {throttled['recipients']} recipients at {throttled['rate']:g}/s;"
            f" every request answered 429 (20429) for {throttled['window_seconds']:.1f} s from"
            f" {throttled['window_opened_seconds']:.1f} s after the first",
            f"{throttled['answered_429']} requests answered 429; sent"
            f" {throttled['rate_before']:.1f}/s before, {throttled['rate_in_window']:.1f}/s"
            f" during, {throttled['rate_after_10s']:.1f}/s"
            " in the 10 s after,"
            f" {throttled['rate_last_10s']:.1f}/s in the last 10 s; back at"
            f" {throttled['rate']:g}/s "
            + (f"{recovered:.0f} s after the window" if recovered is not None else "never")
            + f"; first to last {throttled['span_seconds']:.1f} s (unthrottled"
            f" {throttled['unthrottled_seconds']:.1f} s)",
            "accepted per second from the first: "
            + runs(throttled["accepted_per_second"])
            + f"; longest silence {throttled['longest_silence_seconds']:.1f} s",
            f"checks: {throttled['requests']} requests for {throttled['recipients']} numbers,"
            f" {throttled['retried_numbers']} retried; report {throttled['report']['status']}"
            f" sent {throttled['report']['counts']['sent']}",
        ]
    lines.append("")
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    if not results["problems"]:
        lines.append("checks: one accepted request per recipient, every one sent: OK")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.campaign",
        description="A campaign's throughput beside the outbox's, its pacing with agents'"
        " replies meanwhile, and a provider's throttling, against a fake Twilio.",
    )
    parser.add_argument(
        "--recipients", type=int, default=10_000, help="recipients of the unpaced campaign"
    )
    parser.add_argument(
        "--paced-recipients", type=int, default=10_000, help="of the paced one (0: none)"
    )
    parser.add_argument(
        "--throttled-recipients", type=int, default=1_000, help="of the throttled one (0: none)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="the paced campaigns' rate")
    parser.add_argument(
        "--channel-rate", type=float, default=100.0, help="twilio's OMNICHANNEL_SEND_RATES"
    )
    parser.add_argument(
        "--throttle-seconds", type=float, default=4.0, help="how long the fake answers 429"
    )
    parser.add_argument(
        "--reply-every", type=float, default=0.5, help="seconds between agents' replies"
    )
    parser.add_argument(
        "--conversations", type=int, default=20, help="conversations the agents reply to"
    )
    parser.add_argument("--warmup", type=int, default=50, help="messages sent first, untimed")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn web workers")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if not 1 <= args.recipients <= 50_000:
        parser.error("--recipients must be between 1 and 50000")
    for name in ("paced_recipients", "throttled_recipients"):
        if not (getattr(args, name) == 0 or 2 <= getattr(args, name) <= 50_000):
            parser.error(f"--{name.replace('_', '-')} must be 0 or between 2 and 50000")
    if not 0 < args.rate < args.channel_rate <= 10_000:
        parser.error("--rate must be above 0 and below --channel-rate, itself at most 10000")
    if not 0 < args.throttle_seconds <= 60 or not 0.01 <= args.reply_every <= 60:
        parser.error("--throttle-seconds must be in (0, 60], --reply-every in [0.01, 60]")
    if not 1 <= args.conversations <= 100 or not 0 <= args.warmup <= 10_000:
        parser.error("--conversations must be 1 to 100, --warmup 0 to 10000")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())
