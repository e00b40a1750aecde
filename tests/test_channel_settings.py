"""``omnichannel_core.channel_settings``: settings parsed once per Config object and version
of its stored settings (a stored value used where the environment is unset, the
environment winning, a replace parsed anew), and the ``configured``/``problems`` a channel's
settings class gets from its missing and invalid."""

from __future__ import annotations

import threading

import attrs

from omnichannel_core.channel_settings import CONFIGS_KEPT, ChannelSettings, settings_for
from omnichannel_core.config import Config


@attrs.frozen
class ExampleSettings(ChannelSettings):
    token: str | None = attrs.field(repr=False)
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


class CountingParse:
    """A parse function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, config: Config) -> ExampleSettings:
        self.calls += 1
        token = config.settings.get("EXAMPLE_TOKEN")
        return ExampleSettings(token=token, missing=() if token else ("EXAMPLE_TOKEN",))


def test_settings_are_parsed_once_per_config_object():
    """The same Config object gives the same settings object and parse runs once."""
    parse = CountingParse()
    config = Config(environ={"EXAMPLE_TOKEN": "t"})
    first = settings_for(config, parse)
    assert settings_for(config, parse) is first
    assert first.token == "t"
    assert parse.calls == 1


def test_an_equal_but_distinct_config_is_parsed_anew():
    """Another Config object, even an equal one, is parsed again (the cache is by identity,
    never by value: a Config's environ is not hashable, and identity is what a server
    keeps)."""
    parse = CountingParse()
    first = Config(environ={"EXAMPLE_TOKEN": "t"})
    second = Config(environ={"EXAMPLE_TOKEN": "t"})
    assert first == second
    assert settings_for(first, parse) is not settings_for(second, parse)
    assert parse.calls == 2


def test_each_parse_function_has_its_own_cache():
    """Two channels reading the same Config each get their own settings."""
    config = Config(environ={"EXAMPLE_TOKEN": "t"})
    assert settings_for(config, CountingParse()) is not settings_for(config, CountingParse())
    assert settings_for(config, lambda _: "other") == "other"


def test_the_oldest_config_is_dropped_beyond_the_limit():
    """Only CONFIGS_KEPT configurations are kept per parse function: the first one is parsed
    again once as many newer ones were read; the newest are still cached."""
    parse = CountingParse()
    configs = [Config(environ={"EXAMPLE_TOKEN": str(n)}) for n in range(CONFIGS_KEPT + 1)]
    for config in configs:
        settings_for(config, parse)
    assert parse.calls == CONFIGS_KEPT + 1
    settings_for(configs[-1], parse)
    assert parse.calls == CONFIGS_KEPT + 1
    assert settings_for(configs[0], parse).token == "0"
    assert parse.calls == CONFIGS_KEPT + 2


def test_threads_reading_one_config_get_equal_settings():
    """Hook threads reading the settings at once all get the config's settings."""
    parse = CountingParse()
    config = Config(environ={"EXAMPLE_TOKEN": "shared"})
    seen: list[ExampleSettings] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        seen.append(settings_for(config, parse))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert {settings.token for settings in seen} == {"shared"}
    assert settings_for(config, parse) is settings_for(config, parse)


def test_a_stored_value_is_read_where_the_environment_is_unset():
    """A variable only stored is what the parse reads, through ``config.settings``."""
    parse = CountingParse()
    config = Config(environ={})
    assert not settings_for(config, parse).configured
    config.stored_settings.replace({"EXAMPLE_TOKEN": "stored"}, 1)
    assert settings_for(config, parse).token == "stored"


def test_the_environment_wins_over_a_stored_value():
    """A variable set in the environment is read from it, whatever is stored."""
    parse = CountingParse()
    config = Config(environ={"EXAMPLE_TOKEN": "env"})
    config.stored_settings.replace({"EXAMPLE_TOKEN": "stored"}, 1)
    assert settings_for(config, parse).token == "env"


def test_a_replace_makes_the_next_read_parse_anew():
    """The settings stay cached while the stored values stay; after a replace the next read
    parses again (once) and sees the new value, with no new Config."""
    parse = CountingParse()
    config = Config(environ={})
    config.stored_settings.replace({"EXAMPLE_TOKEN": "one"}, 1)
    first = settings_for(config, parse)
    assert settings_for(config, parse) is first
    config.stored_settings.replace({"EXAMPLE_TOKEN": "two"}, 2)
    second = settings_for(config, parse)
    assert (first.token, second.token) == ("one", "two")
    assert settings_for(config, parse) is second
    assert parse.calls == 2


def test_replaces_keep_one_entry_per_config():
    """Many versions of one configuration's stored values replace its entry rather than
    push the other configurations out of the cache."""
    parse = CountingParse()
    others = [Config(environ={"EXAMPLE_TOKEN": str(n)}) for n in range(CONFIGS_KEPT - 1)]
    for config in others:
        settings_for(config, parse)
    changing = Config(environ={})
    for version in range(1, CONFIGS_KEPT * 3):
        changing.stored_settings.replace({"EXAMPLE_TOKEN": f"v{version}"}, version)
        assert settings_for(changing, parse).token == f"v{version}"
    calls = parse.calls
    for config in others:
        settings_for(config, parse)
    assert parse.calls == calls


def test_configured_when_nothing_is_missing_or_invalid():
    """No missing and no invalid variable: configured, and problems is empty."""
    settings = ExampleSettings(token="t")
    assert settings.configured
    assert settings.problems == ""


def test_problems_name_the_missing_variables_then_the_invalid_ones():
    """Missing variables come first, in the class's order, then each invalid sentence; any
    of them makes the settings not configured."""
    settings = ExampleSettings(
        token=None,
        missing=("EXAMPLE_TOKEN", "EXAMPLE_ID"),
        invalid=("EXAMPLE_URL must start with https://",),
    )
    assert not settings.configured
    assert settings.problems == (
        "missing EXAMPLE_TOKEN, EXAMPLE_ID; EXAMPLE_URL must start with https://"
    )
    only_invalid = ExampleSettings(token="t", invalid=("EXAMPLE_URL must start with https://",))
    assert not only_invalid.configured
    assert only_invalid.problems == "EXAMPLE_URL must start with https://"


def test_the_mixin_adds_no_instance_state():
    """The mixin has no slots of its own, so an attrs class using it stays slotted and
    frozen."""
    settings = ExampleSettings(token="t")
    assert not hasattr(settings, "__dict__")
    assert ChannelSettings.__slots__ == ()
