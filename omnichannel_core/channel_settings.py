"""A channel's settings: parsed once per server configuration and version of the stored
settings, and what is wrong with them.

A channel reads its variables from ``config.settings`` (the environment over the values
admins stored, `omnichannel_core.setting_values`) on every hook call. Parsing them each
time would repeat the work (and any validation) per request, so :func:`settings_for` keeps
the parsed settings per :class:`~omnichannel_core.config.Config` object, and parses anew
once the stored values were replaced (``config.stored_settings.replace``): a credential
changed through the API is used by the next call, in every process, without a restart. The
cache holds the ``Config`` itself, so its identity (the key) cannot be reused by another
object while the entry lives; one entry per configuration, a few configurations per
channel (tests build many), the oldest dropped first.

:class:`ChannelSettings` is the small base every channel's settings class shares: the
variables that are ``missing``, those set to something ``invalid``, and from them
``configured`` and a one-line ``problems`` for the health report and for errors. It
reports names and sentences, never values, so no secret reaches a log through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

from omnichannel_core.config import Config
from omnichannel_core.setting_values import SettingValues, Snapshot, StoredSettings

__all__ = ["CONFIGS_KEPT", "ChannelSettings", "SettingValues", "StoredSettings", "settings_for"]

CONFIGS_KEPT = 8
"""How many configurations' settings are kept per parse function."""

Settings = TypeVar("Settings")

_caches: dict[Callable[[Config], object], dict[int, tuple[Config, Snapshot, object]]] = {}
_lock = threading.Lock()  # guards _caches; never held while parsing


def settings_for(config: Config, parse: Callable[[Config], Settings]) -> Settings:
    """``parse(config)``, parsed on first use and then cached for that ``Config`` object
    and version of its stored settings.

    :param config: the server's configuration, as passed to every hook.
    :param parse: the channel's parse function (one cache per function, so channels never
        see each other's settings); it reads ``config.settings`` and must not keep state of
        its own.
    :returns: the same settings object for the same ``Config`` object while its stored
        settings are not replaced; after a ``replace``, or for another ``Config`` (even an
        equal one), the settings are parsed anew.
    """
    stored = config.stored_settings.snapshot()
    with _lock:
        cache = _caches.setdefault(parse, {})
        cached = cache.get(id(config))
        if cached is not None and cached[0] is config and cached[1] is stored:
            return cast(Settings, cached[2])  # stored by this very parse
    settings = parse(config)
    with _lock:
        if id(config) not in cache and len(cache) >= CONFIGS_KEPT:
            cache.pop(next(iter(cache)))
        # the config is held: its id stays unique; an older version's entry is replaced
        cache[id(config)] = (config, stored, settings)
    return settings


class ChannelSettings:
    """A mixin for a channel's settings class: ``configured`` and ``problems`` from the
    class's own ``missing`` and ``invalid`` fields.

    The subclass declares the two fields itself (attrs, dataclass or plain attributes):

    :param missing: the variables that are not set but must be, in the order an operator
        would set them.
    :param invalid: a sentence per variable that is set to something unusable, naming the
        variable and what it should look like (never its value: it may be a secret).
    """

    __slots__ = ()

    missing: tuple[str, ...]
    invalid: tuple[str, ...]

    @property
    def configured(self) -> bool:
        """True when nothing is missing or unusable: the channel can do all it does."""
        return not self.missing and not self.invalid

    @property
    def problems(self) -> str:
        """What is wrong, in one line naming each variable; empty when configured."""
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        parts.extend(self.invalid)
        return "; ".join(parts)
