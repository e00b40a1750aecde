"""Campaigns sent through Twilio, through the real server (gunicorn, its job runner, SQLite)
and the fake Twilio over HTTP: who is skipped and why, what each recipient gets (their
variables, a WhatsApp template outside the 24-hour window), quiet hours, the lifecycle, and
the figures: statuses from Twilio's callbacks, replies, opt-outs, the CRM timeline and the
CSV export. docs/campaigns.md is the reference."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fake_twilio import TOO_MANY_REQUESTS, FakeTwilio, MessageAnswer
from twilio_servers import serving, twilio_env
from twilio_signing import (
    post_form,
    post_webhook,
    sms_form,
    status_form,
    unique_phone,
    whatsapp_form,
)

from omnichannel_core.testing.event_stream import open_stream
from omnichannel_core.testing.server import API_KEY, ServerProcess

CONTENT_SID = "HX" + "b" * 32


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    env = twilio_env(
        fake_twilio,
        OMNICHANNEL_SEND_RATES="twilio=100",
        OMNICHANNEL_EVENT_POLL_MS="50",
    )
    with serving(tmp_path_factory.mktemp("campaigns"), env) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        plan = {"key": "plan", "type": "text", "label": "Plan"}
        assert client.post("/api/crm/attributes", json=plan).status_code == 201
        yield client


def contact(client: httpx.Client, phone: str | None = None, **profile: Any) -> dict[str, Any]:
    identities = [{"channel": "twilio", "address": phone}] if phone else []
    body = {"identities": identities, **profile}
    response = client.post("/api/contacts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def campaign(client: httpx.Client, contact_ids: list[str], **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Spring sale",
        "channel": "twilio",
        "audience": {"kind": "contacts", "contact_ids": contact_ids},
        "message": {"text": "Hola {{first_name|amigo}}"},
        **fields,
    }
    response = client.post("/api/campaigns", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def launch(client: httpx.Client, campaign_id: str) -> dict[str, Any]:
    response = client.post(f"/api/campaigns/{campaign_id}/launch")
    assert response.status_code == 200, response.text
    return response.json()


def report_when(
    client: httpx.Client,
    campaign_id: str,
    done: Callable[[dict[str, Any]], bool],
    seconds: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        report = client.get(f"/api/campaigns/{campaign_id}/report").json()
        if done(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds}s: {json.dumps(report)[:2000]}")
        time.sleep(0.1)


def completed(report: dict[str, Any]) -> bool:
    return report["campaign"]["status"] == "completed" and report["counts"]["queued"] == 0


def recipients(client: httpx.Client, campaign_id: str) -> dict[str, dict[str, Any]]:
    page = client.get(f"/api/campaigns/{campaign_id}/recipients", params={"limit": 200}).json()
    return {each["contact_id"]: each for each in page["items"]}


def callback(client: httpx.Client, request: Any, status: str) -> None:
    """Post Twilio's status callback for the message ``request`` sent, to its URL."""
    url = urlsplit(request.param("StatusCallback"))
    path = f"{url.path}?{url.query}"
    [message_id] = parse_qs(url.query)["message_id"]
    sid = client.get(f"/api/messages/{message_id}").json()["provider_message_id"]
    response = post_form(client, path, status_form(sid, status, to=request.param("To")))
    assert response.status_code == 200, response.text


def test_each_recipient_gets_their_own_message_and_the_others_are_skipped_for_a_reason(
    client, fake_twilio
):
    """Ana gets her first name; Bea, without one, the inline default; Carla opted out (STOP);
    Dora has no Twilio number; Eva lacks a required attribute: each skip is counted by its
    reason, and Twilio is asked once per recipient sent to."""
    phones = [unique_phone() for _ in range(5)]
    ana = contact(client, phones[0], display_name="Ana Pérez", attributes={"plan": "pro"})
    bea = contact(client, phones[1], attributes={"plan": "free"})
    carla = contact(client, phones[2], display_name="Carla", attributes={"plan": "pro"})
    assert post_webhook(client, sms_form(phones[2], "STOP")).status_code == 200
    dora = contact(client, None, display_name="Dora", emails=["dora@example.com"])
    eva = contact(client, phones[4], display_name="Eva")
    ids = [each["id"] for each in (ana, bea, carla, dora, eva)]
    made = campaign(
        client, ids, message={"text": "Hola {{first_name|amigo}}, tu plan: {{attributes.plan}}"}
    )
    launch(client, made["id"])
    report = report_when(client, made["id"], completed)

    counts = report["counts"]
    assert counts["targeted"] == 5
    assert counts["sent"] == 2
    assert counts["skipped"] == {"opted_out": 1, "no_address": 1, "missing_variable": 1}
    bodies = {r.param("To"): r.param("Body") for r in fake_twilio.message_requests()}
    assert bodies[phones[0]] == "Hola Ana, tu plan: pro"
    assert bodies[phones[1]] == "Hola amigo, tu plan: free"
    assert phones[2] not in bodies and phones[4] not in bodies
    assert len(fake_twilio.message_requests(to=phones[0])) == 1
    states = recipients(client, made["id"])
    assert states[carla["id"]]["skip_reason"] == "opted_out"
    assert states[dora["id"]]["skip_reason"] == "no_address"
    assert states[eva["id"]]["skip_reason"] == "missing_variable"


def test_whatsapp_outside_the_window_gets_the_template_inside_it_the_text(client, fake_twilio):
    """A contact who wrote on WhatsApp an hour ago gets the free-form text; one who never
    wrote gets the template (Content SID and rendered variables); without a template the
    second would be skipped as window_closed."""
    recent, silent = unique_phone(), unique_phone()
    assert post_webhook(client, whatsapp_form(recent, "hi", profile_name="Rosa")).status_code == 200
    conversations = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == "whatsapp:" + recent]
    rosa = conversation["contact_id"]
    client.patch(f"/api/contacts/{rosa}", json={"display_name": "Rosa Díaz"})
    sol = contact(client, silent, display_name="Sol")
    template = {"content_sid": CONTENT_SID, "variables": {"1": "{{first_name}}"}}
    made = campaign(
        client,
        [rosa, sol["id"]],
        sender="whatsapp",
        message={"text": "Hola {{first_name}}", "template": template},
    )
    preview = client.post(f"/api/campaigns/{made['id']}/preview", json={"contact_id": sol["id"]})
    assert preview.json()["template"] is True
    assert preview.json()["metadata"]["content_variables"] == {"1": "Sol"}
    launch(client, made["id"])
    report_when(client, made["id"], completed)

    [to_rosa] = fake_twilio.message_requests(to="whatsapp:" + recent)
    [to_sol] = fake_twilio.message_requests(to="whatsapp:" + silent)
    assert to_rosa.param("Body") == "Hola Rosa" and to_rosa.param("ContentSid") is None
    assert to_sol.param("ContentSid") == CONTENT_SID
    assert json.loads(to_sol.param("ContentVariables") or "") == {"1": "Sol"}
    assert to_sol.param("Body") is None

    textual = campaign(client, [sol["id"]], sender="whatsapp", message={"text": "Hola"})
    launch(client, textual["id"])
    report = report_when(client, textual["id"], completed)
    assert report["counts"]["skipped"] == {"window_closed": 1}


def test_quiet_hours_hold_a_recipient_until_their_own_morning(client, fake_twilio):
    """Quiet hours that cover now in Tokyo, not in the campaign's zone: the contact in Tokyo
    waits (pending, not_before the end of their quiet hours) while the other is sent to."""
    here, tokyo = unique_phone(), unique_phone()
    local = contact(client, here, display_name="Lola")
    far = contact(client, tokyo, display_name="Kenji", timezone="Asia/Tokyo")
    now_tokyo = datetime.now(UTC).astimezone(datetime.now(UTC).tzinfo) + timedelta(hours=9)
    start = now_tokyo - timedelta(hours=1)
    end = now_tokyo + timedelta(hours=2)
    quiet = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    made = campaign(
        client,
        [local["id"], far["id"]],
        schedule={"timezone": "America/Argentina/Buenos_Aires", "quiet_hours": quiet},
    )
    launch(client, made["id"])
    report = report_when(client, made["id"], lambda r: r["counts"]["sent"] == 1)
    assert report["campaign"]["status"] == "running"  # Kenji still waits
    assert report["counts"]["pending"] == 1
    deadline = time.monotonic() + 10
    while (waiting := recipients(client, made["id"])[far["id"]])["not_before"] is None:
        assert time.monotonic() < deadline, waiting  # his turn comes a tick after Lola's
        time.sleep(0.1)
    assert waiting["state"] == "pending"
    assert not fake_twilio.message_requests(to=tokyo)
    client.post(f"/api/campaigns/{made['id']}/cancel")
    report = report_when(client, made["id"], lambda r: r["counts"]["pending"] == 0)
    assert report["counts"]["skipped"] == {"cancelled": 1}


def test_outcomes_replies_and_opt_outs_are_counted_and_live_on_the_stream(
    server, client, fake_twilio
):
    """Twilio's callbacks move recipients to delivered and read; a message from a recipient
    within the window counts as replied; a STOP afterwards as opted out (and replied); the
    stream tells of the campaign as it moves; the CRM timeline shows the campaign's message;
    the CSV has a row per recipient."""
    phones = [unique_phone() for _ in range(3)]
    people = [contact(client, phone, display_name=f"P{n}") for n, phone in enumerate(phones)]
    made = campaign(client, [each["id"] for each in people])
    with open_stream(server.base_url, API_KEY, read_timeout=15) as (response, stream):
        assert response.status_code == 200
        stream.next_of("ready")
        launch(client, made["id"])
        report_when(client, made["id"], completed)
        seen = stream.next_of("campaign.updated")
    assert seen.data["campaign"]["id"] == made["id"]
    assert "counts" in seen.data["campaign"]

    first, second, _ = (fake_twilio.message_requests(to=phone)[0] for phone in phones)
    callback(client, first, "delivered")
    callback(client, first, "read")
    callback(client, second, "undelivered")
    assert post_webhook(client, sms_form(phones[0], "¿Hasta cuándo?")).status_code == 200
    assert post_webhook(client, sms_form(phones[1], "STOP")).status_code == 200

    def settled(report: dict[str, Any]) -> bool:
        counts = report["counts"]
        # a STOP is a message from them too: counted as a reply and as an opt-out
        return counts["replied"] == 2 and counts["opted_out"] == 1 and counts["read"] == 1

    counts = report_when(client, made["id"], settled)["counts"]
    assert (counts["sent"], counts["delivered"], counts["read"]) == (3, 1, 1)
    assert counts["undelivered"] == 1
    timeline = client.get(f"/api/contacts/{people[0]['id']}/timeline").json()["items"]
    sent = [e for e in timeline if e["kind"] == "message" and e.get("message")]
    assert any(e["message"]["metadata"].get("campaign", {}).get("id") == made["id"] for e in sent)

    export = client.get(f"/api/campaigns/{made['id']}/export")
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(row["contact_id"] for row in rows) == sorted(p["id"] for p in people)
    by_contact = {row["contact_id"]: row for row in rows}
    assert by_contact[people[0]["id"]]["replied_at"]
    assert by_contact[people[1]["id"]]["opted_out_at"]
    assert by_contact[people[0]["id"]]["read_at"]


def test_a_launched_campaign_cannot_be_edited_and_its_lifecycle_is_enforced(client):
    """Editing or deleting after launch is refused (409), as are moves its status does not
    allow; a rate above the channel's is refused at creation (400)."""
    someone = contact(client, unique_phone(), display_name="Zoe")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    made = campaign(client, [someone["id"]], schedule={"at": later})
    launched = launch(client, made["id"])
    assert launched["status"] == "scheduled"
    edit = client.patch(f"/api/campaigns/{made['id']}", json={"message": {"text": "new"}})
    assert edit.status_code == 409 and "only a draft" in edit.json()["message"]
    assert client.delete(f"/api/campaigns/{made['id']}").status_code == 409
    assert client.post(f"/api/campaigns/{made['id']}/resume").status_code == 409
    assert client.post(f"/api/campaigns/{made['id']}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/campaigns/{made['id']}/launch").status_code == 409

    fast = client.post(
        "/api/campaigns",
        json={
            "name": "Too fast",
            "channel": "twilio",
            "audience": {"kind": "contacts", "contact_ids": [someone["id"]]},
            "message": {"text": "hi"},
            "rate": 500,
        },
    )
    assert fast.status_code == 400 and fast.json()["field"] == "rate"
    unknown = client.post(
        "/api/campaigns",
        json={
            "name": "Typo",
            "channel": "twilio",
            "audience": {"kind": "contacts", "contact_ids": [someone["id"]]},
            "message": {"text": "Hola {{frist_name}}"},
        },
    )
    assert unknown.status_code == 400 and "frist_name" in unknown.json()["message"]

    # a campaign's own keys (bulk:...) are the server's: no request can take their place
    taken = client.post(
        "/api/channels/twilio/send/sms",
        json={"to": unique_phone(), "message": "x"},
        headers={"Idempotency-Key": f"bulk:campaign:{made['id']}:{someone['id']}"},
    )
    assert taken.status_code == 400 and "bulk:" in taken.json()["message"]


def test_an_uploaded_list_makes_the_contacts_it_does_not_find(client, fake_twilio):
    """A list of numbers: a known one is its contact, an unknown one becomes a contact with
    that Twilio identity, each sent to once."""
    known, new = unique_phone(), unique_phone()
    existing = contact(client, known, display_name="Known")
    body = {
        "name": "List",
        "channel": "twilio",
        "audience": {"kind": "list", "addresses": [known, new, known]},
        "message": {"text": "Hola {{first_name|amigo}}"},
    }
    made = client.post("/api/campaigns", json=body).json()
    launch(client, made["id"])
    report = report_when(client, made["id"], completed)
    assert report["counts"]["targeted"] == 2 and report["counts"]["sent"] == 2
    assert existing["id"] in recipients(client, made["id"])
    assert len(fake_twilio.message_requests(to=known)) == 1
    assert fake_twilio.message_requests(to=new)[0].param("Body") == "Hola amigo"


def test_twilios_429s_slow_the_campaign_and_every_recipient_still_gets_it_once(client, fake_twilio):
    """Twilio answers 429 to the first attempt for a third of the recipients: the outbox
    backs off and slows the pace, the campaign waits for it, and in the end every number was
    taken once (asked once more for each 429)."""
    phones = [unique_phone() for _ in range(12)]
    throttled = set(phones[::3])
    for phone in throttled:
        fake_twilio.queue(MessageAnswer.error(TOO_MANY_REQUESTS), to=phone)
    people = [contact(client, phone, display_name="T") for phone in phones]
    made = campaign(client, [each["id"] for each in people], rate=20)
    launch(client, made["id"])
    report = report_when(client, made["id"], lambda r: r["counts"]["sent"] == 12, seconds=60)
    assert report["counts"]["failed"] == {}
    for phone in phones:
        asked = len(fake_twilio.message_requests(to=phone))
        assert asked == (2 if phone in throttled else 1), phone


def test_a_scheduled_campaign_starts_at_its_time(client, fake_twilio):
    """Launched with schedule.at two seconds ahead (a local time in Madrid, no offset): it
    waits, scheduled, then starts at that time and sends."""
    phone = unique_phone()
    someone = contact(client, phone, display_name="Pia")
    at = datetime.now(UTC) + timedelta(seconds=2)
    madrid = at.astimezone(ZoneInfo("Europe/Madrid")).replace(tzinfo=None)
    made = campaign(
        client,
        [someone["id"]],
        schedule={"at": madrid.isoformat(timespec="seconds"), "timezone": "Europe/Madrid"},
    )
    assert launch(client, made["id"])["status"] == "scheduled"
    assert not fake_twilio.message_requests(to=phone)
    report = report_when(client, made["id"], completed)
    started = datetime.fromisoformat(report["campaign"]["started_at"])
    assert started >= at.replace(microsecond=0)
    assert len(fake_twilio.message_requests(to=phone)) == 1
