"""Contact exports (`omnichannel_core.modules.crm.transfer.exporting`): CSV with a header
and formula-like cells defused, JSON as an array, both written a chunk at a time from any
stream of contacts (read lazily), an export read back by an import, and the route in the
app: a streamed download, a segment's members through the hook the CRM fills, and 400s."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

from falcon import testing

from omnichannel_core.module import Contact, Identity, NotFound, to_json
from omnichannel_core.modules.crm.transfer.csvfile import read_header, read_rows
from omnichannel_core.modules.crm.transfer.exporting import (
    CHUNK_CONTACTS,
    COLUMNS,
    contacts_csv,
    contacts_json,
)
from omnichannel_core.modules.crm.transfer.rows import TextAttributes, plan_columns, read_row
from omnichannel_core.spreadsheets import safe_cell
from omnichannel_core.testing import AUTH, run_app
from tests.test_crm_import import TransferModule

AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def contact(n: int, **fields: object) -> Contact:
    values: dict[str, object] = {
        "id": f"ct_{n:04d}",
        "display_name": f"Person {n}",
        "identities": (Identity("sms", f"+3460000{n:04d}"), Identity("whatsapp", "whatsapp:+1")),
        "tags": ("vip", "lead"),
        "attributes": {"plan": "gold", "seats": 3},
        "opted_out": ("sms",),
        "created_at": AT,
        "updated_at": AT,
        "emails": (f"p{n}@example.com",),
        "phones": (f"+3460000{n:04d}",),
        "company": "Acme",
        "locale": "es",
        "timezone": "Europe/Madrid",
    }
    values.update(fields)
    return Contact(**values)  # type: ignore[arg-type]


async def stream(
    contacts: Iterable[Contact], taken: list[int] | None = None
) -> AsyncIterator[Contact]:
    for item in contacts:
        if taken is not None:
            taken.append(1)
        yield item


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def rows_of(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def test_csv_has_a_header_and_a_row_per_contact():
    """Lists joined with ``;``, identities as ``channel:address``, times RFC 3339, the
    attributes one JSON column, empty fields empty cells."""
    bare = Contact("ct_0002", None, (), created_at=AT, updated_at=AT)
    content = b"".join(asyncio.run(collect(contacts_csv(stream([contact(1), bare])))))
    header, first, second = rows_of(content)
    assert tuple(header) == COLUMNS
    row = dict(zip(header, first, strict=True))
    assert row == {
        "id": "ct_0001",
        "display_name": "Person 1",
        "emails": "p1@example.com",
        "phones": "'+34600000001",
        "company": "Acme",
        "locale": "es",
        "timezone": "Europe/Madrid",
        "tags": "vip;lead",
        "identities": "sms:+34600000001;whatsapp:whatsapp:+1",
        "opted_out": "sms",
        "created_at": "2026-05-01T09:30:00.000000Z",
        "updated_at": "2026-05-01T09:30:00.000000Z",
        "attributes": '{"plan":"gold","seats":3}',
    }
    assert dict(zip(header, second, strict=True))["attributes"] == ""
    assert content.endswith(b"\r\n")


def test_cells_a_spreadsheet_would_run_get_a_quote():
    """OWASP's CSV injection advice: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return is written after a ``'``; others are left alone."""
    for dangerous in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(dangerous) == "'" + dangerous
    for plain in ("Ana", "", "a=b", "'quoted"):
        assert safe_cell(plain) == plain
    evil = contact(3, display_name="=cmd|' /C calc'!A0", company="@acme", tags=("-x",))
    content = b"".join(asyncio.run(collect(contacts_csv(stream([evil])))))
    row = dict(zip(COLUMNS, rows_of(content)[1], strict=True))
    assert row["display_name"] == "'=cmd|' /C calc'!A0"
    assert row["company"] == "'@acme"
    assert row["tags"] == "'-x"


def test_an_export_is_read_back_by_an_import_as_it_was():
    """The quotes an export puts before phones (and formulas) come off on import: a mapping
    of the export's own columns gives the contact's profile back."""
    original = contact(4, display_name="=not a formula", tags=("vip", "lead"))
    content = b"".join(asyncio.run(collect(contacts_csv(stream([original])))))
    header = read_header(content, ",")
    mapping = {
        "display_name": "display_name",
        "emails": "email",
        "phones": "phone",
        "company": "company",
        "locale": "locale",
        "timezone": "timezone",
        "tags": "tags",
    }
    columns = plan_columns(mapping, header.columns, TextAttributes())
    (row,) = list(read_rows(content, header, header.data_start, header.first_row, ","))
    read, errors = read_row(row.cells, columns, row.number, TextAttributes())
    assert errors == [] and read is not None
    assert read.profile == {
        "display_name": "=not a formula",
        "company": "Acme",
        "locale": "es",
        "timezone": "Europe/Madrid",
        "emails": original.emails,
        "phones": original.phones,
        "tags": original.tags,
    }


def test_json_is_an_array_of_contacts():
    """As the contacts API shows each; no contacts is an empty array."""
    contacts = [contact(n) for n in range(3)]
    content = b"".join(asyncio.run(collect(contacts_json(stream(contacts)))))
    assert json.loads(content) == [to_json(item) for item in contacts]
    assert json.loads(b"".join(asyncio.run(collect(contacts_json(stream([])))))) == []


def test_contacts_are_read_as_the_chunks_are_written():
    """Each chunk holds CHUNK_CONTACTS contacts, and taking the first chunk reads no more
    contacts than it holds: an export holds one chunk, whatever its size."""
    many = [contact(n) for n in range(CHUNK_CONTACTS * 2 + 50)]
    for writer in (contacts_csv, contacts_json):
        taken: list[int] = []

        async def first_chunk(writer=writer, taken=taken) -> int:
            chunks = writer(stream(many, taken))
            await anext(chunks)
            await chunks.aclose()
            return len(taken)

        assert asyncio.run(first_chunk()) == CHUNK_CONTACTS, writer
        assert len(asyncio.run(collect(writer(stream(many))))) == 3, writer
    csv_chunks = asyncio.run(collect(contacts_csv(stream(many))))
    assert len(rows_of(b"".join(csv_chunks))) == len(many) + 1


# the route, in the app ---------------------------------------------------------------------------


def test_the_export_route_streams_a_download(tmp_path: Path):
    """CSV by default (with a dated attachment name), JSON when asked; an unknown format
    is 400; ``segment_id`` without the CRM's segments is 400."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        got = await conductor.simulate_get("/api/crm/exports/contacts", headers=AUTH)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("text/csv")
        assert got.headers["content-disposition"].startswith('attachment; filename="contacts-')
        assert rows_of(got.content) == [list(COLUMNS)]
        as_json = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"format": "json"}, headers=AUTH
        )
        assert as_json.status_code == 200 and as_json.json == []
        assert as_json.headers["content-disposition"].endswith('.json"')
        bad = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"format": "xml"}, headers=AUTH
        )
        assert bad.status_code == 400 and "format" in bad.json["message"]
        segment = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"segment_id": "seg_1"}, headers=AUTH
        )
        assert segment.status_code == 400 and "segment" in segment.json["message"]

    run_app(tmp_path, {}, scenario, modules={"crm": TransferModule()})


def test_a_segment_export_takes_the_members_the_crm_gives(tmp_path: Path):
    """With the hook filled (the CRM's segment evaluator), ``segment_id`` exports that
    segment's members; an unknown segment is 404 before anything is sent."""
    members = [contact(1), contact(2)]

    async def segment_contacts(segment_id: str) -> AsyncIterator[Contact]:
        if segment_id != "seg_vip":
            raise NotFound(f"segment {segment_id!r} not found", id=segment_id)
        return stream(members)

    async def scenario(conductor: testing.ASGIConductor) -> None:
        got = await conductor.simulate_get(
            "/api/crm/exports/contacts",
            params={"segment_id": "seg_vip", "format": "json"},
            headers=AUTH,
        )
        assert got.status_code == 200, got.text
        assert [item["id"] for item in got.json] == ["ct_0001", "ct_0002"]
        unknown = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"segment_id": "seg_x"}, headers=AUTH
        )
        assert unknown.status_code == 404

    run_app(tmp_path, {}, scenario, modules={"crm": TransferModule(segment_contacts)})


def test_the_crm_module_exports_a_saved_segment(tmp_path: Path):
    """Through the CRM's own plugin: ``segment_id`` names a saved segment, and only its
    members are exported; an unknown one is 404."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for email, tags in (("a@example.com", ["vip"]), ("b@example.com", [])):
            body = {"emails": [email], "tags": tags}
            made = await conductor.simulate_post("/api/contacts", json=body, headers=AUTH)
            assert made.status_code == 201, made.text
        vip = {"name": "VIP", "filter": {"field": "tags", "op": "contains", "value": "vip"}}
        segment = await conductor.simulate_post("/api/crm/segments", json=vip, headers=AUTH)
        assert segment.status_code == 201, segment.text
        got = await conductor.simulate_get(
            "/api/crm/exports/contacts",
            params={"segment_id": segment.json["id"]},
            headers=AUTH,
        )
        assert got.status_code == 200, got.text
        header, *rows = rows_of(got.content)
        assert [dict(zip(header, row, strict=True))["emails"] for row in rows] == ["a@example.com"]
        unknown = await conductor.simulate_get(
            "/api/crm/exports/contacts", params={"segment_id": "seg_nothing"}, headers=AUTH
        )
        assert unknown.status_code == 404

    run_app(tmp_path, {}, scenario)
