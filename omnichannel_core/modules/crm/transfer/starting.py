"""An import as ``POST /api/crm/imports`` starts it: the file's header and the mapping
checked before anything is recorded, so a bad request answers 400 at once."""

from __future__ import annotations

from collections.abc import Callable

from omnichannel_core.module import new_id, utcnow
from omnichannel_core.modules.crm.transfer.csvfile import check_utf8, read_header
from omnichannel_core.modules.crm.transfer.records import (
    IMPORT_PREFIX,
    ContactImport,
    Dedupe,
    ImportState,
    OnMatch,
)
from omnichannel_core.modules.crm.transfer.rows import AttributeReader, check_dedupe, plan_columns


def new_import(
    content: bytes,
    media_id: str,
    mapping: dict[str, str],
    created_by: str,
    attributes: AttributeReader,
    channel_known: Callable[[str], bool] | None = None,
    dedupe: Dedupe | None = None,
    on_match: OnMatch = OnMatch.UPDATE,
    dry_run: bool = False,
    delimiter: str = ",",
) -> ContactImport:
    """A pending import of the CSV file ``content``, once its header and the mapping are
    checked: InvalidInput (NotCsv) when the file is not UTF-8 CSV, or as
    :func:`~omnichannel_core.modules.crm.transfer.rows.plan_columns` and
    :func:`~omnichannel_core.modules.crm.transfer.rows.check_dedupe` refuse the mapping.
    ``dedupe`` None: ``email_or_phone`` when the mapping gives emails or phones, else
    ``none``."""
    check_utf8(content)
    header = read_header(content, delimiter)
    columns = plan_columns(mapping, header.columns, attributes, channel_known)
    if dedupe is None:
        gives = {column.field for column in columns}
        dedupe = Dedupe.EMAIL_OR_PHONE if gives & {"email", "phone"} else Dedupe.NONE
    check_dedupe(dedupe, columns)
    now = utcnow()
    return ContactImport(
        id=new_id(IMPORT_PREFIX),
        state=ImportState.PENDING,
        media_id=media_id,
        mapping=dict(mapping),
        dedupe=dedupe,
        on_match=on_match,
        dry_run=dry_run,
        delimiter=delimiter,
        created_by=created_by,
        created_at=now,
        updated_at=now,
        size=len(content),
        next_byte=header.data_start,
        next_row=header.first_row,
    )
