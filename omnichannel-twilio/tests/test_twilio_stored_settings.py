"""The settings module with the Twilio channel, through the real server and the fake Twilio:
the away message (sent once per customer while the business is closed, on SMS and on
WhatsApp, never while it is open), and a Twilio credential stored through ``PATCH
/api/settings`` taken by every process of a server of two web workers: the runner's sends,
each worker's webhook signature checks and health checks use it, without a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fake_twilio import FakeTwilio
from twilio_outbox import WAIT
from twilio_servers import serving, twilio_env
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    post_webhook,
    sms_form,
    unique_phone,
    whatsapp_form,
)

from omnichannel_core.testing.server import ServerProcess

AWAY = "We are closed today; we will answer tomorrow."
NEW_TOKEN = "rotated-auth-token-5a4b3c2d1e0f"
SEND_SMS = "/api/channels/twilio/send/sms"
PROCESSES = 3
"""Two web workers and the job runner."""


def wait_for(check: Callable[[], Any], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.05)


def patched(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.patch("/api/settings", json=body)
    assert response.status_code == 200, response.text
    settings: dict[str, Any] = response.json()
    return settings


def loaded_by(server: ServerProcess, version: int) -> set[int]:
    """The processes (pids) whose log says they took the settings' ``version`` or later."""
    pids = set()
    for line in server.log().splitlines():
        if '"settings_loaded"' in line:
            entry = json.loads(line)
            if entry["version"] >= version:
                pids.add(entry["pid"])
    return pids


def away_messages_to(fake: FakeTwilio, phone: str) -> list[Any]:
    return [r for r in fake.message_requests(to=phone) if r.param("Body") == AWAY]


def handled(client: httpx.Client) -> None:
    """Until the away message's subscriber has handled every event logged so far."""

    def caught_up() -> bool:
        health = client.get("/health").json()
        return bool(health["subscribers"]["settings.away"]["lag_seconds"] == 0)

    wait_for(caught_up)


def closed_today(client: httpx.Client) -> None:
    """Closed all day today (UTC): a holiday, whatever the hours."""
    today = datetime.now(UTC).date().isoformat()
    patched(client, {"business": {"timezone": "UTC"}, "holidays": [{"date": today}]})


@pytest.fixture(scope="module")
def away_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("away"), twilio_env(fake_twilio)) as server:
        yield server


def test_the_away_message_goes_once_per_customer_while_closed(away_server, fake_twilio):
    """Closed (today a holiday), with Twilio's away message on: a customer who writes twice
    gets it once, through the outbox, authored by the away message and keyed by the message
    it answers; another customer gets their own, on WhatsApp to their WhatsApp address (the
    channel's ``whatsapp:`` reach of their number). Open again: a customer who writes gets
    none. Off: none either."""
    with away_server.client() as client:
        patched(client, {"away_messages": [{"channel": "twilio", "enabled": True, "text": AWAY}]})
        closed_today(client)
        first, second, third = unique_phone(), unique_phone(), unique_phone()
        for text in ("hello?", "anyone there?"):
            assert post_webhook(client, sms_form(first, text)).status_code == 200
        assert post_webhook(client, sms_form(second, "hi")).status_code == 200
        whatsapp = unique_phone()
        assert post_webhook(client, whatsapp_form(whatsapp, "hola")).status_code == 200
        wait_for(lambda: away_messages_to(fake_twilio, "whatsapp:" + whatsapp))
        wait_for(lambda: away_messages_to(fake_twilio, second))
        wait_for(lambda: away_messages_to(fake_twilio, first))
        # The subscriber reads the log in order: the second customer's reply came after
        # both of the first's messages were handled.
        assert len(away_messages_to(fake_twilio, first)) == 1
        assert len(away_messages_to(fake_twilio, second)) == 1

        conversations = client.get("/api/conversations", params={"channel": "twilio"}).json()
        [conversation] = [c for c in conversations["items"] if c["address"] == first]
        messages = client.get(f"/api/conversations/{conversation['id']}/messages").json()
        [away] = [m for m in messages["items"] if m["direction"] == "outbound"]
        answered = next(m for m in messages["items"] if m["direction"] == "inbound")
        assert away["text"] == AWAY
        assert away["author"]["kind"] == "automation"
        assert away["author"]["id"] == "away_message"
        assert away["idempotency_key"] == f"bulk:away:{answered['id']}"

        patched(client, {"holidays": []})  # open all day, every day
        assert post_webhook(client, sms_form(third, "open?")).status_code == 200
        handled(client)
        patched(client, {"away_messages": [{"channel": "twilio", "enabled": False, "text": AWAY}]})
        closed_today(client)
        assert post_webhook(client, sms_form(third, "still there?")).status_code == 200
        handled(client)
        patched(client, {"away_messages": [{"channel": "twilio", "enabled": True, "text": AWAY}]})
        fourth = unique_phone()
        assert post_webhook(client, sms_form(fourth, "last")).status_code == 200
        wait_for(lambda: away_messages_to(fake_twilio, fourth))
        assert away_messages_to(fake_twilio, third) == []  # handled before the fourth's
        patched(client, {"holidays": []})


@pytest.fixture
def token_fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


def fresh(server: ServerProcess) -> httpx.Client:
    """A client on a connection of its own: its request may land on either web worker (a
    kept-alive connection stays with one)."""
    return server.client()


def test_a_credential_stored_through_the_api_is_used_by_every_process(tmp_path, token_fake):
    """Two web workers and a runner, the auth token not in the environment: stored through
    the API, every process takes it; sends go out with it, webhooks signed with it are
    taken by both workers. Changed (Twilio now accepting only the new token), every process
    takes the new one within seconds, without a restart: every send after that carries it,
    every worker checks webhooks and Twilio's health with it, and the old one is refused."""
    env = twilio_env(token_fake, TWILIO_AUTH_TOKEN=None, OMNICHANNEL_WORKERS="2")
    with serving(tmp_path, env) as server:
        with server.client() as admin:
            version = patched(admin, {"channels": {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}})["version"]
        wait_for(lambda: len(loaded_by(server, version)) == PROCESSES)
        phones = [unique_phone() for _ in range(3)]
        for phone in phones:
            with fresh(server) as client:
                sent = client.post(SEND_SMS, json={"to": phone, "message": "one"}, headers=WAIT)
                assert sent.status_code == 201, sent.text
        assert {r.basic_auth for r in token_fake.message_requests()} == {(ACCOUNT_SID, AUTH_TOKEN)}

        token_fake.auth_token = NEW_TOKEN
        with server.client() as admin:
            version = patched(admin, {"channels": {"TWILIO_AUTH_TOKEN": NEW_TOKEN}})["version"]
        wait_for(lambda: len(loaded_by(server, version)) == PROCESSES)
        before = len(token_fake.message_requests())
        later = [unique_phone() for _ in range(6)]
        for phone in later:
            with fresh(server) as client:
                sent = client.post(SEND_SMS, json={"to": phone, "message": "two"}, headers=WAIT)
                assert sent.status_code == 201, sent.text
                assert sent.json()["status"] == "queued"
        after = token_fake.message_requests()[before:]
        assert [r.param("To") for r in after] == later
        assert {r.basic_auth for r in after} == {(ACCOUNT_SID, NEW_TOKEN)}

        for _ in range(8):
            with fresh(server) as client:
                taken = post_webhook(client, sms_form(unique_phone()), auth_token=NEW_TOKEN)
                assert taken.status_code == 200, taken.text
                refused = post_webhook(client, sms_form(unique_phone()), auth_token=AUTH_TOKEN)
                assert refused.status_code == 403
                health = client.get("/api/channels/twilio/health")
                assert health.json()["ok"] is True, health.text
        assert AUTH_TOKEN not in server.log() and NEW_TOKEN not in server.log()
