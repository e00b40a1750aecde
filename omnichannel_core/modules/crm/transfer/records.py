"""What an import is, as its record in the ``crm_imports`` store and the API show it: what
was asked (the file, the mapping, how rows find existing contacts), how far the
``crm.imports`` job got, and what it could not take."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from omnichannel_core.module import field

IMPORT_PREFIX = "imp"
"""An import's id: ``imp_`` then :func:`~omnichannel_core.module.new_id`'s body."""
MAX_ERRORS = 200
"""Row errors an import keeps (the first ones); ``failed`` counts them all."""


class ImportState(enum.StrEnum):
    PENDING = "pending"
    """Waiting for the ``crm.imports`` job."""
    RUNNING = "running"
    """Being worked (or waiting for another runner to take it over: it goes on from
    ``next_byte``)."""
    DONE = "done"
    """Every row was read."""
    FAILED = "failed"
    """Stopped: the file cannot be read on (``error`` says why). Rows before it stay
    imported."""
    CANCELLED = "cancelled"
    """Stopped on request (``POST /api/crm/imports/{id}/cancel``). Rows before it stay
    imported."""


WAITING = (ImportState.PENDING, ImportState.RUNNING)
"""The states the job works."""


class Dedupe(enum.StrEnum):
    """How a row finds the contact it is (``ContactBook.find``: profile emails and phones,
    and identities' addresses)."""

    EMAIL = "email"
    PHONE = "phone"
    EMAIL_OR_PHONE = "email_or_phone"
    NONE = "none"
    """Every row makes a new contact."""


class OnMatch(enum.StrEnum):
    UPDATE = "update"
    """Fill the contact from the row: see docs in `omnichannel_core.modules.crm.transfer`."""
    SKIP = "skip"
    """Leave the contact as it is; the row counts as skipped."""


@attrs.frozen
class RowError:
    """Why a row (or one of its cells) was not taken."""

    row: int
    """The row's number in the file as a spreadsheet shows it: the header is row 1, the
    first contact row 2."""
    column: str | None
    """The CSV column at fault; null for the whole row."""
    message: str


@attrs.frozen
class ContactImport:
    """A CSV file of contacts being imported (``POST /api/crm/imports``)."""

    id: str
    state: ImportState
    media_id: str
    """The file, as uploaded through POST /api/media."""
    mapping: dict[str, str]
    """CSV column -> contact field."""
    dedupe: Dedupe
    on_match: OnMatch
    dry_run: bool
    """Only check: ``created`` and ``updated`` count what the import would do, and no
    contact is written."""
    delimiter: str
    created_by: str
    """``user:<id>`` or ``api_key:<id>``."""
    created_at: datetime
    updated_at: datetime
    size: int
    """The file's size in bytes."""
    next_byte: int = field(
        default=0,
        description="Where in the file the next row starts: ``next_byte / size`` is how far"
        " the import is.",
    )
    next_row: int = field(
        default=2, description="The number of the next row to read (the header is row 1)."
    )
    rows_read: int = field(default=0, description="Contact rows read (blank lines are not).")
    created: int = 0
    updated: int = 0
    skipped: int = field(
        default=0,
        description="Rows not written: matching a contact with on_match skip, or with every"
        " mapped cell empty.",
    )
    failed: int = field(default=0, description="Rows refused (``errors`` has the first 200).")
    errors: tuple[RowError, ...] = ()
    error: str | None = field(default=None, description="Why a failed import stopped.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    batch_started_at: datetime | None = field(
        default=None,
        description="When the batch from ``next_byte`` on began, while one may be under way:"
        " a runner that takes the import over knows contacts made since may be its own.",
    )
    version: int = field(
        default=0, description="Counts the job's saves: a runner saves only over its own."
    )

    @property
    def finished(self) -> bool:
        return self.state not in WAITING
