"""CSV imports of contacts (`omnichannel_core.modules.crm.transfer`): the file read a row
at a time from any row's first byte, rows read by the mapping (checked and normalised
cells), the ``crm_imports`` store on both backends, and the ``crm.imports`` job on the
inbox's real contacts: created and updated contacts, refused rows, dry runs, cancelling,
and an import taken over after its runner stopped or died mid-batch, with no contact made
twice. Then the API in the app: upload, start, follow, and the 400s of a bad request."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.module import (
    Contact,
    ContactBook,
    Identity,
    InvalidInput,
    JobControl,
    ModuleContext,
    NotFound,
    Page,
    PermissionSpec,
    Route,
    StoreSpec,
    utcnow,
)
from omnichannel_core.modules.crm.permissions import PERMISSIONS
from omnichannel_core.modules.crm.transfer import (
    transfer_jobs,
    transfer_routes,
    transfer_store_spec,
)
from omnichannel_core.modules.crm.transfer.csvfile import (
    NotCsv,
    check_utf8,
    read_header,
    read_rows,
)
from omnichannel_core.modules.crm.transfer.importing import Importing
from omnichannel_core.modules.crm.transfer.records import (
    ContactImport,
    Dedupe,
    ImportState,
    OnMatch,
    RowError,
)
from omnichannel_core.modules.crm.transfer.routes import SegmentContacts
from omnichannel_core.modules.crm.transfer.rows import (
    TextAttributes,
    plan_columns,
    read_row,
)
from omnichannel_core.modules.crm.transfer.starting import new_import
from omnichannel_core.modules.crm.transfer.store import ImportStore
from omnichannel_core.modules.inbox.contact_book import StoreContactBook
from omnichannel_core.modules.inbox.plugin import STORE as INBOX_STORE
from omnichannel_core.store import KERNEL_STORES, Database
from omnichannel_core.testing import AUTH, run_app, run_store

TRANSFER_STORE = transfer_store_spec()
TEXT = TextAttributes()


def csv_bytes(rows: list[list[str]], newline: str = "\r\n") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue().encode()


# the file ---------------------------------------------------------------------------------


def test_rows_are_read_one_at_a_time_and_resume_from_any_row():
    """Quoted cells spanning lines, blank lines, a byte order mark: each row knows the byte
    where the next starts, and reading again from there gives the same rest of the file.
    Rows are numbered as a spreadsheet shows them (the header is 1, blank lines count)."""
    content = '\ufeffname,note\r\nAna,"two\r\nlines"\r\n\r\nBea,ok\r\nCé,"a,b"\r\n'.encode()
    header = read_header(content, ",")
    assert header.columns == ("name", "note")
    rows = list(read_rows(content, header, header.data_start, header.first_row, ","))
    assert [(row.number, row.cells) for row in rows] == [
        (2, ["Ana", "two\r\nlines"]),
        (4, ["Bea", "ok"]),
        (5, ["Cé", "a,b"]),
    ]
    for index, row in enumerate(rows):
        rest = list(read_rows(content, header, row.end, row.number + 1, ","))
        assert [(r.number, r.cells) for r in rest] == [
            (r.number, r.cells) for r in rows[index + 1 :]
        ]
    assert rows[-1].end == len(content)


def test_old_mac_line_ends_and_other_delimiters_are_read():
    """A file whose lines end in a lone carriage return, and one separated by ``;``."""
    content = b"name;phone\rAna;+34600111222\rBea;+34600111333\r"
    header = read_header(content, ";")
    rows = list(read_rows(content, header, header.data_start, header.first_row, ";"))
    assert [row.cells for row in rows] == [["Ana", "+34600111222"], ["Bea", "+34600111333"]]


def test_a_file_that_is_not_utf8_or_empty_is_refused_by_name():
    """Latin-1 bytes name their line; an empty file or one of blank lines has no header."""
    content = "name\nAna\nJosé\n".encode("latin-1")
    with pytest.raises(NotCsv, match=r"not UTF-8 text \(line 3"):
        check_utf8(content)
    header = read_header(content, ",")
    with pytest.raises(NotCsv, match="not UTF-8"):
        list(read_rows(content, header, header.data_start, 2, ","))
    for empty in (b"", b"\n\n", "\ufeff".encode()):
        with pytest.raises(NotCsv, match="empty"):
            read_header(empty, ",")


# the mapping and a row ----------------------------------------------------------------------


HEADER = ("Name", "Email", "Work email", "Phone", "Tags", "Plan", "SMS", "Lang", "Zone")
MAPPING = {
    "Name": "display_name",
    "Email": "email",
    "Work email": "email",
    "Phone": "phone",
    "Tags": "tags",
    "Plan": "attributes.plan",
    "SMS": "identity.sms",
    "Lang": "locale",
    "Zone": "timezone",
}


def test_a_mapping_names_columns_of_the_file_and_fields_that_exist():
    """Unknown columns and fields, a one-column field named twice, an undeclared attribute
    and a channel not loaded are refused, each naming ``mapping.<column>``."""
    columns = plan_columns(MAPPING, HEADER, TEXT)
    assert [(column.index, column.field) for column in columns][:3] == [
        (0, "display_name"),
        (1, "email"),
        (2, "email"),
    ]
    cases = [
        ({"Nombre": "display_name"}, "mapping.Nombre: the file has no column 'Nombre'"),
        ({"Name": "name"}, "mapping.Name: 'name' is not a field"),
        ({"Name": "display_name", "Email": "display_name"}, "mapped from 'Name' already"),
        ({"Plan": "attributes.bad key"}, "no custom attribute 'bad key'"),
        ({}, "mapping: name at least one column"),
    ]
    for mapping, message in cases:
        with pytest.raises(InvalidInput, match=message):
            plan_columns(mapping, HEADER, TEXT)
    with pytest.raises(InvalidInput, match="no channel 'sms' is loaded"):
        plan_columns({"SMS": "identity.sms"}, HEADER, TEXT, lambda channel: False)
    with pytest.raises(InvalidInput, match="two columns named 'A'"):
        plan_columns({"A": "company"}, ("A", "A"), TEXT)


def test_cells_are_checked_and_normalised_as_the_api_does():
    """Emails lowercased (several in a cell and across columns, once each), phones made
    E.164 even behind an export's quote, tags split on ``;``, a locale's case and ``_``
    fixed; an empty cell gives nothing. A bad email, phone, locale or time zone refuses the
    row, each naming its column."""
    columns = plan_columns(MAPPING, HEADER, TEXT)
    cells = [
        " Ana Pérez ",
        "Ana@Example.COM; ana@home.example",
        "ana@example.com",
        "'+34 600-111-222",
        "vip; lead;vip",
        "gold",
        "+34600111222",
        "pt_br",
        "Europe/Madrid",
    ]
    contact, errors = read_row(cells, columns, 2, TEXT)
    assert errors == []
    assert contact is not None
    assert contact.profile == {
        "display_name": "Ana Pérez",
        "locale": "pt-BR",
        "timezone": "Europe/Madrid",
        "emails": ("ana@example.com", "ana@home.example"),
        "phones": ("+34600111222",),
        "tags": ("vip", "lead"),
        "attributes": {"plan": "gold"},
    }
    assert contact.identities == (Identity("sms", "+34600111222"),)
    nothing, _ = read_row(["", ""], columns, 3, TEXT)  # short rows: missing cells are empty
    assert nothing is not None and nothing.empty
    bad = ["Bo", "not-an-email", "", "600111222", "", "", "", "english", "Mars/Base"]
    refused, errors = read_row(bad, columns, 7, TEXT)
    assert refused is None
    assert [(error.row, error.column) for error in errors] == [
        (7, "Email"),
        (7, "Phone"),
        (7, "Lang"),
        (7, "Zone"),
    ]
    assert "international form" in errors[1].message


# the store ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_database")


def record(n: int = 1, **changes: Any) -> ContactImport:
    now = utcnow()
    fields: dict[str, Any] = {
        "id": f"imp_{n:026d}",
        "state": ImportState.PENDING,
        "media_id": "med_1",
        "mapping": {"Email": "email"},
        "dedupe": Dedupe.EMAIL,
        "on_match": OnMatch.UPDATE,
        "dry_run": False,
        "delimiter": ",",
        "created_by": "user:u1",
        "created_at": now,
        "updated_at": now,
        "size": 100,
        "next_byte": 7,
    }
    return ContactImport(**{**fields, **changes})


def test_the_store_saves_over_its_own_save_only_and_keeps_a_cancel(database):
    """An import is found while pending or running, oldest first; a save at the stored
    version writes (and bumps it), a stale one writes nothing; a cancel stops it from being
    found, and the job's next save writes its counts but leaves it cancelled."""

    async def scenario(store: ImportStore) -> None:
        first, second = record(1), record(2)
        await store.add_import(first)
        await store.add_import(second)
        assert await store.count_waiting() == 2
        assert (await store.next_import()) == first
        errors = (RowError(3, "Email", "not an email"), RowError(4, None, "several"))
        running = attrs.evolve(
            first, state=ImportState.RUNNING, rows_read=200, errors=errors, next_byte=90
        )
        saved = await store.save_import(running, 0)
        assert saved is not None and saved.version == 1 and saved.errors == errors
        assert await store.save_import(running, 0) is None  # another runner's is stale
        assert (await store.get_import(first.id)).version == 1
        cancelled = await store.cancel_import(first.id)
        assert cancelled.state is ImportState.CANCELLED and cancelled.finished_at is not None
        assert (await store.next_import()) == second
        after = await store.save_import(attrs.evolve(saved, rows_read=400), 1)
        assert after is not None
        assert after.state is ImportState.CANCELLED and after.rows_read == 400
        assert (await store.next_import()) == second
        done = attrs.evolve(second, state=ImportState.DONE, finished_at=utcnow())
        assert (await store.save_import(done, 0)) is not None
        assert await store.next_import() is None
        assert await store.count_waiting() == 0
        assert (await store.cancel_import(second.id)).state is ImportState.DONE
        page = await store.list_imports(None, 1)
        assert [item.id for item in page.items] == [second.id]
        rest = await store.list_imports(page.next_cursor, 5)
        assert [item.id for item in rest.items] == [first.id]
        with pytest.raises(NotFound):
            await store.get_import("imp_nothing")
        with pytest.raises(NotFound):
            await store.cancel_import("imp_nothing")

    run_store(TRANSFER_STORE, database, scenario)


# the job, on the inbox's contacts ------------------------------------------------------------


class Files:
    """The media store as the job uses it: bytes by id, and the ids it was asked to forget
    (an import's file, once the import is over). The real media store is the API tests'."""

    def __init__(self, **files: bytes) -> None:
        self.files = files
        self.forgotten: list[str] = []

    async def read(self, media_id: str) -> bytes:
        if media_id not in self.files:
            raise NotFound(f"media {media_id!r} not found")
        return self.files[media_id]

    async def forget(self, media_ids: list[str], message_ids: Any = ()) -> int:
        self.forgotten += media_ids
        return len(media_ids)


class Crash(Exception):
    """A runner dying mid-batch."""


class Failing:
    """The inbox's contacts, until ``after`` contacts were created: then a crash."""

    def __init__(self, book: ContactBook, after: int) -> None:
        self.book = book
        self.after = after

    def __getattr__(self, name: str) -> Any:
        return getattr(self.book, name)

    async def create_contact(self, identities: Collection[Identity] = (), **profile: Any) -> Any:
        if self.after == 0:
            raise Crash("the runner died")
        self.after -= 1
        return await self.book.create_contact(identities, **profile)


World = Callable[[ImportStore, ContactBook], Awaitable[None]]


def run_world(database: Database, scenario: World) -> None:
    """``scenario(imports, contacts)`` on one migrated database: the ``crm_imports`` store,
    and the inbox's contacts as its ``ContactBook``."""

    async def run() -> None:
        await database.migrate([*KERNEL_STORES, INBOX_STORE, TRANSFER_STORE])
        await database.open()
        try:
            imports = TRANSFER_STORE.factory(database.backend)(database)
            inbox = INBOX_STORE.factory(database.backend)(database)
            await scenario(imports, StoreContactBook(inbox))
        finally:
            await database.close()

    asyncio.run(run())


def importing(store: ImportStore, book: Any, files: Files, batch_rows: int = 200) -> Importing:
    return Importing(store, lambda: book, lambda: files, news=None, batch_rows=batch_rows)  # type: ignore[arg-type]


async def started(
    store: ImportStore, content: bytes, mapping: dict[str, str], **options: Any
) -> ContactImport:
    made = new_import(content, "med_file", mapping, "user:u1", TEXT, **options)
    await store.add_import(made)
    return made


async def every_contact(book: ContactBook) -> list[Contact]:
    contacts: list[Contact] = []
    cursor = None
    while True:
        page: Page = await book.scan(cursor, 200)
        contacts.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return contacts


PEOPLE = csv_bytes(
    [
        ["Name", "Email", "Phone", "Company", "Tags", "Zone"],
        ["Ana", "ANA@example.com", "+34600000001", "Acme", "vip", "Europe/Madrid"],
        ["Bea (known)", "bea@example.com", "", "Beta", "lead;new", ""],
        ["Bad email", "bea@", "", "", "", ""],
        ["Bad zone", "zed@example.com", "", "", "", "Mars/Base"],
        ["", "", "", "", "", ""],
        ["Ana again", "ana@example.com", "", "Acme 2", "repeat", ""],
    ]
)
PEOPLE_MAPPING = {
    "Name": "display_name",
    "Email": "email",
    "Phone": "phone",
    "Company": "company",
    "Tags": "tags",
    "Zone": "timezone",
}


def test_an_import_creates_fills_and_refuses_rows(sqlite_database):
    """A new email makes a contact; a known one (and a row repeating an earlier row's)
    fills it: scalars set, tags added; a bad cell refuses its row by row number and column;
    a row of empty cells is skipped. The import ends done, every count right."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        bea = await book.create_contact(
            display_name="Bea", emails=("bea@example.com",), tags=("old",)
        )
        made = await started(store, PEOPLE, PEOPLE_MAPPING)
        assert made.dedupe is Dedupe.EMAIL_OR_PHONE  # the mapping gives emails: the default
        files = Files(med_file=PEOPLE)
        done = await importing(store, book, files).work(made, JobControl())
        assert done.state is ImportState.DONE and done.finished_at is not None
        assert files.forgotten == ["med_file"]  # the file holds people's data: it goes
        assert (done.rows_read, done.created, done.updated, done.skipped, done.failed) == (
            6,
            1,
            2,
            1,
            2,
        )
        assert [(e.row, e.column) for e in done.errors] == [(4, "Email"), (5, "Zone")]
        assert "Mars/Base" in done.errors[1].message
        assert done.next_byte == len(PEOPLE)
        contacts = {contact.display_name: contact for contact in await every_contact(book)}
        assert set(contacts) == {"Ana again", "Bea (known)"}
        ana = contacts["Ana again"]
        assert ana.emails == ("ana@example.com",)
        assert ana.phones == ("+34600000001",)
        assert ana.company == "Acme 2" and ana.timezone == "Europe/Madrid"
        assert ana.tags == ("vip", "repeat")
        known = contacts["Bea (known)"]
        assert known.id == bea.id and known.company == "Beta"
        assert known.tags == ("old", "lead", "new")
        assert await store.next_import() is None

    run_world(sqlite_database, scenario)


def test_skip_leaves_matches_as_they_are_and_none_always_creates(sqlite_database):
    """``on_match: skip`` counts a known contact's row as skipped and changes nothing;
    ``dedupe: none`` makes a contact of every row, known emails or not."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        await book.create_contact(display_name="Bea", emails=("bea@example.com",))
        content = csv_bytes([["Email", "Name"], ["bea@example.com", "B"], ["cy@example.com", "C"]])
        mapping = {"Email": "email", "Name": "display_name"}
        skip = await started(store, content, mapping, on_match=OnMatch.SKIP)
        done = await importing(store, book, Files(med_file=content)).work(skip, JobControl())
        assert (done.created, done.updated, done.skipped) == (1, 0, 1)
        names = sorted(str(c.display_name) for c in await every_contact(book))
        assert names == ["Bea", "C"]
        again = await started(store, content, mapping, dedupe=Dedupe.NONE)
        done = await importing(store, book, Files(med_file=content)).work(again, JobControl())
        assert (done.created, done.updated, done.skipped) == (2, 0, 0)
        assert len(await every_contact(book)) == 4

    run_world(sqlite_database, scenario)


def test_a_dry_run_counts_and_refuses_but_writes_nothing(sqlite_database):
    """A dry run reads every row and matches it as the import would: would-create and
    would-update counts (a row repeating an earlier row's email counts as an update) and
    the refused rows, and no contact is written."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        await book.create_contact(display_name="Bea", emails=("bea@example.com",))
        made = await started(store, PEOPLE, PEOPLE_MAPPING, dry_run=True)
        done = await importing(store, book, Files(med_file=PEOPLE)).work(made, JobControl())
        assert done.state is ImportState.DONE and done.dry_run
        assert (done.rows_read, done.created, done.updated, done.skipped, done.failed) == (
            6,
            1,
            2,
            1,
            2,
        )
        assert [(e.row, e.column) for e in done.errors] == [(4, "Email"), (5, "Zone")]
        assert [c.display_name for c in await every_contact(book)] == ["Bea"]

    run_world(sqlite_database, scenario)


def numbered(count: int, start: int = 0) -> bytes:
    rows = [["Email", "Name", "SMS"]]
    rows += [
        [f"p{n}@example.com", f"Person {n}", f"+3460{n:07d}"] for n in range(start, start + count)
    ]
    return csv_bytes(rows)


@pytest.mark.parametrize("dedupe", [Dedupe.EMAIL, Dedupe.NONE])
def test_an_import_whose_runner_died_mid_batch_goes_on_without_duplicates(sqlite_database, dedupe):
    """A runner dies in the third batch of 100 (after 250 contacts made): the import stays
    running from the start of that batch (200 rows saved). The next runner repeats the
    batch: the 50 contacts the dead one made are found (by email; with dedupe none, those
    made since the batch began) and counted as made, not made again, nor their identities
    refused. In the end: 1,000 contacts, 1,000 created, nothing updated."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        content = numbered(1000)
        mapping = {"Email": "email", "Name": "display_name", "SMS": "identity.sms"}
        made = await started(store, content, mapping, dedupe=dedupe)
        files = Files(med_file=content)
        with pytest.raises(Crash):
            await importing(store, Failing(book, 250), files, 100).work(made, JobControl())
        left = await store.get_import(made.id)
        assert left.state is ImportState.RUNNING
        assert (left.rows_read, left.created, left.next_row) == (200, 200, 202)
        assert len(await every_contact(book)) == 250
        taken = await store.next_import()
        assert taken == left
        done = await importing(store, book, files, 100).work(taken, JobControl())
        assert done.state is ImportState.DONE
        assert (done.rows_read, done.created, done.updated, done.failed) == (1000, 1000, 0, 0)
        contacts = await every_contact(book)
        assert len(contacts) == 1000
        assert len({contact.emails for contact in contacts}) == 1000

    run_world(sqlite_database, scenario)


def test_a_stopped_runner_leaves_the_batch_to_the_next(sqlite_database):
    """The runner stops mid-batch (its ``control`` stops): it saves nothing of that batch,
    and the next runner's repetition updates nothing twice and counts each row once."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        content = numbered(300)
        made = await started(store, content, {"Email": "email", "Name": "display_name"})
        control = JobControl()

        class Stopping(Failing):
            async def create_contact(
                self, identities: Collection[Identity] = (), **profile: Any
            ) -> Any:
                self.after -= 1
                if self.after == 0:
                    control.stop()
                return await self.book.create_contact(identities, **profile)

        files = Files(med_file=content)
        left = await importing(store, Stopping(book, 150), files, 100).work(made, control)
        assert left.state is ImportState.RUNNING and left.rows_read == 100
        done = await importing(store, book, files, 100).work(left, JobControl())
        assert (done.rows_read, done.created, done.updated) == (300, 300, 0)
        assert len(await every_contact(book)) == 300

    run_world(sqlite_database, scenario)


def test_a_cancelled_import_stops_after_its_batch_and_keeps_its_rows(sqlite_database):
    """Cancelled while a batch runs: the batch's contacts stay and are counted, then the job
    stops; the import stays cancelled and is not taken again. A pending import cancelled is
    never started."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        content = numbered(300)
        made = await started(store, content, {"Email": "email"})

        class Cancelling(Failing):
            async def create_contact(
                self, identities: Collection[Identity] = (), **profile: Any
            ) -> Any:
                self.after -= 1
                if self.after == 0:
                    await store.cancel_import(made.id)
                return await self.book.create_contact(identities, **profile)

        files = Files(med_file=content)
        done = await importing(store, Cancelling(book, 50), files, 100).work(made, JobControl())
        assert done.state is ImportState.CANCELLED
        assert (done.rows_read, done.created) == (100, 100)
        assert len(await every_contact(book)) == 100
        assert await store.next_import() is None
        pending = await started(store, content, {"Email": "email"})
        await store.cancel_import(pending.id)
        assert await store.next_import() is None

    run_world(sqlite_database, scenario)


def test_a_file_gone_or_broken_midway_fails_the_import_with_its_reason(sqlite_database):
    """The media gone: failed, saying so. Bytes that are not UTF-8 after the first rows:
    the rows before stay imported, and the import fails naming the byte."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        content = numbered(3) + "José@example.com,J,\r\n".encode("latin-1")
        with pytest.raises(NotCsv, match="line 5"):
            check_utf8(content)  # the route refuses such a file at once; the job, if it has one:
        made = await started(store, numbered(3), {"Email": "email"})
        gone = await importing(store, book, Files()).work(made, JobControl())
        assert gone.state is ImportState.FAILED and "is gone" in str(gone.error)
        broken = await started(store, numbered(3), {"Email": "email"})
        files = Files(med_file=content)
        failed = await importing(store, book, files, 2).work(broken, JobControl())
        assert failed.state is ImportState.FAILED and "not UTF-8" in str(failed.error)
        assert failed.rows_read == 2
        assert len(await every_contact(book)) == 2

    run_world(sqlite_database, scenario)


class Counting:
    """A ContactBook that only counts what is created (no contact kept)."""

    def __init__(self) -> None:
        self.created = 0

    async def find(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        return []

    async def create_contact(self, identities: Collection[Identity] = (), **profile: Any) -> Any:
        self.created += 1
        return Contact(f"ct_{self.created}", None, ())


def test_a_big_file_is_read_a_batch_at_a_time(sqlite_database):
    """20,000 rows: the job never holds more than a batch of them. What it allocates at its
    peak is well under the file's own size (all its rows as Python lists would be several
    times that), and every row is counted."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        content = numbered(20_000)
        made = await started(store, content, {"Email": "email", "Name": "display_name"})
        counting = Counting()
        job = importing(store, counting, Files(med_file=content))
        tracemalloc.start()
        try:
            done = await job.work(made, JobControl())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (done.rows_read, done.created, counting.created) == (20_000, 20_000, 20_000)
        assert peak < len(content) / 2, (peak, len(content))

    run_world(sqlite_database, scenario)


# the API, in the app ---------------------------------------------------------------------------


class TransferModule:
    """The CRM's imports and exports alone, wired as the CRM's plugin wires them."""

    def __init__(self, segment_contacts: SegmentContacts | None = None) -> None:
        self.segment_contacts = segment_contacts

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [transfer_store_spec()]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return transfer_routes(context, self.segment_contacts)

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Any]:
        return transfer_jobs(context)


async def upload(
    conductor: testing.ASGIConductor, content: bytes, content_type: str = "text/csv"
) -> str:
    answer = await conductor.simulate_post(
        "/api/media",
        body=content,
        headers={**AUTH, "Content-Type": content_type},
        params={"filename": "people.csv"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json["id"])


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


def test_an_import_through_the_api(tmp_path: Path):
    """Upload a CSV, start its import (202, pending), and follow it until done; it is
    listed; the contacts are there (exported as JSON); cancelling it then answers it as it
    ended."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        media_id = await upload(conductor, PEOPLE)
        body = {"media_id": media_id, "mapping": PEOPLE_MAPPING}
        answer = await conductor.simulate_post("/api/crm/imports", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
        assert answer.json["state"] in ("pending", "running", "done")
        import_id = answer.json["id"]

        async def finished() -> Any:
            got = await conductor.simulate_get(f"/api/crm/imports/{import_id}", headers=AUTH)
            return got.json if got.json["state"] == "done" else None

        done = await eventually(finished)
        assert (done["created"], done["updated"], done["failed"], done["skipped"]) == (2, 1, 2, 1)
        assert done["errors"][0] == {
            "row": 4,
            "column": "Email",
            "message": done["errors"][0]["message"],
        }
        listed = await conductor.simulate_get("/api/crm/imports", headers=AUTH)
        assert [item["id"] for item in listed.json["items"]] == [import_id]
        exported = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"format": "json"}, headers=AUTH
        )
        assert exported.status_code == 200, exported.text
        names = sorted(contact["display_name"] for contact in exported.json)
        assert names == ["Ana again", "Bea (known)"]
        cancel = await conductor.simulate_post(f"/api/crm/imports/{import_id}/cancel", headers=AUTH)
        assert cancel.status_code == 200 and cancel.json["state"] == "done"

    run_app(tmp_path, {}, scenario, modules={"crm": TransferModule()}, jobs=True)


def test_a_bad_import_request_answers_400_saying_why(tmp_path: Path):
    """A column the file lacks, a field that does not exist, media that is not kept, a file
    uploaded as another type, one that is not UTF-8, a dedupe the mapping gives nothing to
    match by: each 400, with a message naming what is wrong; no import is recorded."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        good = await upload(conductor, PEOPLE)
        latin = await upload(conductor, "Name\nJosé\n".encode("latin-1"))
        text = await upload(conductor, b"Name\nAna\n", "application/zip")
        cases = [
            (
                {"media_id": good, "mapping": {"Nombre": "display_name"}},
                "the file has no column 'Nombre'",
            ),
            ({"media_id": good, "mapping": {"Name": "nickname"}}, "'nickname' is not a field"),
            ({"media_id": "med_nothing", "mapping": {"Name": "display_name"}}, "med_nothing"),
            ({"media_id": text, "mapping": {"Name": "display_name"}}, "not a CSV file"),
            ({"media_id": latin, "mapping": {"Name": "display_name"}}, "not UTF-8"),
            (
                {"media_id": good, "mapping": {"Name": "display_name"}, "dedupe": "email"},
                "dedupe: email needs a column mapped to email",
            ),
            (
                {"media_id": good, "mapping": {"Name": "display_name"}, "on_match": "merge"},
                "on_match",
            ),
        ]
        for body, message in cases:
            answer = await conductor.simulate_post("/api/crm/imports", json=body, headers=AUTH)
            assert answer.status_code == 400, (body, answer.text)
            assert message in answer.json["message"], (message, answer.json)
        listed = await conductor.simulate_get("/api/crm/imports", headers=AUTH)
        assert listed.json["items"] == []
        missing = await conductor.simulate_get("/api/crm/imports/imp_nothing", headers=AUTH)
        assert missing.status_code == 404

    run_app(tmp_path, {}, scenario, modules={"crm": TransferModule()})


def test_the_crm_module_imports_declared_attributes_by_their_type(tmp_path: Path):
    """Through the CRM's own plugin: a mapping naming an attribute nobody declared is 400;
    a declared number attribute's cells become numbers, and a cell that is not one refuses
    its row, naming the column."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        seats = {"key": "seats", "type": "number", "label": "Seats"}
        declared = await conductor.simulate_post("/api/crm/attributes", json=seats, headers=AUTH)
        assert declared.status_code == 201, declared.text
        content = csv_bytes(
            [["Email", "Seats", "Plan"], ["a@example.com", "3", "x"], ["b@example.com", "many", ""]]
        )
        media_id = await upload(conductor, content)
        undeclared = {"media_id": media_id, "mapping": {"Plan": "attributes.plan"}}
        refused = await conductor.simulate_post("/api/crm/imports", json=undeclared, headers=AUTH)
        assert refused.status_code == 400
        assert "no custom attribute 'plan'" in refused.json["message"]
        body = {"media_id": media_id, "mapping": {"Email": "email", "Seats": "attributes.seats"}}
        answer = await conductor.simulate_post("/api/crm/imports", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text

        async def finished() -> Any:
            got = await conductor.simulate_get(
                f"/api/crm/imports/{answer.json['id']}", headers=AUTH
            )
            return got.json if got.json["state"] == "done" else None

        done = await eventually(finished)
        assert (done["created"], done["failed"]) == (1, 1)
        assert [(e["row"], e["column"]) for e in done["errors"]] == [(3, "Seats")]
        exported = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"format": "json"}, headers=AUTH
        )
        (contact,) = exported.json
        assert contact["emails"] == ["a@example.com"]
        assert contact["attributes"] == {"seats": 3}

    run_app(tmp_path, {}, scenario, jobs=True)


def test_health_degrades_when_an_import_has_not_moved_for_15_minutes(sqlite_database):
    """``/health``'s report of ``crm.imports``: how many imports wait, and not ok once the
    oldest has not been saved for 15 minutes (no runner, or one stuck)."""

    async def scenario(store: ImportStore, book: ContactBook) -> None:
        job = importing(store, book, Files())
        assert (await job.report()).ok and (await job.report()).figures == {"waiting": 0}
        await store.add_import(record(1, updated_at=utcnow() - timedelta(minutes=16)))
        report = await job.report()
        assert not report.ok and "15 minutes" in report.detail
        assert report.figures == {"waiting": 1}

    run_world(sqlite_database, scenario)
