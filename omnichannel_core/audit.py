"""The audit log: who did what, kept for good. Any module appends to it (user changes,
assignments, settings...), inside its own transaction when the change and its entry must go
together (on SQLite `omnichannel_core.store.sqlite.audit.append_audit`, on Firestore
`omnichannel_core.store.firestore.audit.queue_audit`), or through
`omnichannel_core.store.protocols.AuditLog`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from omnichannel_core.ids import new_id
from omnichannel_core.timestamps import utcnow

if TYPE_CHECKING:
    from omnichannel_core.policy import Principal


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


def audit_entry(
    actor: Principal | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Any],
    client: str | None,
) -> AuditEntry:
    """A new entry of the audit log, made now; ``actor`` None for an anonymous caller."""
    return AuditEntry(
        id=new_id("aud"),
        action=action,
        actor_type=actor.kind if actor else "anonymous",
        actor_id=actor.id if actor else None,
        target_type=target_type,
        target_id=target_id,
        details=details,
        client_address=client,
        at=utcnow(),
    )
