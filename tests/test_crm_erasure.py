"""Erasing a contact (GDPR) and exporting all about one: on SQLite and on the Firestore
emulator at the store and service level (`ContactBook.erase`, `ContactBook.contact_data`),
and through the real server, where nothing readable of an erased person may remain: not in
the API, the event stream, the audit log, the media store, nor the database file's bytes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.audit import audit_entry
from omnichannel_core.errors import Conflict, NotFound
from omnichannel_core.hooktypes import InboundMessage, Thread
from omnichannel_core.models import (
    ConversationStatus,
    DeliveryStatus,
    Identity,
    Media,
    utcnow,
)
from omnichannel_core.modules.inbox.contact_book import StoreContactBook
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.inbox.store.erasure import ERASED_ADDRESS, is_erased_key
from omnichannel_core.store import Database
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.store_contract.fixtures import Run, StoreFixtures, inbound
from tests.support.signing import inbound_message, post_webhook
from tests.support.users import create_user, login

ANN, BEA, CAL = "+15550001", "+15550002", "+15550003"


class ForgettingMedia:
    """A media store that records what it was asked to forget."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[str], set[str], bool]] = []

    async def forget(
        self,
        media_ids: Collection[str],
        message_ids: Collection[str] = (),
        keep_shared: bool = False,
    ) -> int:
        self.calls.append((set(media_ids), set(message_ids), keep_shared))
        return len(set(media_ids))


class ErasureContract(StoreFixtures):
    """What erasing promises, whatever the backend."""

    @pytest.fixture
    def media(self) -> ForgettingMedia:
        return ForgettingMedia()

    @pytest.fixture
    def book(self, store: InboxStore, media: ForgettingMedia) -> StoreContactBook:
        return StoreContactBook(store, media=lambda: media)  # type: ignore[arg-type, return-value]

    def _ann_with_history(self, book: StoreContactBook, store: InboxStore, run: Run[Any]) -> Any:
        """Ann, with Bea merged into her, a profile, two inbound messages (one with kept
        media), a reply with an upload, and a reply still queued."""
        with_media = InboundMessage(
            provider_message_id="p1",
            sender=ANN,
            text="my card is 4111",
            media=(Media(url="", id="med_in", filename="passport.png"),),
        )
        first = run(store.ingest_inbound("sms", with_media))
        run(store.ingest_inbound("sms", inbound("p2", ANN, text="call me at home")))
        bea = run(store.ingest_inbound("sms", inbound("p3", BEA, text="hi from bea"))).contact
        ann = run(book.merge(first.contact.id, bea.id))
        run(
            book.update_contact(
                ann.id,
                display_name="Ann Secret",
                emails=("ann@example.test",),
                phones=(ANN,),
                tags=("vip",),
                attributes={"plan": "gold"},
                company="Acme",
                avatar="med_avatar",
            )
        )
        conversation = first.conversation
        media = (Media(url="", id="med_up", filename="contract.pdf"),)
        run(store.create_outbound(conversation.id, "your secret reply", media, {}, "key-1"))
        queued, _ = run(store.create_outbound(conversation.id, "still queued", (), {}, None))
        return ann, bea, conversation, queued

    def test_erase_leaves_nothing_readable_and_keeps_ids(self, book, store, media, run):
        """After erase: the contact and the one merged into it are NotFound and found by
        no list, search, scan or lookup; its identities are gone (the next message from
        the address makes a new contact); every message is redacted in place (ids kept,
        provider ids replaced by their erased key), the conversations answer to
        ``erased``, resolved; the queued reply is cancelled and its outbox entry gone;
        ``contact.erased`` is logged once and the audit entry holds ids and counts only;
        the media store is asked to forget the messages' media and the avatar, keeping
        those other contacts' messages hold."""
        ann, bea, conversation, queued = self._ann_with_history(book, store, run)
        start = run(self.events.latest())
        audit = audit_entry(None, "contact.erased", "contact", ann.id, {}, None)
        counts = run(book.erase(ann.id, audit))
        assert counts == {"messages": 5, "conversations": 2, "identities": 2, "media": 3}
        for contact_id in (ann.id, bea.id):
            with pytest.raises(NotFound):
                run(book.get_contact(contact_id))
        for search in ("Ann", "Secret", "ann@example.test", ANN, "vip"):
            assert run(book.list_contacts(search, None, 50)).items == []
        assert run(book.list_contacts(None, None, 50)).items == []
        assert run(book.scan(None, 50)).items == []
        assert run(book.find(emails=["ann@example.test"], phones=[ANN, BEA])) == []
        assert run(store.find_conversation("sms", ANN)) is None
        messages = run(store.list_messages(conversation.id, None, 50)).items
        assert len(messages) == 4
        for message in messages:
            assert (message.text, message.media, message.metadata) == (None, (), {"erased": True})
            assert message.error_message is None
            assert message.provider_message_id is None or is_erased_key(message.provider_message_id)
        assert run(store.get_message(queued.id)).status is DeliveryStatus.CANCELLED
        assert [e.message_id for e in run(store.due_outbound(_far_future(), 50))] == []
        redacted = run(store.get_conversation(conversation.id))
        assert (redacted.address, redacted.participants, redacted.status) == (
            ERASED_ADDRESS,
            (),
            ConversationStatus.RESOLVED,
        )
        [(media_ids, message_ids, keep_shared)] = media.calls
        assert media_ids == {"med_in", "med_up", "med_avatar"}
        assert {m.id for m in messages} <= message_ids and keep_shared
        logged = [(e.type, e.record_id, e.data) for e in run(self.events.after(start, 100))]
        resolved = [(t, d["changes"]) for t, r, d in logged if r != ann.id]
        # each of its two open conversations resolved, as its history says
        assert resolved == [("conversation.updated", {"status": ["open", "resolved"]})] * 2
        assert conversation.id in {r for _, r, _ in logged}
        assert [(t, r, d) for t, r, d in logged if r == ann.id] == [("contact.erased", ann.id, {})]
        [change] = run(store.conversation_changes(conversation.id))
        assert (change.previous_status, change.status) == (
            ConversationStatus.OPEN,
            ConversationStatus.RESOLVED,
        )
        [entry] = run(self.audit.list("contact.erased", None, 10)).items
        assert (entry.target_id, entry.details) == (
            ann.id,
            {"messages": 5, "conversations": 2, "identities": 2, "media_items": 3},
        )
        again = run(store.ingest_inbound("sms", inbound("p9", ANN, text="new")))
        assert again.created and again.contact.id not in (ann.id, bea.id)

    def test_a_retried_webhook_of_an_erased_message_stores_nothing(self, book, store, run):
        """The provider retrying the webhook of an erased message finds it by its erased
        key: a duplicate, nothing stored, the answer naming no one."""
        first = run(store.ingest_inbound("sms", inbound("p1", ANN, text="secret")))
        run(book.erase(first.contact.id))
        retried = run(store.ingest_inbound("sms", inbound("p1", ANN, text="secret")))
        assert not retried.created and retried.message_id == first.message_id
        assert retried.message.text is None
        assert retried.contact.display_name is None and retried.contact.identities == ()
        assert run(book.scan(None, 50)).items == []

    def test_erasing_again_finishes_and_is_a_no_op_after(self, book, store, media, run):
        """Erasing an erased contact redacts nothing more, logs nothing, and asks for no
        media once the first erasure forgot them."""
        ann, *_ = self._ann_with_history(book, store, run)
        run(book.erase(ann.id))
        start = run(self.events.latest())
        again = run(book.erase(ann.id))
        assert again == {"messages": 0, "conversations": 0, "identities": 0, "media": 0}
        assert len(media.calls) == 1
        assert run(self.events.after(start, 100)) == []

    def test_erase_refuses_a_merged_away_id_and_an_unknown_one(self, book, store, run):
        """A contact merged away is Conflict naming the survivor (erase that one); an
        unknown id is NotFound."""
        ann = run(store.ingest_inbound("sms", inbound("p1", ANN))).contact
        bea = run(store.ingest_inbound("sms", inbound("p2", BEA))).contact
        run(book.merge(ann.id, bea.id))
        with pytest.raises(Conflict) as refused:
            run(book.erase(bea.id))
        assert refused.value.details["contact_id"] == ann.id
        with pytest.raises(NotFound):
            run(book.erase("ct_unknown"))
        assert run(book.get_contact(ann.id)).id == ann.id

    def test_contact_data_holds_everything_stored(self, book, store, run):
        """contact_data: the contact (the survivor for a merged id), its conversations and
        every message of them, oldest first, whole; NotFound once erased."""
        ann, bea, conversation, _ = self._ann_with_history(book, store, run)
        contact, conversations, messages = run(book.contact_data(bea.id))
        assert contact.id == ann.id and contact.display_name == "Ann Secret"
        assert {c.id for c in conversations} >= {conversation.id}
        assert len(conversations) == 2
        texts = [m.text for m in messages]
        assert texts[:3] == ["my card is 4111", "call me at home", "hi from bea"]
        assert set(texts[3:]) == {"your secret reply", "still queued"}
        run(book.erase(ann.id))
        with pytest.raises(NotFound):
            run(book.contact_data(ann.id))

    def test_what_the_person_wrote_in_anothers_thread_is_erased_too(self, book, store, run):
        """Ann writes in Cal's email thread (she is a participant): erasing Ann redacts
        her message there and takes her address out of its participants; Cal's message and
        conversation stay his."""
        cal_mail, ann_mail = "cal@example.test", "ann@example.test"
        started = InboundMessage(
            provider_message_id="<m1@example.test>",
            sender=cal_mail,
            text="cal starts",
            thread=Thread(participants=(ann_mail,)),
        )
        cal = run(store.ingest_inbound("email", started))
        assert run(store.get_conversation(cal.conversation_id)).participants == (ann_mail,)
        answered = InboundMessage(
            provider_message_id="<m2@example.test>",
            sender=ann_mail,
            text="ann's secret answer",
            thread=Thread(refs=("<m1@example.test>",), participants=(cal_mail,)),
        )
        ann = run(store.ingest_inbound("email", answered))
        assert ann.conversation_id == cal.conversation_id
        contact, _, messages = run(book.contact_data(ann.contact.id))
        assert [m.text for m in messages] == ["ann's secret answer"]
        counts = run(book.erase(contact.id))
        assert (counts["messages"], counts["conversations"]) == (1, 0)
        theirs = run(store.get_conversation(cal.conversation_id))
        assert (theirs.address, theirs.participants) == (cal_mail, ())
        assert run(store.get_message(ann.message_id)).text is None
        assert run(store.get_message(cal.message_id)).text == "cal starts"
        retried = run(store.ingest_inbound("email", answered))
        assert not retried.created and retried.message_id == ann.message_id

    def test_other_contacts_are_untouched(self, book, store, run):
        """Erasing Ann leaves Cal, his conversation and messages as they were."""
        ann = run(store.ingest_inbound("sms", inbound("p1", ANN, text="ann's"))).contact
        cal = run(store.ingest_inbound("sms", inbound("p2", CAL, text="cal's")))
        run(book.erase(ann.id))
        assert run(book.get_contact(cal.contact.id)).identities == (Identity("sms", CAL),)
        assert run(store.get_message(cal.message_id)).text == "cal's"
        assert run(store.get_conversation(cal.conversation_id)).address == CAL


def _far_future() -> datetime:
    return utcnow() + timedelta(days=365)


class TestSqliteErasure(ErasureContract):
    """On a fresh SQLite file."""

    @pytest.fixture
    def database(self, sqlite_database: SqliteDatabase) -> Database:
        return sqlite_database


class TestFirestoreErasure(ErasureContract):
    """On a fresh emulator project per test."""

    @pytest.fixture
    def database(self, firestore_database: Database) -> Database:
        return firestore_database


# Through the real server (gunicorn, SQLite): nothing readable of an erased person remains.

NAME, EMAIL, PHONE = "Zelda Quixotic", "zelda.quixotic@example.test", "+15557654321"
TEXTS = ("my secret plan is xylophone", "reply about marzipan", "note on zucchini")
PNG = b"\x89PNG\r\n\x1a\n" + b"zelda-avatar-bytes" * 40
SHARED_PNG = b"\x89PNG\r\n\x1a\n" + b"shared-upload-bytes" * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "OMNICHANNEL_EVENT_POLL_MS": "100"}
    with running_server(tmp_path_factory.mktemp("erasure"), env) as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _conversation_of(admin: httpx.Client, sender: str, text: str) -> dict[str, Any]:
    assert post_webhook(admin, inbound_message(sender, text)).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    return conversation


def _upload(admin: httpx.Client, content: bytes, name: str) -> str:
    uploaded = admin.post(
        "/api/media",
        params={"filename": name},
        content=content,
        headers={"Content-Type": "image/png"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["id"])


def _reply(admin: httpx.Client, conversation_id: str, text: str, media_id: str) -> dict:
    sent = admin.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"text": text, "media": [{"media_id": media_id}]},
    )
    assert sent.status_code in (200, 201, 202), sent.text
    return dict(sent.json())


def _until(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _replay(server: ServerProcess, marker: str) -> bytes:
    """The raw bytes of ``GET /api/events?after=0`` up to the event carrying ``marker``."""
    received = b""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream(
        "GET", f"{server.base_url}/api/events", params={"after": "0"}, headers=headers, timeout=20
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received += chunk
            if marker.encode() in received:
                return received
    raise AssertionError("the replay ended before the marker")


def _personal(data: bytes) -> list[str]:
    """Which of the person's values ``data`` holds."""
    values = (NAME, EMAIL, PHONE, PHONE.removeprefix("+"), *TEXTS, "zelda.png")
    return [value for value in values if value.encode() in data]


def test_an_erased_contact_leaves_nothing_readable_anywhere(server: ServerProcess, admin):
    """Zelda writes (twice), gets a reply with an upload, has a profile, a note and an avatar;
    Cal gets a reply with an upload Zelda's reply shares. The export holds all of it.
    ``POST .../erase`` without the right ``confirm`` is 400 and erases nothing; with it,
    200 and counts. Then: the contact is 404 and found by no search; the conversation's
    messages have no text, media or metadata; Zelda's media are 404 and their files gone,
    the shared upload kept; the event replay, the audit log and the database file's bytes
    hold none of her values; her notes and timeline entries are gone; the webhook retried
    is a duplicate, storing nothing."""
    conversation = _conversation_of(admin, PHONE, TEXTS[0])
    contact_id = conversation["contact_id"]
    cal = _conversation_of(admin, "+15550009999", "cal here")
    avatar = _upload(admin, PNG, "zelda.png")
    shared = _upload(admin, SHARED_PNG, "shared.png")
    own = _upload(admin, PNG + b"own", "zelda.png")
    changed = admin.patch(
        f"/api/contacts/{contact_id}",
        json={"display_name": NAME, "emails": [EMAIL], "phones": [PHONE], "avatar": avatar},
    )
    assert changed.status_code == 200, changed.text
    _reply(admin, conversation["id"], TEXTS[1], own)
    _reply(admin, conversation["id"], "and the shared one", shared)
    _reply(admin, cal["id"], "cal's copy", shared)
    note = admin.post(f"/api/contacts/{contact_id}/notes", json={"text": TEXTS[2]})
    assert note.status_code == 201, note.text
    retried = inbound_message(PHONE, "second message")
    assert post_webhook(admin, retried).status_code == 200

    timeline_path = f"/api/contacts/{contact_id}/timeline"
    assert _until(lambda: len(admin.get(timeline_path).json()["items"]) >= 4)
    exported = admin.get(f"/api/contacts/{contact_id}/export")
    assert exported.status_code == 200, exported.text
    export = exported.json()
    assert export["contact"]["display_name"] == NAME
    assert [c["id"] for c in export["conversations"]] == [conversation["id"]]
    texts = [m["text"] for m in export["messages"]]
    assert {TEXTS[0], TEXTS[1], "second message"} <= set(texts)
    assert [n["text"] for n in export["notes"]] == [TEXTS[2]]
    assert len(export["timeline"]) >= 4

    database = server.workdir / "data" / "omnichannel.db"
    assert PHONE.encode() in _database_bytes(database)  # so the check after means something

    erase_path = f"/api/contacts/{contact_id}/erase"
    assert admin.post(erase_path, json={}).status_code == 400
    assert admin.post(erase_path, json={"confirm": cal["contact_id"]}).status_code == 400
    assert admin.get(f"/api/contacts/{contact_id}").status_code == 200
    erased = admin.post(erase_path, json={"confirm": contact_id})
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "contact_id": contact_id,
        "messages": 4,
        "conversations": 1,
        "identities": 1,
        "media": 2,
    }

    assert admin.get(f"/api/contacts/{contact_id}").status_code == 404
    assert admin.get(f"/api/contacts/{contact_id}/export").status_code == 404
    for search in (NAME.split()[0], EMAIL, PHONE, PHONE[-7:]):
        assert admin.get("/api/contacts", params={"q": search}).json()["items"] == []
    messages = admin.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    assert len(messages) == 4
    for message in messages:
        assert (message["text"], message["media"], message["metadata"]) == (
            None,
            [],
            {"erased": True},
        )
    stored = admin.get(f"/api/conversations/{conversation['id']}").json()
    assert (stored["address"], stored["status"]) == ("erased", "resolved")
    for media_id in (avatar, own):
        assert admin.get(f"/api/media/{media_id}").status_code == 404
    assert admin.get(f"/api/media/{shared}").status_code == 200
    data_dir = server.workdir / "data"
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    kept = {p.read_bytes() for p in files if p.stat().st_size < 10_000}
    assert PNG not in kept and PNG + b"own" not in kept and SHARED_PNG in kept

    assert post_webhook(admin, retried).status_code == 200  # the provider retrying
    assert len(admin.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]) == 4
    assert admin.get("/api/contacts", params={"q": PHONE}).json()["items"] == []

    marker = "end of the replay"
    _conversation_of(admin, "+15550008888", marker)
    replayed = _replay(server, marker)
    assert b"contact.erased" in replayed and contact_id.encode() in replayed
    assert _personal(replayed) == []
    audit = admin.get("/api/audit", params={"limit": 200})
    assert audit.status_code == 200
    assert _personal(audit.content) == []
    [entry] = [e for e in audit.json()["items"] if e["action"] == "contact.erased"]
    assert (entry["target_id"], entry["details"]["messages"]) == (contact_id, 4)

    def crm_rows() -> int:
        with sqlite3.connect(database) as connection:
            notes = connection.execute(
                "SELECT count(*) FROM crm_notes WHERE contact_id = ?", (contact_id,)
            ).fetchone()[0]
            entries = connection.execute(
                "SELECT count(*) FROM crm_timeline WHERE contact_id = ?", (contact_id,)
            ).fetchone()[0]
        return int(notes + entries)

    assert _until(lambda: crm_rows() == 0)
    assert _personal(_database_bytes(database)) == []


def _database_bytes(database: Path) -> bytes:
    """The bytes of the database file and its WAL, after a checkpoint that empties the WAL
    (what a copy of the file would hold)."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return b"".join(
        path.read_bytes()
        for path in database.parent.iterdir()
        if path.name.startswith(database.name)
    )


def test_erase_needs_the_erase_permission(server: ServerProcess, admin):
    """A supervisor (no ``contacts:erase``) is refused, and the contact stays; they may
    export it (``contacts:export``)."""
    conversation = _conversation_of(admin, "+15550007777", "keep me")
    user = create_user(admin, "supervisor")
    token = login(server, user["email"])["access_token"]
    contact_id = conversation["contact_id"]
    with server.client(api_key=token) as supervisor:
        refused = supervisor.post(f"/api/contacts/{contact_id}/erase", json={"confirm": contact_id})
        assert refused.status_code == 403
        assert supervisor.get(f"/api/contacts/{contact_id}/export").status_code == 200
    assert admin.get(f"/api/contacts/{contact_id}").status_code == 200
