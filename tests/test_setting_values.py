"""``omnichannel_core.setting_values`` and ``Config.settings``: the channels' variables, the
environment's value over the one admins stored, each value's source, and the holder a
settings refresher replaces."""

from __future__ import annotations

import threading

import attrs
import pytest

from omnichannel_core.config import Config
from omnichannel_core.setting_values import SettingValues, Snapshot, StoredSettings


def config_with(environ: dict[str, str], stored: dict[str, str], version: int = 1) -> Config:
    config = Config(environ=environ)
    assert config.stored_settings.replace(stored, version)
    return config


def test_a_stored_value_is_used_where_the_environment_leaves_it_unset_or_empty():
    """A variable the environment does not set, or sets to "", takes the stored value."""
    config = config_with({"ACME_EMPTY": ""}, {"ACME_TOKEN": "stored", "ACME_EMPTY": "kept"})
    assert config.settings["ACME_TOKEN"] == "stored"
    assert config.settings.get("ACME_EMPTY") == "kept"
    assert config.settings.source("ACME_TOKEN") == "stored"
    assert config.settings.source("ACME_EMPTY") == "stored"


def test_the_environment_wins_when_it_sets_a_value():
    """An operator's environment variable wins over the stored value, and says so."""
    config = config_with({"ACME_TOKEN": "from-env"}, {"ACME_TOKEN": "stored"})
    assert config.settings["ACME_TOKEN"] == "from-env"
    assert config.settings.source("ACME_TOKEN") == "environment"


def test_a_variable_set_nowhere_is_absent():
    """Neither set nor stored (nor stored empty): not in the mapping, ``get`` gives the
    default, ``source`` None, and ``[]`` raises KeyError."""
    config = config_with({"ACME_BLANK": ""}, {"ACME_STORED_EMPTY": ""})
    for name in ("ACME_NOWHERE", "ACME_BLANK", "ACME_STORED_EMPTY"):
        assert name not in config.settings
        assert config.settings.get(name, "") == ""
        assert config.settings.source(name) is None
        with pytest.raises(KeyError):
            config.settings[name]


def test_the_mapping_holds_every_value_once():
    """Iterating gives each non-empty name once, the environment's and the stored ones."""
    config = config_with({"A": "1", "B": "", "C": "3"}, {"C": "x", "D": "4", "B": "2"})
    assert dict(config.settings) == {"A": "1", "B": "2", "C": "3", "D": "4"}
    assert len(config.settings) == 4


def test_version_is_the_stored_values_version():
    """``settings.version`` is the version the holder was last given; 0 before any."""
    config = Config(environ={})
    assert config.settings.version == 0
    assert config.stored_settings.version == 0
    config.stored_settings.replace({"A": "1"}, 7)
    assert config.settings.version == 7


def test_an_older_version_never_takes_the_values_back():
    """A refresh that read the store before a newer one landed is ignored (False); the same
    version is taken again."""
    holder = StoredSettings()
    assert holder.replace({"A": "new"}, 5)
    assert not holder.replace({"A": "old"}, 4)
    assert holder.snapshot().values == {"A": "new"}
    assert holder.replace({"A": "fixed"}, 5)
    assert holder.snapshot().values == {"A": "fixed"}


@pytest.mark.parametrize("version", [-1, 1.5, "2", True, None])
def test_a_version_is_a_whole_number(version):
    """A version that is not a whole number of 0 or more is refused, and nothing changes."""
    holder = StoredSettings()
    with pytest.raises(ValueError):
        holder.replace({"A": "1"}, version)
    assert holder.snapshot().version == 0


def test_stored_values_are_text():
    """A value that is not a string is refused: the channels parse text."""
    with pytest.raises(TypeError):
        StoredSettings().replace({"A": 1}, 1)  # type: ignore[dict-item]


def test_no_value_appears_in_a_repr():
    """The holder, a snapshot and the mapping show names and versions, never a value."""
    config = config_with({"ACME_ENV": "env-secret-value"}, {"ACME_TOKEN": "stored-secret-value"})
    shown = repr(config.stored_settings) + repr(config.stored_settings.snapshot())
    shown += repr(config.settings) + repr(config)
    assert "secret-value" not in shown
    assert "ACME_TOKEN" in repr(config.settings)


def test_a_snapshot_never_changes_after_a_replace():
    """A ``SettingValues`` reads one snapshot: a replace meanwhile changes the next one,
    not it, so a parse sees every variable from one version."""
    config = config_with({}, {"A": "1", "B": "1"})
    before = config.settings
    config.stored_settings.replace({"A": "2", "B": "2"}, 2)
    assert (before["A"], before["B"], before.version) == ("1", "1", 1)
    assert (config.settings["A"], config.settings["B"]) == ("2", "2")


def test_readers_never_see_half_a_replace():
    """Threads reading while another replaces over and over always see both values of one
    version together."""
    config = config_with({}, {"A": "0", "B": "0"}, 0)
    stop = threading.Event()
    torn: list[tuple[str, str]] = []

    def read() -> None:
        while not stop.is_set():
            values = config.settings
            if values["A"] != values["B"]:
                torn.append((values["A"], values["B"]))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for version in range(1, 2000):
        config.stored_settings.replace({"A": str(version), "B": str(version)}, version)
    stop.set()
    for reader in readers:
        reader.join()
    assert torn == []
    assert config.settings["A"] == "1999"


def test_the_holder_is_not_part_of_a_configs_equality():
    """Two configurations of the same variables are equal whatever each has stored; the
    holder is no field of ``variables()``."""
    first = config_with({"A": "1"}, {"B": "2"})
    second = Config(environ={"A": "1"})
    assert first == second
    assert first.stored_settings is not second.stored_settings
    assert "stored_settings" not in str(Config.variables())


def test_evolve_shares_the_holder():
    """A configuration derived with ``attrs.evolve`` sees the same live stored values (a
    later replace too); one given a holder of its own does not."""
    config = config_with({}, {"A": "1"})
    derived = attrs.evolve(config, port=4000)
    assert derived.stored_settings is config.stored_settings
    config.stored_settings.replace({"A": "2"}, 2)
    assert derived.settings["A"] == "2"
    apart = attrs.evolve(config, stored_settings=StoredSettings())
    assert "A" not in apart.settings


def test_setting_values_over_a_plain_environment():
    """``SettingValues`` works over any mapping and snapshot, as the channels' tests build
    it."""
    values = SettingValues({"A": "env"}, Snapshot({"A": "stored", "B": "b"}, 3))
    assert (values["A"], values["B"], values.version) == ("env", "b", 3)
    assert values.source("B") == "stored"
