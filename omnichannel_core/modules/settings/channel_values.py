"""The channels' variables as admins store them: which a channel declares (its ``settings``
hook), which of those may be stored at all (not where a channel connects: ``storable``),
sealing the secret ones with the server's :class:`SecretBox`, bound to their names, opening
them for the channels, and showing them masked. No value of a secret ever leaves here whole
but to the channels themselves (``config.stored_settings``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from omnichannel_core.module import (
    ChannelFailed,
    Channels,
    Config,
    ConfigError,
    InvalidInput,
    SecretBox,
    SecretUnreadable,
    Setting,
    mask,
)
from omnichannel_core.modules.settings.bodies import MAX_VALUE
from omnichannel_core.modules.settings.records import StoredValue

log = structlog.get_logger("omnichannel.settings")

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""What a stored value may not hold: control characters (a tab is allowed). A line break in
a value a channel puts into a header or a command line would start another one."""
ENVIRONMENT_ONLY = (
    "set in the server's environment only: it decides where the channel connects (an"
    " endpoint, a host, a port, a TLS mode, a file on the server), so where its credentials"
    " and the customers' messages go"
)


@attrs.frozen
class ChannelVariable:
    """One variable a channel reads, as ``GET /api/settings`` shows it."""

    name: str
    description: str
    secret: bool
    required: bool
    storable: bool = attrs.field(
        metadata={
            "description": "False for where the channel connects (an endpoint, a host, a"
            " port, a TLS mode, a file on the server): set in the server's environment"
            " only; PATCH refuses to store it."
        }
    )
    value: str | None = attrs.field(
        metadata={
            "description": "The value the channel uses: masked when secret (never whole);"
            " null when set nowhere, or when the stored one cannot be used."
        }
    )
    source: str | None = attrs.field(
        metadata={
            "description": "environment (the server's environment sets it, and wins), stored"
            " (set through this API), or null (the channel has no value)."
        }
    )
    problem: str | None = attrs.field(
        default=None,
        metadata={
            "description": "Why the stored value is not used: its key is gone, it was"
            " altered, or the variable is not storable (remove it with null)."
        },
    )


@attrs.frozen
class ChannelVariables:
    """A loaded channel's declared variables."""

    __schema_name__ = "ChannelSettings"

    channel: str
    variables: tuple[ChannelVariable, ...]


@attrs.frozen
class Opened:
    """The stored values the channels get, opened.

    :param values: by name: only variables a loaded channel declares storable, secrets
        opened.
    :param unreadable: the names of stored values that would not open (sealed with a key
        that left the ring, altered, or a secret stored unsealed).
    :param ignored: the names of stored values of variables declared not storable: the
        channels never get them.
    :param key_problem: why the secret key could not be had (its file unreadable, or none on
        a shared store), when that left values out: they may open later.
    """

    values: dict[str, str]
    unreadable: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    key_problem: str | None = None


def shown(setting: Setting, value: str) -> str:
    return mask(value) if setting.secret else value


def merged(declared: Mapping[str, tuple[Setting, ...]]) -> dict[str, Setting]:
    """Every declared variable by name. One that several channels declare (two Twilio
    channels sharing ``TWILIO_AUTH_TOKEN``) is one variable, as strict as the strictest
    declaration: secret when any says so, storable only when all do, required when any
    says so (the first one's description)."""
    variables: dict[str, Setting] = {}
    for settings in declared.values():
        for setting in settings:
            known = variables.get(setting.name)
            if known is None:
                variables[setting.name] = setting
                continue
            variables[setting.name] = attrs.evolve(
                known,
                secret=known.secret or setting.secret,
                required=known.required or setting.required,
                storable=known.storable and setting.storable,
            )
    return variables


def not_storable(setting: Setting) -> str:
    """Why ``setting``'s value is never stored."""
    return f"{setting.name} is {ENVIRONMENT_ONLY}"


class ChannelValues:
    """The declared variables of the loaded channels, and their stored values' sealing.

    :param channels: the loaded channels (``context.channels``).
    :param config: the server's configuration: the environment, and where the secret key
        is.
    """

    def __init__(self, channels: Channels, config: Config) -> None:
        self.channels = channels
        self.config = config
        self._box: SecretBox | None = None

    def box(self) -> SecretBox:
        """The server's secret box, made on first use. ConfigError when there is no usable
        key: SecretKeyRequired on a shared store without ``OMNICHANNEL_SECRET_KEY``; the key
        file unreadable (tried again at the next call)."""
        if self._box is None:
            self._box = SecretBox.from_config(self.config)
        return self._box

    def key_problem(self) -> str | None:
        """Why no secret can be sealed or opened here (a shared store without
        ``OMNICHANNEL_SECRET_KEY``), or None. Makes no key: on one machine the data dir's is
        made when first needed."""
        if self.config.secret_keys or not self.config.store_url.startswith("firestore://"):
            return None
        try:
            self.box()
        except ConfigError as error:
            return error.message
        return None

    async def declared(self) -> dict[str, tuple[Setting, ...]]:
        """Each loaded channel's variables, by channel name; a channel whose hook fails is
        left out (logged by the channels' face)."""
        declared: dict[str, tuple[Setting, ...]] = {}
        for channel in self.channels.names:
            try:
                declared[channel] = await self.channels.declared_settings(
                    channel, config=self.config
                )
            except ChannelFailed:
                continue
        return declared

    async def by_name(self) -> dict[str, Setting]:
        """Every declared variable by name (:func:`merged`)."""
        return merged(await self.declared())

    @staticmethod
    def checked(given: Mapping[str, Any], declared: Mapping[str, Setting]) -> dict[str, str | None]:
        """The values of a PATCH's ``channels``: each a declared variable's, a string (to
        store: of a storable variable, one line of at most :data:`MAX_VALUE` characters
        without control characters) or null (to remove, storable or not)."""
        for name, value in given.items():
            where = f"channels.{name}"
            setting = declared.get(name)
            if setting is None:
                known = ", ".join(sorted(declared)) or "none"
                raise InvalidInput(
                    f"{where}: no loaded channel declares {name!r} (declared: {known})",
                    field=where,
                )
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidInput(f"{where}: must be a string or null", field=where)
            if not setting.storable:
                raise InvalidInput(f"{where}: {not_storable(setting)}", field=where)
            if len(value) > MAX_VALUE:
                raise InvalidInput(f"{where}: must be at most {MAX_VALUE} characters", field=where)
            if CONTROL.search(value):
                raise InvalidInput(
                    f"{where}: must not hold control characters (a line break...); a tab"
                    " is allowed",
                    field=where,
                )
        return dict(given)

    def sealed(self, setting: Setting, value: str) -> StoredValue:
        """``value`` as it is stored: sealed, bound to its name, when the variable is
        secret. InvalidInput naming the variable when no secret key can be had (a shared
        store without ``OMNICHANNEL_SECRET_KEY``, an unreadable key file)."""
        if not setting.secret:
            return StoredValue(value, sealed=False)
        try:
            return StoredValue(self.box().seal(value, setting.name), sealed=True)
        except ConfigError as error:
            raise InvalidInput(
                f"channels.{setting.name}: a secret cannot be stored: {error.message}",
                field=f"channels.{setting.name}",
            ) from None

    def open(self, setting: Setting, stored: StoredValue) -> str:
        """The plain value of ``stored``, ``setting``'s.

        :raises SecretUnreadable: it will not open (another key, altered, sealed for another
            name), or the variable is secret and the value was stored unsealed.
        :raises ConfigError: there is no usable key (SecretKeyRequired on a shared store).
        """
        if stored.sealed:
            return self.box().open(stored.value, setting.name)
        if setting.secret:
            raise SecretUnreadable(
                f"{setting.name} is secret but stored unsealed: run omnichannel settings"
                " rotate-key to seal it, or set it again"
            )
        return stored.value

    def open_all(
        self, stored: Mapping[str, StoredValue], declared: Mapping[str, Setting]
    ) -> Opened:
        """The stored values the channels get (:class:`Opened`): those of variables a loaded
        channel declares storable, opened; the others are left out and named (never shown:
        only names are logged). A stored value no loaded channel declares is left out
        silently (its channel may come back)."""
        values: dict[str, str] = {}
        unreadable: list[str] = []
        ignored: list[str] = []
        key_problem: str | None = None
        for name, value in stored.items():
            setting = declared.get(name)
            if setting is None:
                continue
            if not setting.storable:
                ignored.append(name)
                continue
            try:
                values[name] = self.open(setting, value)
            except SecretUnreadable:
                unreadable.append(name)
            except ConfigError as error:  # no usable key at all
                unreadable.append(name)
                key_problem = error.message
        return Opened(values, tuple(sorted(unreadable)), tuple(sorted(ignored)), key_problem)

    def shown_stored(self, setting: Setting, stored: StoredValue) -> tuple[str | None, str | None]:
        """A stored value as shown (masked when secret), or None and why it is not used."""
        if not setting.storable:
            return None, f"{not_storable(setting)}: the stored value is not used; remove it"
        try:
            return shown(setting, self.open(setting, stored)), None
        except (SecretUnreadable, ConfigError) as error:
            return None, error.message

    def variable(self, setting: Setting, stored: StoredValue | None) -> ChannelVariable:
        """One variable as ``GET /api/settings`` shows it: the environment's value wins
        (when set and not empty), then the stored one, when it can be used."""
        environment = self.config.environ.get(setting.name)
        value: str | None = None
        source: str | None = None
        problem: str | None = None
        if environment:
            value, source = shown(setting, environment), "environment"
        elif stored is not None:
            value, problem = self.shown_stored(setting, stored)
            source = "stored" if setting.storable else None
        return ChannelVariable(
            setting.name,
            setting.description,
            setting.secret,
            setting.required,
            setting.storable,
            value,
            source,
            problem,
        )

    async def shown_all(self, stored: Mapping[str, StoredValue]) -> tuple[ChannelVariables, ...]:
        """Every loaded channel's variables as shown, channels by name; each as strict as
        :func:`merged` makes it (masked if any channel declares it secret), with its own
        channel's description."""
        declared = await self.declared()
        variables = merged(declared)
        return tuple(
            ChannelVariables(
                channel,
                tuple(
                    self.variable(
                        attrs.evolve(variables[setting.name], description=setting.description),
                        stored.get(setting.name),
                    )
                    for setting in settings
                ),
            )
            for channel, settings in sorted(declared.items())
        )
