"""The permission matrix: which permissions exist, which roles hold them, which API key scopes
give them; and who is calling (:class:`Principal`).

Permissions are not listed here: every module contributes its own through the
``register_permissions`` hook (a :class:`PermissionSpec` each, naming the roles that hold it
and the scope presets that include it), and :class:`Policy` is built from all of them at
start-up. Every route declares the permission each of its methods needs; the authorization
middleware checks it against the caller's :class:`Principal`, in one place. Rules about
*which* records a caller may see (an agent's own conversations) belong to the module that
owns those records.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

import attrs

from omnichannel_core.errors import Forbidden, InvalidInput


class Role(enum.StrEnum):
    """What a user may do, as a whole; the permissions of each come from the matrix."""

    ADMIN = "admin"
    """Holds every permission."""
    SUPERVISOR = "supervisor"
    AGENT = "agent"


SCOPE_PRESETS = ("read", "send", "admin")
"""Scope names an API key may be given besides single permissions: ``admin`` gives every
permission; ``read`` and ``send`` those whose spec names them."""

PERMISSION_NAME = re.compile(r"^[a-z][a-z_]{0,31}:[a-z][a-z_]{0,31}$")


def _roles(value: Iterable[Role | str]) -> tuple[Role, ...]:
    return tuple(Role(role) for role in value)


def _presets(value: Iterable[str]) -> tuple[str, ...]:
    presets = tuple(value)
    for preset in presets:
        if preset not in ("read", "send"):
            raise ValueError(f"a permission joins the scope presets read or send, not {preset!r}")
    return presets


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not PERMISSION_NAME.match(value):
        raise ValueError(f"permission names look like 'contacts:read', not {value!r}")


@attrs.frozen
class PermissionSpec:
    """One permission, as a module contributes it.

    :param name: ``area:action`` in lower case, e.g. ``greetings:read``.
    :param description: what it allows, for people choosing scopes and roles.
    :param roles: the roles that hold it besides ``admin``, which holds every permission.
    :param scopes: the API key scope presets (``read``, ``send``) that include it; a key may
        always be given the permission by its own name.
    :param everyone: every caller holds it, whatever their role or scopes (one's own
        account: who am I, log out).
    """

    name: str = attrs.field(validator=_name)
    description: str
    roles: tuple[Role, ...] = attrs.field(default=(), converter=_roles)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_presets)
    everyone: bool = False


class Policy:
    """The matrix built from every contributed :class:`PermissionSpec`."""

    def __init__(self, specs: Iterable[PermissionSpec]) -> None:
        self.specs: dict[str, PermissionSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                raise ValueError(f"permission {spec.name!r} is contributed twice")
            self.specs[spec.name] = spec
        self._index()

    def withdraw(self, names: Iterable[str]) -> None:
        """Take back the permissions of a plugin unloaded after it contributed them: this
        same matrix, which the other plugins may hold, stops knowing and granting them."""
        for name in names:
            self.specs.pop(name, None)
        self._index()

    def _index(self) -> None:
        self.everything = frozenset(self.specs)
        self.everyones = frozenset(name for name, spec in self.specs.items() if spec.everyone)
        """What every caller holds."""
        self._roles = {
            role: self.everything
            if role is Role.ADMIN
            else frozenset(
                name for name, spec in self.specs.items() if role in spec.roles or spec.everyone
            )
            for role in Role
        }
        self._presets = {
            **{
                preset: frozenset(
                    name for name, spec in self.specs.items() if preset in spec.scopes
                )
                for preset in ("read", "send")
            },
            "admin": self.everything,
        }

    def knows(self, permission: str) -> bool:
        return permission in self.specs

    def of_role(self, role: Role) -> frozenset[str]:
        return self._roles[Role(role)]

    def preset(self, name: str) -> frozenset[str]:
        return self._presets[name]

    @property
    def scopes(self) -> tuple[str, ...]:
        """Every scope name a key may be given: the presets, then each permission."""
        return (*SCOPE_PRESETS, *self.specs)

    def of_scopes(self, scopes: Iterable[str]) -> frozenset[str]:
        """The permissions a new key with these scopes would have (what every caller holds
        included); InvalidInput naming an unknown scope."""
        for scope in scopes:
            if scope not in self._presets and scope not in self.specs:
                known = ", ".join(self.scopes)
                raise InvalidInput(
                    f"unknown scope {scope!r}; known scopes: {known}", field="scopes"
                )
        return self.granted_by(scopes)

    def granted_by(self, scopes: Iterable[str]) -> frozenset[str]:
        """The permissions a stored key with these scopes has. A scope no loaded module
        contributes any more (it was uninstalled, disabled, or failed to load) grants
        nothing: the key keeps working with the rest, and can still be revoked."""
        granted: set[str] = set(self.everyones)
        for scope in scopes:
            if scope in self._presets:
                granted |= self._presets[scope]
            elif scope in self.specs:
                granted.add(scope)
        return frozenset(granted)

    def roles_holding(self, permission: str) -> list[Role]:
        return [role for role in Role if permission in self._roles[role]]

    def presets_giving(self, permission: str) -> list[str]:
        return [name for name, granted in self._presets.items() if permission in granted]


@attrs.frozen
class Principal:
    """Who is making a request, and what they may do."""

    kind: str
    """``user``, ``api_key`` or ``system`` (the command line)."""
    id: str
    name: str
    permissions: frozenset[str]
    role: Role | None = None
    """A user's role; None for a key."""
    session_id: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.role is Role.AGENT

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(
                f"this {self.description} may not do this: it needs the {permission!r} permission",
                permission=permission,
            )

    @property
    def description(self) -> str:
        """``agent user``, ``API key``...: the caller, as error messages name it."""
        if self.role is not None:
            return f"{self.role.value} user"
        return "API key" if self.kind == "api_key" else self.kind


def check_grant(actor: Principal, permissions: frozenset[str], what: str) -> None:
    """Refuse to give, or to act on, ``what`` (a key, a user, a role) holding a permission
    ``actor`` lacks; the error names the first missing permission."""
    missing = sorted(permissions - actor.permissions)
    if missing:
        raise Forbidden(
            f"this {actor.description} may not act on {what}, which would hold permissions it"
            f" lacks: {', '.join(missing)}",
            permission=missing[0],
        )
