"""Each process's copy of the settings (``omnichannel_core.modules.settings.refresh``): a
version counts as taken only once its values reached the channels, so one whose hand-over
failed is loaded again at the next poll; values left out because the secret key could not
be had are tried again until they open; and the channels never get a value of a variable
that is not storable."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnichannel_core.config import Config
from omnichannel_core.hooktypes import Setting
from omnichannel_core.modules.settings.channel_values import ChannelValues
from omnichannel_core.modules.settings.records import Settings, StoredValue
from omnichannel_core.modules.settings.refresh import Refresher
from omnichannel_core.secret_box import KEY_FILE, SecretBox, generate_key
from omnichannel_core.setting_values import StoredSettings

TOKEN = Setting("ACME_TOKEN", "the API token", secret=True)
API_URL = Setting("ACME_API_URL", "the provider's API", storable=False)
NOTE = Setting("ACME_NOTE", "a note")
SECRET = "acme-token-0123456789abcdefghij"


class Channels:
    names = ["acme"]

    async def declared_settings(self, channel: str, config: Config) -> tuple[Setting, ...]:
        return (TOKEN, API_URL, NOTE)


class Store:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def get(self) -> Settings:
        return self.settings

    async def version(self) -> int:
        return self.settings.version


class Flaky(StoredSettings):
    """Refuses its first ``failures`` replaces, as a hand-over that fails half-way."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def replace(self, values: Mapping[str, str], version: int) -> bool:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("hand-over failed")
        return super().replace(values, version)


def following(refresher: Refresher, until: Any, seconds: float = 5) -> None:
    """Start ``refresher`` (polling every few milliseconds) and wait until ``until()``."""

    async def run() -> None:
        await refresher.start()
        try:
            async with asyncio.timeout(seconds):
                while not until():
                    await asyncio.sleep(0.01)
        finally:
            await refresher.stop()

    asyncio.run(run())


def test_a_version_whose_hand_over_failed_is_taken_again(tmp_path: Path):
    """A hand-over of the stored values that fails leaves the version untaken: the next
    poll loads it again, and the channels get it."""
    config = Config(data_dir=tmp_path)
    store = Store(Settings(version=1, channel_values={"ACME_NOTE": StoredValue("hello")}))
    stored = Flaky(failures=0)
    values = ChannelValues(Channels(), config)  # type: ignore[arg-type]
    refresher = Refresher(store, values, stored, every=0.01)  # type: ignore[arg-type]

    def changed() -> bool:
        if store.settings.version == 1 and stored.version == 1:  # taken at start-up
            stored.failures = 2
            store.settings = Settings(version=2, channel_values={"ACME_NOTE": StoredValue("hi")})
        return stored.version == 2

    following(refresher, changed)
    assert stored.snapshot().values == {"ACME_NOTE": "hi"}
    assert stored.failures == 0


def test_secrets_left_out_for_want_of_the_key_open_once_it_is_back(tmp_path: Path):
    """A key file the server cannot read leaves the sealed values out (the rest is taken);
    the refresher tries again at each poll, without a new version, and the channels get
    them once the file can be read."""
    key = generate_key()
    sealed = SecretBox.of_text([key]).seal(SECRET, "ACME_TOKEN")
    settings = Settings(
        version=1,
        channel_values={
            "ACME_TOKEN": StoredValue(sealed, sealed=True),
            "ACME_NOTE": StoredValue("hello"),
            "ACME_API_URL": StoredValue("https://attacker.example"),
        },
    )
    (tmp_path / KEY_FILE).mkdir()  # unreadable as a file
    stored = StoredSettings()
    values = ChannelValues(Channels(), Config(data_dir=tmp_path))  # type: ignore[arg-type]
    refresher = Refresher(Store(settings), values, stored, every=0.01)  # type: ignore[arg-type]

    def repaired() -> bool:
        if stored.version == 1 and (tmp_path / KEY_FILE).is_dir():
            assert stored.snapshot().values == {"ACME_NOTE": "hello"}
            (tmp_path / KEY_FILE).rmdir()
            (tmp_path / KEY_FILE).write_text(key + "\n")
        return "ACME_TOKEN" in stored.snapshot().values

    following(refresher, repaired)
    assert stored.snapshot().values == {"ACME_TOKEN": SECRET, "ACME_NOTE": "hello"}
