"""Users on Firestore: created with their email claimed in ``user_emails``, read by id or
email, listed, and changed without ever leaving no active admin (``meta/admins``)."""

from __future__ import annotations

from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import FieldFilter

from omnichannel_core.module import UNSET, Conflict, NotFound, Page, Role, new_id, utcnow
from omnichannel_core.module.firestore import KeysetQuery, Transaction, document, document_key
from omnichannel_core.modules.access.records import User, UserCredentials
from omnichannel_core.modules.access.store.firestore.documents import (
    Layout,
    read_credentials,
    read_user,
    user_fields,
)

USERS_LOCK = "users"
"""The in-process queue of user writes (they may read ``meta/admins``)."""


def _is_active_admin(role: Role | str, active: bool) -> bool:
    return Role(role) is Role.ADMIN and active


async def create_user(
    layout: Layout, email: str, display_name: str, role: Role, password_hash: str
) -> User:
    address, admin = email.lower(), Role(role) is Role.ADMIN
    email_reference = layout.emails.document(document_key(address))

    async def create(transaction: Transaction) -> User:
        taken, *admins = await transaction.get(email_reference, *([layout.admins] if admin else []))
        if taken.exists:
            raise Conflict("a user with this email exists", email=address)
        now = utcnow()
        user = User(new_id("usr"), address, display_name, Role(role), True, now, now)
        transaction.create(email_reference, {"email": address, "user_id": user.id})
        transaction.create(layout.users.document(user.id), user_fields(user, password_hash, 0))
        if admin:
            ids = set(admins[0].get("user_ids") if admins[0].exists else ())
            transaction.set(layout.admins, {"user_ids": sorted(ids | {user.id})})
        return user

    try:
        return await layout.transact((USERS_LOCK,), create)
    except AlreadyExists:  # a creator in another process won between read and commit
        raise Conflict("a user with this email exists", email=address) from None


async def get_user(layout: Layout, user_id: str) -> User:
    snapshot = await document(layout.users, user_id).get()
    if not snapshot.exists:
        raise NotFound(f"user {user_id!r} not found", id=user_id)
    return read_user(snapshot)


async def user_credentials(layout: Layout, email: str) -> UserCredentials | None:
    query = layout.users.where(filter=FieldFilter("email", "==", email.lower())).limit(1)
    async for snapshot in query.stream():
        return read_credentials(snapshot)
    return None


async def user_credentials_by_id(layout: Layout, user_id: str) -> UserCredentials:
    snapshot = await document(layout.users, user_id).get()
    if not snapshot.exists:
        raise NotFound(f"user {user_id!r} not found", id=user_id)
    return read_credentials(snapshot)


async def list_users(layout: Layout, cursor: str | None, limit: int) -> Page:
    pages = KeysetQuery(layout.users, layout.users, "created_at", descending=False, id_prefix="usr")
    return await pages.page(cursor, limit, read_user)


async def has_active_admin(layout: Layout) -> bool:
    snapshot = await layout.admins.get()
    return snapshot.exists and bool(snapshot.get("user_ids"))


async def update_user(
    layout: Layout,
    user_id: str,
    display_name: str = UNSET,
    role: Role = UNSET,
    active: bool = UNSET,
    password_hash: str = UNSET,
) -> User:
    reference = document(layout.users, user_id)

    async def update(transaction: Transaction) -> User:
        snapshot, admins = await transaction.get(reference, layout.admins)
        if not snapshot.exists:
            raise NotFound(f"user {user_id!r} not found", id=user_id)
        current = read_user(snapshot)
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
                raise Conflict("the last active admin cannot be demoted or deactivated", id=user_id)
            ids = ids - {user_id} if was_admin else ids | {user_id}
            transaction.set(layout.admins, {"user_ids": sorted(ids)})
        generation = snapshot.get("session_generation")
        if current.active and not changed.active:
            generation += 1  # every session of the user ends with this write
        kept_hash = snapshot.get("password_hash")
        new_hash = kept_hash if password_hash is UNSET else password_hash
        transaction.set(reference, user_fields(changed, new_hash, generation))
        return changed

    return await layout.transact((USERS_LOCK,), update)
