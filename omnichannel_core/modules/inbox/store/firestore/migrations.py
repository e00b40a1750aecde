"""The inbox's Firestore document migrations (`omnichannel_core.store.specs.StoreSpec`'s
``firestore_migrations``, through `store.firestore_steps`): each safe to run twice."""

from __future__ import annotations

from omnichannel_core.module.firestore import FirestoreDatabase
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    merged_into,
    read_contact,
)
from omnichannel_core.modules.inbox.store.profiles import reach

PAGE = 400
"""Contacts read, and at most written, per commit."""


async def fill_reach(database: FirestoreDatabase) -> None:
    """Step 1: the ``reach`` of every contact stored before it (`store.profiles`: from
    its identities, contacts having had no profile emails or phones), so that
    ``find_contacts`` finds them."""
    layout = Layout(database)
    after = None
    while True:
        query = layout.contacts.order_by("__name__").limit(PAGE)
        if after is not None:
            query = query.start_after(after)
        documents = [snapshot async for snapshot in query.stream()]
        batch = layout.client.batch()
        for snapshot in documents:
            if merged_into(snapshot) is None and "reach" not in (snapshot.to_dict() or {}):
                batch.update(snapshot.reference, {"reach": reach(read_contact(snapshot))})
        if len(batch):
            await batch.commit()
        if len(documents) < PAGE:
            return
        after = documents[-1]
