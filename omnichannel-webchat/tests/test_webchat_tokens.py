"""Visitor tokens, identity proofs and settings, as functions; through the server in
test_webchat_protocol.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from omnichannel_webchat import tokens
from omnichannel_webchat.identity import verified_address
from omnichannel_webchat.settings import Prechat, WebchatSettings

from omnichannel_core.channel import Config, Forbidden, InvalidInput, Unauthenticated, utcnow

KEY = b"k" * 32


def test_a_token_names_its_visitor_until_it_expires():
    """A token read back gives the address, name and email it was issued with (not verified)
    until its 30 days are over; a second later it is refused as expired."""
    now = utcnow()
    token, _ = tokens.issue("vis_abc", KEY, now, 30, name="Ada", email="ada@example.com")
    read = tokens.read(token, KEY, now + timedelta(days=29))
    assert (read.address, read.name, read.email) == ("vis_abc", "Ada", "ada@example.com")
    assert not read.verified
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.read(token, KEY, now + timedelta(days=30, seconds=1))


def test_a_token_is_due_for_rotation_after_a_day():
    """A token read two days after it was issued is due for a new one; at the moment it was
    issued it is not."""
    now = utcnow()
    token, visitor = tokens.issue("vis_abc", KEY, now - timedelta(days=2), 30)
    assert tokens.read(token, KEY, now).due_for_rotation(now)
    assert not visitor.due_for_rotation(now - timedelta(days=2))


@pytest.mark.parametrize(
    "forged",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature
        lambda token: token.replace("v1.", "v2.", 1),  # version
        lambda token: "v1." + token.split(".")[1][:-2] + "xx." + token.split(".")[2],  # claims
        lambda token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig",  # an agent's JWT's shape
        lambda token: "",
        lambda token: "x" * 5000,
    ],
)
def test_a_forged_or_foreign_token_is_refused(forged):
    """A token with a changed signature, version or claims, a string shaped like an agent's
    JWT, an empty or a 5000-character one: each is Unauthenticated, and the error never
    repeats the genuine token."""
    token, _ = tokens.issue("vis_abc", KEY, utcnow(), 30)
    with pytest.raises(Unauthenticated) as refused:
        tokens.read(forged(token), KEY, utcnow())
    assert token not in refused.value.message


def test_another_servers_key_does_not_read_the_token():
    """A token signed with one key is refused under another: a server with another visitor key
    does not take it."""
    token, _ = tokens.issue("vis_abc", KEY, utcnow(), 30)
    with pytest.raises(Unauthenticated):
        tokens.read(token, b"other" * 8, utcnow())


def test_new_addresses_are_unguessable_and_distinct():
    """A thousand new visitor addresses are all different, each ``vis_`` and at least 24 random
    characters."""
    addresses = {tokens.new_address() for _ in range(1000)}
    assert len(addresses) == 1000
    assert all(address.startswith("vis_") and len(address) >= 28 for address in addresses)


SECRET = b"s" * 32


def proof(user_id: str, secret: bytes = SECRET) -> str:
    return hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()


def test_an_identity_proof_makes_a_verified_address():
    """The site's HMAC-SHA256 of a user id, as hex of either case, makes the verified address
    ``user:<id>``."""
    assert verified_address("u-1", proof("u-1"), (SECRET,)) == "user:u-1"
    assert verified_address("u-1", proof("u-1").upper(), (SECRET,)) == "user:u-1"


def test_during_a_rotation_either_secret_proves_it():
    """With two identity secrets configured (during a rotation), a proof made with either is
    accepted."""
    new = b"n" * 32
    assert verified_address("u-1", proof("u-1", new), (new, SECRET)) == "user:u-1"
    assert verified_address("u-1", proof("u-1"), (new, SECRET)) == "user:u-1"


@pytest.mark.parametrize(
    ("user_id", "user_hash", "secrets", "error"),
    [
        ("u-1", proof("u-2"), (SECRET,), Forbidden),
        ("u-1", "", (SECRET,), Forbidden),
        ("u-1", proof("u-1"), (), Forbidden),
        ("", proof(""), (SECRET,), InvalidInput),
        ("u\n1", proof("u\n1"), (SECRET,), InvalidInput),
        ("u" * 129, proof("u" * 129), (SECRET,), InvalidInput),
    ],
)
def test_a_wrong_proof_is_refused(user_id, user_hash, secrets, error):
    """Another user's proof, an empty one, or no secret configured is Forbidden; an empty user
    id, one with a newline or over 128 characters is InvalidInput."""
    with pytest.raises(error):
        verified_address(user_id, user_hash, secrets)


def settings(tmp_path, **environ: str) -> WebchatSettings:
    return WebchatSettings.from_config(
        Config.from_environ({"OMNICHANNEL_DATA_DIR": str(tmp_path), **environ})
    )


def test_settings_name_what_is_missing_or_wrong_never_a_secret(tmp_path):
    """Without WEBCHAT_ALLOWED_ORIGINS the problem names it; a wildcard origin, a short identity
    secret, a bad colour and an unknown pre-chat mode are each named, and the secret's value
    is neither in the problems nor in the settings' repr."""
    unset = settings(tmp_path)
    assert unset.problems == "missing WEBCHAT_ALLOWED_ORIGINS"
    wrong = settings(
        tmp_path,
        WEBCHAT_ALLOWED_ORIGINS="https://shop.example, *",
        WEBCHAT_IDENTITY_SECRET="short-secret-value",
        WEBCHAT_COLOR="red",
        WEBCHAT_PRECHAT="always",
    )
    problems = wrong.problems
    for name in (
        "WEBCHAT_ALLOWED_ORIGINS",
        "WEBCHAT_IDENTITY_SECRET",
        "WEBCHAT_COLOR",
        "WEBCHAT_PRECHAT",
    ):
        assert name in problems
    assert "short-secret-value" not in problems
    assert "short-secret-value" not in repr(wrong)


def test_settings_read_the_widgets_options(tmp_path):
    """Origins, title, colour (lower-cased), pre-chat mode and upload limit are read, and what
    the widget is sent holds them and no key (no bytes at all)."""
    read = settings(
        tmp_path,
        WEBCHAT_ALLOWED_ORIGINS="https://shop.example,https://www.shop.example",
        WEBCHAT_TITLE="Shop help",
        WEBCHAT_COLOR="#AA3300",
        WEBCHAT_PRECHAT="required",
        WEBCHAT_UPLOAD_MAX_BYTES="1000",
    )
    assert read.origins == ("https://shop.example", "https://www.shop.example")
    assert read.problems == ""
    widget = read.for_widget()
    assert (widget["title"], widget["color"], widget["prechat"]) == (
        "Shop help",
        "#aa3300",
        "required",
    )
    assert read.prechat is Prechat.REQUIRED
    assert widget["upload_max_bytes"] == 1000
    assert not any(isinstance(value, bytes) for value in widget.values())


def test_the_visitor_key_is_derived_from_the_signing_secret_unless_set(tmp_path):
    """Without WEBCHAT_VISITOR_SECRET, two servers with the same OMNICHANNEL_JWT_SECRET derive
    the same visitor key, which is not the signing secret itself; WEBCHAT_VISITOR_SECRET,
    when set, is the key."""
    jwt = {"OMNICHANNEL_JWT_SECRET": "j" * 40}
    one = settings(tmp_path / "a", **jwt)
    two = settings(tmp_path / "b", **jwt)
    assert one.token_key == two.token_key  # the same on every server
    assert one.token_key not in (b"j" * 40, ("j" * 40).encode())
    own = settings(tmp_path, WEBCHAT_VISITOR_SECRET="v" * 40, **jwt)
    assert own.token_key == b"v" * 40
