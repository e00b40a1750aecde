"""The ``WEBCHAT_*`` variables as the channel reads them from ``config.settings``: every one
declared by the ``settings`` hook, the values an admin stored used where the environment
sets none, and a change read at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omnichannel_webchat.channel import WebchatChannel
from omnichannel_webchat.settings import WebchatSettings, parse_settings

from omnichannel_core.channel import Config

SHOP = "https://shop.example.com"
VISITOR_SECRET = "v" * 40


class ReadNames(dict[str, str]):
    """An environment that notes the name of every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)


def test_the_settings_hook_declares_every_variable_the_channel_reads(tmp_path: Path) -> None:
    """What the settings read from ``config.settings`` is exactly what the ``settings`` hook
    declares; the allowed sites are required, the two secrets are secret; every one may be
    stored (the channel connects nowhere)."""
    environ = ReadNames({"WEBCHAT_ALLOWED_ORIGINS": SHOP})
    parse_settings(Config(environ=environ, data_dir=tmp_path))
    declared = asyncio.run(WebchatChannel().settings())
    assert environ.read == {item.name for item in declared}
    assert [item.name for item in declared if item.required] == ["WEBCHAT_ALLOWED_ORIGINS"]
    assert {item.name for item in declared if item.secret} == {
        "WEBCHAT_IDENTITY_SECRET",
        "WEBCHAT_VISITOR_SECRET",
    }
    assert all(item.storable for item in declared)


def test_stored_sites_and_look_are_used_and_the_environment_wins(tmp_path: Path) -> None:
    """The sites and the title an admin stored configure the widget; the environment's
    colour wins over the stored one; a replaced value is read at once."""
    config = Config(
        environ={"WEBCHAT_COLOR": "#000000", "WEBCHAT_VISITOR_SECRET": VISITOR_SECRET},
        data_dir=tmp_path,
    )
    assert WebchatSettings.from_config(config).missing == ("WEBCHAT_ALLOWED_ORIGINS",)
    stored = {"WEBCHAT_ALLOWED_ORIGINS": SHOP, "WEBCHAT_TITLE": "Hi", "WEBCHAT_COLOR": "#ffffff"}
    config.stored_settings.replace(stored, 1)
    settings = WebchatSettings.from_config(config)
    assert settings.configured
    assert (settings.origins, settings.title, settings.color) == ((SHOP,), "Hi", "#000000")
    config.stored_settings.replace({**stored, "WEBCHAT_TITLE": "Hello"}, 2)
    assert WebchatSettings.from_config(config).for_widget()["title"] == "Hello"
