"""The records of access: users, API keys and sessions.

Plain attrs classes like the inbox's models; secrets (password and token hashes) stay out of
them except where a login must check one (:class:`UserCredentials`). Roles, and what each
holds, are the core's policy; the audit log is the core's too.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from omnichannel_core.module import Role, utcnow


@attrs.frozen
class User:
    """A person who signs in to work the inbox."""

    id: str
    email: str
    """Lower case; unique."""
    display_name: str
    role: Role
    active: bool = True
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen
class UserCredentials:
    """A user with the hash a password is checked against: read only to log in or to change
    the password, never served."""

    user: User
    password_hash: str = attrs.field(repr=False)


@attrs.frozen
class ApiKey:
    """A key a program authenticates with. The key itself is shown once, at creation; only
    its SHA-256 is stored."""

    id: str
    name: str
    scopes: tuple[str, ...]
    """Scope names (a permission, or a preset: ``read``, ``send``, ``admin``), sorted."""
    prefix: str
    """The key's first characters, to tell keys apart in a list."""
    created_by: str | None = None
    """The user id of the admin who created it."""
    created_at: datetime = attrs.field(factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class RefreshOutcome(enum.StrEnum):
    """What presenting a refresh token did (:meth:`AccessStore.rotate_refresh_token`)."""

    ROTATED = "rotated"
    """Valid and unused: it is now used, and its successor is stored."""
    UNKNOWN = "unknown"
    """No such token, or its session has ended (logout, revocation, expiry)."""
    REUSED = "reused"
    """Already used once: its whole session (token family) is now revoked."""


@attrs.frozen
class Refreshed:
    outcome: RefreshOutcome
    user: User | None = None
    """The session's user, on ROTATED (active: a deactivated user has no sessions)."""
    session_id: str | None = None
