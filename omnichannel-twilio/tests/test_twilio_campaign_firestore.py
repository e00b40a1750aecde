"""A campaign on two servers sharing Firestore (the emulator) and Pub/Sub, one of them killed
with ``kill -9`` mid-run and started again: no recipient gets it twice, counted by the fake
Twilio's requests per number. (Apart from the SQLite crash test, which runs alone:
this one kills a whole server at a third of the run, not a send under way, and may share the
machine.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from campaign_runs import (
    SEND_SECONDS,
    asked_once_or_in_doubt,
    asked_per_number,
    campaign_report,
    env_of,
    numbers_in_doubt,
    numbers_of,
    sends_settled,
    start_campaign,
    wait_for,
)
from fake_twilio import FakeTwilio
from twilio_signing import ACCOUNT_SID, AUTH_TOKEN

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.server import ServerProcess, kill_process_group

FIRESTORE_RECIPIENTS = 300
TIMES = ("launched_at", "started_at", "finished_at")


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.mark.timeout(400)  # the killed server's locks hold until the emulator lets them go
def test_two_servers_on_firestore_send_each_recipient_once_when_one_is_killed(
    tmp_path: Path,
    twilio: FakeTwilio,
    firestore_emulator: Emulator,
    pubsub_emulator: Emulator,
):
    """Two servers, each with its job runner, share Firestore and Pub/Sub; 300 recipients at
    30/s. A third of the way, the first server (its runner with it) is killed with kill -9
    and started again. Twilio is asked at most once per recipient (once, but for a send the
    kill cut off before Twilio got it: in doubt, never asked again)."""
    numbers = numbers_of(twilio, FIRESTORE_RECIPIENTS)
    project = f"demo-campaign-{uuid.uuid4().hex[:10]}"
    env = env_of(
        twilio,
        OMNICHANNEL_STORE=f"firestore://{project}",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
        OMNICHANNEL_EVENT_BUS=f"pubsub://{project}/events",
        PUBSUB_EMULATOR_HOST=pubsub_emulator.host_port,
        OMNICHANNEL_JWT_SECRET="campaign-crash-jwt-secret-0123456789abcdefghijkl",
        # Unpaced channel, the campaign's rate alone: a pace is one document every send
        # reserves from, which a server killed mid-transaction would hold locked on the
        # emulator (a minute) for everyone; the campaign's own feeding keeps its rate.
        OMNICHANNEL_SEND_RATES="twilio=0",
    )
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = ServerProcess(tmp_path / "a", env).start()
    second = ServerProcess(tmp_path / "b", env).start()
    servers = [first, second]
    try:
        with second.client() as client:
            campaign_id = start_campaign(client, list(numbers), rate=30)
        wait_for(
            lambda: sum(asked_per_number(twilio).values()) >= FIRESTORE_RECIPIENTS // 3,
            180,
            "a third not sent",
        )
        assert first.process is not None
        kill_process_group(first.process)
        servers[0] = ServerProcess(tmp_path / "a", env).start()

        def finished() -> bool:
            report = campaign_report(second.client, campaign_id)
            return report["campaign"]["status"] == "completed"

        wait_for(finished, 180, "the campaign did not complete")
        wait_for(sends_settled(second.client, campaign_id), SEND_SECONDS, "sends unsettled")
        report = campaign_report(second.client, campaign_id)
        in_doubt = numbers_in_doubt(second.client, campaign_id)
    finally:
        for server in servers:
            server.stop()

    _, never = asked_once_or_in_doubt(twilio, numbers, in_doubt)
    counts = report["counts"]
    assert counts["targeted"] == FIRESTORE_RECIPIENTS
    assert (counts["skipped"], counts["failed"], counts["cancelled"]) == ({}, {}, 0)
    times = {name: datetime.fromisoformat(report["campaign"][name]) for name in TIMES}
    print(
        f"\n{FIRESTORE_RECIPIENTS} recipients on Firestore, one of two servers killed: none"
        f" asked of Twilio twice, {len(never)} cut off before Twilio got them (in doubt);"
        f" frozen in {times['started_at'] - times['launched_at']},"
        f" sent in {times['finished_at'] - times['started_at']}"
    )
