"""The documented benchmark commands (docs/benchmarks.md) still run end to end: each starts
its real gunicorn servers, loads them over loopback and checks that every answered webhook
was stored. Tiny request counts: this proves the commands work, not how fast anything is
(figures come from the commands themselves, on a quiet machine)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import REPO_ROOT

TIMEOUT_SECONDS = 180
SMALL_LOAD = ["--requests=300", "--warmup=50", "--concurrency=8", "--json"]


def _run(module: str, *args: str) -> dict:
    finished = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    return json.loads(finished.stdout)


def test_inbound_webhook_benchmark_runs_and_checks_durability():
    report = _run("bench.inbound_webhooks", *SMALL_LOAD)
    assert report["problems"] == []
    assert [target["target"] for target in report["targets"]] == ["omnichannel", "bare"]
    omnichannel = report["targets"][0]
    assert omnichannel["statuses"] == {"200": 300}
    assert report["ratio"] > 0


def test_twilio_benchmark_runs_every_target_and_checks_durability():
    report = _run("bench.twilio_webhooks", *SMALL_LOAD)
    assert report["problems"] == []
    names = [target["target"] for target in report["targets"]]
    assert names == ["omnichannel", "bare", "flask-sync", "flask-gthread"]
    assert all(target["statuses"] == {"200": 300} for target in report["targets"])
    omnichannel = report["targets"][0]
    assert omnichannel["durability"] == {"answered_200": 350, "stored": 350, "ok": True}
    assert omnichannel["server_cpu_us_per_request"] > 0
    assert {ratio["baseline"] for ratio in report["ratios"]} == set(names[1:])


def test_store_benchmark_loads_sqlite_then_firestore_and_stops_its_emulator():
    """bench.store_backends loads SQLite, then Firestore on an emulator it starts itself,
    finds one stored message per 200 on each, and leaves no emulator process behind."""
    report = _run("bench.store_backends", *SMALL_LOAD)
    assert report["problems"] == []
    assert [target["target"] for target in report["targets"]] == ["sqlite", "firestore"]
    for target in report["targets"]:
        assert target["statuses"] == {"200": 300}
        assert target["durability"] == {"answered_200": 350, "stored": 350, "ok": True}
    assert report["targets"][1]["store_cpu_us_per_request"] > 0
    assert report["ratio"] > 0
    assert _running_in_group(report["emulator_process_group"]) == []


def test_event_latency_benchmark_measures_both_setups():
    """bench.event_latency times a webhook to its event on an open stream, on SQLite with the
    poll bus and on two servers sharing Firestore and Pub/Sub (emulators it starts itself)."""
    report = _run("bench.event_latency", "--messages=3", "--json")
    assert list(report) == ["sqlite, 2 workers, poll bus", "firestore + pubsub, 2 servers"]
    for figures in report.values():
        assert figures["messages"] == 3
        assert 0 < figures["p50_ms"] <= figures["max_ms"]


def test_webchat_benchmark_holds_sockets_and_counts_each_reply_once():
    """bench.webchat_sockets opens visitor sockets on the real server and on a bare Falcon
    app, measures their memory, and times agents' replies to them: every reply arrives once,
    on its own visitor's socket, and nothing is reported wrong."""
    report = _run("bench.webchat_sockets", "--sockets=50", "--replies=10", "--json")
    assert report["problems"] == []
    assert [target["target"] for target in report["targets"]] == ["omnichannel", "bare falcon"]
    for target in report["targets"]:
        assert target["sockets_ready"] == 50
        replies = target["replies"]
        assert (replies["arrived"], replies["missing"], replies["duplicated"]) == (10, 0, 0)
        assert replies["misdirected"] == 0
        assert 0 < replies["p50_ms"] <= replies["max_ms"]


def test_crm_benchmark_imports_and_counts_segments_on_both_stores():
    """bench.crm imports a generated CSV through the API on SQLite, then on Firestore (an
    emulator it starts and stops), counts each of its segments and reads their first page,
    and finds every count as the generated file says."""
    report = _run("bench.crm", "--contacts=120", "--webhooks=60", "--repeats=1", "--json")
    assert report["problems"] == []
    assert [target["target"] for target in report["targets"]] == ["sqlite", "firestore"]
    for target in report["targets"]:
        done = target["import"]
        assert done["state"] == "done"
        assert done["rows"] == 120
        assert done["created"] + done["updated"] + done["skipped"] + done["failed"] == 120
        assert done["updated"] > 0 and done["rows_per_second"] > 0
        assert target["activity"]["statuses"] == {"200": 60}
        segments = {each["segment"]: each for each in target["segments"]}
        assert list(segments) == ["tag", "tag+attribute+consent", "activity", "everything"]
        for each in segments.values():
            assert each["count"] == each["expected"] > 0
        assert segments["everything"]["count"] == done["created"]
    assert (
        report["targets"][0]["sql_tag_count"]["count"]
        == report["targets"][0]["segments"][0]["count"]
    )
    assert report["csv_floor"]["120"]["rows"] == 120
    assert _running_in_group(report["emulator_process_group"]) == []


@pytest.mark.alone  # it checks the achieved pace
def test_outbox_benchmark_sends_through_the_outbox_beside_a_bare_loop_and_paces():
    """bench.outbox queues messages on the real server, whose job runner sends them to a
    fake provider; sends them again with the channel's client alone; then paces a run. Every
    message reaches the provider once and is stored sent."""
    report = _run(
        "bench.outbox",
        "--messages=200",
        "--warmup=20",
        "--pace-rate=20",
        "--pace-seconds=3",
        "--json",
    )
    assert report["problems"] == []
    outbox, bare = report["sends"]
    assert (outbox["path"], bare["path"]) == ("outbox", "bare")
    assert outbox["received"] == bare["received"] == 220
    assert outbox["stored"] == {"sent": 220}
    assert outbox["queueing"]["statuses"] == {"202": 200}
    for send in (outbox, bare):
        assert send["per_second"] > 0
        assert send["sender_cpu_us_per_message"] > 0
    assert report["ratios"]["throughput"] > 0
    pace = report["pace"]
    assert pace["queued"] == 66
    assert pace["stored"] == {"sent": 66}
    assert len(pace["per_second_counts"]) == 3
    assert sum(pace["per_second_counts"]) == pace["in_window"]
    assert 10 <= pace["achieved_per_second"] <= 30  # paced, not sent at once


def test_campaign_benchmark_sends_each_recipient_once_paced_and_throttled():
    """bench.campaign sends a campaign through the real server to a fake Twilio, beside the
    same messages queued through the outbox; paces one while an agent replies; throttles
    one with 429s. Each recipient's number is asked for exactly once (under throttling, once
    accepted), the store holds every message taken and the campaign's report counts every
    recipient sent."""
    report = _run(
        "bench.campaign",
        "--recipients=100",
        "--paced-recipients=50",
        "--throttled-recipients=50",
        "--rate=20",
        "--channel-rate=40",
        "--throttle-seconds=0.5",
        "--reply-every=0.1",
        "--warmup=10",
        "--json",
    )
    assert report["problems"] == []
    parts = {target["target"]: target for target in report["targets"]}
    assert list(parts) == ["campaign", "outbox", "paced", "throttled"]
    once = {"twice": 0, "missing": 0, "unknown": 0}
    for name, count in (("campaign", 100), ("outbox", 100), ("paced", 50)):
        assert parts[name]["checks"] == {"numbers": count, "requested": count, **once}
    for name in ("campaign", "outbox"):
        assert parts[name]["stored"]["taken"] == parts[name]["stored"]["messages"] == 110
        assert parts[name]["per_second"] > 0 and parts[name]["cpu"]["server_us"] > 0
    for name, count in (("campaign", 100), ("paced", 50), ("throttled", 50)):
        assert parts[name]["report"]["status"] == "completed"
        assert parts[name]["report"]["counts"]["sent"] == count
    replies = parts["paced"]["replies"]
    assert replies["posted"] == replies["arrived"] > 0
    assert 0 < replies["p50_ms"] <= replies["max_ms"]
    throttled = parts["throttled"]
    assert throttled["answered_429"] > 0
    assert throttled["requests"] == 50 + throttled["answered_429"]


def test_dashboard_benchmark_counts_every_fact_once_and_times_the_calls():
    """bench.dashboard fills a real server's dashboard store with generated facts, by the
    rebuild path and then one fact per transaction beside as many plain writes, and times
    the dashboard's calls beside /health on that server: every fact is counted once and
    the 30-day report's totals are the generator's."""
    report = _run(
        "bench.dashboard",
        "--messages=10000",
        "--per-event=400",
        "--calls=3",
        "--budget=5",
        "--json",
    )
    assert report["problems"] == []
    data, rebuilt, written = report["data"], report["rebuild"], report["subscriber"]
    assert data["expected"]["messages_in"] + data["expected"]["messages_out"] == 10000
    assert rebuilt["facts"] == rebuilt["counted"] == data["facts"] - 400
    assert rebuilt["calls"] == math.ceil(data["conversations"] / report["settings"]["rebuild_page"])
    assert written["events"] == written["counted"] == 400
    for path in ("apply", "insert"):
        assert written[path]["us_per_event"] > 0 and written[path]["cpu_us_per_event"] > 0
    assert report["store"]["dashboard_conversations"] == data["conversations"]
    assert [target["target"] for target in report["targets"]] == [
        "GET /health (baseline)",
        "GET /api/dashboard",
        "GET /api/dashboard/report, 30 days by day",
        "GET /api/dashboard/report, 30 days by hour",
    ]
    for target in report["targets"]:
        assert target["runs"] == 3
        assert 0 < target["ms"]["median"] <= target["ms"]["max"]


def _running_in_group(pgid: int) -> list[int]:
    """PIDs of process group ``pgid`` that are not zombies (one awaiting its reaper holds no
    port and no memory)."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            running.append(int(entry.name))
    return running


def test_profiler_runs_on_twilio_webhooks():
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.profile_inbound",
            "--kind=twilio",
            "--requests=200",
            "--warmup=20",
            "--top=5",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    generator = json.loads(finished.stdout.splitlines()[0].removeprefix("generator: "))
    assert generator["statuses"] == {"200": 200}
    assert "===== event loop thread =====" in finished.stdout


def test_idle_benchmark_measures_each_process_beside_a_server_not_polling():
    """bench.idle leaves the real server idle, with its default poll and with polling as good
    as off, and reads each process's CPU time: every process is found, and both servers
    answered at the end."""
    report = _run("bench.idle", "--settle=2", "--seconds=2", "--json")
    assert report["problems"] == []
    for name in ("default", "baseline (OMNICHANNEL_EVENT_POLL_MS=60000)"):
        figures = report[name]
        assert figures["healthy"] is True
        assert set(figures["cpu_seconds_per_minute"]) == {
            "gunicorn",
            "job runner",
            "omnichannel serve",
        }
        assert figures["share_of_a_core"] >= 0
