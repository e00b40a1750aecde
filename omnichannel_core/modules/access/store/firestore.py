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

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
    FieldFilter,
)

from omnichannel_core.module import (
    UNSET,
    Conflict,
    InvalidInput,
    NotFound,
    Page,
    Role,
    encode_cursor,
    format_timestamp,
    new_id,
    utcnow,
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    KeysetQuery,
    Transaction,
    decode_position,
    document,
    document_key,
    exact_time,
    is_document_id,
    optional_time,
)
from omnichannel_core.modules.access.records import (
    ApiKey,
    Refreshed,
    RefreshOutcome,
    User,
    UserCredentials,
)

T = TypeVar("T")

SESSIONS_PER_TRANSACTION = 100
"""Sessions ``end_user_sessions`` ends per query and transaction."""
_USERS_LOCK = "users"
"""The in-process queue of user writes (they may read ``meta/admins``)."""


# Documents to records


def _user(snapshot: DocumentSnapshot) -> User:
    data = snapshot.to_dict() or {}
    return User(
        id=snapshot.id,
        email=data["email"],
        display_name=data["display_name"],
        role=Role(data["role"]),
        active=data["active"],
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
    )


def _credentials(snapshot: DocumentSnapshot) -> UserCredentials:
    return UserCredentials(user=_user(snapshot), password_hash=snapshot.get("password_hash"))


def _user_fields(user: User, password_hash: str, generation: int) -> dict[str, Any]:
    return {
        "email": user.email,
        "display_name": user.display_name,
        "role": str(user.role),
        "active": user.active,
        "password_hash": password_hash,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "session_generation": generation,
    }


def _api_key(snapshot: DocumentSnapshot) -> ApiKey:
    data = snapshot.to_dict() or {}
    return ApiKey(
        id=data["id"],
        name=data["name"],
        scopes=tuple(data["scopes"]),
        prefix=data["prefix"],
        created_by=data["created_by"],
        created_at=exact_time(data["created_at"]),
        last_used_at=optional_time(data["last_used_at"]),
        revoked_at=optional_time(data["revoked_at"]),
    )


def _is_active_admin(role: Role | str, active: bool) -> bool:
    return Role(role) is Role.ADMIN and active


def _session_is_live(session: DocumentSnapshot, user: DocumentSnapshot, user_id: str) -> bool:
    """Whether ``session`` is a live session of ``user`` (whose id is ``user_id``)."""
    if not (session.exists and user.exists and user.id == user_id):
        return False
    return (
        session.get("user_id") == user_id
        and session.get("ended_at") is None
        and user.get("active") is True
        and session.get("generation") == user.get("session_generation")
    )


class FirestoreAccessStore:
    """:class:`omnichannel_core.modules.access.store.AccessStore` on the Firestore database.
    Collections are named as the layout above says (with the database's prefix), built when
    first used: the database connects when the server starts."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    @property
    def _client(self) -> Any:
        return self.database.client

    @property
    def _users(self) -> AsyncCollectionReference:
        return self.database.collection("users")

    @property
    def _emails(self) -> AsyncCollectionReference:
        return self.database.collection("user_emails")

    @property
    def _admins(self) -> AsyncDocumentReference:
        return self.database.collection("meta").document("admins")

    @property
    def _sessions(self) -> AsyncCollectionReference:
        return self.database.collection("sessions")

    @property
    def _tokens(self) -> AsyncCollectionReference:
        return self.database.collection("refresh_tokens")

    @property
    def _keys(self) -> AsyncCollectionReference:
        return self.database.collection("api_keys")

    @property
    def _failures(self) -> AsyncCollectionReference:
        return self.database.collection("login_failures")

    async def _transact(
        self, key: tuple[str, ...], body: Callable[[Transaction], Awaitable[T]]
    ) -> T:
        """Run ``body`` in a transaction, after this process's other writers of ``key``."""
        return await self.database.transact(key, body)

    @staticmethod
    def _document(collection: AsyncCollectionReference, doc_id: str) -> AsyncDocumentReference:
        return document(collection, doc_id)

    @staticmethod
    def _hashed(collection: AsyncCollectionReference, digest: str) -> AsyncDocumentReference:
        """The document named by a SHA-256 digest; InvalidInput for anything else."""
        if not is_document_id(digest):
            raise InvalidInput("expected a SHA-256 digest")
        return collection.document(digest)

    # Users

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        address, admin = email.lower(), Role(role) is Role.ADMIN
        email_reference = self._emails.document(document_key(address))

        async def create(transaction: Transaction) -> User:
            taken, *admins = await transaction.get(
                email_reference, *([self._admins] if admin else [])
            )
            if taken.exists:
                raise Conflict("a user with this email exists", email=address)
            now = utcnow()
            user = User(new_id("usr"), address, display_name, Role(role), True, now, now)
            transaction.create(email_reference, {"email": address, "user_id": user.id})
            transaction.create(self._users.document(user.id), _user_fields(user, password_hash, 0))
            if admin:
                ids = set(admins[0].get("user_ids") if admins[0].exists else ())
                transaction.set(self._admins, {"user_ids": sorted(ids | {user.id})})
            return user

        try:
            return await self._transact((_USERS_LOCK,), create)
        except AlreadyExists:  # a creator in another process won between read and commit
            raise Conflict("a user with this email exists", email=address) from None

    async def get_user(self, user_id: str) -> User:
        snapshot = await self._document(self._users, user_id).get()
        if not snapshot.exists:
            raise NotFound(f"user {user_id!r} not found", id=user_id)
        return _user(snapshot)

    async def user_credentials(self, email: str) -> UserCredentials | None:
        query = self._users.where(filter=FieldFilter("email", "==", email.lower())).limit(1)
        async for snapshot in query.stream():
            return _credentials(snapshot)
        return None

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        snapshot = await self._document(self._users, user_id).get()
        if not snapshot.exists:
            raise NotFound(f"user {user_id!r} not found", id=user_id)
        return _credentials(snapshot)

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        pages = KeysetQuery(
            self._users, self._users, "created_at", descending=False, id_prefix="usr"
        )
        return await pages.page(cursor, limit, _user)

    async def has_active_admin(self) -> bool:
        snapshot = await self._admins.get()
        return snapshot.exists and bool(snapshot.get("user_ids"))

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        reference = self._document(self._users, user_id)

        async def update(transaction: Transaction) -> User:
            snapshot, admins = await transaction.get(reference, self._admins)
            if not snapshot.exists:
                raise NotFound(f"user {user_id!r} not found", id=user_id)
            current = _user(snapshot)
            changed = User(
                id=current.id,
                email=current.email,
                display_name=current.display_name if display_name is UNSET else display_name,
                role=current.role if role is UNSET else Role(role),
                active=current.active if active is UNSET else bool(active),
                created_at=current.created_at,
                updated_at=utcnow(),
            )
            was_admin = _is_active_admin(current.role, current.active)
            is_admin = _is_active_admin(changed.role, changed.active)
            if was_admin != is_admin:
                ids = set(admins.get("user_ids") if admins.exists else ())
                if was_admin and not ids - {user_id}:
                    raise Conflict(
                        "the last active admin cannot be demoted or deactivated", id=user_id
                    )
                ids = ids - {user_id} if was_admin else ids | {user_id}
                transaction.set(self._admins, {"user_ids": sorted(ids)})
            generation = snapshot.get("session_generation")
            if current.active and not changed.active:
                generation += 1  # every session of the user ends with this write
            kept_hash = snapshot.get("password_hash")
            new_hash = kept_hash if password_hash is UNSET else password_hash
            transaction.set(reference, _user_fields(changed, new_hash, generation))
            return changed

        return await self._transact((_USERS_LOCK,), update)

    # Sessions and refresh tokens

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        # No transaction: a session takes the generation it read, so if the user is
        # deactivated before the batch commits, the session is born ended.
        user = await self._document(self._users, user_id).get()
        if not (user.exists and user.get("active")):
            raise NotFound(f"active user {user_id!r} not found", id=user_id)
        session_id = new_id("ses")
        batch = self._client.batch()
        batch.create(
            self._sessions.document(session_id),
            {
                "user_id": user_id,
                "generation": user.get("session_generation"),
                "created_at": utcnow(),
                "ended_at": None,
            },
        )
        batch.create(
            self._hashed(self._tokens, refresh_token_hash),
            _token_fields(session_id, user_id, expires_at),
        )
        try:
            await batch.commit()
        except AlreadyExists:
            raise Conflict("this refresh token hash is already stored") from None
        return session_id

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        if not is_document_id(token_hash):
            return Refreshed(RefreshOutcome.UNKNOWN)
        reference = self._tokens.document(token_hash)
        successor = self._hashed(self._tokens, new_token_hash)

        async def rotate(transaction: Transaction) -> Refreshed:
            [token] = await transaction.get(reference)
            if not token.exists or exact_time(token.get("expires_at")) <= now:
                return Refreshed(RefreshOutcome.UNKNOWN)
            session_id, user_id = token.get("session_id"), token.get("user_id")
            session_reference = self._sessions.document(session_id)
            session, user = await transaction.get(session_reference, self._users.document(user_id))
            if not _session_is_live(session, user, user_id):
                return Refreshed(RefreshOutcome.UNKNOWN)
            if token.get("used_at") is not None:
                transaction.update(session_reference, {"ended_at": now})
                return Refreshed(RefreshOutcome.REUSED, session_id=session_id)
            transaction.update(reference, {"used_at": now})
            transaction.create(successor, _token_fields(session_id, user_id, expires_at))
            return Refreshed(RefreshOutcome.ROTATED, user=_user(user), session_id=session_id)

        try:
            return await self._transact(("token", token_hash), rotate)
        except AlreadyExists:
            raise Conflict("this refresh token hash is already stored") from None

    async def end_session(self, session_id: str) -> bool:
        if not is_document_id(session_id):
            return False
        reference = self._sessions.document(session_id)

        async def end(transaction: Transaction) -> bool:
            [session] = await transaction.get(reference)
            if not session.exists:
                return False
            user_id = session.get("user_id")
            [user] = await transaction.get(self._users.document(user_id))
            if not _session_is_live(session, user, user_id):
                return False
            transaction.update(reference, {"ended_at": utcnow()})
            return True

        return await self._transact(("session", session_id), end)

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        if not is_document_id(user_id):
            return 0
        user_reference = self._users.document(user_id)
        open_sessions = (
            self._sessions.where(filter=FieldFilter("user_id", "==", user_id))
            .where(filter=FieldFilter("ended_at", "==", None))
            .limit(SESSIONS_PER_TRANSACTION + 1)
        )

        async def end(transaction: Transaction, ids: list[str]) -> int:
            user, *sessions = await transaction.get(
                user_reference, *(self._sessions.document(i) for i in ids)
            )
            ended = 0
            for session in sessions:
                if session.exists and session.get("ended_at") is None:
                    # Sessions of an older generation are already over: marked, not counted.
                    ended += _session_is_live(session, user, user_id)
                    transaction.update(session.reference, {"ended_at": utcnow()})
            return ended

        total = 0
        while True:  # every round marks what it read as ended, so the query shrinks
            ids = [s.id async for s in open_sessions.stream() if s.id != except_session_id]
            if not ids:
                return total
            batch = ids[:SESSIONS_PER_TRANSACTION]
            total += await self._transact(
                ("sessions of", user_id), functools.partial(end, ids=batch)
            )

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        if not (is_document_id(user_id) and is_document_id(session_id)):
            return None
        session_reference = self._sessions.document(session_id)
        user_reference = self._users.document(user_id)
        found = {
            snapshot.reference.path: snapshot
            async for snapshot in self._client.get_all([session_reference, user_reference])
        }
        session, user = found[session_reference.path], found[user_reference.path]
        return _user(user) if _session_is_live(session, user, user_id) else None

    # API keys

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        reference = self._hashed(self._keys, key_hash)
        key = ApiKey(new_id("key"), name, tuple(sorted(scopes)), prefix, created_by, utcnow())
        fields = {
            "id": key.id,
            "name": key.name,
            "scopes": list(key.scopes),
            "prefix": key.prefix,
            "created_by": key.created_by,
            "created_at": key.created_at,
            "last_used_at": None,
            "revoked_at": None,
        }
        try:
            await reference.create(fields)
        except AlreadyExists:
            raise Conflict("an API key with this hash is already stored") from None
        return key

    async def _key_document(self, key_id: str) -> DocumentSnapshot:
        """The key's document, found by its id (an id never moves to another document)."""
        query = self._keys.where(filter=FieldFilter("id", "==", key_id)).limit(1)
        async for snapshot in query.stream():
            return snapshot
        raise NotFound(f"API key {key_id!r} not found", id=key_id)

    async def get_api_key(self, key_id: str) -> ApiKey:
        return _api_key(await self._key_document(key_id))

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        if not is_document_id(key_hash):
            return None
        snapshot = await self._keys.document(key_hash).get()
        return _api_key(snapshot) if snapshot.exists else None

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        # Ordered by the key id, not the document id (the hash stays out of cursors).
        after = decode_position(cursor, "key")
        query = self._keys.order_by("created_at").order_by("id")
        if after is not None:
            query = query.start_after({"created_at": after[0], "id": after[1]})
        documents = [document async for document in query.limit(limit + 1).stream()]
        keys = [_api_key(document) for document in documents]
        next_cursor = None
        if len(keys) > limit:
            last = keys[limit - 1]
            next_cursor = encode_cursor(format_timestamp(last.created_at), last.id)
        return Page(keys[:limit], next_cursor)

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        reference = (await self._key_document(key_id)).reference

        async def revoke(transaction: Transaction) -> ApiKey:
            [snapshot] = await transaction.get(reference)
            key = _api_key(snapshot)
            if key.revoked_at is not None:
                return key
            transaction.update(reference, {"revoked_at": at})
            return attrs.evolve(key, revoked_at=exact_time(at))

        return await self._transact(("key", key_id), revoke)

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        snapshot = await self._key_document(key_id)
        if _later_or_same(snapshot.get("last_used_at"), at):
            return  # last_used_at only moves forward: it can never fall behind ``at`` again

        async def touch(transaction: Transaction) -> None:
            [current] = await transaction.get(snapshot.reference)
            if not _later_or_same(current.get("last_used_at"), at):
                transaction.update(snapshot.reference, {"last_used_at": at})

        await self._transact(("key", key_id), touch)

    # Failed logins

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        reference = self._failures.document(document_key(email.lower()))
        since = at - window

        async def reserve(transaction: Transaction) -> datetime | None:
            [snapshot] = await transaction.get(reference)
            stored = snapshot.get("failures") if snapshot.exists else []
            failures = sorted(t for t in map(exact_time, stored) if t >= since)
            if len(failures) >= limit:
                return failures[len(failures) - limit] + window
            failures = sorted([*failures, at])
            transaction.set(reference, {"failures": failures, "expires_at": failures[-1] + window})
            return None

        return await self._transact(("login", reference.id), reserve)

    async def clear_login_failures(self, email: str) -> None:
        await self._failures.document(document_key(email.lower())).delete()


def _token_fields(session_id: str, user_id: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "user_id": user_id,
        "expires_at": expires_at,
        "used_at": None,
    }


def _later_or_same(stored: datetime | None, at: datetime) -> bool:
    return stored is not None and exact_time(stored) >= at
