"""The values channels read: the environment, with what admins stored beneath it.

A channel's variable (``TWILIO_AUTH_TOKEN``, ``WEBCHAT_ALLOWED_ORIGINS``...) may be set in the
server's environment (and its ``.env``) or stored through the settings API. The environment
wins, so an operator who pins a value in the deployment is never overridden from the API;
what is stored applies where the environment leaves a variable unset or empty.

- :class:`StoredSettings` is the process's copy of the stored values, one per server
  configuration (``config.stored_settings``). The settings module fills it at start-up and
  again whenever the store's version moves (``replace``), from any thread; secrets arrive
  already opened, so it holds plain text and never shows a value in ``repr``.
- :class:`SettingValues` is what ``config.settings`` answers: a read-only mapping over one
  :class:`Snapshot` of those values and the environment, that says where each value came
  from (``source``). A snapshot never changes, so a parse that reads several variables
  from one :class:`SettingValues` sees them all from the same version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Literal

import attrs

__all__ = ["SettingValues", "Snapshot", "Source", "StoredSettings"]

Source = Literal["environment", "stored"]
"""Where a value came from: the server's environment, or the settings store."""


def _frozen_values(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({name: value for name, value in values.items() if value != ""})


@attrs.frozen(repr=False)
class Snapshot:
    """The stored values as of one version of the settings store.

    :param values: variable name -> plain value (secrets opened); empty values are dropped,
        so an empty stored value is the same as none.
    :param version: the settings store's version these values are from (0: nothing loaded).
    """

    values: Mapping[str, str] = attrs.field(converter=_frozen_values, factory=dict)
    version: int = 0

    def __repr__(self) -> str:  # the names only: values may be secrets
        return f"Snapshot(version={self.version}, names={sorted(self.values)!r})"


EMPTY = Snapshot()


class StoredSettings:
    """The stored values this process knows, replaced whole when the store changes.

    Thread-safe: hooks read it from the channels' threads while the settings module's
    refresher replaces it on the event loop. Readers take the current :class:`Snapshot`,
    which never changes; ``replace`` swaps in a new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = EMPTY

    def __repr__(self) -> str:  # no values: some are secrets
        snapshot = self.snapshot()
        return f"StoredSettings(version={snapshot.version}, stored={len(snapshot.values)})"

    def snapshot(self) -> Snapshot:
        """The values as last replaced (an empty snapshot of version 0 before any)."""
        with self._lock:
            return self._snapshot

    @property
    def version(self) -> int:
        """The settings store's version of the values held (0 before any were loaded)."""
        return self.snapshot().version

    def replace(self, values: Mapping[str, str], version: int) -> bool:
        """Hold ``values`` (name -> plain value, secrets already opened) as the store's
        ``version``.

        A version older than the one held is ignored, so a slow refresh that read the store
        before a newer one landed never takes the values back in time; the same version is
        taken again (the values may be corrected). Channels parse their settings anew on
        their next use (`omnichannel_core.channel_settings.settings_for`).

        :returns: True when the values were taken, False when ``version`` was older.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"a settings version is a whole number, not {version!r}")
        snapshot = Snapshot(values, version)
        for name, value in snapshot.values.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"stored settings are text: {name!r} is {type(value).__name__}")
        with self._lock:
            if version < self._snapshot.version:
                return False
            self._snapshot = snapshot
            return True


class SettingValues(Mapping[str, str]):
    """A channel's view of its variables: the environment's value where it is set and not
    empty, else the stored one. Read-only; only non-empty values are in it, so
    ``settings.get(NAME, "")`` is ``""`` for a variable set nowhere.

    :param environ: the server's environment (``config.environ``).
    :param stored: the stored values, as of one version.
    """

    __slots__ = ("_environ", "_stored")

    def __init__(self, environ: Mapping[str, str], stored: Snapshot = EMPTY) -> None:
        self._environ = environ
        self._stored = stored

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(name)
        if value:
            return value
        return self._stored.values[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return bool(self._environ.get(name)) or name in self._stored.values

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for name, value in self._environ.items():
            if value:
                seen.add(name)
                yield name
        for name in self._stored.values:
            if name not in seen:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:  # no values: some are secrets
        return f"SettingValues(version={self.version}, stored={sorted(self._stored.values)!r})"

    @property
    def version(self) -> int:
        """The settings store's version of the stored values (0: none loaded)."""
        return self._stored.version

    @property
    def snapshot(self) -> Snapshot:
        """The stored values beneath the environment."""
        return self._stored

    def source(self, name: str) -> Source | None:
        """Where ``name``'s value comes from: ``"environment"`` when the environment sets it
        (not empty: it then wins), ``"stored"`` when only the store does, None when neither."""
        if self._environ.get(name):
            return "environment"
        if name in self._stored.values:
            return "stored"
        return None
