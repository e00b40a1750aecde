"""Campaigns under fire, through the real server and the fake Twilio: each recipient gets
the campaign exactly once, counted by the provider calls per number, while job runners and
servers are killed with ``kill -9`` and restarted and the campaign is paused and resumed
twice (SQLite), and while two servers share Firestore and one of them is killed."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import twilio_env
from fake_twilio import FakeTwilio, MessageAnswer, new_message_sid
from twilio_signing import ACCOUNT_SID, AUTH_TOKEN, post_form, status_form

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.server import Deployment, ServerProcess, kill_process_group

# Kills timed against sends in flight: alone in a parallel run.
pytestmark = pytest.mark.alone

SQLITE_RECIPIENTS = 1000
FIRESTORE_RECIPIENTS = 300
CONFIRM_SECONDS = 20


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


def _numbers(twilio: FakeTwilio, count: int) -> dict[str, str]:
    """``count`` new numbers, each with the SID the fake Twilio answers for it (slowly: the
    kills cut off sends under way)."""
    base = int(uuid.uuid4().int % 10**6)
    numbers = {f"+1555{(base + n) % 10**7:07d}": new_message_sid() for n in range(count)}
    for number, sid in numbers.items():
        twilio.queue(MessageAnswer.accept(sid=sid, delay=0.3), to=number)
    return numbers


def _env(twilio: FakeTwilio, **extra: str) -> dict[str, str | None]:
    return twilio_env(
        twilio,
        OMNICHANNEL_SEND_RATES="twilio=400",
        OMNICHANNEL_SEND_LEASE_SECONDS="3",
        OMNICHANNEL_JOB_LEASE_SECONDS="3",
        OMNICHANNEL_SEND_CONFIRM_SECONDS=f"twilio={CONFIRM_SECONDS}",
        OMNICHANNEL_EVENT_POLL_MS="50",
        **extra,
    )


def _retrying(call: Callable[[], httpx.Response], seconds: float = 120.0) -> httpx.Response:
    """``call()`` until the server answers (it may be restarting), not 5xx."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.HTTPError):
            response = call()
            if response.status_code < 500:
                return response
        if time.monotonic() > deadline:
            raise AssertionError("the server never answered")
        time.sleep(0.2)


def _start_campaign(client: httpx.Client, numbers: list[str], rate: float) -> str:
    body = {
        "name": "Exactly once",
        "channel": "twilio",
        "audience": {"kind": "list", "addresses": numbers},
        "message": {"text": "Hola {{first_name|amigo}}, 20% hoy"},
        "rate": rate,
    }
    response = client.post("/api/campaigns", json=body)
    assert response.status_code == 201, response.text
    campaign_id = str(response.json()["id"])
    assert client.post(f"/api/campaigns/{campaign_id}/launch").status_code == 200
    return campaign_id


def _report(client_of: Callable[[], httpx.Client], campaign_id: str) -> dict[str, Any]:
    def get() -> httpx.Response:
        with client_of() as client:
            return client.get(f"/api/campaigns/{campaign_id}/report")

    report: dict[str, Any] = _retrying(get).json()
    return report


def _move(client_of: Callable[[], httpx.Client], campaign_id: str, action: str) -> None:
    def post() -> httpx.Response:
        with client_of() as client:
            return client.post(f"/api/campaigns/{campaign_id}/{action}")

    response = _retrying(post)
    assert response.status_code == 200, response.text


def _asked(twilio: FakeTwilio) -> Counter[str]:
    return Counter(request.param("To") or "" for request in twilio.message_requests())


def _settle_with_callbacks(client: httpx.Client, twilio: FakeTwilio, sids: dict[str, str]) -> None:
    """Post Twilio's status callback for every message it took, as Twilio does: it settles
    the messages whose send's answer a kill cut off (in doubt)."""
    for request in twilio.message_requests():
        url = urlsplit(request.param("StatusCallback"))
        to = request.param("To") or ""
        form = status_form(sids[to], "delivered", to=to)
        response = post_form(client, f"{url.path}?{url.query}", form)
        assert response.status_code == 200, response.text


def _wait(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {seconds}s")
        time.sleep(0.2)


def test_a_campaign_reaches_each_of_1000_recipients_once_through_kills_and_pauses(
    tmp_path: Path, twilio: FakeTwilio
):
    """1,000 recipients at 50/s on SQLite, two job runners and a web server. Mid-run: a
    runner killed, the campaign paused and resumed twice, the server killed, the other
    runner killed. Twilio is asked exactly once for every recipient."""
    numbers = _numbers(twilio, SQLITE_RECIPIENTS)
    deployment = Deployment(tmp_path, _env(twilio))
    try:
        with deployment.client() as client:
            campaign_id = _start_campaign(client, list(numbers), rate=50)

        def sent() -> int:
            return sum(_asked(twilio).values())

        steps: list[tuple[float, Callable[[], None]]] = [
            (0.15, lambda: deployment.crash_runner(0)),
            (0.25, lambda: _pause_and_resume(deployment, campaign_id)),
            (0.40, lambda: _pause_and_resume(deployment, campaign_id)),
            (0.55, deployment.crash_server),
            (0.75, lambda: deployment.crash_runner(1)),
        ]
        for share, step in steps:
            wanted = share * SQLITE_RECIPIENTS
            _wait(lambda wanted=wanted: sent() >= wanted, 120, f"not {share:.0%} sent")
            step()

        def finished() -> bool:
            report = _report(deployment.client, campaign_id)
            return report["campaign"]["status"] == "completed"

        _wait(finished, 120, "the campaign did not complete")
        _wait(lambda: sent() >= SQLITE_RECIPIENTS, CONFIRM_SECONDS + 30, "not every one sent")
        with deployment.client() as client:
            _settle_with_callbacks(client, twilio, numbers)
        report = _report(deployment.client, campaign_id)
    finally:
        deployment.stop()

    asked = _asked(twilio)
    assert set(asked) == set(numbers), "a recipient never got the campaign"
    assert max(asked.values()) == 1, "a recipient got the campaign twice"
    counts = report["counts"]
    assert counts["targeted"] == SQLITE_RECIPIENTS
    assert counts["skipped"] == {} and counts["failed"] == {}
    log = (tmp_path / "worker.log").read_text()
    print(
        f"\n{SQLITE_RECIPIENTS} recipients, each asked of Twilio once through 3 kills and 2"
        f" pauses; {log.count('message_in_doubt')} sends cut off in doubt, settled by"
        f" their callbacks; {log.count('message_requeued')} claimed and never sent, sent later"
    )


def _pause_and_resume(deployment: Deployment, campaign_id: str) -> None:
    _move(deployment.client, campaign_id, "pause")
    time.sleep(1.0)
    _move(deployment.client, campaign_id, "resume")


def test_two_servers_on_firestore_send_each_recipient_once_when_one_is_killed(
    tmp_path: Path,
    twilio: FakeTwilio,
    firestore_emulator: Emulator,
    pubsub_emulator: Emulator,
):
    """Two servers, each with its job runner, share Firestore and Pub/Sub; 300 recipients at
    30/s. A third of the way, the first server (its runner with it) is killed with kill -9
    and started again. Twilio is asked exactly once per recipient."""
    numbers = _numbers(twilio, FIRESTORE_RECIPIENTS)
    project = f"demo-campaign-{uuid.uuid4().hex[:10]}"
    env = _env(
        twilio,
        OMNICHANNEL_STORE=f"firestore://{project}",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
        OMNICHANNEL_EVENT_BUS=f"pubsub://{project}/events",
        PUBSUB_EMULATOR_HOST=pubsub_emulator.host_port,
        OMNICHANNEL_JWT_SECRET="campaign-crash-jwt-secret-0123456789abcdefghijkl",
    )
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = ServerProcess(tmp_path / "a", env).start()
    second = ServerProcess(tmp_path / "b", env).start()
    servers = [first, second]
    try:
        with second.client() as client:
            campaign_id = _start_campaign(client, list(numbers), rate=30)
        _wait(
            lambda: sum(_asked(twilio).values()) >= FIRESTORE_RECIPIENTS // 3,
            180,
            "a third not sent",
        )
        assert first.process is not None
        kill_process_group(first.process)
        servers[0] = ServerProcess(tmp_path / "a", env).start()

        def finished() -> bool:
            report = _report(second.client, campaign_id)
            return report["campaign"]["status"] == "completed"

        _wait(finished, 180, "the campaign did not complete")
        _wait(
            lambda: sum(_asked(twilio).values()) >= FIRESTORE_RECIPIENTS,
            CONFIRM_SECONDS + 30,
            "not every one sent",
        )
    finally:
        for server in servers:
            server.stop()

    asked = _asked(twilio)
    assert set(asked) == set(numbers), "a recipient never got the campaign"
    assert max(asked.values()) == 1, "a recipient got the campaign twice"
