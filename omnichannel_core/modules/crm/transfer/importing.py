"""The ``crm.imports`` job: imports started through ``POST /api/crm/imports``, worked one
at a time, oldest first, a batch of :data:`BATCH_ROWS` rows at a time.

One runner at a time runs the job (a singleton: the job's lease). It reads the file from
the media store, goes on from the import's ``next_byte`` (`csvfile`), reads each row by the
mapping (`rows`), finds the contact it is (``ContactBook.find``, by the dedupe rule) and
creates or fills it; after each batch it saves where it is, the counts and the first errors,
over its own last save only (``version``: a runner that lost the job to another writes
nothing). A runner that stops or dies mid-batch leaves the import running from the start of
that batch: the next runner repeats the batch, and the repetition makes no second contact.
A row that found its contact finds it again; one that made a contact finds the one it made,
which counts as made (not updated): a contact found that was made after the batch began
(``batch_started_at``), and not by this runner, is the earlier attempt's. With dedupe
``none`` only such contacts are looked for (by the row's emails and phones) when a batch is
repeated; a row without either, repeated, makes a second contact.

A row that fills its contact (``on_match: update``) sets each scalar field it gives, adds
its emails, phones, tags and identities to the contact's, and sets the attributes it gives
(others stay). An identity that is another contact's is refused in the row's errors; the
rest of the row is written. A row matching several contacts is refused (merge them first).

``dry_run`` reads and matches every row the same way and writes no contact: ``created``
and ``updated`` count what the import would do (rows of the file that repeat an email or a
phone of an earlier row count as updates of the contact that row would make).

It wakes when the event log grows (as each runner's readers do: at least every few
seconds), and when the route that starts an import tells this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs
import structlog

from omnichannel_core.module import (
    Conflict,
    Contact,
    ContactBook,
    InvalidInput,
    Job,
    JobControl,
    JobReport,
    MediaKeeper,
    News,
    NotFound,
    cancel_and_wait,
    utcnow,
)
from omnichannel_core.modules.crm.transfer.csvfile import (
    NotCsv,
    Row,
    read_header,
    read_rows,
)
from omnichannel_core.modules.crm.transfer.records import (
    MAX_ERRORS,
    ContactImport,
    Dedupe,
    ImportState,
    OnMatch,
    RowError,
)
from omnichannel_core.modules.crm.transfer.rows import (
    AttributeReader,
    Column,
    RowContact,
    TextAttributes,
    plan_columns,
    read_row,
)
from omnichannel_core.modules.crm.transfer.store import ImportStore

log = structlog.get_logger("omnichannel.crm")

BATCH_ROWS = 200
IDLE_SECONDS = 5.0
STUCK_AFTER = timedelta(minutes=15)
"""``/health`` degrades when the import being worked has not been saved for this long (a
batch takes seconds)."""
FIND_LIMIT = 5
"""Contacts a row's lookup reads: one is a match, more are ambiguous."""

AttributeRules = Callable[[], Awaitable[AttributeReader]]
"""How to get the :class:`AttributeReader` of the moment (the definitions, read again for
each batch and each new import)."""


async def text_attributes() -> AttributeReader:
    return TextAttributes()


@attrs.define
class Tally:
    """A batch's counts, added to the import's as it is saved."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = attrs.field(factory=list)


class Importing:
    """The job's work. ``contacts`` and ``media`` find the services (once every module
    offered its own)."""

    def __init__(
        self,
        store: ImportStore,
        contacts: Callable[[], ContactBook],
        media: Callable[[], MediaKeeper],
        news: News,
        attributes: AttributeRules = text_attributes,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.media = media
        self.news = news
        self.attributes = attributes
        self.batch_rows = batch_rows

    def job(self) -> Job:
        return Job(
            "crm.imports",
            self.run,
            description="Import contacts from the CSV files of POST /api/crm/imports.",
            health=self.report,
        )

    async def report(self) -> JobReport:
        oldest = await self.store.next_import()
        stuck = oldest is not None and utcnow() - oldest.updated_at > STUCK_AFTER
        return JobReport(
            ok=not stuck,
            detail="an import has not moved for 15 minutes" if stuck else "",
            figures={"waiting": await self.store.count_waiting()},
        )

    async def run(self, control: JobControl) -> None:
        with self.news.listening():
            while not control.stopping:
                signal = self.news.signal()
                record = await self.store.next_import()
                if record is None:
                    await self._pause(signal, IDLE_SECONDS, control)
                    continue
                await self.work(record, control)

    async def _pause(self, signal: asyncio.Event, seconds: float, control: JobControl) -> None:
        news = asyncio.create_task(self.news.wait(signal, seconds))
        stop = asyncio.create_task(control.sleep(seconds))
        try:
            await asyncio.wait([news, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(news, stop)

    async def work(self, record: ContactImport, control: JobControl) -> ContactImport:
        """Work ``record`` until it is done, fails or is cancelled, another runner saves it,
        or ``control`` stops: the import as last saved (or as given, when none was)."""
        now = utcnow()
        # a running import's batch may have been begun by a runner gone: it is repeated
        repeating = record.state is ImportState.RUNNING
        if record.state is ImportState.PENDING:
            started = attrs.evolve(
                record,
                state=ImportState.RUNNING,
                started_at=now,
                batch_started_at=now,
                updated_at=now,
            )
            saved = await self.store.save_import(started, record.version)
            if saved is None or saved.finished:
                return saved or record
            record = saved
        try:
            content = await self.media().read(record.media_id)
        except NotFound:
            if record.size and record.next_byte >= record.size:  # read whole, then let go
                return await self._finish(record)
            return await self._fail(record, f"the file (media {record.media_id}) is gone")
        try:
            header = read_header(content, record.delimiter)
            columns = plan_columns(record.mapping, header.columns, await self.attributes())
        except InvalidInput as error:  # NotCsv, or a column no longer there
            return await self._fail(record, error.message)
        rows = read_rows(
            content,
            header,
            record.next_byte or header.data_start,
            record.next_row,
            record.delimiter,
        )
        seen: set[str] = set()
        while not control.stopping:
            try:
                batch = self._take(rows)
            except NotCsv as error:
                return await self._fail(record, error.message)
            if not batch:
                return await self._finish(record)
            tally = Tally()
            reader = await self.attributes()
            made_now: set[str] = set()
            for row in batch:
                if control.stopping:
                    return record  # the batch is repeated by whoever goes on
                await self._row(record, row, columns, reader, tally, repeating, made_now, seen)
            saved = await self._save(record, tally, batch[-1])
            if saved is None or saved.finished:
                return saved or record
            record = saved
            repeating = False
        return record

    def _take(self, rows: Iterator[Row]) -> list[Row]:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= self.batch_rows:
                break
        return batch

    async def _row(
        self,
        record: ContactImport,
        row: Row,
        columns: tuple[Column, ...],
        reader: AttributeReader,
        tally: Tally,
        repeating: bool,
        made_now: set[str],
        seen: set[str],
    ) -> None:
        tally.rows += 1
        try:
            contact, errors = read_row(row.cells, columns, row.number, reader)
        except Exception:  # a cell no check foresaw: that row fails, never the whole job
            log.exception("crm_import_row_unreadable", import_id=record.id, row=row.number)
            tally.failed += 1
            tally.errors.append(RowError(row.number, None, "this row could not be read"))
            return
        if contact is None:
            tally.failed += 1
            tally.errors.extend(errors)
            return
        if contact.empty:
            tally.skipped += 1
            return
        try:
            match = await self._match(record, contact, repeating, made_now, row.number)
        except InvalidInput as ambiguous:
            tally.failed += 1
            tally.errors.append(RowError(row.number, None, ambiguous.message))
            return
        if record.dry_run:
            self._dry(record, contact, match, tally, seen)
            return
        if match is None:
            await self._create(record, contact, row, tally, repeating, made_now)
            return
        found, ours = match
        if ours:  # made by the attempt that did not save: counted now
            tally.created += 1
            await self._fill(found, contact, row, tally)
        elif record.on_match is OnMatch.SKIP:
            tally.skipped += 1
        else:
            tally.updated += 1
            await self._fill(found, contact, row, tally)

    async def _match(
        self,
        record: ContactImport,
        contact: RowContact,
        repeating: bool,
        made_now: set[str],
        number: int,
    ) -> tuple[Contact, bool] | None:
        """The contact the row is, and whether an earlier attempt at this batch made it;
        None for none. InvalidInput when the row matches several."""
        emails: tuple[str, ...] = ()
        phones: tuple[str, ...] = ()
        if record.dedupe in (Dedupe.EMAIL, Dedupe.EMAIL_OR_PHONE, Dedupe.NONE):
            emails = contact.emails
        if record.dedupe in (Dedupe.PHONE, Dedupe.EMAIL_OR_PHONE, Dedupe.NONE):
            phones = contact.phones
        if record.dedupe is Dedupe.NONE and not repeating:
            return None
        if not emails and not phones:
            return None
        found = await self.contacts().find(emails=emails, phones=phones, limit=FIND_LIMIT)
        since = record.batch_started_at
        if record.dedupe is Dedupe.NONE:  # only what the earlier attempt may have made
            found = [each for each in found if _made_since(each, since, made_now)]
        if not found:
            return None
        if len(found) > 1:
            ids = ", ".join(each.id for each in found)
            raise InvalidInput(
                f"matches {len(found)} contacts ({ids}): merge them, or import with dedupe none"
            )
        (one,) = found
        return one, repeating and _made_since(one, since, made_now)

    def _dry(
        self,
        record: ContactImport,
        contact: RowContact,
        match: tuple[Contact, bool] | None,
        tally: Tally,
        seen: set[str],
    ) -> None:
        keys = _keys(record.dedupe, contact)
        if match is None and not keys & seen:
            tally.created += 1
        elif record.on_match is OnMatch.SKIP:
            tally.skipped += 1
        else:
            tally.updated += 1
        seen.update(keys)

    async def _create(
        self,
        record: ContactImport,
        contact: RowContact,
        row: Row,
        tally: Tally,
        repeating: bool,
        made_now: set[str],
    ) -> None:
        book = self.contacts()
        try:
            made = await book.create_contact(contact.identities, **contact.profile)
        except Conflict as conflict:
            holder = conflict.details.get("contact_id")
            if repeating and holder:  # perhaps the earlier attempt's: then it is counted
                try:
                    existing = await book.get_contact(str(holder))
                except NotFound:
                    existing = None
                if existing and _made_since(existing, record.batch_started_at, made_now):
                    tally.created += 1
                    await self._fill(existing, contact, row, tally)
                    return
            tally.failed += 1
            tally.errors.append(
                RowError(row.number, _identity_column(contact, conflict), conflict.message)
            )
            return
        except InvalidInput as refused:
            tally.failed += 1
            tally.errors.append(RowError(row.number, None, refused.message))
            return
        made_now.add(made.id)
        tally.created += 1

    async def _fill(self, found: Contact, contact: RowContact, row: Row, tally: Tally) -> None:
        """Bring ``found`` up to the row (the rule in this module's docstring)."""
        book = self.contacts()
        changes = _changes(found, contact)
        try:
            if changes:
                found = await book.update_contact(found.id, **changes)
            for identity in contact.identities:
                if identity in found.identities:
                    continue
                try:
                    found = await book.add_identity(found.id, identity)
                except Conflict as conflict:
                    tally.errors.append(
                        RowError(row.number, f"identity.{identity.channel}", conflict.message)
                    )
        except (InvalidInput, NotFound) as refused:
            tally.errors.append(RowError(row.number, None, refused.message))

    async def _save(self, record: ContactImport, tally: Tally, last: Row) -> ContactImport | None:
        now = utcnow()
        room = MAX_ERRORS - len(record.errors)
        progressed = attrs.evolve(
            record,
            next_byte=last.end,
            next_row=last.number + 1,
            rows_read=record.rows_read + tally.rows,
            created=record.created + tally.created,
            updated=record.updated + tally.updated,
            skipped=record.skipped + tally.skipped,
            failed=record.failed + tally.failed,
            errors=record.errors + tuple(tally.errors[: max(0, room)]),
            batch_started_at=now,
            updated_at=now,
        )
        return await self.store.save_import(progressed, record.version)

    async def _finish(self, record: ContactImport) -> ContactImport:
        await self.let_go(record)  # first: a runner stopping now leaves no file behind
        now = utcnow()
        done = attrs.evolve(
            record,
            state=ImportState.DONE,
            next_byte=record.size,
            finished_at=now,
            batch_started_at=None,
            updated_at=now,
        )
        saved = await self.store.save_import(done, record.version)
        log.info(
            "crm_import_finished",
            import_id=record.id,
            rows=record.rows_read,
            created=record.created,
            updated=record.updated,
            failed=record.failed,
            dry_run=record.dry_run,
        )
        return saved or record

    async def _fail(self, record: ContactImport, reason: str) -> ContactImport:
        now = utcnow()
        failed = attrs.evolve(
            record,
            state=ImportState.FAILED,
            error=reason,
            finished_at=now,
            batch_started_at=None,
            updated_at=now,
        )
        log.warning("crm_import_failed", import_id=record.id, reason=reason)
        saved = await self.store.save_import(failed, record.version) or record
        await self.let_go(record)
        return saved

    async def let_go(self, record: ContactImport) -> None:
        """Delete the import's file from the media store once the import is over: it holds
        people's data, which an erasure could not otherwise reach. A dry run's stays, for
        the import that follows it (docs/crm.md)."""
        if not record.dry_run:
            await self.media().forget([record.media_id])


def _made_since(contact: Contact, since: datetime | None, made_now: set[str]) -> bool:
    return since is not None and contact.created_at >= since and contact.id not in made_now


def _keys(dedupe: Dedupe, contact: RowContact) -> set[str]:
    keys: set[str] = set()
    if dedupe in (Dedupe.EMAIL, Dedupe.EMAIL_OR_PHONE):
        keys.update(contact.emails)
    if dedupe in (Dedupe.PHONE, Dedupe.EMAIL_OR_PHONE):
        keys.update(contact.phones)
    return keys


def _identity_column(contact: RowContact, conflict: Conflict) -> str | None:
    channel = conflict.details.get("channel")
    if channel:
        return f"identity.{channel}"
    channels = {identity.channel for identity in contact.identities}
    return f"identity.{channels.pop()}" if len(channels) == 1 else None


def _changes(found: Contact, contact: RowContact) -> dict[str, Any]:
    """What ``update_contact`` must change for ``found`` to hold the row."""
    profile = contact.profile
    changes: dict[str, Any] = {}
    for name in ("display_name", "company", "locale", "timezone"):
        if name in profile and profile[name] != getattr(found, name):
            changes[name] = profile[name]
    for name in ("emails", "phones", "tags"):
        if name in profile:
            merged = tuple(dict.fromkeys((*getattr(found, name), *profile[name])))
            if merged != tuple(getattr(found, name)):
                changes[name] = merged
    if "attributes" in profile:
        merged_attributes = {**found.attributes, **profile["attributes"]}
        if merged_attributes != found.attributes:
            changes["attributes"] = merged_attributes
    return changes
