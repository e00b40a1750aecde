"""Notes on contacts: what a note may say, and that only its author or an admin changes it
(on SQLite: the store's own contract is tests/test_crm_store.py's)."""

from __future__ import annotations

import pytest

from omnichannel_core.errors import Forbidden, InvalidInput, NotFound
from omnichannel_core.modules.crm.notes import Notes, may_change
from omnichannel_core.modules.crm.store import CrmStore, crm_store_spec, note_entry_id
from omnichannel_core.policy import Principal, Role
from omnichannel_core.testing.stores import run_store


def user(user_id: str, role: Role) -> Principal:
    return Principal("user", user_id, user_id, frozenset(), role)


AUTHOR = user("usr_author", Role.AGENT)
OTHER_AGENT = user("usr_other", Role.AGENT)
SUPERVISOR = user("usr_boss", Role.SUPERVISOR)
ADMIN = Principal("user", "usr_admin", "usr_admin", frozenset({"notes:manage"}), Role.ADMIN)
"""Admins hold ``notes:manage`` (as does a key given it): what lets them change any note."""
KEY = Principal("api_key", "key_1", "a program", frozenset())


def test_only_the_author_or_an_admin_changes_a_note(sqlite_database):
    """The author edits and deletes their note, an admin anyone's; another agent, a
    supervisor or a key that did not write it are Forbidden and change nothing. A delete
    takes the note's timeline entry too."""

    async def scenario(store: CrmStore) -> None:
        notes = Notes(store)
        note = await notes.write("ct_1", AUTHOR, "called, wants a callback")
        assert (note.author_id, note.contact_id) == ("usr_author", "ct_1")
        assert await notes.get(note.id) == note
        (entry,) = (await store.list_timeline("ct_1", None, 10)).items
        assert entry.id == note_entry_id(note.id)

        for stranger in (OTHER_AGENT, SUPERVISOR, KEY):
            assert not may_change(stranger, note)
            with pytest.raises(Forbidden):
                await notes.edit(note.id, stranger, "mine now")
            with pytest.raises(Forbidden):
                await notes.delete(note.id, stranger)
        assert await notes.get(note.id) == note

        edited = await notes.edit(note.id, AUTHOR, "called twice")
        assert edited.text == "called twice"
        assert edited.updated_at >= note.updated_at
        assert (await notes.edit(note.id, ADMIN, "tidied")).author_id == "usr_author"

        keyed = await notes.write("ct_1", KEY, "imported")
        assert (await notes.edit(keyed.id, KEY, "imported again")).text == "imported again"
        assert [n.id for n in (await notes.list("ct_1", None, 10)).items] == [keyed.id, note.id]

        assert (await notes.delete(note.id, ADMIN)).text == "tidied"
        with pytest.raises(NotFound):
            await notes.get(note.id)
        with pytest.raises(NotFound):
            await notes.delete(note.id, ADMIN)
        assert [e.note_id for e in (await store.list_timeline("ct_1", None, 10)).items] == [
            keyed.id
        ]

    run_store(crm_store_spec(), sqlite_database, scenario)


@pytest.mark.parametrize("text", ["", "   \n", "x" * 10_001])
def test_a_note_says_1_to_10000_characters(sqlite_database, text):
    """A blank note, or one over 10,000 characters, is InvalidInput naming ``text``, when
    written or edited; nothing is stored."""

    async def scenario(store: CrmStore) -> None:
        notes = Notes(store)
        with pytest.raises(InvalidInput) as raised:
            await notes.write("ct_1", AUTHOR, text)
        assert raised.value.details == {"field": "text"}
        assert (await notes.list("ct_1", None, 10)).items == []
        note = await notes.write("ct_1", AUTHOR, "x" * 10_000)
        with pytest.raises(InvalidInput):
            await notes.edit(note.id, AUTHOR, text)
        assert (await notes.get(note.id)).text == "x" * 10_000

    run_store(crm_store_spec(), sqlite_database, scenario)
