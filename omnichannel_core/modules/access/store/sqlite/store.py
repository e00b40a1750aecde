"""Access on the SQLite database: users, sessions and their refresh tokens, API keys and
failed logins (`omnichannel_core.modules.access.store.AccessStore` is the contract).

Each method is one write (or read) of the shared database (`omnichannel_core.module.sqlite`),
so one transaction; the SQL is in the modules beside this one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from omnichannel_core.module import UNSET, Page, Role, decode_list_cursor, format_timestamp, utcnow
from omnichannel_core.module.sqlite import SqliteDatabase
from omnichannel_core.modules.access.records import ApiKey, Refreshed, User, UserCredentials
from omnichannel_core.modules.access.store.sqlite.api_keys import (
    fetch_api_key,
    find_api_key,
    insert_api_key,
    list_api_keys,
    revoke_api_key,
    touch_api_key,
)
from omnichannel_core.modules.access.store.sqlite.login_failures import (
    clear_login_failures,
    reserve_login_attempt,
)
from omnichannel_core.modules.access.store.sqlite.sessions import (
    end_session,
    end_user_sessions,
    insert_session,
    rotate,
    session_user,
)
from omnichannel_core.modules.access.store.sqlite.users import (
    fetch_credentials_by_id,
    fetch_user,
    find_credentials,
    has_active_admin,
    insert_user,
    list_users,
    update_user,
)


class SqliteAccessStore:
    """:class:`omnichannel_core.modules.access.store.AccessStore` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        return await self.database.write(
            lambda c: insert_user(c, email, display_name, role, password_hash)
        )

    async def get_user(self, user_id: str) -> User:
        return await self.database.read(lambda c: fetch_user(c, user_id))

    async def user_credentials(self, email: str) -> UserCredentials | None:
        return await self.database.read(lambda c: find_credentials(c, email))

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        return await self.database.read(lambda c: fetch_credentials_by_id(c, user_id))

    async def has_active_admin(self) -> bool:
        return await self.database.read(has_active_admin)

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "usr") if cursor else None
        return await self.database.read(lambda c: list_users(c, after, limit))

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        return await self.database.write(
            lambda c: update_user(c, user_id, display_name, role, active, password_hash)
        )

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        return await self.database.write(
            lambda c: insert_session(c, user_id, refresh_token_hash, expires_at)
        )

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        return await self.database.write(
            lambda c: rotate(c, token_hash, new_token_hash, expires_at, now)
        )

    async def end_session(self, session_id: str) -> bool:
        now = format_timestamp(utcnow())
        return await self.database.write(lambda c: end_session(c, session_id, now))

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        now = format_timestamp(utcnow())
        return await self.database.write(
            lambda c: end_user_sessions(c, user_id, except_session_id, now)
        )

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        return await self.database.read(lambda c: session_user(c, user_id, session_id))

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        return await self.database.write(
            lambda c: insert_api_key(c, name, scopes, prefix, key_hash, created_by)
        )

    async def get_api_key(self, key_id: str) -> ApiKey:
        return await self.database.read(lambda c: fetch_api_key(c, key_id))

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.database.read(lambda c: find_api_key(c, key_hash))

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "key") if cursor else None
        return await self.database.read(lambda c: list_api_keys(c, after, limit))

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        return await self.database.write(lambda c: revoke_api_key(c, key_id, at))

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await self.database.write(lambda c: touch_api_key(c, key_id, at))

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        return await self.database.write(
            lambda c: reserve_login_attempt(c, email, at, window, limit)
        )

    async def clear_login_failures(self, email: str) -> None:
        await self.database.write(lambda c: clear_login_failures(c, email))
