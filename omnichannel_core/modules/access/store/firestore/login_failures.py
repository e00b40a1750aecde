"""Failed logins on Firestore, one document per (lower-cased) email whether or not such a
user exists, keyed by a hash of the email: the times of the failures within the window."""

from __future__ import annotations

from datetime import datetime, timedelta

from omnichannel_core.module.firestore import Transaction, document_key, exact_time
from omnichannel_core.modules.access.store.firestore.documents import Layout


async def reserve_login_attempt(
    layout: Layout, email: str, at: datetime, window: timedelta, limit: int
) -> datetime | None:
    reference = layout.failures.document(document_key(email.lower()))
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

    return await layout.transact(("login", reference.id), reserve)


async def clear_login_failures(layout: Layout, email: str) -> None:
    await layout.failures.document(document_key(email.lower())).delete()
