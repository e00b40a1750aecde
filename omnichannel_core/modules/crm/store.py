"""The CRM's store: attribute definitions, notes, the timeline projection and segments.
`sqlite` and `firestore` implement it (tables and collections named ``crm_...``);
tests/test_crm_store.py holds both to it. Contacts are not here: they are the inbox's
(the ``ContactBook`` service).

Lists are pages with the project's cursors (`omnichannel_core.module.encode_cursor`): a
contact's notes by ``(created_at, id)``, its timeline by ``(at, id)``, segments by
``(created_at, id)``, each newest first; a cursor another list made is InvalidInput.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from omnichannel_core.module import UNSET, Page, StoreSpec, lazy
from omnichannel_core.modules.crm.records import (
    TIMELINE_PREFIX,
    AttributeDefinition,
    Note,
    Segment,
    TimelineEntry,
    TimelineKind,
)

STORE_NAME = "crm"


class CrmStore(Protocol):
    # Attribute definitions (few: an admin declares them).

    async def add_attribute(self, definition: AttributeDefinition) -> None:
        """Declare ``definition``; Conflict (``key``) when its key is declared already."""

    async def get_attribute(self, key: str) -> AttributeDefinition:
        """The definition of ``key``; NotFound when it is not declared."""

    async def list_attributes(self) -> list[AttributeDefinition]:
        """Every definition, by key."""

    async def update_attribute(
        self, key: str, label: str, choices: tuple[str, ...], updated_at: datetime
    ) -> AttributeDefinition:
        """Change a definition's label and choices (never its type: `attributes` says why);
        the definition as stored after. NotFound when ``key`` is not declared."""

    async def drop_attribute(self, key: str) -> None:
        """Remove the definition of ``key`` (contacts' values stay, undeclared); NotFound
        when it is not declared."""

    # Notes.

    async def add_note(self, note: Note) -> None:
        """Store ``note`` and, in the same write, its timeline entry (kind ``note``, id
        :func:`note_entry_id`, at ``note.created_at``)."""

    async def get_note(self, note_id: str) -> Note:
        """The note; NotFound for an unknown id."""

    async def update_note(self, note_id: str, text: str, updated_at: datetime) -> Note:
        """Change the note's text; the note as stored after. NotFound for an unknown id."""

    async def delete_note(self, note_id: str) -> None:
        """Delete the note and its timeline entry; NotFound for an unknown id."""

    async def list_notes(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        """The contact's notes, newest first."""

    # The timeline (the ``crm.timeline`` subscriber fills it; notes add theirs).

    async def add_entry(self, entry: TimelineEntry) -> bool:
        """Record ``entry`` unless an entry with its id is recorded (wherever it is now: a
        merge may have moved it): True when it was recorded."""

    async def list_timeline(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        """The contact's timeline entries, newest first."""

    # Segments.

    async def add_segment(self, segment: Segment) -> None:
        """Store a new segment."""

    async def get_segment(self, segment_id: str) -> Segment:
        """The segment; NotFound for an unknown id."""

    async def update_segment(
        self,
        segment_id: str,
        updated_at: datetime,
        name: str = UNSET,
        description: str | None = UNSET,
        filter: dict[str, Any] = UNSET,
    ) -> Segment:
        """Change the given fields (UNSET: left as they are) and ``updated_at``; the segment
        as stored after. NotFound for an unknown id."""

    async def delete_segment(self, segment_id: str) -> None:
        """Delete the segment; NotFound for an unknown id."""

    async def list_segments(self, cursor: str | None, limit: int) -> Page:
        """Segments, newest first."""

    # What follows a contact: its notes and timeline entries.

    async def move_contact(self, merged_id: str, survivor_id: str) -> int:
        """Give ``survivor_id`` every note and timeline entry of ``merged_id`` (a merge);
        how many records moved. Safe to repeat (nothing is left to move), and done in
        batches: an interrupted move moved whole batches, and the next call moves the
        rest."""

    async def forget_contact(self, contact_id: str) -> int:
        """Delete every note and timeline entry of the contact (an erasure); how many went.
        Safe to repeat, in batches like :meth:`move_contact`."""


def note_entry_id(note_id: str) -> str:
    """The id of the timeline entry of note ``note_id``."""
    return f"{TIMELINE_PREFIX}_{note_id}"


def note_entry(note: Note) -> TimelineEntry:
    """The timeline entry :meth:`CrmStore.add_note` records with ``note``."""
    return TimelineEntry(
        id=note_entry_id(note.id),
        contact_id=note.contact_id,
        at=note.created_at,
        kind=TimelineKind.NOTE,
        note_id=note.id,
    )


def crm_store_spec() -> StoreSpec:
    """The CRM store's declaration, for the plugin's ``register_stores`` (the Firestore
    implementation is imported only on Firestore: it needs Google's client)."""
    from omnichannel_core.modules.crm.sqlite import MIGRATIONS, SqliteCrmStore

    return StoreSpec(
        STORE_NAME,
        CrmStore,
        sqlite=SqliteCrmStore,
        firestore=lazy("omnichannel_core.modules.crm.firestore", "FirestoreCrmStore"),
        sqlite_migrations=MIGRATIONS,
    )
