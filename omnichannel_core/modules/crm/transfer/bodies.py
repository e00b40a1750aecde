"""What the import and export routes take."""

from __future__ import annotations

import enum

import attrs

from omnichannel_core.module import UNSET, field
from omnichannel_core.modules.crm.transfer.records import Dedupe, OnMatch

MEDIA_ID = r"^med_[A-Za-z0-9_-]{1,120}$"
DELIMITERS = (",", ";", "\t", "|")


@attrs.frozen
class NewImport:
    """A CSV file uploaded through ``POST /api/media``, and how to read it."""

    media_id: str = field(
        pattern=MEDIA_ID,
        description="the file: what POST /api/media answered (upload it as text/csv)",
        message="must be a media id (med_...), as POST /api/media answers",
    )
    mapping: dict[str, str] = field(
        description="CSV column (as its header names it) -> field: display_name, email,"
        " phone, company, locale, timezone, tags, attributes.<key>, identity.<channel>."
        " Columns left out are ignored."
    )
    dedupe: Dedupe = field(
        default=UNSET,
        description="how a row finds the contact it is: by its emails, its phones, either,"
        " or never (every row a new contact). Default: email_or_phone when the mapping"
        " names an email or phone column, else none.",
    )
    on_match: OnMatch = field(
        default=OnMatch.UPDATE,
        description="what a row that found its contact does: fill it (update) or nothing (skip)",
    )
    dry_run: bool = field(
        default=False,
        description="only check the file: count what would be created and updated, and"
        " list the rows refused, writing no contact",
    )
    delimiter: str = field(
        default=",", enum=list(DELIMITERS), description="what separates the cells of a row"
    )


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    JSON = "json"


@attrs.frozen
class ExportQuery:
    format: ExportFormat = field(default=ExportFormat.CSV, description="csv or json")
    segment_id: str | None = field(
        default=None,
        max_length=200,
        description="export only the members of this saved segment (GET /api/crm/segments)",
    )
