"""The emulator harness: the official Firestore and Pub/Sub emulators start, serve the real
client libraries, reset, enforce loaded security rules, and stop without leaving a process."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import firebase_admin
import httpx
import pytest
from firebase_admin import firestore, firestore_async
from google.cloud import pubsub_v1

from omnichannel_core.testing import emulators
from omnichannel_core.testing.emulators import (
    Emulator,
    EmulatorError,
    fake_id_token,
    load_firestore_rules,
    reset_firestore,
    start_firestore,
    start_pubsub,
)

DENY_ALL = """rules_version = '2';
service cloud.firestore {
  match /databases/{database}/documents {
    match /{document=**} {
      allow read, write: if false;
    }
  }
}
"""


def document_url(emulator: Emulator, project: str, path: str) -> str:
    return f"{emulator.base_url}/v1/projects/{project}/databases/(default)/documents/{path}"


def live_group_members(pgid: int) -> list[str]:
    """Lines of `ps` for processes still in the group, zombies awaiting their reaper aside."""
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in listing.splitlines()
        if int(line.split()[1]) == pgid and not line.split()[2].startswith("Z")
    ]


def test_admin_sdk_writes_and_reads_a_document(firestore_app: firebase_admin.App) -> None:
    """A firebase-admin client with anonymous credentials writes and reads back a document."""
    client = firestore.client(firestore_app)
    client.collection("contacts").document("c1").set({"name": "Ada", "channels": ["sms"]})

    snapshot = client.collection("contacts").document("c1").get()

    assert snapshot.exists
    assert snapshot.to_dict() == {"name": "Ada", "channels": ["sms"]}


def test_async_admin_sdk_writes_and_reads_a_document(firestore_app: firebase_admin.App) -> None:
    """The async firebase-admin client (gRPC aio) writes, reads and queries on the emulator."""

    async def round_trip() -> tuple[dict[str, object] | None, list[str]]:
        client = firestore_async.client(firestore_app)
        await client.collection("messages").document("m1").set({"body": "hi", "n": 1})
        await client.collection("messages").document("m2").set({"body": "yo", "n": 2})
        snapshot = await client.collection("messages").document("m1").get()
        query = client.collection("messages").where(filter=firestore.FieldFilter("n", ">", 1))
        ids = [doc.id async for doc in query.stream()]
        return snapshot.to_dict(), ids

    data, ids = asyncio.run(round_trip())

    assert data == {"body": "hi", "n": 1}
    assert ids == ["m2"]


def test_reset_empties_only_that_project(
    firestore_emulator: Emulator, firestore_app: firebase_admin.App, firestore_project: str
) -> None:
    """reset_firestore deletes every document of its project and none of another project."""
    client = firestore.client(firestore_app)
    for key in ("a", "b"):
        client.collection("contacts").document(key).set({"key": key})
    client.collection("contacts").document("a").collection("notes").document("n").set({})
    other = "demo-test-other-" + firestore_project.removeprefix("demo-test-")
    owner = {"Authorization": "Bearer owner"}
    kept = httpx.patch(
        document_url(firestore_emulator, other, "contacts/kept"), json={}, headers=owner
    )
    assert kept.status_code == 200

    reset_firestore(firestore_emulator, firestore_project)

    assert list(client.collection("contacts").stream()) == []
    assert list(client.collection("contacts/a/notes").stream()) == []
    url = document_url(firestore_emulator, other, "contacts/kept")
    assert httpx.get(url, headers=owner).status_code == 200


def test_rules_deny_clients_but_not_the_admin_sdk(
    firestore_emulator: Emulator, firestore_app: firebase_admin.App, firestore_project: str
) -> None:
    """With deny-all rules loaded, REST calls with no credentials or with a user's ID token get
    403, while `Bearer owner` (the emulator's admin bypass) and the Admin SDK still work."""
    url = document_url(firestore_emulator, firestore_project, "contacts/c1")
    assert httpx.patch(url, json={"fields": {}}).status_code == 200  # no rules yet: open

    load_firestore_rules(firestore_emulator, firestore_project, DENY_ALL)

    user = {"Authorization": f"Bearer {fake_id_token(firestore_project, 'alice')}"}
    anonymous = httpx.get(url)
    signed_in = httpx.get(url, headers=user)
    write = httpx.patch(url, json={"fields": {}}, headers=user)
    for denied in (anonymous, signed_in, write):
        assert denied.status_code == 403, denied.text
        assert denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert httpx.get(url, headers={"Authorization": "Bearer owner"}).status_code == 200
    client = firestore.client(firestore_app)
    client.collection("contacts").document("c2").set({"name": "Grace"})
    assert client.collection("contacts").document("c2").get().to_dict() == {"name": "Grace"}


def test_rules_see_a_fake_id_token_as_the_signed_in_user(
    firestore_emulator: Emulator, firestore_project: str
) -> None:
    """An unsigned ID token from fake_id_token reaches the rules as request.auth with its uid:
    the owner's reads pass, another user's and an anonymous read are denied."""
    rules = """rules_version = '2';
service cloud.firestore {
  match /databases/{database}/documents {
    match /contacts/{uid} {
      allow read, write: if request.auth != null && request.auth.uid == uid;
    }
  }
}
"""
    load_firestore_rules(firestore_emulator, firestore_project, rules)
    url = document_url(firestore_emulator, firestore_project, "contacts/alice")

    def as_user(uid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {fake_id_token(firestore_project, uid)}"}

    assert httpx.patch(url, json={"fields": {}}, headers=as_user("alice")).status_code == 200
    assert httpx.get(url, headers=as_user("alice")).status_code == 200
    assert httpx.get(url, headers=as_user("bob")).status_code == 403
    assert httpx.get(url).status_code == 403


def test_rules_are_per_project(firestore_emulator: Emulator, firestore_project: str) -> None:
    """Rules loaded for one project leave another project open."""
    load_firestore_rules(firestore_emulator, firestore_project, DENY_ALL)
    other = "demo-test-open-" + firestore_project.removeprefix("demo-test-")

    response = httpx.patch(document_url(firestore_emulator, other, "c/d"), json={"fields": {}})

    assert response.status_code == 200


def test_rules_that_do_not_compile_are_rejected(
    firestore_emulator: Emulator, firestore_project: str
) -> None:
    """load_firestore_rules raises with the rules compiler's message for a broken text."""
    with pytest.raises(EmulatorError, match="Error compiling rules"):
        load_firestore_rules(firestore_emulator, firestore_project, "service nonsense {")


def test_pubsub_publishes_and_pulls(
    pubsub_emulator: Emulator, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-cloud-pubsub clients on the emulator create a topic and a subscription, publish
    a message with attributes and pull it back."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host_port)
    project = firestore_project  # any demo- project id works for Pub/Sub too
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, "events")
    publisher.create_topic(name=topic)
    with pubsub_v1.SubscriberClient() as subscriber:
        subscription = subscriber.subscription_path(project, "workers")
        subscriber.create_subscription(name=subscription, topic=topic)

        publisher.publish(topic, b"hello", channel="sms").result(timeout=30)
        received = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
            received.extend(response.received_messages)
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received])
    publisher.stop()

    assert [(m.message.data, dict(m.message.attributes)) for m in received] == [
        (b"hello", {"channel": "sms"})
    ]


@pytest.mark.parametrize("start", [start_firestore, start_pubsub], ids=["firestore", "pubsub"])
def test_stop_leaves_no_process(start: Callable[[Path], Emulator], tmp_path: Path) -> None:
    """stop() ends gcloud and the Java server it spawned: no live process of the group, no
    Java process among the members seen while it ran."""
    emulator = start(tmp_path)
    members = live_group_members(emulator.pgid)
    assert any("java" in line for line in members), members
    member_pids = [int(line.split()[0]) for line in members]

    emulator.stop()

    assert live_group_members(emulator.pgid) == []
    assert emulator.process.returncode is not None
    listing = subprocess.run(["ps", "-e", "-o", "pid=,stat="], capture_output=True, text=True)
    alive = {int(line.split()[0]) for line in listing.stdout.splitlines() if "Z" not in line}
    assert alive.isdisjoint(member_pids)
    with pytest.raises(httpx.ConnectError):
        httpx.get(emulator.base_url + "/", timeout=2)
    emulator.stop()  # a second stop is harmless


def test_missing_gcloud_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without gcloud, starting an emulator raises (the fixtures turn this into a failure, never
    a skip) and says what is missing."""
    monkeypatch.setattr(emulators, "GCLOUD", "gcloud-that-is-not-installed")

    with pytest.raises(EmulatorError, match="Google Cloud SDK"):
        start_firestore(tmp_path)


def test_an_emulator_that_exits_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If gcloud exits before the emulator answers, the error carries the exit code and the
    tail of its log."""
    fake = tmp_path / "gcloud"
    fake.write_text("#!/bin/sh\necho 'ERROR: (gcloud) no emulator component here'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(emulators, "GCLOUD", str(fake))

    with pytest.raises(EmulatorError, match="exited with 3") as raised:
        start_pubsub(tmp_path / "work")

    assert "no emulator component here" in str(raised.value)
