"""Presence: which users are connected (a ``GET /api/events`` stream of theirs is open) and
whether they are available or away (a status each user sets).

Each open stream of a user records itself in the store (`store`: SQLite and Firestore) when
it opens, refreshes its ``seen_at`` while it stays open and removes itself when it closes
(`tracking`); a stream not seen for ``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS`` (its process
was killed) counts as gone and is pruned (`timing`). The ``Presence`` service and
``GET``/``PUT /api/presence`` read it (`service`, `routes`). docs/events.md, "Presence".
"""
