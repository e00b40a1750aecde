"""``firestore.rules`` proven on the official emulator: with the repository's rules loaded,
a client SDK (anonymous, or signed in as any user) can neither read nor write any document
the server stores, while the server itself (the Admin SDK, which bypasses the rules) goes on
working."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichannel_core.testing.emulators import Emulator, fake_id_token, load_firestore_rules
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.users import create_user, login

RULES = Path(__file__).parent.parent / "firestore.rules"
DOCUMENTS = "databases/(default)/documents"


@pytest.fixture(scope="module")
def project() -> str:
    return f"demo-rules-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, firestore_emulator: Emulator, project: str
) -> Iterator[ServerProcess]:
    """The real server on the emulator, with the rules loaded and a record of every kind
    stored through it: messages, a contact and conversation, a user, a session, a key, the
    audit log, the event log, and the job runner's lease."""
    load_firestore_rules(firestore_emulator, project, RULES.read_text())
    env = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "OMNICHANNEL_STORE": f"firestore://{project}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
    }
    with running_server(tmp_path_factory.mktemp("rules"), env) as process:
        with process.client() as admin:
            assert post_webhook(admin, inbound_message(unique("+1555"), "hi")).status_code == 200
            user = create_user(admin, "agent")
            login(process, user["email"])
            assert admin.post("/api/api-keys", json={"name": "k", "scopes": ["read"]}).is_success
            wait_for_job_lease(admin, "events.prune")
        yield process


def wait_for_job_lease(admin: httpx.Client, job: str) -> None:
    """Until the server's job runner holds ``job``'s lease: it starts after the server
    answers and writes the lease then, which must not land between two listings."""
    deadline = time.monotonic() + 30
    while not admin.get("/health").json()["jobs"][job]["running"]:
        assert time.monotonic() < deadline, f"the job runner never took {job}"
        time.sleep(0.05)


def as_owner(emulator: Emulator, project: str) -> httpx.Client:
    """The emulator's admin bypass (what the Admin SDK sends): to list what is stored."""
    return httpx.Client(
        base_url=f"{emulator.base_url}/v1/projects/{project}/{DOCUMENTS}",
        headers={"Authorization": "Bearer owner"},
        timeout=30,
    )


def stored_documents(emulator: Emulator, project: str) -> dict[str, list[str]]:
    """Every top-level collection the server wrote, with the names of its documents."""
    with as_owner(emulator, project) as owner:
        listed = owner.post(f"{owner.base_url}".rstrip("/") + ":listCollectionIds", json={})
        ids = listed.json().get("collectionIds", [])
        assert ids, f"{listed.status_code} {listed.text}"
        return {
            collection: [
                document["name"].split(f"/{DOCUMENTS}/", 1)[1]
                for document in owner.get(f"/{collection}", params={"pageSize": 5})
                .json()
                .get("documents", [])
            ]
            for collection in ids
        }


def settled_documents(emulator: Emulator, project: str) -> dict[str, list[str]]:
    """:func:`stored_documents` once two reads a second apart agree: the server's job runner
    writes after the requests that made the records (the dashboard's rollups count their
    events), and what it writes then is no client's doing."""
    stored = stored_documents(emulator, project)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
        again = stored_documents(emulator, project)
        if again == stored:
            return stored
        stored = again
    raise AssertionError(f"the server still writes after 60 s: {stored}")


def clients(emulator: Emulator, project: str) -> dict[str, httpx.Client]:
    """A client SDK's requests: anonymous, and signed in as some user."""
    base_url = f"{emulator.base_url}/v1/projects/{project}/{DOCUMENTS}"
    token = fake_id_token(project, "some-customer")
    return {
        "anonymous": httpx.Client(base_url=base_url, timeout=30),
        "signed in": httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ),
    }


def test_the_server_stores_every_kind_of_record_with_the_rules_loaded(
    server, firestore_emulator, project
):
    """The Admin SDK path works under the rules: the records are there, and the server
    still reads them through its API."""
    stored = stored_documents(firestore_emulator, project)
    assert {"messages", "contacts", "conversations", "events"} <= set(stored)
    assert all(stored.values()), stored
    with server.client() as admin:
        assert admin.get("/api/conversations").json()["items"]


def test_no_client_reads_or_writes_any_document(server, firestore_emulator, project):
    """For every collection the server wrote: getting a document, listing the collection,
    creating a document and overwriting a stored one are all refused (403), anonymous or
    signed in."""
    stored = settled_documents(firestore_emulator, project)
    allowed = []
    for who, client in clients(firestore_emulator, project).items():
        with client:
            for collection, documents in stored.items():
                attempts = {
                    "get": client.get(f"/{documents[0]}"),
                    "list": client.get(f"/{collection}"),
                    "create": client.post(f"/{collection}", json={"fields": {}}),
                    "overwrite": client.patch(f"/{documents[0]}", json={"fields": {}}),
                    "delete": client.delete(f"/{documents[0]}"),
                }
                allowed += [
                    f"{who} {action} {collection}: {response.status_code}"
                    for action, response in attempts.items()
                    if response.status_code != 403
                ]
    assert allowed == []
    assert stored_documents(firestore_emulator, project) == stored  # nothing changed
