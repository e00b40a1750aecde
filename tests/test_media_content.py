"""What a media item is kept as: its type checked against its bytes and the allowed types,
its filename made safe, and the media settings read from the environment."""

from __future__ import annotations

import pytest

from omnichannel_core.config import DEFAULT_MEDIA_TYPES, Config
from omnichannel_core.errors import ConfigError, UnsupportedMediaType
from omnichannel_core.modules.media.content import (
    checked_type,
    content_disposition,
    is_allowed,
    normal_type,
    safe_filename,
    sniff,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 32
HTML = b"<!doctype html><script>alert(1)</script>"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (HEIC, "image/heic"),
        (PDF, "application/pdf"),
        (b"BM\x00\x00", "image/bmp"),
        (b"II*\x00\x08", "image/tiff"),
        (HTML, None),
        (b"", None),
        (b"PK\x03\x04", None),
    ],
)
def test_sniff_reads_pictures_and_pdfs_by_their_first_bytes(content, expected):
    """The common pictures and PDF are told by their magic numbers; anything else is not
    guessed (a zip, HTML, nothing at all)."""
    assert sniff(content) == expected


@pytest.mark.parametrize(
    ("declared", "content", "kept"),
    [
        ("image/png", PNG, "image/png"),  # as declared, and the bytes agree
        ("image/jpeg", PNG, "image/png"),  # a picture of another kind: what the bytes are
        ("IMAGE/PNG; name=a.png", PNG, "image/png"),  # parameters and case do not count
        ("image/png", HTML, "application/octet-stream"),  # claims a picture, is not one
        ("application/pdf", b"not a pdf", "application/octet-stream"),
        ("image/gif", PDF, "application/pdf"),  # a PDF is a PDF, whatever it claims
        (None, JPEG, "image/jpeg"),  # declared as nothing: what the bytes are
        ("application/octet-stream", PDF, "application/pdf"),
        (None, b"\x00\x01", "application/octet-stream"),
        ("not a type", b"\x00", "application/octet-stream"),
        ("text/plain", b"hello", "text/plain"),  # not a kind bytes can confirm: as declared
        ("audio/ogg", b"OggS", "audio/ogg"),
        ("text/calendar", b"BEGIN:VCALENDAR", "text/calendar"),
    ],
)
def test_a_type_is_checked_against_the_bytes(declared, content, kept):
    """A declared picture or PDF is kept as what its bytes are, or as a download
    (application/octet-stream) when they are neither; an undeclared item as what its bytes
    are; other types as declared."""
    assert checked_type(declared, content, DEFAULT_MEDIA_TYPES) == kept


def test_a_type_not_allowed_is_refused_naming_it():
    """A type outside the allowed list is refused with 415's error, naming the type and the
    setting; one whose bytes turned it into a download is refused once downloads are not
    allowed either."""
    with pytest.raises(UnsupportedMediaType) as refused:
        checked_type("text/html", HTML, DEFAULT_MEDIA_TYPES)
    assert "text/html" in refused.value.message
    assert "OMNICHANNEL_MEDIA_TYPES" in refused.value.message
    with pytest.raises(UnsupportedMediaType) as disguised:
        checked_type("image/png", HTML, ("image/*",))
    assert "application/octet-stream (declared image/png)" in disguised.value.message
    assert checked_type("image/svg+xml", b"<svg/>", ("image/*", "application/octet-stream")) == (
        "application/octet-stream"
    )


def test_allowed_types_take_a_family_wildcard():
    """``audio/*`` allows every audio type, and only those."""
    assert is_allowed("audio/ogg", ("audio/*",))
    assert is_allowed("image/png", ("image/png",))
    assert not is_allowed("image/png", ("image/jpeg", "audio/*"))
    assert not is_allowed("video/mp4", ())


def test_normal_type_drops_parameters():
    assert normal_type("Text/Plain; charset=UTF-8") == "text/plain"
    assert normal_type("") == normal_type(None) == "application/octet-stream"


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\photo.jpg", "photo.jpg"),
        ('a"b\r\nc.txt', "ab  c.txt"),
        ("résumé.pdf", "résumé.pdf"),
        ("..", None),
        ("", None),
        (None, None),
        ("x" * 300 + ".docx", "x" * 195 + ".docx"),
    ],
)
def test_filenames_are_made_safe(given, safe):
    """A filename keeps its last path part, loses quotes and control characters, and is cut
    to 200 characters with its extension kept."""
    assert safe_filename(given) == safe


def test_content_disposition_is_an_attachment_with_both_filename_forms():
    """Always a download; a name beyond ASCII is given exactly as ``filename*`` and
    approximately as ``filename``."""
    assert content_disposition("photo.png", "x") == 'attachment; filename="photo.png"'
    assert content_disposition(None, "msg_1-0") == 'attachment; filename="msg_1-0"'
    value = content_disposition("résumé.pdf", "x")
    assert value == "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"


def test_media_settings_have_defaults_and_refuse_nonsense(tmp_path):
    """The store defaults to a folder under the data dir; 25 MB per item; the default types;
    private addresses refused. A malformed value stops start-up naming its variable."""
    config = Config.from_environ({"OMNICHANNEL_DATA_DIR": str(tmp_path)}, dotenv=None)
    assert config.media_store == str(tmp_path / "media")
    assert config.media_max_bytes == 25 * 1024 * 1024
    assert config.media_types == DEFAULT_MEDIA_TYPES
    assert config.media_fetch_private is False
    configured = Config.from_environ(
        {
            "OMNICHANNEL_MEDIA_STORE": "gs://my-bucket/media",
            "OMNICHANNEL_MEDIA_TYPES": "image/*, Application/PDF",
            "OMNICHANNEL_MEDIA_MAX_BYTES": "2048",
            "OMNICHANNEL_MEDIA_FETCH_PRIVATE": "1",
        },
        dotenv=None,
    )
    assert configured.media_store == "gs://my-bucket/media"
    assert configured.media_types == ("image/*", "application/pdf")
    assert configured.media_max_bytes == 2048
    assert configured.media_fetch_private is True
    for variable, value in [
        ("OMNICHANNEL_MEDIA_STORE", "s3://bucket"),
        ("OMNICHANNEL_MEDIA_STORE", "gs://"),
        ("OMNICHANNEL_MEDIA_TYPES", "images"),
        ("OMNICHANNEL_MEDIA_MAX_BYTES", "lots"),
    ]:
        with pytest.raises(ConfigError) as refused:
            Config.from_environ({variable: value}, dotenv=None)
        assert refused.value.message.startswith(variable)
