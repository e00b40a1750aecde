"""Where each of the access module's records lives in Firestore, and the records made of its
documents.

The layout itself (collections, ids, fields, and why) is described in
`omnichannel_core.modules.access.store.firestore.store`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.cloud.firestore_v1 import (
    AsyncClient,
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
)

from omnichannel_core.module import InvalidInput, Role
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    exact_time,
    is_document_id,
    optional_time,
)
from omnichannel_core.modules.access.records import ApiKey, User, UserCredentials

T = TypeVar("T")


class Layout:
    """References to the access module's documents on the shared database (whose prefix every
    collection name takes)."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database
        self.client: AsyncClient = database.client
        self.users = database.collection("users")
        self.emails = database.collection("user_emails")
        self.admins: AsyncDocumentReference = database.collection("meta").document("admins")
        self.sessions = database.collection("sessions")
        self.tokens = database.collection("refresh_tokens")
        self.keys = database.collection("api_keys")
        self.failures = database.collection("login_failures")

    async def transact(
        self, key: tuple[str, ...], body: Callable[[Transaction], Awaitable[T]]
    ) -> T:
        """Run ``body`` in a transaction, after this process's other writers of ``key``."""
        return await self.database.transact(key, body)


def hashed_document(collection: AsyncCollectionReference, digest: str) -> AsyncDocumentReference:
    """The document named by a SHA-256 digest; InvalidInput for anything else."""
    if not is_document_id(digest):
        raise InvalidInput("expected a SHA-256 digest")
    return collection.document(digest)


def read_user(snapshot: DocumentSnapshot) -> User:
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


def read_credentials(snapshot: DocumentSnapshot) -> UserCredentials:
    return UserCredentials(user=read_user(snapshot), password_hash=snapshot.get("password_hash"))


def user_fields(user: User, password_hash: str, generation: int) -> dict[str, Any]:
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


def read_api_key(snapshot: DocumentSnapshot) -> ApiKey:
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
