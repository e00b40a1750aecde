"""Notes on contacts, and who may change them: anyone who may write a contact writes notes
on it (the routes check ``contacts:write`` and that the contact is visible to the caller);
only a note's author, or an admin, edits or deletes it."""

from __future__ import annotations

from omnichannel_core.module import Forbidden, InvalidInput, Page, Principal, new_id, utcnow
from omnichannel_core.modules.crm.permissions import NOTES_MANAGE
from omnichannel_core.modules.crm.records import NOTE_PREFIX, Note
from omnichannel_core.modules.crm.store import CrmStore

MAX_TEXT = 10_000
"""Characters of a note."""


def checked_text(text: str) -> str:
    """``text`` if a note may say it: 1 to :data:`MAX_TEXT` characters, not all blank
    (InvalidInput naming ``text``)."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise InvalidInput(
            f"text must be a non-blank string of at most {MAX_TEXT:,} characters", field="text"
        )
    return text


def may_change(principal: Principal, note: Note) -> bool:
    """Whether ``principal`` may edit or delete ``note``: its author, or one holding
    ``notes:manage`` (admins, and keys given it)."""
    return principal.id == note.author_id or NOTES_MANAGE in principal.permissions


class Notes:
    """Writing and reading notes; the contact ids given are the contacts' own (a merged
    contact's survivor, as ``ContactBook.get_contact`` answers it)."""

    def __init__(self, store: CrmStore) -> None:
        self.store = store

    async def write(self, contact_id: str, principal: Principal, text: str) -> Note:
        """A new note by ``principal`` on the contact (and its timeline entry)."""
        now = utcnow()
        note = Note(new_id(NOTE_PREFIX), contact_id, principal.id, checked_text(text), now, now)
        await self.store.add_note(note)
        return note

    async def get(self, note_id: str) -> Note:
        """The note; NotFound for an unknown id."""
        return await self.store.get_note(note_id)

    async def list(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        """The contact's notes, newest first."""
        return await self.store.list_notes(contact_id, cursor, limit)

    async def edit(self, note_id: str, principal: Principal, text: str) -> Note:
        """Change the note's text; Forbidden unless ``principal`` wrote it or is an admin,
        NotFound for an unknown id."""
        checked = checked_text(text)
        self._allow(principal, await self.store.get_note(note_id))
        return await self.store.update_note(note_id, checked, utcnow())

    async def delete(self, note_id: str, principal: Principal) -> Note:
        """Delete the note (and its timeline entry); the note as it was. Forbidden unless
        ``principal`` wrote it or is an admin, NotFound for an unknown id."""
        note = await self.store.get_note(note_id)
        self._allow(principal, note)
        await self.store.delete_note(note_id)
        return note

    @staticmethod
    def _allow(principal: Principal, note: Note) -> None:
        if not may_change(principal, note):
            raise Forbidden(
                f"only the note's author or an admin may change it, not this"
                f" {principal.description}",
                id=note.id,
            )
