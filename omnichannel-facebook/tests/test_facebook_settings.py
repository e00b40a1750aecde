"""The FACEBOOK_* variables as the channel reads them: defaults, what is missing, what is
unusable, and no secret in a repr or a message."""

from __future__ import annotations

import asyncio

import pytest
from omnichannel_facebook.channel import FacebookChannel
from omnichannel_facebook.media import media_hosts
from omnichannel_facebook.settings import (
    DEFAULT_GRAPH_API_BASE_URL,
    DEFAULT_GRAPH_API_VERSION,
    FacebookSettings,
    parse_settings,
)

from omnichannel_core.channel import (
    ChannelUnavailable,
    Config,
)

COMPLETE = {
    "FACEBOOK_PAGE_ACCESS_TOKEN": "EAAGpagetoken",
    "FACEBOOK_APP_SECRET": "app-secret-value",
    "FACEBOOK_VERIFY_TOKEN": "verify-token-value",
}


def settings_of(environ: dict[str, str]) -> FacebookSettings:
    return parse_settings(Config(environ=environ))


def test_defaults_point_at_facebook_with_a_current_version():
    """Without the optional variables: graph.facebook.com, version v21.0, configured."""
    settings = settings_of(COMPLETE)
    assert settings.configured
    assert settings.graph_api_base_url == DEFAULT_GRAPH_API_BASE_URL == "https://graph.facebook.com"
    assert settings.graph_api_version == DEFAULT_GRAPH_API_VERSION == "v21.0"


def test_base_url_loses_its_trailing_slash_and_version_is_taken():
    """FACEBOOK_GRAPH_API_BASE_URL and FACEBOOK_GRAPH_API_VERSION are read as given."""
    settings = settings_of(
        {
            **COMPLETE,
            "FACEBOOK_GRAPH_API_BASE_URL": "http://127.0.0.1:9999/",
            "FACEBOOK_GRAPH_API_VERSION": "v19.0",
        }
    )
    assert settings.graph_api_base_url == "http://127.0.0.1:9999"
    assert settings.graph_api_version == "v19.0"


def test_missing_variables_are_named_in_order():
    """Nothing set: the three required variables are missing, in the order to set them."""
    settings = settings_of({})
    assert not settings.configured
    assert settings.missing == (
        "FACEBOOK_PAGE_ACCESS_TOKEN",
        "FACEBOOK_APP_SECRET",
        "FACEBOOK_VERIFY_TOKEN",
    )
    assert settings.problems.startswith("missing FACEBOOK_PAGE_ACCESS_TOKEN, FACEBOOK_APP_SECRET")


def test_blank_values_count_as_missing():
    """A variable set to spaces is missing, not a token of spaces."""
    settings = settings_of({**COMPLETE, "FACEBOOK_APP_SECRET": "   "})
    assert settings.missing == ("FACEBOOK_APP_SECRET",)
    assert not settings.can_call_graph


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FACEBOOK_GRAPH_API_VERSION", "21"),
        ("FACEBOOK_GRAPH_API_VERSION", "v21"),
        ("FACEBOOK_GRAPH_API_BASE_URL", "graph.facebook.com"),
    ],
)
def test_unusable_optional_values_are_reported(name, value):
    """A version not like v21.0 or a base URL without a scheme: not configured, naming it."""
    settings = settings_of({**COMPLETE, name: value})
    assert not settings.configured
    assert not settings.can_call_graph
    assert name in settings.problems


def test_secrets_stay_out_of_repr_and_messages():
    """repr and the not-configured message name variables, never their values."""
    settings = settings_of({"FACEBOOK_PAGE_ACCESS_TOKEN": "EAAGpagetoken"})
    assert "EAAGpagetoken" not in repr(settings)
    with pytest.raises(ChannelUnavailable) as raised:
        settings.require_graph("facebook")
    assert "FACEBOOK_APP_SECRET" in raised.value.message
    assert "EAAGpagetoken" not in raised.value.message


def test_each_route_needs_only_its_own_secret():
    """Webhooks need the app secret, the handshake the verify token: each is refused (503)
    by name when absent, and given when present."""
    settings = settings_of({"FACEBOOK_APP_SECRET": "s"})
    assert settings.require_app_secret("facebook") == "s"
    with pytest.raises(ChannelUnavailable, match="FACEBOOK_VERIFY_TOKEN"):
        settings.require_verify_token("facebook")
    with pytest.raises(ChannelUnavailable, match="FACEBOOK_APP_SECRET"):
        settings_of({}).require_app_secret("facebook")


def test_settings_are_parsed_once_per_config():
    """from_config returns the same object for the same Config."""
    config = Config(environ=COMPLETE)
    assert FacebookSettings.from_config(config) is FacebookSettings.from_config(config)


class ReadNames(dict[str, str]):
    """An environment that notes the name of every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)


def test_the_settings_hook_declares_every_variable_the_channel_reads():
    """What the settings and the media fetch read from ``config.settings`` is exactly what
    the ``settings`` hook declares; the token, the app secret and the verify token are its
    secrets, and required; where it connects (the Graph API, the media hosts) is the
    environment's only."""
    environ = ReadNames(dict(COMPLETE))
    config = Config(environ=environ)
    parse_settings(config)
    media_hosts(config)
    declared = asyncio.run(FacebookChannel().settings())
    assert environ.read == {item.name for item in declared}
    secret = [item.name for item in declared if item.secret]
    assert secret == [item.name for item in declared if item.required] == list(COMPLETE)
    assert [item.name for item in declared if not item.storable] == [
        "FACEBOOK_GRAPH_API_BASE_URL",
        "FACEBOOK_MEDIA_HOSTS",
    ]


def test_stored_values_are_read_and_the_environment_wins():
    """Values an admin stored configure the channel where the environment sets none; a
    replaced one is read at once; the environment's value wins over a stored one."""
    config = Config(environ={"FACEBOOK_VERIFY_TOKEN": "from-env"})
    config.stored_settings.replace({**COMPLETE, "FACEBOOK_MEDIA_HOSTS": "cdn.stored.test"}, 1)
    settings = FacebookSettings.from_config(config)
    assert settings.configured
    assert settings.page_access_token == COMPLETE["FACEBOOK_PAGE_ACCESS_TOKEN"]
    assert settings.verify_token == "from-env"
    assert media_hosts(config) == ("cdn.stored.test",)
    config.stored_settings.replace({**COMPLETE, "FACEBOOK_APP_SECRET": "rotated"}, 2)
    assert FacebookSettings.from_config(config).app_secret == "rotated"
