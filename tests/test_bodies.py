"""Bodies declared once: a class's JSON Schema, and a request checked against that schema."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import attrs
import jsonschema
import pytest

from omnichannel_core.bodies.fields import field
from omnichannel_core.bodies.reading import read_body, read_text_fields, schema_pattern
from omnichannel_core.bodies.schema import Mode, PageOf, SchemaBook
from omnichannel_core.errors import InvalidInput
from omnichannel_core.unset import UNSET

HTTP_URL = "^https?://"


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Attachment:
    """A file to send."""

    url: str = field(pattern=HTTP_URL, max_length=2048, message="must be an http(s) URL")
    filename: str | None = field(default=None, max_length=255)


@attrs.frozen
class Post:
    """What a caller sends."""

    text: str | None = field(default=None, max_length=10)
    files: tuple[str | Attachment, ...] = field(default=(), max_items=2)
    colour: Colour | None = None
    count: int = field(default=0, minimum=0, maximum=5)
    tags: tuple[str, ...] = field(default=UNSET, items={"minLength": 1})
    extra: dict[str, Any] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not self.text and not self.files:
            raise InvalidInput("text: give a text or a file", field="text")


@attrs.frozen
class Stored:
    """What the server writes."""

    id: str
    colour: Colour
    at: datetime
    note: str | None = None
    items: tuple[Attachment, ...] = ()


@attrs.frozen
class Filter:
    limit: int = field(default=50, minimum=1, maximum=200, message="must be 1 to 200")
    search: str | None = field(default=None, name="q", max_length=20)
    colour: Colour | None = None


def refused(data: Any, cls: type = Post) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read_body(data, cls)
    return caught.value


def test_request_schema_requires_fields_without_default_and_nothing_else():
    """A request reading: fields without a default are required, unknown ones refused."""
    book = SchemaBook()
    book.reference(Attachment, Mode.REQUEST)
    schema = book.components["Attachment"]
    assert schema["required"] == ["url"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["url"] == {
        "type": "string",
        "pattern": HTTP_URL,
        "maxLength": 2048,
        "x-invalid": "must be an http(s) URL",
    }
    assert schema["properties"]["filename"] == {"type": ["string", "null"], "maxLength": 255}
    assert schema["description"] == "A file to send."


def test_response_schema_has_every_field_and_derives_types():
    """A response reading: every field present; enums, datetimes, nested classes derived."""
    book = SchemaBook()
    book.reference(Stored, Mode.RESPONSE)
    stored = book.components["Stored"]
    assert stored["required"] == ["id", "colour", "at", "note", "items"]
    assert stored["properties"]["colour"] == {"enum": ["red", "blue"]}
    assert stored["properties"]["at"] == {"type": "string", "format": "date-time"}
    assert stored["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Attachment"}
    assert book.components["Attachment"]["required"] == ["url", "filename"]


def test_union_list_items_and_item_keywords():
    """``tuple[str | X, ...]`` is an array of oneOf; ``items=`` narrows each item."""
    book = SchemaBook()
    book.reference(Post, Mode.REQUEST)
    post = book.components["Post"]["properties"]
    assert post["files"]["items"]["oneOf"][0] == {"type": "string"}
    assert post["files"]["maxItems"] == 2
    assert post["tags"]["items"] == {"type": "string", "minLength": 1}
    assert post["colour"] == {"enum": ["red", "blue", None]}


def test_page_envelope_schema():
    """``PageOf(X)`` is the one list envelope, ``Page``, with X items."""
    book = SchemaBook()
    assert book.reference(PageOf(Stored), Mode.RESPONSE) == {
        "$ref": "#/components/schemas/StoredPage"
    }
    page = book.components["StoredPage"]
    assert page["allOf"] == [{"$ref": "#/components/schemas/Page"}]
    assert book.components["Page"]["required"] == ["items", "next_cursor"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Stored"}


def test_a_class_read_both_ways_with_different_schemas_is_refused():
    """One class cannot be a request and a response body when the two schemas differ."""
    book = SchemaBook()
    book.reference(Attachment, Mode.REQUEST)
    with pytest.raises(TypeError, match="declare a class for each"):
        book.reference(Attachment, Mode.RESPONSE)


def test_read_body_builds_the_object():
    """Valid JSON becomes the class, nested classes, enums and tuples included."""
    post = read_body(
        {"text": "hi", "files": ["https://a.test/x", {"url": "http://b.test/y"}], "colour": "red"},
        Post,
    )
    assert post.files == ("https://a.test/x", Attachment("http://b.test/y"))
    assert post.colour is Colour.RED
    assert post.tags is UNSET
    assert post.extra == {}


@pytest.mark.parametrize(
    ("data", "field_name", "message"),
    [
        ({"text": 5}, "text", "must be a string or null"),
        ({"text": "x" * 11}, "text", "must be at most 10 characters"),
        ({"text": "x", "priority": 1}, "priority", "unknown field; allowed:"),
        ({"files": [{"url": "ftp://x"}]}, "files[0].url", "must be an http(s) URL"),
        ({"files": [{"url": 5}]}, "files[0].url", "must be an http(s) URL"),
        ({"files": [{"filename": "a"}]}, "files[0].url", "required"),
        ({"files": [5]}, "files[0]", "must be a string or an object"),
        ({"files": ["a", "b", "c"]}, "files", "at most 2 items"),
        ({"text": "x", "colour": "green"}, "colour", "must be one of red, blue"),
        ({"text": "x", "count": True}, "count", "must be a whole number"),
        ({"text": "x", "count": 1.5}, "count", "must be a whole number"),
        ({"text": "x", "count": 6}, "count", "must be at most 5"),
        ({"text": "x", "tags": [""]}, "tags[0]", "must not be empty"),
        ({"text": "x", "extra": []}, "extra", "must be an object"),
        ({}, "text", "give a text or a file"),
    ],
)
def test_read_body_names_the_field_at_fault(data, field_name, message):
    """Each refusal is one InvalidInput whose ``field`` is the path of the value at fault."""
    error = refused(data)
    assert error.details["field"] == field_name
    assert error.message.startswith(f"{field_name}: ")
    assert message in error.message


def test_read_body_refuses_what_is_not_an_object():
    """The whole body must be an object."""
    assert refused([]).message == "must be an object"


def test_what_the_schema_accepts_the_reader_accepts_and_the_other_way():
    """The reader and a real JSON Schema validator agree on the class's schema."""
    book = SchemaBook()
    root = book.reference(Post, Mode.REQUEST)
    document = {"$ref": root["$ref"], "components": {"schemas": book.components}}
    samples = [
        {"text": "ok"},
        {"text": 5},
        {"files": [{"url": "https://x"}], "count": 3},
        {"files": [{"url": "https://x", "size": 1}]},
        {"text": "x", "colour": None, "tags": ["a"]},
        {"text": "x", "count": -1},
    ]
    for sample in samples:
        valid = jsonschema.Draft202012Validator(document).is_valid(sample)
        try:
            read_body(sample, Post)
            accepted = True
        except InvalidInput:
            accepted = False
        assert accepted == valid, sample


def test_read_text_fields_types_text_by_the_field():
    """Query values are typed by their field: digits for an int, aliases by wire name,
    an empty value left out."""
    parsed = read_text_fields({"limit": "20", "q": "ann", "colour": "", "other": "x"}, Filter)
    assert parsed == Filter(limit=20, search="ann", colour=None)
    assert read_text_fields({}, Filter) == Filter()


@pytest.mark.parametrize(
    ("values", "field_name", "message"),
    [
        ({"limit": "0"}, "limit", "must be 1 to 200"),
        ({"limit": "abc"}, "limit", "must be 1 to 200"),
        ({"limit": "-1"}, "limit", "must be 1 to 200"),
        ({"q": "x" * 21}, "q", "must be at most 20 characters"),
        ({"colour": "RED"}, "colour", "must be one of red, blue"),
    ],
)
def test_read_text_fields_names_the_parameter(values, field_name, message):
    """A bad query value is refused naming its parameter."""
    with pytest.raises(InvalidInput) as caught:
        read_text_fields(values, Filter)
    assert caught.value.details["field"] == field_name
    assert message in caught.value.message


def test_datetime_fields_are_read_and_checked():
    """A date-time field takes ISO 8601 and is built as an aware datetime."""

    @attrs.frozen
    class When:
        at: datetime

    assert read_body({"at": "2026-01-31T09:30:00Z"}, When).at == datetime(
        2026, 1, 31, 9, 30, tzinfo=UTC
    )
    with pytest.raises(InvalidInput, match="at: must be a date and time"):
        read_body({"at": "yesterday"}, When)


@attrs.frozen
class Opening:
    at: str = field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", message="must be HH:MM")
    shortcut: str = field(default="/x", pattern=r"^/[a-z0-9_-]+$")
    note: str = field(default="x", pattern=r"\S")


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        ({"at": "18:00"}, True),
        ({"at": "18:00\n"}, False),
        ({"at": "18:00\r\n"}, False),
        ({"at": "\n18:00"}, False),
        ({"at": "\u0661\u0668:\u0660\u0660"}, False),  # Arabic-Indic digits: not JSON Schema's
        ({"at": "18:00", "shortcut": "/hello"}, True),
        ({"at": "18:00", "shortcut": "/hello\n"}, False),
        ({"at": "18:00", "note": "  searched, not anchored  "}, True),
        ({"at": "18:00", "note": " \n "}, False),
    ],
)
def test_a_pattern_means_what_json_schema_says(data, accepted):
    """A ``pattern`` is an ECMA-262 regular expression searched in the value, as clients of
    the OpenAPI document read it: ``$`` is the very end (Python's ``$`` would also match
    before a final line break, letting "18:00" and a line break through), a digit is 0-9,
    and a pattern without anchors matches anywhere in the value."""
    try:
        read_body(data, Opening)
    except InvalidInput as refused:
        assert not accepted, refused.message
        assert refused.details["field"] in data
    else:
        assert accepted, data


@pytest.mark.parametrize(
    ("pattern", "python"),
    [
        (r"^\d{4}-\d{2}$", r"^[0-9]{4}-[0-9]{2}\Z"),
        (r"^[\d:]+$", r"^[0-9:]+\Z"),
        (r"^\w+\W\D$", r"^[A-Za-z0-9_]+[^A-Za-z0-9_][^0-9]\Z"),
        (r"^a\$b[$]$", r"^a\$b[$]\Z"),
        (r"^[^\x00-\x1f\x7f]*$", r"^[^\x00-\x1f\x7f]*\Z"),
        (r"^(a|b$)", r"^(a|b\Z)"),
        (r"^ocr_", r"^ocr_"),
    ],
)
def test_schema_patterns_are_translated_for_python(pattern, python):
    """Only what ECMA-262 and Python read differently changes: ``$`` outside a class, the
    ASCII classes; escaped characters and classes holding ``$`` stay as they are."""
    assert schema_pattern(pattern).pattern == python
