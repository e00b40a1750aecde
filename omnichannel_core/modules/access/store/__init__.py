"""The access module's store: users, sessions, API keys and failed logins, on SQLite
(`store.sqlite`) and Firestore (`store.firestore`); the contract suite
``tests/store_contract/access.py`` pins both.

Secrets arrive here already hashed (argon2 for passwords, SHA-256 for tokens and keys); a
backend stores and compares what it is given and never sees a secret.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from omnichannel_core.module import UNSET, Page, Role
from omnichannel_core.modules.access.records import ApiKey, Refreshed, User, UserCredentials


class AccessStore(Protocol):
    """Access records. All methods are coroutines."""

    # Users

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        """Store a new active user; ``email`` is stored lower-cased. Raise Conflict when a
        user with that email (in any case) exists."""

    async def get_user(self, user_id: str) -> User:
        """The user, or raise NotFound."""

    async def user_credentials(self, email: str) -> UserCredentials | None:
        """The user with that email (any case) and their password hash, or None."""

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        """The user and their password hash, or raise NotFound."""

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        """Users, oldest first."""

    async def has_active_admin(self) -> bool:
        """Whether any active user has the admin role."""

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        """Change the given fields. Deactivating ends every session of the user in the same
        transaction. Raise NotFound for an unknown id, and Conflict (changing nothing) when
        the change would leave no active admin."""

    # Sessions: a login starts one; each refresh token is used once and replaced

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        """Start a session for an active user with its first refresh token; returns the
        session id. Raise NotFound for an unknown or inactive user."""

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        """Use a refresh token, atomically:

        - unknown, expired (``expires_at <= now``), of an ended session or of an inactive
          user: UNKNOWN, nothing changes;
        - already used: REUSED, and the whole session ends (a stolen token was replayed);
        - else ROTATED: the token is marked used and ``new_token_hash`` becomes the
          session's current token, valid until ``expires_at``.
        """

    async def end_session(self, session_id: str) -> bool:
        """End a session (logout); its refresh tokens stop working. True if it was active."""

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        """End every active session of a user but ``except_session_id``; returns how many."""

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        """The user when active and the session theirs and not ended; else None. Asked on
        every request made with an access token, so it must be one cheap read."""

    # API keys

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        """Store a new key (scopes stored sorted)."""

    async def get_api_key(self, key_id: str) -> ApiKey:
        """The key, or raise NotFound."""

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this SHA-256 (revoked or not), or None."""

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        """Keys, oldest first, revoked ones included."""

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        """Revoke the key (a second call keeps the first time); raise NotFound."""

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        """Record that the key was used at ``at`` (never moves ``last_used_at`` back)."""

    # Failed logins, counted per email whether or not such a user exists

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        """Before a password is checked, atomically: when ``email`` (any case) has ``limit``
        failures or more within ``window`` before ``at``, count nothing and answer when the
        oldest failure that locks it leaves the window (so that the email is no longer
        locked at that time); else count this attempt as a failure at ``at`` and answer
        None. Concurrent attempts thus never check more than ``limit`` passwords per
        window. A success clears the failures (:meth:`clear_login_failures`). Failures older
        than the window may be forgotten."""

    async def clear_login_failures(self, email: str) -> None:
        """Forget the failures of ``email`` (after a successful login)."""
