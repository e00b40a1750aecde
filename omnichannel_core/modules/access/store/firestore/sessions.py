"""Sessions and their refresh tokens on Firestore: a login starts a session, each refresh
token is used once and replaced, a reused one ends its session; deactivating a user ends
their sessions by moving the user's ``session_generation`` on (`users`)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter

from omnichannel_core.module import Conflict, NotFound, new_id, utcnow
from omnichannel_core.module.firestore import Transaction, document, exact_time, is_document_id
from omnichannel_core.modules.access.records import Refreshed, RefreshOutcome, User
from omnichannel_core.modules.access.store.firestore.documents import (
    Layout,
    hashed_document,
    read_user,
)

SESSIONS_PER_TRANSACTION = 100
"""Sessions ``end_user_sessions`` ends per query and transaction."""


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


def _token_fields(session_id: str, user_id: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "user_id": user_id,
        "expires_at": expires_at,
        "used_at": None,
    }


async def create_session(
    layout: Layout, user_id: str, refresh_token_hash: str, expires_at: datetime
) -> str:
    # No transaction: a session takes the generation it read, so if the user is
    # deactivated before the batch commits, the session is born ended.
    user = await document(layout.users, user_id).get()
    if not (user.exists and user.get("active")):
        raise NotFound(f"active user {user_id!r} not found", id=user_id)
    session_id = new_id("ses")
    batch = layout.client.batch()
    batch.create(
        layout.sessions.document(session_id),
        {
            "user_id": user_id,
            "generation": user.get("session_generation"),
            "created_at": utcnow(),
            "ended_at": None,
        },
    )
    batch.create(
        hashed_document(layout.tokens, refresh_token_hash),
        _token_fields(session_id, user_id, expires_at),
    )
    try:
        await batch.commit()
    except AlreadyExists:
        raise Conflict("this refresh token hash is already stored") from None
    return session_id


async def rotate_refresh_token(
    layout: Layout, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
) -> Refreshed:
    if not is_document_id(token_hash):
        return Refreshed(RefreshOutcome.UNKNOWN)
    reference = layout.tokens.document(token_hash)
    successor = hashed_document(layout.tokens, new_token_hash)

    async def rotate(transaction: Transaction) -> Refreshed:
        [token] = await transaction.get(reference)
        if not token.exists or exact_time(token.get("expires_at")) <= now:
            return Refreshed(RefreshOutcome.UNKNOWN)
        session_id, user_id = token.get("session_id"), token.get("user_id")
        session_reference = layout.sessions.document(session_id)
        session, user = await transaction.get(session_reference, layout.users.document(user_id))
        if not _session_is_live(session, user, user_id):
            return Refreshed(RefreshOutcome.UNKNOWN)
        if token.get("used_at") is not None:
            transaction.update(session_reference, {"ended_at": now})
            return Refreshed(RefreshOutcome.REUSED, session_id=session_id)
        transaction.update(reference, {"used_at": now})
        transaction.create(successor, _token_fields(session_id, user_id, expires_at))
        return Refreshed(RefreshOutcome.ROTATED, user=read_user(user), session_id=session_id)

    try:
        return await layout.transact(("token", token_hash), rotate)
    except AlreadyExists:
        raise Conflict("this refresh token hash is already stored") from None


async def end_session(layout: Layout, session_id: str) -> bool:
    if not is_document_id(session_id):
        return False
    reference = layout.sessions.document(session_id)

    async def end(transaction: Transaction) -> bool:
        [session] = await transaction.get(reference)
        if not session.exists:
            return False
        user_id = session.get("user_id")
        [user] = await transaction.get(layout.users.document(user_id))
        if not _session_is_live(session, user, user_id):
            return False
        transaction.update(reference, {"ended_at": utcnow()})
        return True

    return await layout.transact(("session", session_id), end)


async def end_user_sessions(
    layout: Layout, user_id: str, except_session_id: str | None = None
) -> int:
    if not is_document_id(user_id):
        return 0
    user_reference = layout.users.document(user_id)
    open_sessions = (
        layout.sessions.where(filter=FieldFilter("user_id", "==", user_id))
        .where(filter=FieldFilter("ended_at", "==", None))
        .limit(SESSIONS_PER_TRANSACTION + 1)
    )

    async def end(transaction: Transaction, ids: list[str]) -> int:
        user, *sessions = await transaction.get(
            user_reference, *(layout.sessions.document(i) for i in ids)
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
        total += await layout.transact(("sessions of", user_id), functools.partial(end, ids=batch))


async def session_user(layout: Layout, user_id: str, session_id: str) -> User | None:
    if not (is_document_id(user_id) and is_document_id(session_id)):
        return None
    session_reference = layout.sessions.document(session_id)
    user_reference = layout.users.document(user_id)
    found = {
        snapshot.reference.path: snapshot
        async for snapshot in layout.client.get_all([session_reference, user_reference])
    }
    session, user = found[session_reference.path], found[user_reference.path]
    return read_user(user) if _session_is_live(session, user, user_id) else None
