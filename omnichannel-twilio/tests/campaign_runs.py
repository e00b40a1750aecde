"""Running a campaign against the fake Twilio through the real server, as the campaign crash
tests do: numbers with their scripted SIDs, the server's environment, the campaign made and
launched, and waiting on it across restarts."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

import httpx
from fake_twilio import FakeTwilio, MessageAnswer, new_message_sid
from twilio_servers import twilio_env

CONFIRM_SECONDS = 300
"""How long a message in doubt waits for its callback here (an hour by default): longer
than a test runs, since the tests post Twilio's callbacks only once every number was sent
to (Twilio posts them within seconds)."""
SEND_SECONDS = 120
"""How long after the campaign completes its last sends may still come (a runner killed
late in the run: its claimed messages wait out their lease, then go again). On the Firestore
emulator, shared with the rest of a parallel run, the event subscribers' writes (the
dashboard counts each message in a transaction) can slow the last sends past a minute."""


def numbers_of(twilio: FakeTwilio, count: int) -> dict[str, str]:
    """``count`` new numbers, each with the SID the fake Twilio answers for it (slowly: the
    kills cut off sends under way)."""
    base = int(uuid.uuid4().int % 10**6)
    numbers = {f"+1555{(base + n) % 10**7:07d}": new_message_sid() for n in range(count)}
    for number, sid in numbers.items():
        twilio.queue(MessageAnswer.accept(sid=sid, delay=0.3), to=number)
    return numbers


def env_of(twilio: FakeTwilio, **extra: str) -> dict[str, str | None]:
    settings = {
        "OMNICHANNEL_SEND_RATES": "twilio=400",
        "OMNICHANNEL_SEND_LEASE_SECONDS": "3",
        "OMNICHANNEL_JOB_LEASE_SECONDS": "3",
        "OMNICHANNEL_SEND_CONFIRM_SECONDS": f"twilio={CONFIRM_SECONDS}",
        "OMNICHANNEL_EVENT_POLL_MS": "50",
    }
    return twilio_env(twilio, **(settings | extra))


def retrying(call: Callable[[], httpx.Response], seconds: float = 120.0) -> httpx.Response:
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


def start_campaign(client: httpx.Client, numbers: list[str], rate: float) -> str:
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


def campaign_report(client_of: Callable[[], httpx.Client], campaign_id: str) -> dict[str, Any]:
    def get() -> httpx.Response:
        with client_of() as client:
            return client.get(f"/api/campaigns/{campaign_id}/report")

    report: dict[str, Any] = retrying(get).json()
    return report


def move_campaign(client_of: Callable[[], httpx.Client], campaign_id: str, action: str) -> None:
    def post() -> httpx.Response:
        with client_of() as client:
            return client.post(f"/api/campaigns/{campaign_id}/{action}")

    response = retrying(post)
    assert response.status_code == 200, response.text


def asked_per_number(twilio: FakeTwilio) -> Counter[str]:
    return Counter(request.param("To") or "" for request in twilio.message_requests())


def wait_for(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {seconds}s")
        time.sleep(0.2)


def sends_settled(client_of: Callable[[], httpx.Client], campaign_id: str) -> Callable[[], bool]:
    """Whether a completed campaign has nothing left to send: each recipient's message was
    taken by Twilio, or is in doubt (a kill cut its send off, perhaps before Twilio got it:
    Twilio is never asked again, and the message waits for a status callback)."""

    def settled() -> bool:
        counts = campaign_report(client_of, campaign_id)["counts"]
        return bool(counts["pending"] == 0 and counts["queued"] == 0)

    return settled


def numbers_in_doubt(client_of: Callable[[], httpx.Client], campaign_id: str) -> set[str]:
    """The numbers of the campaign's recipients whose message is in doubt."""
    numbers: set[str] = set()
    cursor: str | None = None
    with client_of() as client:
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get(f"/api/campaigns/{campaign_id}/recipients", params=params).json()
            for recipient in page["items"]:
                if recipient["in_doubt"]:
                    contact = client.get(f"/api/contacts/{recipient['contact_id']}").json()
                    numbers |= {identity["address"] for identity in contact["identities"]}
            cursor = page["next_cursor"]
            if not cursor:
                return numbers


def asked_once_or_in_doubt(
    twilio: FakeTwilio, numbers: Collection[str], in_doubt: set[str]
) -> tuple[Counter[str], set[str]]:
    """Check a settled campaign: Twilio asked at most once per recipient, and each one it
    never got a message for is one whose message is in doubt (``in_doubt``: their
    numbers). The recipients asked, and those never asked."""
    asked = asked_per_number(twilio)
    assert set(asked) <= set(numbers)
    assert max(asked.values()) == 1, "a recipient got the campaign twice"
    never = set(numbers) - set(asked)
    assert never <= in_doubt, ("never asked, and not in doubt", never - in_doubt)
    return asked, never
