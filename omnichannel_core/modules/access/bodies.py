"""The bodies of the access API: what its routes take and answer."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import UNSET, PageQuery, Role, field
from omnichannel_core.modules.access import passwords
from omnichannel_core.modules.access.records import ApiKey, User

EMAIL_PATTERN = r"^\s*(?=\S{1,254}\s*$)[^\s@]+@\S*\.\S*\s*$"
"""What `service.normalize_email` takes: surrounding spaces trimmed, then at most 254
characters with no space, something before the first "@" and a "." after it."""
NAME_PATTERN = r"\S"


def _email() -> Any:
    return field(
        pattern=EMAIL_PATTERN,
        message="must be an email address like ana@example.com",
        description="an email address like ana@example.com (at most 254 characters); trimmed"
        " and lower-cased",
    )


def _name(**options: Any) -> Any:
    return field(
        pattern=NAME_PATTERN,
        max_length=200,
        message="must be a non-empty string of at most 200 characters",
        **options,
    )


def _password(**options: Any) -> Any:
    return field(
        min_length=passwords.MIN_LENGTH,
        max_length=passwords.MAX_LENGTH,
        write_only=True,
        message=f"must be {passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters long",
        **options,
    )


@attrs.frozen
class Login:
    """An email and its password."""

    email: str = _email()
    password: str = field(write_only=True)


@attrs.frozen
class TokenRefresh:
    """The refresh token of the last pair."""

    refresh_token: str = field(min_length=1, write_only=True)


@attrs.frozen
class PasswordChange:
    """new_password must differ from current_password."""

    current_password: str = field(write_only=True)
    new_password: str = _password()


@attrs.frozen(kw_only=True)
class UserCreate:
    """A new user."""

    email: str = _email()
    display_name: str = _name()
    role: Role
    password: str = _password()


@attrs.frozen
class UserUpdate:
    """What changes; at least one field."""

    __schema_extra__ = {"minProperties": 1}

    display_name: str = _name(default=UNSET)
    role: Role = UNSET
    active: bool = field(
        default=UNSET, description="false ends the user's sessions and stops their logins"
    )
    password: str = _password(default=UNSET, description="a new password; ends their sessions")

    def changes(self) -> dict[str, Any]:
        """Only the fields given."""
        return {name: value for name, value in attrs.asdict(self).items() if value is not UNSET}


@attrs.frozen
class ApiKeyCreate:
    """A new key: its name, and what it may do."""

    name: str = _name()
    scopes: tuple[str, ...] = field(
        min_items=1,
        description="permission names, or the presets `read`, `send`, `admin`",
    )


@attrs.frozen
class AuditQuery(PageQuery):
    action: str | None = field(
        default=None, max_length=200, description="only this action, e.g. `auth.login_failed`"
    )


@attrs.frozen(kw_only=True)
class Tokens:
    """A session's tokens: a short-lived access token and a single-use refresh token."""

    access_token: str = field(description="send as `Authorization: Bearer <access_token>`")
    expires_in: int = field(minimum=1, description="seconds the access token lasts")
    refresh_token: str = field(pattern="^ocr_", description="for one call to /api/auth/refresh")
    refresh_expires_in: int = field(minimum=1, description="seconds the refresh token lasts")
    user: User
    token_type: str = field(default="Bearer", const="Bearer")


@attrs.frozen(kw_only=True)
class Caller:
    """Who is calling and what they may do; `user` for a user only."""

    __schema_extra__ = {
        "required": ["kind", "id", "name", "role", "permissions"],
        "if": {"properties": {"kind": {"const": "user"}}},
        "then": {"required": ["user"]},
        "else": {"not": {"required": ["user"]}},
    }

    kind: str = field(enum=["user", "api_key"])
    id: str = field(description="the user's or the key's id")
    name: str
    role: Role | None = field(description="null for an API key")
    permissions: tuple[str, ...] = field(description="sorted")
    user: User | None = None


@attrs.frozen(kw_only=True)
class ApiKeyCreated(ApiKey):
    """A new API key, with the key itself."""

    key: str = field(pattern="^ock_", description="the key itself, shown this once: keep it now")

    @classmethod
    def of(cls, key: ApiKey, secret: str) -> ApiKeyCreated:
        return cls(**attrs.asdict(key, recurse=False), key=secret)
