"""The inbox's SQLite schema, as numbered migrations (the core applies them, and records how
many were, per store: `omnichannel_core.store.sqlite.migrations`).

Its steps 1 to 5 and 6 were the pre-module schema's migrations 1 to 5 and 8; that schema's
6 and 7 made the access and the core's audit and events stores.
"""

from __future__ import annotations

from omnichannel_core.module.sqlite import SqliteMigration
from omnichannel_core.modules.inbox.store.sqlite.contacts import fill_reach, recompute_search_terms
from omnichannel_core.modules.inbox.store.sqlite.outbox import adopt_unsettled_messages

INBOX_MIGRATIONS: tuple[SqliteMigration, ...] = (
    # 1: contacts, identities, conversations, messages
    """
    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        display_name TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        attributes TEXT NOT NULL DEFAULT '{}',
        search_terms TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX contacts_by_created ON contacts (created_at DESC, id DESC);

    CREATE TABLE identities (
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        PRIMARY KEY (channel, address)
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_contact ON identities (contact_id);

    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        unread_count INTEGER NOT NULL DEFAULT 0,
        last_activity_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (contact_id, channel)
    );
    CREATE INDEX conversations_by_activity ON conversations (last_activity_at DESC, id DESC);

    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT,
        media TEXT NOT NULL DEFAULT '[]',
        provider_message_id TEXT,
        idempotency_key TEXT,
        error_code TEXT,
        error_message TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX messages_by_provider_id
        ON messages (channel, provider_message_id) WHERE provider_message_id IS NOT NULL;
    CREATE UNIQUE INDEX messages_by_idempotency_key
        ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);
    """,
    # 2: provider ids are unique per direction: a provider (or a custom system) may give an
    # outbound message the id of an inbound one; inbound dedupe and status lookups each
    # search their own direction.
    """
    DROP INDEX messages_by_provider_id;
    CREATE UNIQUE INDEX messages_by_provider_id
        ON messages (channel, direction, provider_message_id)
        WHERE provider_message_id IS NOT NULL;
    """,
    # 3: status updates that arrive before their message's provider id is recorded wait
    # here (one row per channel, provider id and status) until it is, or until they expire.
    """
    CREATE TABLE parked_statuses (
        channel TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        parked_at TEXT NOT NULL,
        PRIMARY KEY (channel, provider_message_id, status)
    ) WITHOUT ROWID;
    CREATE INDEX parked_statuses_by_time ON parked_statuses (parked_at);
    """,
    # 4: search words gained phone digits and email domains: recompute every contact's.
    recompute_search_terms,
    # 5: the channels on which a contact opted out (SMS STOP), as a JSON list.
    """
    ALTER TABLE contacts ADD COLUMN opted_out TEXT NOT NULL DEFAULT '[]';
    """,
    # 6 (the pre-module schema's 8): receipts and the messaging window: when the customer
    # last wrote in each conversation (filled from its newest inbound message), and the two
    # lookups of a watermark, a conversation by its address and its messages not yet at a
    # status.
    """
    ALTER TABLE conversations ADD COLUMN last_inbound_at TEXT;
    UPDATE conversations SET last_inbound_at = (
        SELECT max(created_at) FROM messages
        WHERE messages.conversation_id = conversations.id AND direction = 'inbound'
    );
    CREATE INDEX conversations_by_address ON conversations (channel, address);
    CREATE INDEX messages_by_status ON messages (conversation_id, status, created_at);
    """,
    # 7: the durable outbox (docs/delivery.md). Each message not yet settled has an entry;
    # the pace shared by every runner is one row per channel (or sender). Messages also
    # say whether they are in doubt, when they may go, and how many attempts were made.
    """
    ALTER TABLE messages ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN send_at TEXT;
    ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN error_details TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE outbox (
        message_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL,
        due_at TEXT NOT NULL,
        first_due_at TEXT NOT NULL,
        failing_since TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_holder TEXT,
        lease_until TEXT,
        doubt_until TEXT,
        resend INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    ) WITHOUT ROWID;
    CREATE INDEX outbox_by_due ON outbox (state, priority, due_at);
    CREATE INDEX outbox_by_channel ON outbox (channel, state, priority, due_at);
    CREATE INDEX outbox_by_lease ON outbox (state, lease_until);
    CREATE INDEX outbox_by_doubt ON outbox (doubt_until) WHERE doubt_until IS NOT NULL;
    CREATE TABLE send_paces (
        key TEXT PRIMARY KEY,
        next_free REAL NOT NULL,
        fraction REAL NOT NULL DEFAULT 1,
        slowed_at REAL NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    # 8: outbound messages left queued or sending by the send-in-the-request of earlier
    # versions may have reached the provider: they go in doubt, for their callbacks to settle
    # or the deadline to fail, rather than stay stuck or be sent twice.
    adopt_unsettled_messages,
    # 9: several conversations per contact and channel (an email thread each), and the other
    # addresses of a conversation's thread. SQLite cannot drop UNIQUE (contact_id, channel)
    # in place: the table is made again without it, every row copied, its indexes made
    # again, and the contact's conversations on a channel found by a plain index, newest
    # first (`store.threads`).
    """
    CREATE TABLE conversations_rebuilt (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        unread_count INTEGER NOT NULL DEFAULT 0,
        last_activity_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_inbound_at TEXT,
        participants TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO conversations_rebuilt (id, contact_id, channel, address, status, assignee,
        unread_count, last_activity_at, created_at, updated_at, last_inbound_at)
        SELECT id, contact_id, channel, address, status, assignee, unread_count,
            last_activity_at, created_at, updated_at, last_inbound_at
        FROM conversations;
    DROP TABLE conversations;
    ALTER TABLE conversations_rebuilt RENAME TO conversations;
    CREATE INDEX conversations_by_activity ON conversations (last_activity_at DESC, id DESC);
    CREATE INDEX conversations_by_address ON conversations (channel, address);
    CREATE INDEX conversations_by_contact
        ON conversations (contact_id, channel, created_at DESC, id DESC);
    """,
    # 10: the CRM's contacts (issue 16): profile fields; ``merged_into``, the survivor a
    # contact merged away points to (a tombstone: lists skip it, reads follow it); each
    # contact's reach (its emails and phones, profile's and identities', `store.profiles`),
    # which ``find_contacts`` looks up; and the messages of a contact, which a merge moves.
    """
    ALTER TABLE contacts ADD COLUMN emails TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE contacts ADD COLUMN phones TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE contacts ADD COLUMN company TEXT;
    ALTER TABLE contacts ADD COLUMN locale TEXT;
    ALTER TABLE contacts ADD COLUMN timezone TEXT;
    ALTER TABLE contacts ADD COLUMN avatar TEXT;
    ALTER TABLE contacts ADD COLUMN merged_into TEXT;
    CREATE TABLE contact_reach (
        value TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        PRIMARY KEY (value, contact_id)
    ) WITHOUT ROWID;
    CREATE INDEX contact_reach_by_contact ON contact_reach (contact_id);
    CREATE INDEX messages_by_contact ON messages (contact_id);
    """,
    # 11: the reach of the contacts stored before step 10, from their identities.
    fill_reach,
    # 12: erasure (`store.erasure`): when a contact was erased (a tombstone: reads answer
    # NotFound, lists skip it), and the media ids its erasure has still to forget.
    """
    ALTER TABLE contacts ADD COLUMN erased_at TEXT;
    ALTER TABLE contacts ADD COLUMN erased_media TEXT NOT NULL DEFAULT '[]';
    """,
    # 13: whether the runner holding an outbox entry has begun calling the channel: a claim
    # clears it, `OutboxStore.begin_attempt` sets it, so an entry whose lease ends unmarked
    # was never sent and is queued again rather than put in doubt. Entries stored before it
    # count as attempted (in doubt when their lease ends, as before).
    """
    ALTER TABLE outbox ADD COLUMN attempted INTEGER NOT NULL DEFAULT 1;
    """,
    # 14: who sent each outbound message (`models.Author`, JSON; none for messages stored
    # before), and each conversation's history: every change of its status or assignee,
    # kept for good (`store.history`), which the dashboard is rebuilt from.
    """
    ALTER TABLE messages ADD COLUMN author TEXT;
    CREATE TABLE conversation_changes (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        previous_status TEXT NOT NULL,
        assignee TEXT,
        previous_assignee TEXT,
        by TEXT
    ) WITHOUT ROWID;
    CREATE INDEX conversation_changes_by_conversation
        ON conversation_changes (conversation_id, at, id);
    """,
)
