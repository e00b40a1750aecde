"""A CSV file read a row at a time, from any row's first byte.

The file is the bytes the media store keeps (at most ``OMNICHANNEL_MEDIA_MAX_BYTES``: the
store hands them whole). They are never decoded whole nor split into a list: lines are cut
one at a time (``\\n``, or ``\\r`` for a file that has no ``\\n`` at all, as old
spreadsheets on a Mac wrote), each decoded as UTF-8 alone (a ``\\n`` byte is never inside
a UTF-8 character) and handed to :mod:`csv`, which asks for the next line only when a
quoted cell spans lines. So after each row the reader knows the byte where the next one
starts: an import saves it, and a runner that takes the import over goes on from there.
Memory stays one row (and the file's bytes) whatever the number of rows.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator

import attrs

from omnichannel_core.module import InvalidInput

BOM = codecs.BOM_UTF8
CHECK_CHUNK = 1 << 20
"""Bytes decoded at a time by :func:`check_utf8` (then dropped)."""
SNIFF_NEWLINE = 1 << 16


class NotCsv(InvalidInput):
    """The file cannot be read as CSV in UTF-8 (from some row on)."""


def check_utf8(content: bytes) -> None:
    """NotCsv naming the line of the first byte that is not UTF-8 (the whole file is
    decoded, a chunk at a time, and nothing kept)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(content)
    for offset in range(0, len(content), CHECK_CHUNK):
        chunk = view[offset : offset + CHECK_CHUNK]
        try:
            decoder.decode(chunk, final=offset + CHECK_CHUNK >= len(content))
        except UnicodeDecodeError as error:
            at = max(0, offset + error.start - len(decoder.getstate()[0]))
            line = content.count(b"\n", 0, at) + 1
            raise NotCsv(
                f'the file is not UTF-8 text (line {line}, byte {at}): save it as "CSV UTF-8"',
                line=line,
            ) from None


def newline_of(content: bytes) -> bytes:
    """How the file ends its lines: ``\\n`` (also ``\\r\\n``), or ``\\r`` alone when the
    file's start has no ``\\n`` but has a ``\\r``."""
    head = content[:SNIFF_NEWLINE]
    return b"\r" if b"\n" not in head and b"\r" in head else b"\n"


class Lines:
    """An iterator of the file's lines from byte ``start``, decoded one at a time;
    :attr:`position` is the first byte not yet handed out, :attr:`line` its line."""

    def __init__(self, content: bytes, start: int, newline: bytes) -> None:
        self.content = content
        self.position = start
        self.newline = newline

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        content = self.content
        if self.position >= len(content):
            raise StopIteration
        end = content.find(self.newline, self.position)
        stop = len(content) if end < 0 else end + len(self.newline)
        try:
            text = content[self.position : stop].decode("utf-8")
        except UnicodeDecodeError as error:
            at = self.position + error.start
            raise NotCsv(
                f'the file is not UTF-8 text (byte {at}): save it as "CSV UTF-8"',
                byte=at,
            ) from None
        self.position = stop
        return text


@attrs.frozen
class Header:
    columns: tuple[str, ...]
    """The header's cells, stripped."""
    data_start: int
    """The byte where the first row after the header starts."""
    newline: bytes
    first_row: int = 2
    """The number of the row after the header (blank lines before it count)."""


def read_header(content: bytes, delimiter: str) -> Header:
    """The file's first row. NotCsv when there is none, or it cannot be read."""
    start = len(BOM) if content.startswith(BOM) else 0
    newline = newline_of(content)
    lines = Lines(content, start, newline)
    reader = csv.reader(lines, delimiter=delimiter)
    rows = 1
    try:
        first = next(reader, None)
        while first == []:  # blank lines before the header
            rows += 1
            first = next(reader, None)
    except csv.Error as error:
        raise NotCsv(f"the file's header is not CSV: {error}") from None
    if not first or not any(cell.strip() for cell in first):
        raise NotCsv("the file is empty: its first row must name its columns")
    return Header(tuple(cell.strip() for cell in first), lines.position, newline, rows + 1)


@attrs.frozen
class Row:
    number: int
    """Its number as a spreadsheet shows it (the header is row 1)."""
    cells: list[str]
    end: int
    """The byte where the next row starts."""


def read_rows(
    content: bytes, header: Header, start: int, first_number: int, delimiter: str
) -> Iterator[Row]:
    """The rows from byte ``start`` (a row's first byte, as :attr:`Row.end` or
    :attr:`Header.data_start` said), numbered from ``first_number``; a blank line counts as
    a row but is not yielded. NotCsv once the file cannot be read on."""
    lines = Lines(content, start, header.newline)
    reader = csv.reader(lines, delimiter=delimiter)
    number = first_number
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise NotCsv(f"row {number} is not CSV: {error}", row=number) from None
        if cells:
            yield Row(number, cells, lines.position)
        number += 1
