"""The inbox's Firestore migrations, named where the plugin declares its store without
importing Google's client (each step imports its backend when it runs)."""

from __future__ import annotations

from typing import Any


async def fill_contact_reach(database: Any) -> None:
    """Step 1 (issue 16): every contact's ``reach``
    (`store.firestore.migrations.fill_reach`)."""
    from omnichannel_core.modules.inbox.store.firestore.migrations import fill_reach

    await fill_reach(database)


FIRESTORE_MIGRATIONS = (fill_contact_reach,)
