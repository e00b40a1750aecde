"""The settings' store on Firestore (imported only when the server runs on Firestore: it needs
Google's client).

``settings/current``
    ``version`` and the settings as ``data_json`` (text, exempt from indexing). Every
    change rewrites it (canned responses' changes bump its version too): a few writes a
    minute at most, far below a document's sustained write rate. Each process reads its
    ``version`` alone every couple of seconds.
``settings_canned_responses/{id}``
    ``shortcut`` and the response as ``data_json``; listed by ``shortcut`` (a single-field
    index, which Firestore makes by itself).
``settings_canned_shortcuts/{document_key(shortcut)}``
    ``response_id``: the claim that keeps a shortcut to one response. A transaction reads
    the claim before it creates, moves or drops it, so two admins taking one shortcut at
    once cannot both succeed.
``settings_away_sent/{document_key(channel, contact id)}``
    ``message_id`` and ``sent_at``: the last away message sent to a customer on a channel.
``settings_away_hours/{document_key(channel)}``
    ``hour`` and ``sent``: how many away messages the channel sent in that clock hour. A
    claim reads both in one transaction and writes both (at most the hourly limit's writes
    an hour to a channel's document). Read by id only: no index.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from google.cloud.firestore_v1 import AsyncDocumentReference, DocumentSnapshot

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Page,
    format_timestamp,
    from_json,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document,
    document_key,
    existing,
    json_text,
    log_event,
    queue_audit,
)
from omnichannel_core.modules.settings.records import CannedResponse, Settings
from omnichannel_core.modules.settings.store import (
    SETTINGS_RECORD,
    SETTINGS_UPDATED,
    AwayClaim,
    AwayHour,
    AwaySent,
    AwayVerdict,
    CannedChange,
    SettingsChange,
    away_verdict,
    shortcut_cursor,
    shortcut_of_cursor,
)

SETTINGS = "settings"
CANNED = "settings_canned_responses"
SHORTCUTS = "settings_canned_shortcuts"
AWAY_SENT = "settings_away_sent"
AWAY_HOURS = "settings_away_hours"
TURN = (SETTINGS,)
"""Every write bumps the one settings document: this process's writers take turns."""


def _settings(snapshot: DocumentSnapshot) -> Settings:
    if not snapshot.exists:
        return Settings()
    data = snapshot.to_dict() or {}
    stored = from_json(json.loads(data["data_json"]), Settings)
    return attrs.evolve(stored, version=int(data["version"]))


def _canned(snapshot: DocumentSnapshot) -> CannedResponse:
    return from_json(json.loads(existing(snapshot, "canned response")["data_json"]), CannedResponse)


def _canned_fields(response: CannedResponse) -> dict[str, Any]:
    return {"shortcut": response.shortcut, "data_json": json_text(response)}


def _taken(shortcut: str) -> Conflict:
    return Conflict(f"shortcut: {shortcut!r} is another canned response's", field="shortcut")


class FirestoreSettingsStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _current(self) -> AsyncDocumentReference:
        return self.database.collection(SETTINGS).document("current")

    def _response(self, response_id: str) -> AsyncDocumentReference:
        return document(self.database.collection(CANNED), response_id, "canned response")

    def _claim(self, shortcut: str) -> AsyncDocumentReference:
        return self.database.collection(SHORTCUTS).document(document_key(shortcut))

    def _bump(
        self,
        transaction: Transaction,
        current: DocumentSnapshot,
        settings: Settings,
        audit: AuditEntry | None,
    ) -> int:
        """Queue ``settings`` as the version after ``current``'s, its event and ``audit``."""
        version = _settings(current).version + 1
        stored = attrs.evolve(settings, version=version)
        transaction.set(self._current(), {"version": version, "data_json": json_text(stored)})
        log_event(
            transaction, self.database, SETTINGS_UPDATED, SETTINGS_RECORD, data={"version": version}
        )
        if audit is not None:
            queue_audit(transaction, self.database, audit)
        return version

    async def get(self) -> Settings:
        return _settings(await self._current().get())

    async def version(self) -> int:
        snapshot = await self._current().get(field_paths=["version"])
        return int((snapshot.to_dict() or {}).get("version", 0)) if snapshot.exists else 0

    async def change(self, change: SettingsChange, by: str | None) -> Settings:
        async def body(transaction: Transaction) -> Settings:
            (current,) = await transaction.get(self._current())
            stored = _settings(current)
            changed, audit = change(stored)
            if changed == stored:
                return stored
            changed = attrs.evolve(changed, updated_at=utcnow(), updated_by=by)
            return attrs.evolve(changed, version=self._bump(transaction, current, changed, audit))

        return await self.database.transact(TURN, body)

    async def canned_responses(self, cursor: str | None, limit: int) -> Page:
        query: Any = self.database.collection(CANNED).order_by("shortcut")
        if cursor is not None:
            query = query.start_after({"shortcut": shortcut_of_cursor(cursor)})
        found = [snapshot async for snapshot in query.limit(limit + 1).stream()]
        items = [_canned(snapshot) for snapshot in found[:limit]]
        next_cursor = shortcut_cursor(items[-1].shortcut) if len(found) > limit else None
        return Page(items, next_cursor)

    async def canned_response(self, response_id: str) -> CannedResponse:
        return _canned(await self._response(response_id).get())

    async def count_canned_responses(self) -> int:
        counting: Any = self.database.collection(CANNED).count()  # typed as the class
        (counted,) = await counting.get()
        return int(counted[0].value)

    async def create_canned_response(
        self, response: CannedResponse, audit: AuditEntry | None
    ) -> CannedResponse:
        reference, claim = self._response(response.id), self._claim(response.shortcut)

        async def body(transaction: Transaction) -> CannedResponse:
            current, claimed = await transaction.get(self._current(), claim)
            if claimed.exists:
                raise _taken(response.shortcut)
            transaction.create(reference, _canned_fields(response))
            transaction.create(claim, {"response_id": response.id})
            self._bump(transaction, current, _settings(current), audit)
            return response

        return await self.database.transact(TURN, body)

    async def change_canned_response(
        self, response_id: str, change: CannedChange, by: str | None
    ) -> CannedResponse:
        reference = self._response(response_id)

        async def body(transaction: Transaction) -> CannedResponse:
            current, snapshot = await transaction.get(self._current(), reference)
            stored = _canned(snapshot)
            changed, audit = change(stored)
            if changed == stored:
                return stored
            changed = attrs.evolve(changed, updated_at=utcnow(), updated_by=by)
            if changed.shortcut != stored.shortcut:
                (claimed,) = await transaction.get(self._claim(changed.shortcut))
                if claimed.exists:
                    raise _taken(changed.shortcut)
                transaction.delete(self._claim(stored.shortcut))
                transaction.create(self._claim(changed.shortcut), {"response_id": response_id})
            transaction.set(reference, _canned_fields(changed))
            self._bump(transaction, current, _settings(current), audit)
            return changed

        return await self.database.transact(TURN, body)

    async def delete_canned_response(
        self, response_id: str, audit: Callable[[CannedResponse], AuditEntry | None]
    ) -> None:
        reference = self._response(response_id)

        async def body(transaction: Transaction) -> None:
            current, snapshot = await transaction.get(self._current(), reference)
            stored = _canned(snapshot)
            transaction.delete(reference)
            transaction.delete(self._claim(stored.shortcut))
            self._bump(transaction, current, _settings(current), audit(stored))

        await self.database.transact(TURN, body)

    async def claim_away(self, claim: AwayClaim) -> AwayVerdict:
        contact = self.database.collection(AWAY_SENT).document(
            document_key(claim.channel, claim.contact_id)
        )
        channel = self.database.collection(AWAY_HOURS).document(document_key(claim.channel))

        async def body(transaction: Transaction) -> AwayVerdict:
            sent_line, hour_line = await transaction.get(contact, channel)
            sent = None
            if sent_line.exists:
                data = sent_line.to_dict() or {}
                sent = AwaySent(str(data["message_id"]), parse_timestamp(data["sent_at"]))
            hour = None
            if hour_line.exists:
                data = hour_line.to_dict() or {}
                hour = AwayHour(str(data["hour"]), int(data["sent"]))
            verdict, counted = away_verdict(claim, sent, hour)
            if verdict is AwayVerdict.SEND and counted is not None:
                transaction.set(
                    contact,
                    {
                        "channel": claim.channel,
                        "contact_id": claim.contact_id,
                        "message_id": claim.message_id,
                        "sent_at": format_timestamp(claim.at),
                    },
                )
                transaction.set(
                    channel,
                    {"channel": claim.channel, "hour": counted.hour, "sent": counted.sent},
                )
            return verdict

        return await self.database.transact((AWAY_HOURS, claim.channel), body)
