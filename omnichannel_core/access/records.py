"""The records of access: users, API keys, sessions and audit entries.

Plain attrs classes like the inbox's models; secrets (password and token hashes) stay out of
them except where a login must check one (:class:`UserCredentials`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.models import utcnow


class Role(enum.StrEnum):
    """What a user may do; the matrix is `omnichannel_core.access.policy`."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


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
    """Permission names (`omnichannel_core.access.policy.Permission`), sorted."""
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


@attrs.frozen
class AuditEntry:
    """One thing that happened, kept for good: entries are only ever appended."""

    id: str
    action: str
    """e.g. ``auth.login``, ``auth.login_failed``, ``user.created``, ``user.role_changed``,
    ``api_key.created``, ``api_key.revoked``, ``conversation.assigned``."""
    actor_type: str
    """``user``, ``api_key``, ``system`` (the command line) or ``anonymous`` (a failed login,
    a replayed refresh token)."""
    actor_id: str | None
    target_type: str | None = None
    target_id: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)
    client_address: str | None = None
    at: datetime = attrs.field(factory=utcnow)
