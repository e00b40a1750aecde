"""The CRM at 100,000 contacts, on SQLite and on Firestore (its emulator), in one run: CSV
import rows per second, and segment count and first page times for three typical filters.

    .venv/bin/python -m bench.crm [--contacts N] [--firestore-contacts N] [--stores S]
        [--repeats R] [--webhooks N] [--workers W] [--json]

For each store, in a fresh temporary folder, the real server (``omnichannel serve``:
gunicorn with its uvicorn workers and the job runner, which works imports) and only its
HTTP API:

1. Import: a CSV of N rows is generated (names, unique emails and E.164 phones, one to three
   tags of ten, company, locale, time zone, four custom attributes declared first through
   ``POST /api/crm/attributes``, a chat address on the ``http`` channel for a third of the
   contacts; one row in 40 repeats an earlier row's email, one in 500 has an email that is
   not one). It is uploaded (``POST /api/media``), imported (``POST /api/crm/imports``, dedupe
   by email or phone) and followed (``GET /api/crm/imports/{id}``) until done: rows per
   second from the import's ``started_at`` to its ``finished_at``. Checked: created +
   updated + skipped + failed == rows, and each of them the number the generator expects.
   Beside it, the floor: the same bytes read by :mod:`csv` alone.
2. Activity: signed webhooks through the ``http`` channel (``bench.load_generator``) from
   the chat addresses of the first contacts, so that they have conversations.
3. Segments: three filters saved as segments (a tag; a tag and an attribute comparison and
   not opted out; active in the last 30 days or a pending conversation), and one that holds
   every contact (the baseline of a whole pass with nothing to test). For each, the median
   of R timed ``GET /api/crm/segments/{id}/count`` and of R ``GET .../contacts?limit=50``.
   Checked: each count is the generator's, each member of a first page one it expects.
   On SQLite, beside them, the tag filter counted by hand-written SQL over the store's file
   (read-only): what compiling a filter to SQL would cost.

The emulator is started only for the Firestore half and stopped at the end, whatever
happens (a failed check, an error, Ctrl-C, SIGTERM); so is every server. Any failed check
prints ``FAILED: ...`` and exits 1. See docs/benchmarks.md ("CRM").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx

from bench.command import BenchmarkFailed, run_command, run_load_generator
from bench.outbox import ServeProcess, cpu_seconds
from bench.servers import HOST, free_port, server_environment
from bench.store_backends import FirestoreBackend, SqliteBackend, tree_cpu_seconds
from omnichannel_core.testing.emulators import EmulatorError, start_firestore

TAGS = (
    "customer",
    "lead",
    "newsletter",
    "vip",
    "trial",
    "churned",
    "partner",
    "b2b",
    "b2c",
    "event-2026",
)
TAG_WEIGHTS = (40, 25, 20, 8, 10, 6, 3, 12, 15, 5)
PLANS = ("free", "starter", "pro", "enterprise")
LOCALES = ("es", "en", "en-GB", "pt-BR", "fr", "de")
TIMEZONES = ("Europe/Madrid", "Europe/London", "America/Sao_Paulo", "Europe/Paris", "UTC")
FIRST_NAMES = ("Ana", "Luis", "María", "John", "Chloé", "Jürgen", "Aiko", "Olu", "Priya", "Sam")
LAST_NAMES = ("García", "Smith", "Núñez", "Müller", "Dubois", "Silva", "Kowalski", "Ito", "Ng")
ATTRIBUTES = (
    {"key": "plan", "type": "choice", "label": "Plan", "choices": list(PLANS)},
    {"key": "lifetime_value", "type": "number", "label": "Lifetime value (EUR)"},
    {"key": "signup_date", "type": "date", "label": "Signed up on"},
    {"key": "newsletter", "type": "boolean", "label": "Takes the newsletter"},
)
COLUMNS = (
    "Name",
    "Email",
    "Phone",
    "Chat",
    "Company",
    "Locale",
    "Timezone",
    "Tags",
    "Plan",
    "Lifetime value",
    "Signup date",
    "Newsletter",
)
MAPPING = {
    "Name": "display_name",
    "Email": "email",
    "Phone": "phone",
    "Chat": "identity.http",
    "Company": "company",
    "Locale": "locale",
    "Timezone": "timezone",
    "Tags": "tags",
    "Plan": "attributes.plan",
    "Lifetime value": "attributes.lifetime_value",
    "Signup date": "attributes.signup_date",
    "Newsletter": "attributes.newsletter",
}
REPEAT_EVERY = 40
"""One row in this many repeats the email of an earlier row (dedupe: an update)."""
BROKEN_EVERY = 500
"""One row in this many has an email that is not one (the row fails)."""
CHAT_SHARE = 3
"""One contact in this many has a chat address on the ``http`` channel."""
VIP_VALUE = 500
PAGE_LIMIT = 50
SEED = 16
POLL_SECONDS = 0.5
IMPORT_TIMEOUT_SECONDS = 3 * 3600
REQUEST_TIMEOUT_SECONDS = 1800.0
MEDIA_MAX_BYTES = 512 * 1024 * 1024
FILTERS: dict[str, dict[str, Any]] = {
    "tag": {"field": "tags", "op": "contains", "value": "customer"},
    "tag+attribute+consent": {
        "and": [
            {"field": "tags", "op": "contains", "value": "vip"},
            {"field": "attributes.lifetime_value", "op": "gt", "value": VIP_VALUE},
            {"not": {"field": "opted_out", "op": "exists"}},
        ]
    },
    "activity": {
        "or": [
            {"field": "last_activity_at", "op": "gt", "value": "-30d"},
            {"field": "conversation_status", "op": "contains", "value": "pending"},
        ]
    },
    "everything": {"field": "created_at", "op": "exists"},
}
"""The segments timed: the three typical filters, and the baseline (every contact)."""
SEGMENT_NAMES = {
    "tag": "tag customer",
    "tag+attribute+consent": "vip, value > 500, not opted out",
    "activity": "active 30 d, or pending",
    "everything": "every contact (baseline)",
}
TAG_SQL = (
    "SELECT count(*) FROM contacts WHERE merged_into IS NULL"
    " AND EXISTS (SELECT 1 FROM json_each(contacts.tags) WHERE value = ?)"
)


# the generated file -----------------------------------------------------------------------


@attrs.define
class Person:
    """A contact as the import should leave it."""

    email: str
    tags: list[str]
    attributes: dict[str, Any]
    chat: str | None


@attrs.frozen
class Generated:
    """The CSV and what importing it must give."""

    content: bytes
    rows: int
    created: int
    updated: int
    failed: int
    people: list[Person]
    """The contacts made, in the order of the rows that made them."""

    def members(self, name: str, senders: int) -> set[str]:
        """The emails of the contacts segment ``name`` holds, once ``senders`` chat
        addresses (the first ones) wrote."""
        if name == "tag":
            return {p.email for p in self.people if "customer" in p.tags}
        if name == "tag+attribute+consent":
            return {
                p.email
                for p in self.people
                if "vip" in p.tags and p.attributes.get("lifetime_value", 0) > VIP_VALUE
            }
        if name == "activity":
            return {p.email for p in self.people[:senders]}
        return {p.email for p in self.people}


def chat_address(index: int) -> str:
    """The phone of the ``index``-th contact made, also its chat address when it has one:
    what ``bench.load_generator`` writes from (``+1555`` and 7 digits)."""
    return f"+1555{index:07d}"


def generate(rows: int, seed: int = SEED) -> Generated:
    """``rows`` CSV rows, and the contacts and counts importing them gives."""
    draw = random.Random(seed)
    chats = rows // CHAT_SHARE
    people: list[Person] = []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    updated = failed = 0
    first_day = date(2019, 1, 1)
    for number in range(rows):
        tags = sorted(set(draw.choices(TAGS, TAG_WEIGHTS, k=draw.randint(1, 3))))
        value = round(draw.expovariate(1 / 300), 2)
        attributes = {
            "plan": draw.choice(PLANS),
            "lifetime_value": value,
            "signup_date": (first_day + timedelta(days=draw.randrange(2500))).isoformat(),
            "newsletter": draw.random() < 0.4,
        }
        name = f"{draw.choice(FIRST_NAMES)} {draw.choice(LAST_NAMES)}"
        cells = {
            "Name": name,
            "Company": f"Company {draw.randrange(5000)} S.L." if draw.random() < 0.6 else "",
            "Locale": draw.choice(LOCALES),
            "Timezone": draw.choice(TIMEZONES),
            "Tags": ";".join(tags),
            "Plan": attributes["plan"].upper() if number % 7 == 0 else attributes["plan"],
            "Lifetime value": f"{value:.2f}",
            "Signup date": attributes["signup_date"],
            "Newsletter": "yes" if attributes["newsletter"] else "no",
            "Chat": "",
        }
        if number % BROKEN_EVERY == BROKEN_EVERY - 1:
            cells["Email"] = f"broken-{number}-at-example.com"
            cells["Phone"] = f"+1556{number:07d}"
            failed += 1
        elif number % REPEAT_EVERY == REPEAT_EVERY - 1 and people:
            earlier = people[draw.randrange(len(people))]
            cells["Email"] = earlier.email.upper() if number % 3 == 0 else earlier.email
            cells["Phone"] = f"+1 556 {number:07d}"  # a second phone: added to the contact
            earlier.tags = list(dict.fromkeys([*earlier.tags, *tags]))
            earlier.attributes = {**earlier.attributes, **attributes}
            updated += 1
        else:
            index = len(people)
            email = f"{name.split()[0].lower()}.{index}@example{index % 97}.com"
            email = email.replace("í", "i").replace("é", "e").replace("ü", "u")
            chat = chat_address(index) if index < chats else None
            cells["Email"] = email
            cells["Phone"] = chat_address(index)
            cells["Chat"] = chat or ""
            people.append(Person(email, tags, attributes, chat))
        writer.writerow([cells[column] for column in COLUMNS])
    return Generated(out.getvalue().encode(), rows, len(people), updated, failed, people)


def csv_floor(content: bytes) -> dict[str, Any]:
    """The file read by :mod:`csv` alone (decoded, split into rows): the floor of any
    import. Best of three."""
    best = float("inf")
    rows = 0
    for _ in range(3):
        started = time.perf_counter()
        reader = csv.reader(io.StringIO(content.decode("utf-8")))
        next(reader)
        rows = sum(1 for _ in reader)
        best = min(best, time.perf_counter() - started)
    return {"rows": rows, "seconds": best, "rows_per_second": rows / best}


# the API ----------------------------------------------------------------------------------


class Api:
    """The server's API as an admin (its API key)."""

    def __init__(self, port: int, api_key: str) -> None:
        self.client = httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, expect: int = 200, **options: Any) -> Any:
        response = self.client.request(method, path, **options)
        if response.status_code != expect:
            raise BenchmarkFailed(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def timed(self, path: str) -> tuple[float, Any]:
        started = time.perf_counter()
        answer = self.call("GET", path)
        return time.perf_counter() - started, answer


def import_file(api: Api, generated: Generated, server: ServeProcess) -> dict[str, Any]:
    """Declare the attributes, upload the file, import it, follow it until done."""
    for attribute in ATTRIBUTES:
        api.call("POST", "/api/crm/attributes", 201, json=attribute)
    media = api.call(
        "POST",
        "/api/media",
        201,
        params={"filename": "contacts.csv"},
        content=generated.content,
        headers={"Content-Type": "text/csv"},
    )
    runner_cpu = server.runner_cpu()
    posted = time.perf_counter()
    record = api.call(
        "POST",
        "/api/crm/imports",
        202,
        json={"media_id": media["id"], "mapping": MAPPING, "dedupe": "email_or_phone"},
    )
    path = f"/api/crm/imports/{record['id']}"
    deadline = posted + IMPORT_TIMEOUT_SECONDS
    progress: list[tuple[float, int]] = []
    while record["state"] in ("pending", "running"):
        if time.perf_counter() > deadline:
            raise BenchmarkFailed(f"the import did not end in {IMPORT_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
        record = api.call("GET", path)
        progress.append((time.perf_counter() - posted, record["rows_read"]))
    wall = time.perf_counter() - posted
    runner_cpu = server.runner_cpu() - runner_cpu
    started = datetime.fromisoformat(record["started_at"])
    finished = datetime.fromisoformat(record["finished_at"])
    seconds = (finished - started).total_seconds()
    rows = record["rows_read"]
    return {
        "state": record["state"],
        "error": record.get("error"),
        "bytes": len(generated.content),
        "rows": rows,
        "created": record["created"],
        "updated": record["updated"],
        "skipped": record["skipped"],
        "failed": record["failed"],
        "first_errors": record["errors"][:3],
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds else 0.0,
        "wall_seconds": wall,
        "runner_cpu_us_per_row": runner_cpu / rows * 1e6 if rows else None,
        "rows_per_second_by_tenth": pace_by_tenth(progress, rows),
    }


def pace_by_tenth(progress: list[tuple[float, int]], rows: int) -> list[float | None]:
    """Rows per second over each tenth of the file, from the polled progress: from the
    first poll at or past the tenth's start (and past 0) to the first at or past its end.
    None for a tenth too short to see (rows are saved a batch at a time)."""
    paces: list[float | None] = []
    for tenth in range(10):
        low, high = max(1, rows * tenth // 10), rows * (tenth + 1) // 10
        first = next(((at, read) for at, read in progress if read >= low), None)
        last = next(((at, read) for at, read in progress if read >= high), None)
        if first is None or last is None or last[0] <= first[0]:
            paces.append(None)
        else:
            paces.append((last[1] - first[1]) / (last[0] - first[0]))
    return paces


def import_problems(report: dict[str, Any], generated: Generated) -> list[str]:
    found = []
    if report["state"] != "done":
        found.append(f"import ended {report['state']}: {report['error']}")
    total = report["created"] + report["updated"] + report["skipped"] + report["failed"]
    if total != report["rows"] or report["rows"] != generated.rows:
        found.append(
            f"import counts {total} rows (created + updated + skipped + failed) of"
            f" {report['rows']} read, {generated.rows} in the file"
        )
    expected = {
        "created": generated.created,
        "updated": generated.updated,
        "skipped": 0,
        "failed": generated.failed,
    }
    got = {name: report[name] for name in expected}
    if got != expected:
        found.append(
            f"import counts {got}, expected {expected}; first errors: {report['first_errors']}"
        )
    return found


def send_activity(port: int, secret: str, senders: int, webhooks: int) -> dict[str, Any]:
    """``webhooks`` signed webhooks from the first ``senders`` chat addresses."""
    load = argparse.Namespace(
        requests=webhooks, warmup=0, concurrency=16, duration=600.0, senders=senders
    )
    started = time.perf_counter()
    report = run_load_generator(
        port, load, f"--secret={secret}", f"--run-id={secrets.token_hex(4)}"
    )
    return {
        "webhooks": webhooks,
        "senders": senders,
        "statuses": report["statuses"],
        "seconds": time.perf_counter() - started,
    }


def time_segments(
    api: Api, generated: Generated, senders: int, repeats: int
) -> list[dict[str, Any]]:
    """Save each filter as a segment; time its count and first page ``repeats`` times."""
    results = []
    for name, spelled in FILTERS.items():
        segment = api.call(
            "POST",
            "/api/crm/segments",
            201,
            json={"name": SEGMENT_NAMES[name], "filter": spelled},
        )
        base = f"/api/crm/segments/{segment['id']}"
        counts, pages = [], []
        count = page = None
        for _ in range(repeats):
            seconds, count = api.timed(f"{base}/count")
            counts.append(seconds)
            seconds, page = api.timed(f"{base}/contacts?limit={PAGE_LIMIT}")
            pages.append(seconds)
        assert count is not None and page is not None
        expected = generated.members(name, senders)
        strangers = [item["id"] for item in page["items"] if not expected & set(item["emails"])]
        results.append(
            {
                "segment": name,
                "label": SEGMENT_NAMES[name],
                "filter": spelled,
                "expected": len(expected),
                "count": count["count"],
                "count_seconds": statistics.median(counts),
                "count_runs": counts,
                "page_seconds": statistics.median(pages),
                "page_runs": pages,
                "page_items": len(page["items"]),
                "page_more": page.get("next_cursor") is not None,
                "page_strangers": strangers[:5],
            }
        )
    return results


def segment_problems(segments: list[dict[str, Any]]) -> list[str]:
    found = []
    for result in segments:
        if result["count"] != result["expected"]:
            found.append(
                f"segment {result['segment']}: counted {result['count']},"
                f" expected {result['expected']}"
            )
        if result["page_strangers"]:
            found.append(
                f"segment {result['segment']}: first page holds contacts it should not:"
                f" {result['page_strangers']}"
            )
        if result["page_items"] > PAGE_LIMIT:
            found.append(f"segment {result['segment']}: {result['page_items']} items on a page")
        wanted = min(PAGE_LIMIT, result["expected"])
        if result["page_items"] < wanted and not result["page_more"]:
            found.append(
                f"segment {result['segment']}: a last page of {result['page_items']}"
                f" where {wanted} were due"
            )
    return found


def sql_tag_count(database: Path, repeats: int) -> dict[str, Any]:
    """The tag filter as one SQL statement over the store's file, read-only."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        runs, count = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            count = connection.execute(TAG_SQL, ("customer",)).fetchone()[0]
            runs.append(time.perf_counter() - started)
    finally:
        connection.close()
    return {"count": count, "seconds": statistics.median(runs), "runs": runs}


# one store --------------------------------------------------------------------------------


Backend = SqliteBackend | FirestoreBackend


@contextlib.contextmanager
def running_server(
    backend: Backend, workdir: Path, workers: int
) -> Iterator[tuple[ServeProcess, str, str]]:
    """``omnichannel serve`` on ``backend``; yields it, its API key and webhook secret."""
    api_key, secret = secrets.token_hex(16), secrets.token_hex(16)
    env = server_environment(workdir, free_port(), workers, secret, api_key)
    env.update(backend.environment())
    env.update(
        {
            "OMNICHANNEL_MEDIA_MAX_BYTES": str(MEDIA_MAX_BYTES),
            # one client makes every call: not a flood to refuse
            "OMNICHANNEL_RATE_LIMIT": "0",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "0",
        }
    )
    server = ServeProcess(workdir, env)
    try:
        server.start()
        yield server, api_key, secret
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- {backend.name} server log ---\n{server.log()[-4000:]}\n")
        raise
    server.stop()


def measure(
    backend: Backend, generated: Generated, args: argparse.Namespace, root: Path
) -> dict[str, Any]:
    workdir = root / backend.name
    report: dict[str, Any] = {
        "target": backend.name,
        "contacts_rows": generated.rows,
        "load_average_at_start": os.getloadavg(),
    }
    with running_server(backend, workdir, args.workers) as (server, api_key, secret):
        api = Api(server.port, api_key)
        try:
            server.idle_runner_cpu()
            store_cpu = backend.cpu_seconds()
            report["import"] = import_file(api, generated, server)
            if store_cpu is not None:
                used = (backend.cpu_seconds() or 0.0) - store_cpu
                report["import"]["emulator_cpu_us_per_row"] = used / generated.rows * 1e6
            report["problems"] = import_problems(report["import"], generated)
            if report["problems"]:
                return report
            chats = sum(1 for person in generated.people if person.chat)
            senders = min(args.senders, chats)
            report["activity"] = send_activity(server.port, secret, senders, args.webhooks)
            if report["activity"]["statuses"] != {"200": args.webhooks}:
                report["problems"].append(f"webhooks answered {report['activity']['statuses']}")
            report["load_average_before_segments"] = os.getloadavg()
            report["segments"] = time_segments(api, generated, senders, args.repeats)
            report["problems"] += segment_problems(report["segments"])
            if isinstance(backend, SqliteBackend):
                sql = sql_tag_count(workdir / "data" / "omnichannel.db", args.repeats)
                report["sql_tag_count"] = sql
                expected = report["segments"][0]["expected"]
                if sql["count"] != expected:
                    report["problems"].append(
                        f"hand-written SQL counted {sql['count']}, expected {expected}"
                    )
            report["runner_cpu_seconds"] = cpu_seconds(server.runner)
        finally:
            api.close()
        report["server_log_tail"] = server.log()[-2000:]
    report["problems"] = [f"{backend.name}: {problem}" for problem in report["problems"]]
    return report


def measure_on_emulator(
    generated: Generated, args: argparse.Namespace, root: Path
) -> tuple[dict[str, Any], int]:
    try:
        emulator = start_firestore(root / "firestore-emulator")
    except EmulatorError as error:
        raise BenchmarkFailed(str(error)) from None
    try:
        report = measure(FirestoreBackend(emulator), generated, args, root)
        report["emulator_cpu_seconds"] = tree_cpu_seconds(emulator.process.pid)
    except BaseException:
        sys.stderr.write(f"--- firestore emulator log ---\n{emulator.log_tail()}\n")
        raise
    finally:
        emulator.stop()
    return report, emulator.pgid


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "contacts": args.contacts,
            "firestore_contacts": args.firestore_contacts or args.contacts,
            "stores": args.stores,
            "repeats": args.repeats,
            "webhooks": args.webhooks,
            "senders": args.senders,
            "workers": args.workers,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
        "targets": [],
        "problems": [],
    }
    files: dict[int, Generated] = {}

    def generated_for(rows: int) -> Generated:
        if rows not in files:
            files[rows] = generate(rows)
        return files[rows]

    floors = results.setdefault("csv_floor", {})
    with tempfile.TemporaryDirectory(prefix="omnichannel-crm-bench-") as folder:
        root = Path(folder)
        if "sqlite" in args.stores:
            generated = generated_for(args.contacts)
            floors[str(generated.rows)] = csv_floor(generated.content)
            results["targets"].append(measure(SqliteBackend(), generated, args, root))
        if "firestore" in args.stores:
            generated = generated_for(args.firestore_contacts or args.contacts)
            floors.setdefault(str(generated.rows), csv_floor(generated.content))
            report, group = measure_on_emulator(generated, args, root)
            results["targets"].append(report)
            results["emulator_process_group"] = group
    for report in results["targets"]:
        results["problems"] += report["problems"]
    return results


# output -----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.01 else f"{seconds * 1000:.1f}"


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    lines = [
        f"crm: CSV import and segments, {settings['workers']} gunicorn worker(s) + the job"
        f" runner, loopback; median of {settings['repeats']} runs per segment call",
        "(firestore: the official emulator, an in-memory Java process on the same cores)",
    ]
    for report in results["targets"]:
        floor = results["csv_floor"][str(report["contacts_rows"])]
        load = " / ".join(f"{value:.2f}" for value in report["load_average_at_start"])
        lines += ["", f"== {report['target']}: {report['contacts_rows']} CSV rows (load {load})"]
        done = report.get("import")
        if done:
            emulator = done.get("emulator_cpu_us_per_row")
            lines.append(
                f"import      {done['rows']:>7} rows in {done['seconds']:8.1f} s"
                f" = {done['rows_per_second']:8.0f} rows/s   (runner CPU"
                f" {done['runner_cpu_us_per_row']:.0f} us/row"
                + (f", emulator CPU {emulator:.0f} us/row" if emulator is not None else "")
                + f"; {done['bytes'] / 1e6:.1f} MB)"
            )
            lines.append(
                f"  created {done['created']}, updated {done['updated']}, skipped"
                f" {done['skipped']}, failed {done['failed']}"
            )
            paces = " ".join(
                f"{pace:.0f}" if pace is not None else "-"
                for pace in done["rows_per_second_by_tenth"]
            )
            lines.append(f"  rows/s over each tenth of the file: {paces}")
            lines.append(
                f"csv module  {floor['rows']:>7} rows in {floor['seconds']:8.3f} s"
                f" = {floor['rows_per_second']:8.0f} rows/s   (the floor)"
            )
        activity = report.get("activity")
        if activity:
            lines.append(
                f"activity    {activity['webhooks']} webhooks from {activity['senders']}"
                f" contacts' chat addresses in {activity['seconds']:.1f} s: {activity['statuses']}"
            )
        segments = report.get("segments")
        if segments:
            lines += [
                "",
                f"{'segment':<34} {'expected':>8} {'count':>8} {'count ms':>9}"
                f" {'page ms':>8} {'items':>6}",
            ]
            for result in segments:
                lines.append(
                    f"{result['label']:<34} {result['expected']:>8} {result['count']:>8}"
                    f" {_ms(result['count_seconds']):>9} {_ms(result['page_seconds']):>8}"
                    f" {result['page_items']:>5}{'+' if result['page_more'] else ' '}"
                )
        sql = report.get("sql_tag_count")
        if sql:
            lines.append(
                f"{'tag customer, hand-written SQL':<34} {'':>8} {sql['count']:>8}"
                f" {_ms(sql['seconds']):>9}"
            )
    lines.append("")
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    if not results["problems"]:
        lines.append("checks: import counts, segment counts and first pages as expected: OK")
    return "\n".join(lines)


def _stores(raw: str) -> tuple[str, ...]:
    stores = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not stores or any(store not in ("sqlite", "firestore") for store in stores):
        raise argparse.ArgumentTypeError("a comma-separated list of sqlite, firestore")
    return stores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crm",
        description="CSV import rows per second and segment count and first page times,"
        " on SQLite, then on Firestore (its emulator).",
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="CSV rows imported")
    parser.add_argument(
        "--firestore-contacts",
        type=int,
        default=None,
        help="CSV rows imported on Firestore (default: --contacts)",
    )
    parser.add_argument(
        "--stores", type=_stores, default=("sqlite", "firestore"), help="sqlite,firestore"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each call")
    parser.add_argument(
        "--webhooks", type=int, default=4000, help="webhooks sent before the segments"
    )
    parser.add_argument(
        "--senders", type=int, default=2000, help="contacts the webhooks come from (at most)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if not 10 <= args.contacts <= 1_000_000:
        parser.error("--contacts must be between 10 and 1000000")
    if args.firestore_contacts is not None and not 10 <= args.firestore_contacts <= 1_000_000:
        parser.error("--firestore-contacts must be between 10 and 1000000")
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats must be between 1 and 20")
    if not 1 <= args.webhooks <= 100_000 or args.senders < 1:
        parser.error("--webhooks must be between 1 and 100000, --senders at least 1")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())
