"""The dashboard's Firestore migrations, named where the module declares its store without
importing Google's client (each step imports its backend when it runs)."""

from __future__ import annotations

from typing import Any


async def count_the_hours(database: Any) -> None:
    """Step 1: the hours' tier (`firestore.forget_the_zone`): a store counted before it is
    counted again, hours included."""
    from omnichannel_core.modules.dashboard.firestore import forget_the_zone

    await forget_the_zone(database)


FIRESTORE_MIGRATIONS = (count_the_hours,)
"""The dashboard's Firestore document migrations (`StoreSpec`'s ``firestore_migrations``):
each safe to run twice."""
