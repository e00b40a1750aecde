"""The contacts and CRM API through the real server (gunicorn, two workers, SQLite): what an
agent may see of contacts, in the API and in the stream; notes and who may change them;
identities and merging, with webhooks landing on the survivor; duplicates; custom
attributes; segments. docs/crm.md is the reference."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.sse import open_stream
from tests.support.users import create_user, login


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "OMNICHANNEL_EVENT_POLL_MS": "100"}
    with running_server(tmp_path_factory.mktemp("crm"), env, workers=2) as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def user_client(server: ServerProcess, admin: httpx.Client, role: str) -> tuple[dict, httpx.Client]:
    user = create_user(admin, role)
    token = login(server, user["email"])["access_token"]
    return user, server.client(api_key=token)


@pytest.fixture(scope="module")
def agent(server: ServerProcess, admin: httpx.Client) -> Iterator[tuple[dict, httpx.Client]]:
    user, client = user_client(server, admin, "agent")
    with client:
        yield user, client


@pytest.fixture(scope="module")
def other_agent(server: ServerProcess, admin: httpx.Client) -> Iterator[tuple[dict, httpx.Client]]:
    user, client = user_client(server, admin, "agent")
    with client:
        yield user, client


def conversation_of(admin: httpx.Client, sender: str, text: str = "hello") -> dict[str, Any]:
    """The conversation a webhook from ``sender`` lands in (posting one)."""
    assert post_webhook(admin, inbound_message(sender, text)).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    return conversation


def assign(admin: httpx.Client, conversation: dict[str, Any], user_id: str | None) -> None:
    path = f"/api/conversations/{conversation['id']}"
    assert admin.patch(path, json={"assignee": user_id}).status_code == 200


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def every_contact(client: httpx.Client) -> list[str]:
    found, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/contacts", params=params).json()
        found += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_an_agent_sees_the_contacts_of_the_conversations_they_can_see(admin, agent, other_agent):
    """Unassigned or theirs: listed and readable; another agent's: 403, not listed, and
    nothing of it (notes, timeline) either; a supervisor sees every contact."""
    me, client = agent
    other, _ = other_agent
    free = conversation_of(admin, unique("+1555"))
    mine = conversation_of(admin, unique("+1555"))
    theirs = conversation_of(admin, unique("+1555"))
    assign(admin, mine, me["id"])
    assign(admin, theirs, other["id"])
    listed = every_contact(client)
    assert free["contact_id"] in listed and mine["contact_id"] in listed
    assert theirs["contact_id"] not in listed
    for path in ("", "/notes", "/timeline", "/duplicates"):
        response = client.get(f"/api/contacts/{theirs['contact_id']}{path}")
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "forbidden"
    denied = client.patch(f"/api/contacts/{theirs['contact_id']}", json={"tags": ["x"]})
    assert denied.status_code == 403
    assert client.get(f"/api/contacts/{mine['contact_id']}").status_code == 200
    assert theirs["contact_id"] in every_contact(admin)


def test_contact_events_reach_only_the_agents_who_may_see_the_contact(server, admin, agent):
    """A change to a contact of another agent's conversation is streamed to an admin, not
    to this agent; one to a contact of an unassigned conversation reaches both."""
    me, _ = agent
    other = create_user(admin, "agent")
    hidden = conversation_of(admin, unique("+1555"))
    shown = conversation_of(admin, unique("+1555"))
    assign(admin, hidden, other["id"])
    token = login(server, me["email"])["access_token"]
    with (
        open_stream(server.base_url, token) as (_, agent_stream),
        open_stream(server.base_url, API_KEY) as (_, admin_stream),
    ):
        agent_stream.next_of("ready")
        admin_stream.next_of("ready")
        path = "/api/contacts/{}"
        assert admin.patch(path.format(hidden["contact_id"]), json={"tags": ["h"]}).is_success
        assert admin.patch(path.format(shown["contact_id"]), json={"tags": ["s"]}).is_success
        told_admin = [admin_stream.next_of("contact.updated") for _ in range(2)]
        told_agent = agent_stream.next_of("contact.updated")
    assert [e.data["contact"]["id"] for e in told_admin] == [
        hidden["contact_id"],
        shown["contact_id"],
    ]
    assert told_agent.data["contact"]["id"] == shown["contact_id"]  # the hidden one skipped


def test_notes_are_written_by_anyone_who_may_see_the_contact_and_changed_by_their_author(
    server, admin, agent, other_agent
):
    """An agent writes a note; another agent may read it but not change or delete it
    (403); an admin may; the note shows in the contact's timeline."""
    _, client = agent
    _, other = other_agent
    contact_id = conversation_of(admin, unique("+1555"))["contact_id"]
    notes = f"/api/contacts/{contact_id}/notes"
    written = client.post(notes, json={"text": "called back, wants the pro plan"})
    assert written.status_code == 201, written.text
    note = written.json()
    assert ids(other.get(notes).json()) == [note["id"]]
    assert other.patch(f"{notes}/{note['id']}", json={"text": "mine now"}).status_code == 403
    assert other.delete(f"{notes}/{note['id']}").status_code == 403
    changed = client.patch(f"{notes}/{note['id']}", json={"text": "wants pro"})
    assert changed.json()["text"] == "wants pro"
    timeline = admin.get(f"/api/contacts/{contact_id}/timeline").json()["items"]
    assert any(item["kind"] == "note" and item["note"]["text"] == "wants pro" for item in timeline)
    assert admin.delete(f"{notes}/{note['id']}").status_code == 200
    assert client.get(notes).json()["items"] == []
    blank = client.post(notes, json={"text": "   "})
    assert blank.status_code == 400 and blank.json()["field"] == "text"


def test_a_merge_moves_everything_to_the_survivor_and_later_webhooks_follow(server, admin):
    """Two contacts (two phones) merged: the merged id reads as the survivor, its
    conversation is the survivor's, a message from its address lands on the survivor, the
    values follow the rule, the audit names both ids only, merging again is 409."""
    first_phone, second_phone = unique("+1555"), unique("+1555")
    survivor = conversation_of(admin, first_phone)
    merged = conversation_of(admin, second_phone)
    survivor_id, merged_id = survivor["contact_id"], merged["contact_id"]
    admin.patch(f"/api/contacts/{survivor_id}", json={"tags": ["a"], "company": None})
    admin.patch(f"/api/contacts/{merged_id}", json={"tags": ["b", "a"], "company": "Acme"})
    note = admin.post(f"/api/contacts/{merged_id}/notes", json={"text": "from before"}).json()
    answer = admin.post(
        "/api/crm/merges", json={"survivor_id": survivor_id, "merged_id": merged_id}
    )
    assert answer.status_code == 200, answer.text
    contact = answer.json()
    assert contact["id"] == survivor_id
    assert contact["tags"] == ["a", "b"] and contact["company"] == "Acme"
    assert {i["address"] for i in contact["identities"]} == {first_phone, second_phone}
    assert admin.get(f"/api/contacts/{merged_id}").json()["id"] == survivor_id
    moved = admin.get(f"/api/conversations/{merged['id']}").json()
    assert moved["contact_id"] == survivor_id
    later = conversation_of(admin, second_phone, "after the merge")
    assert later["contact_id"] == survivor_id
    assert merged_id not in every_contact(admin)
    again = admin.post("/api/crm/merges", json={"survivor_id": survivor_id, "merged_id": merged_id})
    assert again.status_code == 409 and again.json()["contact_id"] == survivor_id
    audit = admin.get("/api/audit", params={"action": "contact.merged"}).json()["items"]
    [entry] = [e for e in audit if e["target_id"] == survivor_id]
    assert entry["details"] == {"merged_id": merged_id}
    wait_for_note(admin, survivor_id, note["id"])


def wait_for_note(admin: httpx.Client, contact_id: str, note_id: str) -> None:
    """The note moves with the merge, by the CRM's subscriber: soon after, not at once."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if note_id in ids(admin.get(f"/api/contacts/{contact_id}/notes").json()):
            return
        time.sleep(0.1)
    pytest.fail("the merged contact's note did not move to the survivor")


def test_identities_are_added_and_removed_and_a_taken_one_is_a_conflict(admin):
    """Adding an address another contact holds is 409 naming it; adding a free one makes
    the next message from it this contact's; removing it makes the next one a new
    contact's."""
    phone = unique("+1555")
    holder = conversation_of(admin, phone)["contact_id"]
    contact = admin.post("/api/contacts", json={"display_name": "Ada"}).json()
    path = f"/api/contacts/{contact['id']}/identities"
    taken = admin.post(path, json={"channel": "http", "address": phone})
    assert taken.status_code == 409 and taken.json()["contact_id"] == holder
    free = unique("+1555")
    added = admin.post(path, json={"channel": "http", "address": free})
    assert added.status_code == 200, added.text
    assert conversation_of(admin, free)["contact_id"] == contact["id"]
    removed = admin.delete(path, params={"channel": "http", "address": free})
    assert removed.status_code == 200 and removed.json()["identities"] == []
    assert post_webhook(admin, inbound_message(free, "again")).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    owners = {c["contact_id"] for c in conversations if c["address"] == free}
    assert len(owners) == 2 and contact["id"] in owners  # the old one kept, a new contact's
    missing = admin.delete(path, params={"channel": "http", "address": "+10000000000"})
    assert missing.status_code == 404


def test_contacts_sharing_an_email_or_a_phone_are_suggested_as_duplicates(admin):
    email = f"{unique('ada')}@example.com"
    first = admin.post("/api/contacts", json={"emails": [email.upper()]}).json()
    second = admin.post("/api/contacts", json={"emails": [email]}).json()
    third = admin.post("/api/contacts", json={"phones": ["+34 600 000 001"]}).json()
    assert first["emails"] == [email]
    suggested = admin.get(f"/api/contacts/{first['id']}/duplicates").json()
    assert ids(suggested) == [second["id"]]
    assert third["phones"] == ["+34600000001"]


def test_custom_attributes_are_checked_against_their_definitions(admin):
    """A declared choice refuses another value (400 naming it); an undeclared key cannot
    be set; dropping the definition keeps the values."""
    key = unique("plan").replace("-", "_").lower()[:30]
    declared = admin.post(
        "/api/crm/attributes",
        json={"key": key, "type": "choice", "label": "Plan", "choices": ["free", "pro"]},
    )
    assert declared.status_code == 201, declared.text
    contact = admin.post("/api/contacts", json={"attributes": {key: "pro"}}).json()
    path = f"/api/contacts/{contact['id']}"
    refused = admin.patch(path, json={"attributes": {key: "gold"}})
    assert refused.status_code == 400 and refused.json()["field"] == f"attributes.{key}"
    undeclared = admin.patch(path, json={"attributes": {key: "pro", "shoe_size": 43}})
    assert undeclared.status_code == 400 and "not declared" in undeclared.json()["message"]
    assert admin.delete(f"/api/crm/attributes/{key}").status_code == 204
    assert admin.get(path).json()["attributes"] == {key: "pro"}
    assert admin.patch(path, json={"attributes": {key: "pro"}}).status_code == 200


def test_a_segment_counts_and_lists_its_members_and_a_bad_filter_names_its_fault(admin):
    tag = unique("tag")
    members = [admin.post("/api/contacts", json={"tags": [tag]}).json()["id"] for _ in range(3)]
    admin.post("/api/contacts", json={"tags": [tag, "excluded"]})
    segment_filter = {
        "and": [
            {"field": "tags", "op": "contains", "value": tag},
            {"not": {"field": "tags", "op": "contains", "value": "excluded"}},
        ]
    }
    created = admin.post("/api/crm/segments", json={"name": "vip", "filter": segment_filter})
    assert created.status_code == 201, created.text
    segment = created.json()
    assert admin.get(f"/api/crm/segments/{segment['id']}/count").json()["count"] == 3
    listed: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get(f"/api/crm/segments/{segment['id']}/contacts", params=params).json()
        listed += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(listed) == sorted(members)
    preview = admin.post("/api/crm/segments/preview", json={"filter": segment_filter, "limit": 1})
    assert preview.json()["count"] == 3 and len(preview.json()["items"]) == 1
    bad = {"and": [{"field": "tags", "op": "contains", "value": tag}, {"field": "x", "op": "eq"}]}
    refused = admin.post("/api/crm/segments", json={"name": "bad", "filter": bad})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("filter.and[1].field")


def test_identities_are_a_supervisors_to_change_not_an_agents(admin, agent):
    """Moving an address decides whose conversation a customer's next message lands in:
    an agent may neither add nor remove one, nor create a contact reachable somewhere."""
    _, client = agent
    contact_id = conversation_of(admin, unique("+1555"))["contact_id"]
    path = f"/api/contacts/{contact_id}/identities"
    free = {"channel": "http", "address": unique("+1555")}
    for response in (
        client.post(path, json=free),
        client.delete(path, params=free),
        client.post("/api/contacts", json={"identities": [free]}),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["permission"] == "contacts:merge"
    assert client.post("/api/contacts", json={"display_name": "No address"}).status_code == 201


def test_out_of_range_values_are_a_400_not_a_500(admin):
    """A number of hundreds of digits for a number attribute or in a filter, a time before
    the first UTC instant in a filter, an import mapping to a non-text: each a 400 that
    names the field."""
    key = unique("score").replace("-", "_").lower()[:30]
    admin.post("/api/crm/attributes", json={"key": key, "type": "number", "label": "Score"})
    huge = int("9" * 400)
    created = admin.post("/api/contacts", json={"attributes": {key: huge}})
    assert created.status_code == 400 and created.json()["field"] == f"attributes.{key}"
    for value in (huge, "0001-01-01T00:00:00+01:00"):
        field = f"attributes.{key}" if isinstance(value, int) else "created_at"
        condition = {"field": field, "op": "gt", "value": value}
        tried = admin.post("/api/crm/segments/preview", json={"filter": condition})
        assert tried.status_code == 400, tried.text
        assert tried.json()["field"] == "filter.value"
    upload = admin.post(
        "/api/media", content=b"Mail\na@example.com\n", headers={"Content-Type": "text/csv"}
    ).json()
    started = admin.post(
        "/api/crm/imports", json={"media_id": upload["id"], "mapping": {"Mail": 1}}
    )
    assert started.status_code == 400 and started.json()["field"] == "mapping.Mail"


def test_merging_the_pair_reversed_is_a_conflict_naming_the_survivor(admin):
    first = admin.post("/api/contacts", json={"display_name": "One"}).json()["id"]
    second = admin.post("/api/contacts", json={"display_name": "Two"}).json()["id"]
    merged = admin.post("/api/crm/merges", json={"survivor_id": first, "merged_id": second})
    assert merged.status_code == 200
    reversed_pair = admin.post("/api/crm/merges", json={"survivor_id": second, "merged_id": first})
    assert reversed_pair.status_code == 409 and reversed_pair.json()["contact_id"] == first
    audit = admin.get("/api/audit", params={"action": "contact.merged"}).json()["items"]
    assert [e["details"] for e in audit if e["target_id"] == first] == [{"merged_id": second}]


def test_an_import_deletes_its_file_once_done_and_erasure_keeps_a_shared_picture(admin):
    """The CSV holds people's data: once imported it leaves the media store. A picture two
    contacts show stays when one of them is erased."""
    upload = admin.post(
        "/api/media", content=b"Mail\nfile@example.com\n", headers={"Content-Type": "text/csv"}
    ).json()
    started = admin.post(
        "/api/crm/imports", json={"media_id": upload["id"], "mapping": {"Mail": "email"}}
    ).json()
    deadline = time.monotonic() + 15
    while admin.get(f"/api/crm/imports/{started['id']}").json()["state"] != "done":
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.1)
    assert admin.get(f"/api/media/{upload['id']}").status_code == 404
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    picture = admin.post("/api/media", content=png, headers={"Content-Type": "image/png"}).json()
    both = [
        admin.post("/api/contacts", json={"avatar": picture["id"]}).json()["id"] for _ in range(2)
    ]
    erased = admin.post(f"/api/contacts/{both[0]}/erase", json={"confirm": both[0]})
    assert erased.status_code == 200, erased.text
    assert admin.get(f"/api/contacts/{both[1]}/avatar").content == png
