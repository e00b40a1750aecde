"""The OpenAPI document is true to what the real server answers, errors included, and its
request schemas accept and refuse what the server does."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from omnichannel_core.business import WEEKDAYS
from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.server import ServerProcess
from omnichannel_core.timestamps import format_timestamp
from tests.conftest import WEBHOOK_SECRET
from tests.support.openapi_contract import (
    Contract,
    fetch_document,
    operations,
    running_degraded_server,
)
from tests.support.users import PASSWORD, create_user
from tests.support.users import login as sign_in

WAIT = {"Prefer": "wait=10"}
"""Answered once the first attempt to send is over."""


def signed(data: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(data).encode()
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, raw)}


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict:
    """The OpenAPI document this module's server serves."""
    return fetch_document(server)


@pytest.fixture(scope="module")
def contract(document: dict) -> Contract:
    """Checks this module's real responses against the served document."""
    return Contract(document)


@pytest.fixture(scope="module")
def degraded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose ``http`` channel is not configured, beside a channel (``healthonly``,
    a real pip-installed fixture) that implements only ``health``."""
    with running_degraded_server(tmp_path_factory) as process:
        yield process


def test_every_operation_answers_as_documented(server, receiver: FakeProvider, contract):
    """A real session (signed webhook, list, search, get, patch, reply, replay, typing,
    send, status callback) touches every documented operation, and each answer fits its
    documented schema."""
    client, anonymous = server.client(), server.client(None)
    token = hashlib.sha256(b"every-operation").hexdigest()[:10]
    sender = f"+1555{int(token, 16) % 10**7:07d}"

    contract.check(anonymous.get("/"), "get", "/")
    contract.check(anonymous.head("/"), "head", "/")
    contract.check(anonymous.get("/health"), "get", "/health")
    contract.check(anonymous.head("/health"), "head", "/health")
    contract.check(anonymous.get("/api/openapi.json"), "get", "/api/openapi.json")
    plugins = contract.check(client.get("/api/plugins"), "get", "/api/plugins")
    assert any(item["name"] == "http" for item in plugins["items"])

    for number in (1, 2):
        raw, headers = signed(
            {"id": f"{token}-{number}", "from": sender, "name": "Ada Lovelace", "text": "hi"}
        )
        response = anonymous.post("/api/channels/http/webhook", content=raw, headers=headers)
        assert response.status_code == 200
        contract.check(response, "post", "/api/channels/{channel}/webhook")

    contacts = contract.check(
        client.get("/api/contacts", params={"q": "ada"}), "get", "/api/contacts"
    )
    contact = next(c for c in contacts["items"] if c["identities"][0]["address"] == sender)
    contact_path = f"/api/contacts/{contact['id']}"
    contract.check(client.get(contact_path), "get", "/api/contacts/{contact_id}")
    plan = {"key": "plan", "type": "choice", "label": "Plan", "choices": ["free", "pro"]}
    contract.check(client.post("/api/crm/attributes", json=plan), "post", "/api/crm/attributes")
    changed = contract.check(
        client.patch(contact_path, json={"tags": ["vip"], "attributes": {"plan": "pro"}}),
        "patch",
        "/api/contacts/{contact_id}",
    )
    assert changed["tags"] == ["vip"]

    conversations = contract.check(
        client.get("/api/conversations", params={"channel": "http", "status": "open"}),
        "get",
        "/api/conversations",
    )
    conversation = next(c for c in conversations["items"] if c["contact_id"] == contact["id"])
    conversation_path = f"/api/conversations/{conversation['id']}"
    contract.check(client.get(conversation_path), "get", "/api/conversations/{conversation_id}")
    contract.check(
        client.patch(
            conversation_path,
            json={"status": "pending", "assignee": create_user(client, "agent")["id"]},
        ),
        "patch",
        "/api/conversations/{conversation_id}",
    )

    messages_template = "/api/conversations/{conversation_id}/messages"
    first = contract.check(
        client.get(f"{conversation_path}/messages", params={"limit": 1}), "get", messages_template
    )
    assert first["next_cursor"]
    second = contract.check(
        client.get(f"{conversation_path}/messages", params={"cursor": first["next_cursor"]}),
        "get",
        messages_template,
    )
    assert [m["text"] for m in first["items"] + second["items"]] == ["hi", "hi"]

    key = {"Idempotency-Key": f"reply-{token}"}
    created = client.post(
        f"{conversation_path}/messages", json={"text": "hello"}, headers={**key, **WAIT}
    )
    assert created.status_code == 201
    assert created.headers["Preference-Applied"] == WAIT["Prefer"]
    reply = contract.check(created, "post", messages_template)
    replayed = client.post(f"{conversation_path}/messages", json={"text": "hello"}, headers=key)
    assert replayed.status_code == 200
    assert contract.check(replayed, "post", messages_template)["id"] == reply["id"]
    conflict = client.post(f"{conversation_path}/messages", json={"text": "other"}, headers=key)
    assert contract.check(conflict, "post", messages_template)["error"] == "conflict"
    typing_template = "/api/conversations/{conversation_id}/typing"
    typing = client.post(f"{conversation_path}/typing")
    assert typing.status_code == 204
    contract.check(typing, "post", typing_template)
    unknown = client.post("/api/conversations/cv_unknown/typing")
    assert contract.check(unknown, "post", typing_template)["error"] == "not_found"
    history_template = "/api/conversations/{conversation_id}/history"
    history = contract.check(client.get(f"{conversation_path}/history"), "get", history_template)
    assert [change["status"] for change in history["items"]] == ["pending"]
    assert history["next_cursor"] is None
    for status in ("open", "pending"):  # back where it was, two more changes in its history
        assert client.patch(conversation_path, json={"status": status}).status_code == 200
    first = contract.check(
        client.get(f"{conversation_path}/history", params={"limit": 2}), "get", history_template
    )
    assert first["next_cursor"]
    rest = contract.check(
        client.get(f"{conversation_path}/history", params={"cursor": first["next_cursor"]}),
        "get",
        history_template,
    )
    assert rest["next_cursor"] is None
    statuses = [change["status"] for change in first["items"] + rest["items"]]
    assert statuses == ["pending", "open", "pending"]
    forged = client.get(f"{conversation_path}/history", params={"cursor": "W10"})
    assert contract.check(forged, "get", history_template)["parameter"] == "cursor"
    missing = client.get("/api/conversations/cv_unknown/history")
    assert contract.check(missing, "get", history_template)["error"] == "not_found"

    raw, headers = signed({"id": reply["provider_message_id"], "status": "delivered"})
    response = anonymous.post("/api/channels/http/status", content=raw, headers=headers)
    assert response.status_code == 200
    contract.check(response, "post", "/api/channels/{channel}/status")
    message = contract.check(
        client.get(f"/api/messages/{reply['id']}"), "get", "/api/messages/{message_id}"
    )
    assert message["status"] == "delivered"

    sent = client.post("/api/channels/http/messages", json={"to": f"{sender}9", "text": "hey"})
    assert sent.status_code == 202
    assert contract.check(sent, "post", "/api/channels/{channel}/messages")["status"] == "queued"
    exercise_outbox(client, conversation_path, receiver, contract)
    exercise_media(client, conversation_path, contract)
    health = client.get("/api/channels/http/health")
    assert health.status_code == 200
    contract.check(health, "get", "/api/channels/{channel}/health")

    with client.stream("GET", "/api/events") as stream:  # never ends: check its start only
        contract.check(stream, "get", "/api/events")
        assert stream.headers["content-type"].startswith("text/event-stream")
    bad_cursor = client.get("/api/events", headers={"Last-Event-ID": "not-a-cursor"})
    assert contract.check(bad_cursor, "get", "/api/events")["error"] == "invalid_input"

    exercise_access(server, contract)
    exercise_crm(client, contact["id"], contract)
    exercise_campaigns(client, contract)
    exercise_settings(client, contract)
    exercise_dashboard(client, contract)
    exercise_presence(server, contract)

    exercised = {(method, template) for method, template, _ in contract.seen}
    documented = {(method, template) for method, template, _ in operations(contract.document)}
    assert exercised == documented


def exercise_dashboard(client: httpx.Client, contract: Contract) -> None:
    """The queue now, a period's figures, and a period refused."""
    now = contract.check(client.get("/api/dashboard"), "get", "/api/dashboard")
    assert now["refresh_seconds"] == 5
    report = "/api/dashboard/report"
    by_hour = contract.check(client.get(report, params={"interval": "hour"}), "get", report)
    assert len(by_hour["buckets"]) == 7 * 24
    backwards = client.get(report, params={"start": "2026-02-10", "end": "2026-02-01"})
    assert contract.check(backwards, "get", report)["error"] == "invalid_input"


def exercise_presence(server: ServerProcess, contract: Contract) -> None:
    """A user's own presence, read and set; a key has none."""
    admin = server.client()
    user = create_user(admin, "agent")
    token = sign_in(server, user["email"])["access_token"]
    with server.client(api_key=token) as agent:
        mine = contract.check(agent.get("/api/presence"), "get", "/api/presence")
        assert mine["presence"] == "offline"
        away = agent.put("/api/presence", json={"status": "away"})
        assert contract.check(away, "put", "/api/presence")["status"] == "away"
    refused = admin.put("/api/presence", json={"status": "away"})
    assert contract.check(refused, "put", "/api/presence")["error"] == "invalid_input"


def exercise_crm(client: httpx.Client, contact_id: str, contract: Contract) -> None:
    """The contacts and CRM routes (docs/crm.md): successes and their usual errors."""
    path = f"/api/contacts/{contact_id}"
    made = contract.check(
        client.post(
            "/api/contacts",
            json={"display_name": "Grace", "emails": ["grace@example.com"], "tags": ["vip"]},
        ),
        "post",
        "/api/contacts",
    )
    identities = "/api/contacts/{contact_id}/identities"
    added = client.post(f"{path}/identities", json={"channel": "http", "address": "+15550001111"})
    contract.check(added, "post", identities)
    taken = client.post(
        f"/api/contacts/{made['id']}/identities",
        json={"channel": "http", "address": "+15550001111"},
    )
    assert contract.check(taken, "post", identities)["error"] == "conflict"
    removed = client.delete(
        f"{path}/identities", params={"channel": "http", "address": "+15550001111"}
    )
    contract.check(removed, "delete", identities)
    duplicates = client.get(f"/api/contacts/{made['id']}/duplicates")
    contract.check(duplicates, "get", "/api/contacts/{contact_id}/duplicates")

    notes, note_template = f"{path}/notes", "/api/contacts/{contact_id}/notes/{note_id}"
    note = contract.check(
        client.post(notes, json={"text": "prefers email"}),
        "post",
        "/api/contacts/{contact_id}/notes",
    )
    contract.check(client.get(notes), "get", "/api/contacts/{contact_id}/notes")
    edited = client.patch(f"{notes}/{note['id']}", json={"text": "prefers mail"})
    contract.check(edited, "patch", note_template)
    contract.check(client.delete(f"{notes}/{note['id']}"), "delete", note_template)
    gone = client.delete(f"{notes}/{note['id']}")
    assert contract.check(gone, "delete", note_template)["error"] == "not_found"
    timeline = client.get(f"{path}/timeline", params={"limit": 5})
    contract.check(timeline, "get", "/api/contacts/{contact_id}/timeline")

    avatar_template = "/api/contacts/{contact_id}/avatar"
    none = client.get(f"{path}/avatar")
    assert contract.check(none, "get", avatar_template)["error"] == "not_found"
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)
    picture = client.post(
        "/api/media",
        content=png,
        params={"filename": "me.png"},
        headers={"Content-Type": "image/png"},
    ).json()
    assert client.patch(path, json={"avatar": picture["id"]}).status_code == 200
    shown = client.get(f"{path}/avatar")
    contract.check(shown, "get", avatar_template)
    assert shown.content == png and shown.headers["content-type"] == "image/png"

    attribute = "/api/crm/attributes/{key}"
    contract.check(client.get("/api/crm/attributes"), "get", "/api/crm/attributes")
    relabelled = client.patch("/api/crm/attributes/plan", json={"label": "Pricing plan"})
    contract.check(relabelled, "patch", attribute)
    retyped = client.patch("/api/crm/attributes/plan", json={"type": "number"})
    assert contract.check(retyped, "patch", attribute)["error"] == "invalid_input"
    contract.check(client.delete("/api/crm/attributes/plan"), "delete", attribute)

    vip = {"field": "tags", "op": "contains", "value": "vip"}
    segment = contract.check(
        client.post("/api/crm/segments", json={"name": "VIP", "filter": vip}),
        "post",
        "/api/crm/segments",
    )
    item = "/api/crm/segments/{segment_id}"
    segment_path = f"/api/crm/segments/{segment['id']}"
    contract.check(client.get("/api/crm/segments"), "get", "/api/crm/segments")
    contract.check(client.get(segment_path), "get", item)
    contract.check(client.patch(segment_path, json={"name": "VIPs"}), "patch", item)
    counted = client.get(f"{segment_path}/count")
    assert contract.check(counted, "get", item + "/count")["count"] >= 2
    members = client.get(f"{segment_path}/contacts", params={"limit": 1})
    contract.check(members, "get", item + "/contacts")
    preview = client.post("/api/crm/segments/preview", json={"filter": vip})
    contract.check(preview, "post", "/api/crm/segments/preview")
    bad = client.post("/api/crm/segments/preview", json={"filter": {"field": "x"}})
    assert contract.check(bad, "post", "/api/crm/segments/preview")["error"] == "invalid_input"
    export = client.get(
        "/api/crm/exports/contacts", params={"format": "json", "segment_id": segment["id"]}
    )
    contract.check(export, "get", "/api/crm/exports/contacts")
    contract.check(client.delete(segment_path), "delete", item)

    csv = b"Name,Mail\nLin,lin@example.com\n"
    upload = client.post(
        "/api/media",
        content=csv,
        params={"filename": "c.csv"},
        headers={"Content-Type": "text/csv"},
    ).json()
    started = client.post(
        "/api/crm/imports",
        json={"media_id": upload["id"], "mapping": {"Name": "display_name", "Mail": "email"}},
    )
    imported = contract.check(started, "post", "/api/crm/imports")
    contract.check(client.get("/api/crm/imports"), "get", "/api/crm/imports")
    one = client.get(f"/api/crm/imports/{imported['id']}")
    contract.check(one, "get", "/api/crm/imports/{import_id}")
    cancel = client.post(f"/api/crm/imports/{imported['id']}/cancel")
    contract.check(cancel, "post", "/api/crm/imports/{import_id}/cancel")

    doomed = client.post("/api/contacts", json={"display_name": "To forget"}).json()
    export_template = "/api/contacts/{contact_id}/export"
    everything = client.get(f"/api/contacts/{doomed['id']}/export")
    assert contract.check(everything, "get", export_template)["contact"]["id"] == doomed["id"]
    erase_template = "/api/contacts/{contact_id}/erase"
    unconfirmed = client.post(f"/api/contacts/{doomed['id']}/erase", json={})
    assert contract.check(unconfirmed, "post", erase_template)["error"] == "invalid_input"
    erased = client.post(f"/api/contacts/{doomed['id']}/erase", json={"confirm": doomed["id"]})
    contract.check(erased, "post", erase_template)
    gone = client.get(f"/api/contacts/{doomed['id']}/export")
    assert contract.check(gone, "get", export_template)["error"] == "not_found"

    merged = client.post(
        "/api/crm/merges", json={"survivor_id": contact_id, "merged_id": made["id"]}
    )
    assert contract.check(merged, "post", "/api/crm/merges")["id"] == contact_id
    again = client.post(
        "/api/crm/merges", json={"survivor_id": contact_id, "merged_id": made["id"]}
    )
    assert contract.check(again, "post", "/api/crm/merges")["error"] == "conflict"


SETTINGS = "/api/settings"
CANNED = "/api/settings/canned-responses"
CANNED_ITEM = "/api/settings/canned-responses/{response_id}"


def exercise_settings(client: httpx.Client, contract: Contract) -> None:
    """The settings routes (docs/settings.md): read, changed in every part (the channels'
    variables shown, a secret masked), refused naming a field; canned responses made, listed,
    read, changed and deleted, with their 400s, 404s and 409s."""
    settings = contract.check(client.get(SETTINGS), "get", SETTINGS)
    assert settings["channels"][0]["channel"] == "http"
    change = {
        "business": {"name": "Acme", "timezone": "Europe/Paris"},
        "hours": {"monday": [{"start": "09:00", "end": "18:00"}]},
        "holidays": [{"date": "2025-12-25", "name": "Christmas"}],
        "sla": {"first_response_minutes": 20},
        "away_messages": [{"channel": "http", "enabled": False, "text": "We are closed."}],
        "channels": {"HTTP_CHANNEL_SEND_URL": None},
    }
    changed = contract.check(client.patch(SETTINGS, json=change), "patch", SETTINGS)
    assert changed["version"] == settings["version"] + 1
    bad = client.patch(SETTINGS, json={"business": {"timezone": "Nowhere/Else"}})
    assert contract.check(bad, "patch", SETTINGS)["field"] == "business.timezone"
    defaults = {
        "business": {"timezone": "UTC"},
        "hours": {day: [{"start": "00:00", "end": "24:00"}] for day in WEEKDAYS},
        "holidays": [],
        "sla": {"first_response_minutes": 15},
    }
    contract.check(client.patch(SETTINGS, json=defaults), "patch", SETTINGS)  # for what follows

    made = client.post(CANNED, json={"shortcut": "/hello", "title": "Hello", "text": "Hi!"})
    response = contract.check(made, "post", CANNED)
    assert made.status_code == 201
    taken = client.post(CANNED, json={"shortcut": "/hello", "title": "Again", "text": "Hi"})
    assert contract.check(taken, "post", CANNED)["error"] == "conflict"
    wrong = client.post(CANNED, json={"shortcut": "hello", "title": "x", "text": "x"})
    assert contract.check(wrong, "post", CANNED)["field"] == "shortcut"
    listed = contract.check(client.get(CANNED, params={"limit": 1}), "get", CANNED)
    assert [item["id"] for item in listed["items"]] == [response["id"]]
    path = f"{CANNED}/{response['id']}"
    assert contract.check(client.get(path), "get", CANNED_ITEM)["id"] == response["id"]
    renamed = contract.check(client.patch(path, json={"title": "Hi"}), "patch", CANNED_ITEM)
    assert renamed["title"] == "Hi"
    missing = client.patch(f"{CANNED}/cr_missing", json={"title": "x"})
    assert contract.check(missing, "patch", CANNED_ITEM)["error"] == "not_found"
    assert contract.check(client.get(f"{CANNED}/cr_missing"), "get", CANNED_ITEM)
    deleted = client.delete(path)
    assert deleted.status_code == 204
    contract.check(deleted, "delete", CANNED_ITEM)
    assert contract.check(client.delete(path), "delete", CANNED_ITEM)["error"] == "not_found"


CAMPAIGN = "/api/campaigns/{campaign_id}"


def exercise_campaigns(client: httpx.Client, contract: Contract) -> None:
    """The campaigns routes (docs/campaigns.md): a draft made, read, listed, changed,
    previewed and deleted; one launched for next month, then cancelled; one running (too
    slow to finish) paused, resumed, read through its recipients, report and CSV export, then
    cancelled; and the 400s, 404s and 409s of each."""
    ada, bob = (
        client.post(
            "/api/contacts",
            json={"display_name": name, "identities": [{"channel": "http", "address": address}]},
        ).json()
        for name, address in (("Ada Byron", "+15550200001"), ("Bob Bell", "+15550200002"))
    )
    draft = {
        "name": "Spring sale",
        "channel": "http",
        "audience": {"kind": "contacts", "contact_ids": [ada["id"], bob["id"]]},
        "message": {"text": "Hi {{first_name}}, spring is here"},
    }
    created = client.post("/api/campaigns", json=draft)
    campaign = contract.check(created, "post", "/api/campaigns")
    assert (created.status_code, campaign["status"]) == (201, "draft")
    for wrong in (
        {**draft, "message": {"text": "Hi {{nope}}"}},
        {**draft, "channel": "nosuch"},
        {**draft, "channel": "Not A Channel"},
        {**draft, "audience": {"kind": "contacts"}},
    ):
        refused = client.post("/api/campaigns", json=wrong)
        assert contract.check(refused, "post", "/api/campaigns")["error"] == "invalid_input"

    path = f"/api/campaigns/{campaign['id']}"
    assert contract.check(client.get(path), "get", CAMPAIGN)["id"] == campaign["id"]
    missing = client.get("/api/campaigns/cmp_missing")
    assert contract.check(missing, "get", CAMPAIGN)["error"] == "not_found"
    listed = client.get("/api/campaigns", params={"status": "draft"})
    assert campaign["id"] in [
        c["id"] for c in contract.check(listed, "get", "/api/campaigns")["items"]
    ]
    bad_status = client.get("/api/campaigns", params={"status": "sent"})
    assert contract.check(bad_status, "get", "/api/campaigns")["error"] == "invalid_input"
    renamed = client.patch(path, json={"name": "Spring sale!"})
    assert contract.check(renamed, "patch", CAMPAIGN)["name"] == "Spring sale!"
    unknown_variable = client.patch(path, json={"message": {"text": "{{nope}}"}})
    assert contract.check(unknown_variable, "patch", CAMPAIGN)["field"] == "message.text"
    no_campaign = client.patch("/api/campaigns/cmp_missing", json={"name": "x"})
    assert contract.check(no_campaign, "patch", CAMPAIGN)["error"] == "not_found"

    preview = CAMPAIGN + "/preview"
    shown = client.post(f"{path}/preview", json={"contact_id": ada["id"]})
    made = contract.check(shown, "post", preview)
    assert (made["outcome"], made["text"]) == ("send", "Hi Ada, spring is here")
    no_contact = client.post(f"{path}/preview", json={"contact_id": "ct_missing"})
    assert contract.check(no_contact, "post", preview)["error"] == "not_found"
    no_body = client.post(f"{path}/preview", json={})
    assert contract.check(no_body, "post", preview)["field"] == "contact_id"
    elsewhere = client.post("/api/campaigns/cmp_missing/preview", json={"contact_id": ada["id"]})
    assert contract.check(elsewhere, "post", preview)["error"] == "not_found"

    for action in ("pause", "resume", "cancel"):  # none of them is for a draft
        early = client.post(f"{path}/{action}")
        assert early.status_code == 409, early.text
        assert contract.check(early, "post", f"{CAMPAIGN}/{action}")["status"] == "draft"
    exercise_scheduled_campaign(client, draft, contract)
    exercise_running_campaign(client, draft, contract)
    exercise_campaign_without_segment(client, draft, contract)

    deleted = client.delete(path)
    assert deleted.status_code == 204
    contract.check(deleted, "delete", CAMPAIGN)
    gone = client.delete(path)
    assert contract.check(gone, "delete", CAMPAIGN)["error"] == "not_found"
    for action in ("launch", "pause", "resume", "cancel"):
        unknown = client.post(f"{path}/{action}")
        assert contract.check(unknown, "post", f"{CAMPAIGN}/{action}")["error"] == "not_found"
    for part in ("recipients", "report", "export"):
        unknown = client.get(f"{path}/{part}")
        assert contract.check(unknown, "get", f"{CAMPAIGN}/{part}")["error"] == "not_found"


def exercise_scheduled_campaign(client: httpx.Client, draft: dict, contract: Contract) -> None:
    """Launched for next month, it stays scheduled: it cannot be changed, deleted, launched
    again, paused or resumed (409); cancelled, it cannot be cancelled again."""
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    paris = when.astimezone(timezone(timedelta(hours=1))).isoformat()
    later = client.post("/api/campaigns", json={**draft, "schedule": {"at": paris}}).json()
    path = f"/api/campaigns/{later['id']}"
    launched = contract.check(client.post(f"{path}/launch"), "post", CAMPAIGN + "/launch")
    assert (launched["status"], launched["schedule"]["at"]) == ("scheduled", format_timestamp(when))
    assert contract.check(client.get(path), "get", CAMPAIGN)["status"] == "scheduled"
    conflicts = [
        ("patch", CAMPAIGN, client.patch(path, json={"name": "too late"})),
        ("delete", CAMPAIGN, client.delete(path)),
        *(
            ("post", f"{CAMPAIGN}/{a}", client.post(f"{path}/{a}"))
            for a in ("launch", "pause", "resume")
        ),
    ]
    for method, template, answer in conflicts:
        assert answer.status_code == 409, (method, template, answer.text)
        assert contract.check(answer, method, template)["status"] == "scheduled"
    cancelled = contract.check(client.post(f"{path}/cancel"), "post", CAMPAIGN + "/cancel")
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    again = client.post(f"{path}/cancel")
    assert contract.check(again, "post", CAMPAIGN + "/cancel")["status"] == "cancelled"


def exercise_running_campaign(client: httpx.Client, draft: dict, contract: Contract) -> None:
    """At 0.01 messages a second, a campaign to two contacts sends to the first at once and
    stays running: it is paused (then not paused again), resumed, read (its recipients in
    sending order, its report, its CSV export) and cancelled."""
    contact_ids = draft["audience"]["contact_ids"]
    slow = client.post("/api/campaigns", json={**draft, "rate": 0.01}).json()
    path = f"/api/campaigns/{slow['id']}"
    assert client.post(f"{path}/launch").status_code == 200
    deadline = time.monotonic() + 10  # the runner starts it within a second
    while not client.get(f"{path}/recipients", params={"state": "queued"}).json()["items"]:
        assert time.monotonic() < deadline, client.get(path).text
        time.sleep(0.1)
    paused = contract.check(client.post(f"{path}/pause"), "post", CAMPAIGN + "/pause")
    assert paused["status"] == "paused" and paused["started_at"] is not None
    twice = client.post(f"{path}/pause")
    assert contract.check(twice, "post", CAMPAIGN + "/pause")["status"] == "paused"
    resumed = contract.check(client.post(f"{path}/resume"), "post", CAMPAIGN + "/resume")
    assert resumed["status"] == "running"
    again = client.post(f"{path}/resume")
    assert contract.check(again, "post", CAMPAIGN + "/resume")["status"] == "running"

    recipients = CAMPAIGN + "/recipients"
    first = contract.check(client.get(f"{path}/recipients", params={"limit": 1}), "get", recipients)
    rest = contract.check(
        client.get(f"{path}/recipients", params={"cursor": first["next_cursor"]}), "get", recipients
    )
    assert [r["contact_id"] for r in first["items"] + rest["items"]] == contact_ids
    pending = client.get(f"{path}/recipients", params={"state": "pending"})
    assert [r["seq"] for r in contract.check(pending, "get", recipients)["items"]] == [1]
    bad_state = client.get(f"{path}/recipients", params={"state": "sent"})
    assert contract.check(bad_state, "get", recipients)["field"] == "state"
    report = contract.check(client.get(f"{path}/report"), "get", CAMPAIGN + "/report")
    assert (report["counts"]["targeted"], report["counts"]["pending"]) == (2, 1)

    export = client.get(f"{path}/export")
    contract.check(export, "get", CAMPAIGN + "/export")
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith(f'attachment; filename="{slow["id"]}-')
    header, *rows = export.text.splitlines()
    assert header.startswith("contact_id,seq,state,")
    assert [row.split(",")[:3] for row in rows] == [
        [contact_ids[0], "0", "queued"],
        [contact_ids[1], "1", "pending"],
    ]
    cancelled = contract.check(client.post(f"{path}/cancel"), "post", CAMPAIGN + "/cancel")
    assert cancelled["status"] == "cancelled"


def exercise_campaign_without_segment(
    client: httpx.Client, draft: dict, contract: Contract
) -> None:
    """A draft to a segment deleted since cannot be launched: 400 naming the field."""
    vip = {"field": "tags", "op": "contains", "value": "vip"}
    segment = client.post("/api/crm/segments", json={"name": "Spring VIPs", "filter": vip}).json()
    audience = {"kind": "segment", "segment_id": segment["id"]}
    orphan = client.post("/api/campaigns", json={**draft, "audience": audience}).json()
    assert client.delete(f"/api/crm/segments/{segment['id']}").status_code == 204
    refused = client.post(f"/api/campaigns/{orphan['id']}/launch")
    assert contract.check(refused, "post", CAMPAIGN + "/launch")["field"] == "audience.segment_id"


def exercise_media(client: httpx.Client, conversation_path: str, contract: Contract) -> None:
    """An upload (and a refused one), read back, sent in a reply by its id and downloaded
    through the message."""
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    uploaded = contract.check(
        client.post(
            "/api/media",
            content=png,
            params={"filename": "dot.png"},
            headers={"Content-Type": "image/png"},
        ),
        "post",
        "/api/media",
    )
    refused = client.post("/api/media", content=b"<b>", headers={"Content-Type": "text/html"})
    assert contract.check(refused, "post", "/api/media")["error"] == "unsupported_media_type"
    contract.check(client.get(f"/api/media/{uploaded['id']}"), "get", "/api/media/{media_id}")
    contract.check(client.get("/api/media/med_none"), "get", "/api/media/{media_id}")
    reply = client.post(
        f"{conversation_path}/messages", json={"media": [{"media_id": uploaded["id"]}]}
    )
    assert reply.status_code == 202, reply.text
    template = "/api/messages/{message_id}/media/{index}"
    downloaded = client.get(reply.json()["media"][0]["url"])
    contract.check(downloaded, "get", template)
    assert downloaded.content == png
    missing = client.get(f"/api/messages/{reply.json()['id']}/media/1")
    assert contract.check(missing, "get", template)["error"] == "not_found"


def exercise_outbox(
    client: httpx.Client, conversation_path: str, receiver: FakeProvider, contract: Contract
) -> None:
    """A scheduled message cancelled, a failed one retried, the outbox's figures, and the
    409s of each control."""
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    paris = when.astimezone(timezone(timedelta(hours=1))).isoformat()  # with its offset
    later = client.post(
        f"{conversation_path}/messages", json={"text": "next month", "send_at": paris}
    )
    scheduled = contract.check(later, "post", "/api/conversations/{conversation_id}/messages")
    assert (later.status_code, scheduled["send_at"]) == (202, format_timestamp(when))
    outbox = contract.check(client.get("/api/outbox"), "get", "/api/outbox")
    assert outbox["channels"]["http"]["scheduled"] >= 1
    cancel_path = "/api/messages/{message_id}/cancel"
    cancelled = client.post(f"/api/messages/{scheduled['id']}/cancel")
    assert contract.check(cancelled, "post", cancel_path)["status"] == "cancelled"
    again = client.post(f"/api/messages/{scheduled['id']}/cancel")
    assert (again.status_code, contract.check(again, "post", cancel_path)["error"]) == (
        409,
        "conflict",
    )

    receiver.queue_for_text("retry me", ScriptedResponse.json(400, {"error": "bad number"}))
    refused = client.post(f"{conversation_path}/messages", json={"text": "retry me"}, headers=WAIT)
    failed = refused.json()["stored_message"]
    retry_path = "/api/messages/{message_id}/retry"
    retried = client.post(f"/api/messages/{failed['id']}/retry", headers=WAIT)
    assert retried.status_code == 201
    assert contract.check(retried, "post", retry_path)["id"] == failed["id"]
    not_failed = client.post(f"/api/messages/{failed['id']}/retry")
    assert contract.check(not_failed, "post", retry_path)["error"] == "conflict"


def exercise_access(server: ServerProcess, contract: Contract) -> None:
    """Users, sessions, API keys and the audit log: success and the usual errors."""
    admin, anonymous = server.client(), server.client(None)
    user = contract.check(
        admin.post(
            "/api/users",
            json={
                "email": "ops@example.com",
                "display_name": "Ops",
                "role": "agent",
                "password": PASSWORD,
            },
        ),
        "post",
        "/api/users",
    )
    taken = admin.post(
        "/api/users",
        json={
            "email": "OPS@example.com",
            "display_name": "Ops",
            "role": "agent",
            "password": PASSWORD,
        },
    )
    assert contract.check(taken, "post", "/api/users")["error"] == "conflict"
    contract.check(admin.get("/api/users"), "get", "/api/users")
    user_path = f"/api/users/{user['id']}"
    contract.check(admin.get(user_path), "get", "/api/users/{user_id}")
    contract.check(admin.get("/api/users/usr_missing"), "get", "/api/users/{user_id}")
    contract.check(
        admin.patch(user_path, json={"display_name": "Ops team"}), "patch", "/api/users/{user_id}"
    )
    contract.check(admin.patch(user_path, json={}), "patch", "/api/users/{user_id}")

    login = "/api/auth/login"
    tokens = contract.check(
        anonymous.post(login, json={"email": "ops@example.com", "password": PASSWORD}),
        "post",
        login,
    )
    wrong = anonymous.post(login, json={"email": "ops@example.com", "password": "wrong password"})
    assert contract.check(wrong, "post", login)["error"] == "unauthenticated"
    refreshed = contract.check(
        anonymous.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        "post",
        "/api/auth/refresh",
    )
    replay = anonymous.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert contract.check(replay, "post", "/api/auth/refresh")["error"] == "unauthenticated"
    tokens = contract.check(
        anonymous.post(login, json={"email": "ops@example.com", "password": PASSWORD}),
        "post",
        login,
    )
    assert refreshed["access_token"] != tokens["access_token"]
    agent = server.client(tokens["access_token"])
    me = contract.check(agent.get("/api/auth/me"), "get", "/api/auth/me")
    assert me["user"]["id"] == user["id"]
    contract.check(admin.get("/api/auth/me"), "get", "/api/auth/me")
    forbidden = agent.get("/api/audit")
    assert contract.check(forbidden, "get", "/api/audit")["error"] == "forbidden"
    bad_current = agent.post(
        "/api/auth/password",
        json={"current_password": "not it at all", "new_password": "a brand new passphrase"},
    )
    assert contract.check(bad_current, "post", "/api/auth/password")["error"] == "forbidden"
    contract.check(
        agent.post(
            "/api/auth/password",
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        ),
        "post",
        "/api/auth/password",
    )
    contract.check(agent.post("/api/auth/logout"), "post", "/api/auth/logout")
    contract.check(agent.get("/api/auth/me"), "get", "/api/auth/me")  # 401: session ended
    contract.check(admin.post("/api/auth/logout"), "post", "/api/auth/logout")  # 400: a key

    created = contract.check(
        admin.post("/api/api-keys", json={"name": "ops", "scopes": ["read"]}),
        "post",
        "/api/api-keys",
    )
    unknown_scope = admin.post("/api/api-keys", json={"name": "x", "scopes": ["all"]})
    assert contract.check(unknown_scope, "post", "/api/api-keys")["error"] == "invalid_input"
    contract.check(admin.get("/api/api-keys"), "get", "/api/api-keys")
    key_path = f"/api/api-keys/{created['id']}"
    contract.check(admin.get(key_path), "get", "/api/api-keys/{key_id}")
    contract.check(admin.get("/api/api-keys/key_missing"), "get", "/api/api-keys/{key_id}")
    revoked = contract.check(admin.delete(key_path), "delete", "/api/api-keys/{key_id}")
    assert revoked["revoked_at"] is not None
    contract.check(admin.delete("/api/api-keys/key_missing"), "delete", "/api/api-keys/{key_id}")

    entries = contract.check(
        admin.get("/api/audit", params={"action": "auth.login_failed", "limit": 2}),
        "get",
        "/api/audit",
    )
    assert entries["items"] and entries["items"][0]["actor_type"] == "anonymous"
    contract.check(admin.get("/api/audit", params={"limit": 0}), "get", "/api/audit")


def test_client_errors_fit_documented_error_shape(server, contract):
    """400, 401, 404, 413 and 415 answers fit the document, and the Error schema even on
    routes it does not list."""
    client, anonymous = server.client(), server.client(None)
    contract.check_error(anonymous.get("/api/contacts"), 401)
    contract.check(anonymous.get("/api/contacts"), "get", "/api/contacts")
    wrong_key = server.client("not-the-key").get("/api/conversations")
    contract.check(wrong_key, "get", "/api/conversations")
    assert wrong_key.status_code == 401

    for path, template in (
        ("/api/contacts/missing", "/api/contacts/{contact_id}"),
        ("/api/conversations/missing", "/api/conversations/{conversation_id}"),
        ("/api/messages/missing", "/api/messages/{message_id}"),
        ("/api/conversations/missing/messages", "/api/conversations/{conversation_id}/messages"),
    ):
        contract.check_error(client.get(path), 404)
        contract.check(client.get(path), "get", template)
    unknown = client.post("/api/channels/nosuch/messages", json={"to": "x", "text": "t"})
    assert (
        contract.check(unknown, "post", "/api/channels/{channel}/messages")["channel"] == "nosuch"
    )
    contract.check_error(client.get("/api/no/such/route"), 404)
    no_conversation = client.post("/api/conversations/missing/messages", json={"text": "t"})
    contract.check_error(no_conversation, 404)
    contract.check(no_conversation, "post", "/api/conversations/{conversation_id}/messages")

    bad_limit = client.get("/api/contacts", params={"limit": 0})
    assert contract.check_error(bad_limit, 400)["field"] == "limit"
    contract.check(bad_limit, "get", "/api/contacts")
    bad_status = client.get("/api/conversations", params={"status": "closed"})
    contract.check_error(bad_status, 400)
    contract.check(bad_status, "get", "/api/conversations")
    bad_cursor = client.get("/api/contacts", params={"cursor": "!!"})
    contract.check_error(bad_cursor, 400)
    malformed = client.post(
        "/api/channels/http/messages",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    contract.check_error(malformed, 400)
    contract.check(malformed, "post", "/api/channels/{channel}/messages")
    bad_key = client.post(
        "/api/channels/http/messages",
        json={"to": "x", "text": "t"},
        headers={"Idempotency-Key": "has space"},
    )
    assert contract.check_error(bad_key, 400)["field"] == "Idempotency-Key"

    wrong_type = client.patch(
        "/api/contacts/missing", content=b"tags=a", headers={"Content-Type": "text/plain"}
    )
    contract.check_error(wrong_type, 415)
    contract.check(wrong_type, "patch", "/api/contacts/{contact_id}")
    too_large = client.post(
        "/api/channels/http/messages", json={"to": "x", "text": "x" * (1024 * 1024 + 1)}
    )
    assert contract.check_error(too_large, 413)["error"] == "content_too_large"
    contract.check(too_large, "post", "/api/channels/{channel}/messages")


def test_webhook_refusals_fit_documented_error_shape(server, contract):
    """A webhook with a wrong signature answers 403, one with a bad body 400, one for an
    unknown channel 404: each as documented."""
    anonymous = server.client(None)
    webhook = "/api/channels/{channel}/webhook"
    raw, headers = signed({"id": "x", "from": "y", "text": "z"})
    forged = anonymous.post(
        "/api/channels/http/webhook", content=raw, headers={**headers, SIGNATURE_HEADER: "sha256=0"}
    )
    assert contract.check_error(forged, 403)["error"] == "webhook_rejected"
    contract.check(forged, "post", webhook)
    raw, headers = signed({"from": "y", "text": "no id"})
    incomplete = anonymous.post("/api/channels/http/webhook", content=raw, headers=headers)
    contract.check_error(incomplete, 400)
    contract.check(incomplete, "post", webhook)
    unknown = anonymous.post("/api/channels/nosuch/webhook", content=raw, headers=headers)
    contract.check_error(unknown, 404)
    contract.check(unknown, "post", webhook)


def test_delivery_failures_fit_documented_shape(server, receiver: FakeProvider, contract):
    """A provider refusal answers 422 and an outage 502, each naming the stored, now failed
    message, as documented."""
    client = server.client()
    template = "/api/channels/{channel}/messages"
    receiver.queue_for_text("refuse me", ScriptedResponse.json(400, {"error": "bad number"}))
    refused = client.post(
        "/api/channels/http/messages", json={"to": "+15550100", "text": "refuse me"}, headers=WAIT
    )
    body = contract.check(refused, "post", template)
    assert (refused.status_code, body["error"]) == (422, "send_rejected")
    assert body["stored_message"]["status"] == "failed"

    receiver.queue_for_text("outage", *[ScriptedResponse.json(503, {})] * 20)
    outage = client.post(
        "/api/channels/http/messages",
        json={"to": "+15550100", "text": "outage"},
        headers={"Prefer": "wait=1"},  # still failing after a second of retries
    )
    body = contract.check(outage, "post", template)
    assert (outage.status_code, body["error"]) == (502, "provider_unavailable")
    assert body["stored_message"]["id"] == body["message_id"]
    assert body["stored_message"]["status"] == "queued"  # and the outbox tries again
    assert body["stored_message"]["attempts"] >= 1


def test_unconfigured_and_missing_hooks_fit_documented_shape(degraded_server, contract):
    """An unconfigured channel answers 503 and a channel lacking a hook 501, on every
    surface the document says they may; /health stays 200 and says degraded."""
    client, anonymous = degraded_server.client(), degraded_server.client(None)
    health = contract.check(anonymous.get("/health"), "get", "/health")
    assert health["status"] == "degraded"
    channel_health = client.get("/api/channels/http/health")
    assert channel_health.status_code == 503
    contract.check(channel_health, "get", "/api/channels/{channel}/health")

    raw = json.dumps({"id": "a", "from": "b", "text": "c"}).encode()
    json_type = {"Content-Type": "application/json"}
    for hook in ("webhook", "status"):
        template = f"/api/channels/{{channel}}/{hook}"
        unavailable = anonymous.post(f"/api/channels/http/{hook}", content=raw, headers=json_type)
        assert contract.check(unavailable, "post", template)["error"] == "channel_unavailable"
        assert unavailable.status_code == 503
        missing = anonymous.post(f"/api/channels/healthonly/{hook}", content=raw, headers=json_type)
        assert contract.check(missing, "post", template)["hook"] in ("receive", "status")
        assert missing.status_code == 501

    template = "/api/channels/{channel}/messages"
    to = {"to": "+15550199", "text": "t"}
    sent = client.post("/api/channels/http/messages", json=to, headers=WAIT)
    assert sent.status_code == 503
    stored = contract.check(sent, "post", template)["stored_message"]
    missing = client.post("/api/channels/healthonly/messages", json={"to": "x", "text": "t"})
    assert missing.status_code == 501
    assert contract.check(missing, "post", template)["hook"] == "send"

    reply = client.post(
        f"/api/conversations/{stored['conversation_id']}/messages", json={"text": "t"}, headers=WAIT
    )
    assert reply.status_code == 503
    contract.check(reply, "post", "/api/conversations/{conversation_id}/messages")


SEND_BODIES = [
    ({"to": "+15550123", "text": "hi"}, True),
    ({"to": "+15550123", "name": "Bo", "media": ["https://example.com/a.png"]}, True),
    ({"to": "+15550123", "media": [{"url": "https://example.com/a.pdf", "filename": "a"}]}, True),
    ({"to": "+15550123", "text": "hi", "metadata": {"campaign": "x"}}, True),
    ({"text": "no recipient"}, False),
    ({"to": "+15550123", "text": "hi", "priority": "high"}, False),
    ({"to": "+15550123", "media": ["ftp://example.com/a.png"]}, False),
    ({"to": "+15550123", "text": 7}, False),
]


@pytest.mark.parametrize(("body", "accepted"), SEND_BODIES)
def test_send_request_schema_agrees_with_server(server, contract, body, accepted):
    """The documented ChannelSend schema accepts what the server accepts and rejects, by
    shape, what the server answers 400 to."""
    errors = contract.schema_errors("/components/schemas/ChannelSend", body)
    assert (not errors) is accepted, errors
    response = server.client().post("/api/channels/http/messages", json=body)
    assert response.status_code == (202 if accepted else 400), response.text
    contract.check(response, "post", "/api/channels/{channel}/messages")


UPDATE_BODIES = [
    ("ContactUpdate", "/api/contacts/{contact_id}", {"display_name": "Ada"}, True),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"tags": ["a", "b"]}, True),
    ("ContactUpdate", "/api/contacts/{contact_id}", {}, False),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"tags": [""]}, False),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"nickname": "x"}, False),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"status": "resolved"}, True),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"assignee": None}, True),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"status": "closed"}, False),
]


@pytest.mark.parametrize(("schema", "template", "body", "accepted"), UPDATE_BODIES)
def test_update_request_schemas_agree_with_server(
    server, contract, schema, template, body, accepted
):
    """The documented update schemas accept what PATCH accepts and reject what it answers
    400 to."""
    errors = contract.schema_errors(f"/components/schemas/{schema}", body)
    assert (not errors) is accepted, errors
    client = server.client()
    sent = client.post("/api/channels/http/messages", json={"to": "+15550124", "text": "x"})
    message = sent.json()
    record_id = message["contact_id" if "contact" in template else "conversation_id"]
    path = re.sub(r"{[^}]+}", record_id, template)
    response = client.patch(path, json=body)
    assert response.status_code == (200 if accepted else 400), response.text
    contract.check(response, "patch", template)
