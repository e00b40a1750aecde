"""The imports' store (``crm_imports``): one record per import, written by the route that
starts it, the ``crm.imports`` job that works it and the route that cancels it. `sqlite`
and `firestore` implement it; tests/test_crm_import.py holds both to it."""

from __future__ import annotations

from typing import Protocol

from omnichannel_core.module import Page
from omnichannel_core.modules.crm.transfer.records import ContactImport


class ImportStore(Protocol):
    async def add_import(self, record: ContactImport) -> None:
        """Record a new import."""

    async def get_import(self, import_id: str) -> ContactImport:
        """The import; NotFound for an id the store does not know."""

    async def list_imports(self, cursor: str | None, limit: int) -> Page:
        """Imports, newest first."""

    async def next_import(self) -> ContactImport | None:
        """The oldest import still pending or running; None when there is none."""

    async def save_import(self, record: ContactImport, version: int) -> ContactImport | None:
        """Write the job's ``record`` (stored with ``version + 1``) if the stored one is at
        ``version``: the import as stored after (a cancelled one stays cancelled, with the
        counts written). None, writing nothing, when it is not at ``version`` (another
        runner saved it meanwhile)."""

    async def cancel_import(self, import_id: str) -> ContactImport:
        """Mark a pending or running import cancelled (its version unchanged: the job's next
        save sees it and stops); one that finished stays as it is. The import as stored
        after; NotFound for an unknown id."""

    async def count_waiting(self) -> int:
        """How many imports are pending or running."""
