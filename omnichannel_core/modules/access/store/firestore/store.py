"""Access on Firestore: users, sessions and refresh tokens, API keys and failed logins
(`omnichannel_core.modules.access.store.AccessStore` is the contract).

Layout. Every collection name takes the store's prefix. Keys made of free text (emails) are
SHA-256 hex (`firestore_documents.document_key`): an email may hold ``/``, which no document
id may, and a failed login for an address nobody owns is not kept under that address.

``users/{user_id}``
    ``email`` (lower case), ``display_name``, ``role``, ``active``, ``password_hash``,
    ``created_at``, ``updated_at``, ``session_generation``. Listed oldest first by
    (``created_at``, id); found by email with an equality query (one read). Deactivating
    adds one to ``session_generation``, which ends every session of the user in the same
    one-document write, however many there are.
``user_emails/{key(email)}``
    ``email``, ``user_id``: created with the user, in the same transaction, so that of two
    users with one email (in any case) only one is ever stored.
``meta/admins``
    ``user_ids``: the ids of the active admins. Every transaction that makes or unmakes an
    active admin reads and writes it, so two that would each leave the other admin last
    cannot both commit; ``has_active_admin`` is one read of it.
``sessions/{session_id}``
    ``user_id``, ``generation`` (the user's ``session_generation`` at login), ``created_at``,
    ``ended_at``. Live while not ended, its generation is the user's and the user is active:
    ``session_user`` reads the session and the user in one round trip.
``refresh_tokens/{token_hash}``
    ``session_id``, ``user_id``, ``expires_at``, ``used_at``: found by hash with one read.
    Tokens of ended sessions are left to a TTL policy on ``expires_at`` (a token of an ended
    session answers UNKNOWN whether it is kept or not).
``api_keys/{key_hash}``
    ``id``, ``name``, ``scopes``, ``prefix``, ``created_by``, ``created_at``,
    ``last_used_at``, ``revoked_at``. Keyed by hash, so authenticating is one read; the
    rarer calls by id query ``id``. Listed oldest first by (``created_at``, ``id``).
``login_failures/{key(email)}``
    ``failures`` (the times of the failures within the window, oldest first, never more than
    the limit), ``expires_at`` (when the newest leaves the window, for a TTL policy).

Transactions that many callers run on one document at once (failed logins of one email,
rotations of one token, user changes that read ``meta/admins``) queue in this process on a
lock first: Firestore serializes them anyway, and a queue costs less than aborted tries (the
emulator resolves such contention only by a lock timeout). Other processes are kept out by
the transaction itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from omnichannel_core.module import UNSET, Page, Role
from omnichannel_core.module.firestore import FirestoreDatabase
from omnichannel_core.modules.access.records import ApiKey, Refreshed, User, UserCredentials
from omnichannel_core.modules.access.store.firestore import (
    api_keys,
    login_failures,
    sessions,
    users,
)
from omnichannel_core.modules.access.store.firestore.documents import Layout


class FirestoreAccessStore:
    """:class:`omnichannel_core.modules.access.store.AccessStore` on the Firestore database.
    Collections are named as the layout above says (with the database's prefix), built when
    first used: the database connects when the server starts."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database
        self._layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        """The collections, made on first use (the database connects when the server
        starts)."""
        if self._layout is None or self._layout.client is not self.database.client:
            self._layout = Layout(self.database)
        return self._layout

    # Users: `users`

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        return await users.create_user(self.layout, email, display_name, role, password_hash)

    async def get_user(self, user_id: str) -> User:
        return await users.get_user(self.layout, user_id)

    async def user_credentials(self, email: str) -> UserCredentials | None:
        return await users.user_credentials(self.layout, email)

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        return await users.user_credentials_by_id(self.layout, user_id)

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        return await users.list_users(self.layout, cursor, limit)

    async def has_active_admin(self) -> bool:
        return await users.has_active_admin(self.layout)

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        return await users.update_user(
            self.layout, user_id, display_name, role, active, password_hash
        )

    # Sessions and refresh tokens: `sessions`

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        return await sessions.create_session(self.layout, user_id, refresh_token_hash, expires_at)

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        return await sessions.rotate_refresh_token(
            self.layout, token_hash, new_token_hash, expires_at, now
        )

    async def end_session(self, session_id: str) -> bool:
        return await sessions.end_session(self.layout, session_id)

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        return await sessions.end_user_sessions(self.layout, user_id, except_session_id)

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        return await sessions.session_user(self.layout, user_id, session_id)

    # API keys: `api_keys`

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        return await api_keys.create_api_key(
            self.layout, name, scopes, prefix, key_hash, created_by
        )

    async def get_api_key(self, key_id: str) -> ApiKey:
        return await api_keys.get_api_key(self.layout, key_id)

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await api_keys.api_key_by_hash(self.layout, key_hash)

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        return await api_keys.list_api_keys(self.layout, cursor, limit)

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        return await api_keys.revoke_api_key(self.layout, key_id, at)

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await api_keys.touch_api_key(self.layout, key_id, at)

    # Failed logins: `login_failures`

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        return await login_failures.reserve_login_attempt(self.layout, email, at, window, limit)

    async def clear_login_failures(self, email: str) -> None:
        await login_failures.clear_login_failures(self.layout, email)
