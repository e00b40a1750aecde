"""The channels' variables as the settings module keeps them
(``omnichannel_core.modules.settings.channel_values``) and ``omnichannel settings
rotate-key``: which variables may be stored at all (never where a channel connects), the
values refused (control characters), one variable two channels declare (as strict as the
strictest), secrets sealed bound to their names, what the channels get and what they never
get (a value of a variable that is not storable, a secret stored unsealed), and a rotation
that seals again what is not current and seals the plain values of variables now secret.
The settings API around them: tests/test_settings_api.py."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from omnichannel_core.config import Config
from omnichannel_core.errors import ChannelFailed, ConfigError, InvalidInput
from omnichannel_core.hooktypes import Setting
from omnichannel_core.modules.settings.channel_values import ChannelValues, merged
from omnichannel_core.modules.settings.commands import rotate_key
from omnichannel_core.modules.settings.records import Settings, StoredValue
from omnichannel_core.modules.settings.store import SettingsStore, settings_store_spec
from omnichannel_core.secret_box import KEY_FILE, SecretBox, generate_key
from omnichannel_core.testing.stores import run_store

TOKEN = Setting("ACME_TOKEN", "the API token", secret=True, required=True)
API_URL = Setting("ACME_API_URL", "the provider's API", storable=False)
NOTE = Setting("ACME_NOTE", "a note")
LONG_SECRET = "acme-token-0123456789abcdefghij"


class Channels:
    """The loaded channels' face, as far as the settings module asks it."""

    def __init__(self, declared: Mapping[str, list[Setting]]) -> None:
        self.declared = dict(declared)

    @property
    def names(self) -> list[str]:
        return list(self.declared)

    async def declared_settings(self, channel: str, config: Config) -> tuple[Setting, ...]:
        if channel == "broken":
            raise ChannelFailed("channel 'broken' settings failed", channel=channel)
        return tuple(self.declared[channel])


def values_of(tmp_path: Path, declared: Mapping[str, list[Setting]], **environ: str) -> Any:
    config = Config(data_dir=tmp_path, secret_keys=(generate_key(),), environ=environ)
    return ChannelValues(Channels(declared), config)  # type: ignore[arg-type]


def test_one_variable_two_channels_declare_is_as_strict_as_the_strictest():
    """A name two channels declare is one variable: secret when either says so, storable
    only when both do, required when either does."""
    variables = merged(
        {
            "sms": [Setting("ACME_SHARED", "plain here"), API_URL],
            "whatsapp": [
                Setting("ACME_SHARED", "secret there", secret=True),
                attrs.evolve(API_URL, storable=True, required=True),
            ],
        }
    )
    assert (variables["ACME_SHARED"].secret, variables["ACME_SHARED"].storable) == (True, True)
    assert variables["ACME_SHARED"].description == "plain here"
    assert (variables["ACME_API_URL"].storable, variables["ACME_API_URL"].required) == (
        False,
        True,
    )


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({"ACME_API_URL": "https://attacker.example"}, "environment only"),
        ({"ACME_TOKEN": "two\nlines"}, "control characters"),
        ({"ACME_NOTE": "a\rb"}, "control characters"),
        ({"ACME_NOTE": "nul\x00"}, "control characters"),
        ({"ACME_NOTE": "\x1b[31mred"}, "control characters"),
        ({"ACME_NOTE": "del\x7f"}, "control characters"),
        ({"ACME_NOTE": "x" * 4097}, "at most 4096"),
        ({"ACME_NOTE": 5}, "a string or null"),
        ({"ACME_OTHER": "x"}, "no loaded channel declares"),
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_naming_the_variable(tmp_path, given, refused):
    """A variable that decides where a channel connects is never stored (the refusal says
    why); nor is a value with a control character (a line break would start another header
    or command line), an over-long one, one of another type, or one of a variable no loaded
    channel declares."""
    values = values_of(tmp_path, {"acme": [TOKEN, API_URL, NOTE]})
    declared = asyncio.run(values.by_name())
    with pytest.raises(InvalidInput) as caught:
        values.checked(given, declared)
    (name,) = given
    assert caught.value.details["field"] == f"channels.{name}"
    assert refused in caught.value.message


def test_storable_values_a_tab_and_removals_are_taken(tmp_path):
    """A storable variable takes one line (a tab included); null removes any stored value,
    a variable that is not storable's too."""
    values = values_of(tmp_path, {"acme": [TOKEN, API_URL, NOTE]})
    given = {"ACME_NOTE": "a\tb", "ACME_TOKEN": LONG_SECRET, "ACME_API_URL": None}
    assert values.checked(given, asyncio.run(values.by_name())) == given


def test_a_secret_is_sealed_bound_to_its_name(tmp_path):
    """A secret is stored sealed, and opens as its own variable only: copied onto another
    name in the store, it does not open there."""
    values = values_of(tmp_path, {"acme": [TOKEN, Setting("ACME_OTHER", "x", secret=True)]})
    stored = values.sealed(TOKEN, LONG_SECRET)
    assert stored.sealed and LONG_SECRET not in stored.value
    assert values.open(TOKEN, stored) == LONG_SECRET
    declared = asyncio.run(values.by_name())
    opened = values.open_all({"ACME_TOKEN": stored, "ACME_OTHER": stored}, declared)
    assert opened.values == {"ACME_TOKEN": LONG_SECRET}
    assert opened.unreadable == ("ACME_OTHER",)
    assert values.sealed(NOTE, "plain") == StoredValue("plain", sealed=False)


def test_the_channels_get_only_what_may_be_stored_and_opens(tmp_path):
    """The channels get the stored values of storable variables a loaded channel declares.
    Left out: a value of a variable that is not storable (stored before it was declared
    so: named, never used), a secret stored unsealed (named), a value no loaded channel
    declares (quietly: its channel may come back)."""
    values = values_of(tmp_path, {"acme": [TOKEN, API_URL, NOTE], "broken": []})
    stored = {
        "ACME_API_URL": StoredValue("https://attacker.example"),
        "ACME_TOKEN": StoredValue(LONG_SECRET),  # secret, yet plain: not the channel's
        "ACME_NOTE": StoredValue("kept"),
        "GONE_CHANNEL_TOKEN": StoredValue("x"),
    }
    opened = values.open_all(stored, asyncio.run(values.by_name()))
    assert opened.values == {"ACME_NOTE": "kept"}
    assert opened.ignored == ("ACME_API_URL",)
    assert opened.unreadable == ("ACME_TOKEN",)
    assert opened.key_problem is None


def test_variables_are_shown_with_where_they_come_from_and_whether_storable(tmp_path):
    """``GET /api/settings`` shows each variable with ``storable``; one that is not shows
    the environment's value, and a value stored before as not used (no source, a problem
    saying why); a secret stored unsealed shows no value and a problem naming rotate-key.
    A name two channels declare is masked under both when either says it is secret."""
    shared = Setting("ACME_SHARED", "shared")
    values = values_of(
        tmp_path,
        {"acme": [TOKEN, API_URL, NOTE, shared], "other": [attrs.evolve(shared, secret=True)]},
        ACME_API_URL="https://api.acme.example",
    )
    stored = {
        "ACME_API_URL": StoredValue("https://attacker.example"),
        "ACME_TOKEN": StoredValue(LONG_SECRET),
        "ACME_SHARED": values.sealed(attrs.evolve(shared, secret=True), LONG_SECRET),
    }
    channels = {c.channel: c for c in asyncio.run(values.shown_all(stored))}
    shown = {v.name: v for v in channels["acme"].variables}
    assert (shown["ACME_API_URL"].storable, shown["ACME_API_URL"].source) == (False, "environment")
    assert shown["ACME_API_URL"].value == "https://api.acme.example"
    assert shown["ACME_NOTE"].storable
    assert (shown["ACME_TOKEN"].value, shown["ACME_TOKEN"].source) == (None, "stored")
    assert "rotate-key" in (shown["ACME_TOKEN"].problem or "")
    assert shown["ACME_SHARED"].value == "••••" + LONG_SECRET[-4:]
    assert channels["other"].variables[0].value == "••••" + LONG_SECRET[-4:]

    unpinned = values_of(tmp_path, {"acme": [API_URL]})
    (variable,) = asyncio.run(unpinned.shown_all(stored))[0].variables
    assert (variable.value, variable.source) == (None, None)
    assert "environment only" in (variable.problem or "")
    assert "remove it" in (variable.problem or "")


def test_a_key_file_that_cannot_be_read_leaves_secrets_out_until_it_can(tmp_path):
    """On one machine, a key file the server cannot read (here, a folder in its place)
    leaves the sealed values out and says why (the refresher tries again), refuses to
    store a secret with a 400 naming it, and opens them again once the file is back."""
    key = generate_key()
    sealer = SecretBox.of_text([key])
    config = Config(data_dir=tmp_path)
    values = ChannelValues(Channels({"acme": [TOKEN]}), config)  # type: ignore[arg-type]
    (tmp_path / KEY_FILE).mkdir()
    stored = {"ACME_TOKEN": StoredValue(sealer.seal(LONG_SECRET, "ACME_TOKEN"), sealed=True)}
    declared = asyncio.run(values.by_name())
    opened = values.open_all(stored, declared)
    assert (opened.values, opened.unreadable) == ({}, ("ACME_TOKEN",))
    assert KEY_FILE in (opened.key_problem or "")
    with pytest.raises(InvalidInput) as refused:
        values.sealed(TOKEN, LONG_SECRET)
    assert refused.value.details["field"] == "channels.ACME_TOKEN"
    assert "OMNICHANNEL_SECRET_KEY" in refused.value.message

    (tmp_path / KEY_FILE).rmdir()
    (tmp_path / KEY_FILE).write_text(key + "\n")
    assert values.open_all(stored, declared).values == {"ACME_TOKEN": LONG_SECRET}


# rotate-key ---------------------------------------------------------------------------


def rotation(
    database: Any,
    tmp_path: Path,
    declared: list[Setting],
    stored: dict[str, StoredValue],
    keys: str,
) -> Settings:
    """Store ``stored``, run ``rotate-key`` with the key ring ``keys`` and a channel that
    declares ``declared``: the settings after."""
    config = Config(data_dir=tmp_path, secret_keys=tuple(keys.split(",")))
    values = ChannelValues(Channels({"acme": declared}), config)  # type: ignore[arg-type]

    async def scenario(store: SettingsStore) -> Settings:
        await store.change(lambda settings: (Settings(channel_values=stored), None), None)
        command = rotate_key(store, values)
        await command.run(argparse.Namespace())
        return await store.get()

    return run_store(settings_store_spec(), database, scenario)


def test_rotate_key_seals_again_and_seals_the_plain_values_of_variables_now_secret(
    sqlite_database, tmp_path, capsys
):
    """A secret sealed with the old key is sealed again with the new one, bound to its
    name; a value stored plain of a variable a channel now declares secret is sealed; a
    plain value of a variable that is not secret stays plain. Each then opens as its own
    variable with the new key alone."""
    old, new = generate_key(), generate_key()
    now_secret = Setting("ACME_NOTE", "now a secret", secret=True)
    stored = {
        "ACME_TOKEN": StoredValue(SecretBox.of_text([old]).seal(LONG_SECRET, "ACME_TOKEN"), True),
        "ACME_NOTE": StoredValue("plain-until-now"),
        "ACME_PLAIN": StoredValue("stays plain"),
    }
    declared = [TOKEN, now_secret, Setting("ACME_PLAIN", "plain")]
    after = rotation(sqlite_database, tmp_path, declared, stored, f"{new},{old}")
    printed = capsys.readouterr().out
    assert "ACME_TOKEN" in printed and "ACME_NOTE" in printed
    box = SecretBox.of_text([new])
    values = after.channel_values
    assert values["ACME_PLAIN"] == StoredValue("stays plain")
    assert values["ACME_NOTE"].sealed and values["ACME_TOKEN"].sealed
    assert box.open(values["ACME_NOTE"].value, "ACME_NOTE") == "plain-until-now"
    assert box.open(values["ACME_TOKEN"].value, "ACME_TOKEN") == LONG_SECRET
    assert box.current(values["ACME_TOKEN"].value)


def test_rotate_key_refuses_a_secret_moved_to_another_name(sqlite_database, tmp_path):
    """A sealed value that opens with no key of the ring under its own name (copied there
    from another variable) stops the rotation, naming it, and nothing is changed."""
    key = generate_key()
    other = SecretBox.of_text([key]).seal(LONG_SECRET, "ACME_OTHER")
    stored = {"ACME_TOKEN": StoredValue(other, True)}
    with pytest.raises(ConfigError, match="ACME_TOKEN"):
        rotation(sqlite_database, tmp_path, [TOKEN], stored, f"{generate_key()},{key}")
