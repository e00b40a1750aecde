"""What the settings API does: a change checked whole before anything is stored, made in one
transaction with its audit entry (before and after of each field it changed, secrets
masked), and taken in by this process at once (the others within seconds); the canned
responses likewise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from omnichannel_core.module import (
    AuditEntry,
    Channels,
    ConfigError,
    Conflict,
    Page,
    Principal,
    SecretUnreadable,
    Setting,
    audit_entry,
    new_id,
    to_json,
    utcnow,
)
from omnichannel_core.modules.settings.bodies import (
    CannedResponseChange,
    NewCannedResponse,
    SettingsChange,
    given,
)
from omnichannel_core.modules.settings.channel_values import ChannelValues, shown
from omnichannel_core.modules.settings.checks import (
    checked_away_messages,
    checked_holidays,
    checked_hours,
    checked_timezone,
)
from omnichannel_core.modules.settings.permissions import SETTINGS_MANAGE
from omnichannel_core.modules.settings.records import (
    CANNED_PREFIX,
    CannedResponse,
    Settings,
    StoredValue,
)
from omnichannel_core.modules.settings.refresh import Refresher
from omnichannel_core.modules.settings.store import SETTINGS_RECORD, SettingsStore
from omnichannel_core.modules.settings.view import SettingsView, settings_view

MAX_CANNED = 1000
"""Canned responses at most (a soft limit: two admins adding the last at once may pass it
by one)."""
UNREADABLE = "(unreadable)"
"""How the audit log shows a stored secret that would not open."""

Audited = dict[str, dict[str, Any]]
"""The audit entry's ``changes``: per field changed (``business.timezone``,
``channels.TWILIO_AUTH_TOKEN``...), its ``before`` and ``after``."""


def _changed(changes: Audited, name: str, before: Any, after: Any) -> None:
    if before != after:
        changes[name] = {"before": before, "after": after}


class SettingsService:
    """The settings of this server.

    :param channels: the loaded channels (an away message's channel must be one).
    :param refresher: this process's copy, which takes each change at once.
    """

    def __init__(
        self,
        store: SettingsStore,
        values: ChannelValues,
        channels: Channels,
        refresher: Refresher,
    ) -> None:
        self.store = store
        self.values = values
        self.channels = channels
        self.refresher = refresher

    async def view(self, principal: Principal) -> SettingsView:
        """The settings as stored now (not this process's copy: a change another process
        just made shows); the channels' variables only to a caller who may manage them."""
        settings = await self.store.get()
        return await self._view(settings, principal)

    async def _view(self, settings: Settings, principal: Principal) -> SettingsView:
        channels = None
        if SETTINGS_MANAGE in principal.permissions:
            channels = await self.values.shown_all(settings.channel_values)
        return settings_view(settings, channels)

    async def change(
        self, body: SettingsChange, principal: Principal, client: str | None
    ) -> SettingsView:
        """Check the whole change, then make it in one transaction with its audit entry."""
        parts = given(body)
        fields: dict[str, Any] = {}
        if "business" in parts:
            business = given(parts["business"])
            if "name" in business:
                fields["name"] = business["name"].strip()
            if "timezone" in business:
                fields["timezone"] = checked_timezone(business["timezone"])
        if "hours" in parts:
            fields["hours"] = checked_hours(parts["hours"])
        if "holidays" in parts:
            fields["holidays"] = checked_holidays(parts["holidays"])
        if "sla" in parts:
            fields["first_response_minutes"] = parts["sla"].first_response_minutes
        away = parts.get("away_messages")
        loaded = set(self.channels.names)
        if away is not None:
            checked_away_messages((), away, loaded)  # refused now, not inside the transaction
        values: dict[str, str | None] = {}
        declared: dict[str, Setting] = {}
        if "channels" in parts:
            declared = await self.values.by_name()
            values = self.values.checked(parts["channels"], declared)
        sealed = {
            name: None if value is None else self.values.sealed(declared[name], value)
            for name, value in values.items()
        }

        def change(stored: Settings) -> tuple[Settings, AuditEntry | None]:
            changes: dict[str, Any] = dict(fields)
            if away is not None:
                changes["away_messages"] = checked_away_messages(stored.away_messages, away, loaded)
            audited = self._audited(stored, attrs.evolve(stored, **changes))
            if sealed:
                channel_values, channel_changes = self._channel_values(
                    stored, values, sealed, declared
                )
                changes["channel_values"] = channel_values
                audited.update(channel_changes)
            if not audited:
                return stored, None
            entry = audit_entry(
                principal,
                "settings.updated",
                SETTINGS_RECORD,
                SETTINGS_RECORD,
                {"changes": audited},
                client,
            )
            return attrs.evolve(stored, **changes), entry

        settings = await self.store.change(change, principal.id)
        await self.refresher.take(settings)
        return await self._view(settings, principal)

    @staticmethod
    def _audited(stored: Settings, changed: Settings) -> Audited:
        changes: Audited = {}
        _changed(changes, "business.name", stored.name, changed.name)
        _changed(changes, "business.timezone", stored.timezone, changed.timezone)
        _changed(changes, "hours", to_json(stored.hours), to_json(changed.hours))
        _changed(changes, "holidays", to_json(stored.holidays), to_json(changed.holidays))
        _changed(
            changes,
            "sla.first_response_minutes",
            stored.first_response_minutes,
            changed.first_response_minutes,
        )
        before = {message.channel: message for message in stored.away_messages}
        for message in changed.away_messages:
            old = before.get(message.channel)
            _changed(
                changes,
                f"away_messages.{message.channel}",
                None if old is None else to_json(old),
                to_json(message),
            )
        return changes

    def _channel_values(
        self,
        stored: Settings,
        values: Mapping[str, str | None],
        sealed: Mapping[str, StoredValue | None],
        declared: Mapping[str, Setting],
    ) -> tuple[dict[str, StoredValue], Audited]:
        """The stored channel values with ``sealed`` applied, and what changed, as the audit
        shows it (secrets masked). A value set again to what it was is left as it was."""
        merged = dict(stored.channel_values)
        changes: Audited = {}
        for name, value in values.items():
            setting, old = declared[name], merged.get(name)
            before = self._plain(setting, old)
            if before == value:
                continue
            new = sealed[name]
            if new is None:
                merged.pop(name, None)
            else:
                merged[name] = new
            changes[f"channels.{name}"] = {
                "before": None if before is None else _shown(setting, before),
                "after": None if value is None else shown(setting, value),
            }
        return merged, changes

    def _plain(self, setting: Setting, stored: StoredValue | None) -> str | None:
        if stored is None:
            return None
        try:
            return self.values.open(setting, stored)
        except (SecretUnreadable, ConfigError):
            return UNREADABLE

    # Canned responses.

    async def canned_responses(self, cursor: str | None, limit: int) -> Page:
        return await self.store.canned_responses(cursor, limit)

    async def create_canned_response(
        self, body: NewCannedResponse, principal: Principal, client: str | None
    ) -> CannedResponse:
        if await self.store.count_canned_responses() >= MAX_CANNED:
            raise Conflict(f"there are {MAX_CANNED} canned responses, the most there may be")
        now = utcnow()
        response = CannedResponse(
            id=new_id(CANNED_PREFIX),
            shortcut=body.shortcut,
            title=body.title.strip(),
            text=body.text,
            created_at=now,
            updated_at=now,
            created_by=principal.id,
            updated_by=principal.id,
        )
        audit = audit_entry(
            principal,
            "canned_response.created",
            "canned_response",
            response.id,
            {"after": _canned_json(response)},
            client,
        )
        return await self.store.create_canned_response(response, audit)

    async def change_canned_response(
        self,
        response_id: str,
        body: CannedResponseChange,
        principal: Principal,
        client: str | None,
    ) -> CannedResponse:
        changes = given(body)
        if "title" in changes:
            changes["title"] = changes["title"].strip()

        def change(stored: CannedResponse) -> tuple[CannedResponse, AuditEntry | None]:
            changed = attrs.evolve(stored, **changes)
            before, after = _canned_json(stored), _canned_json(changed)
            if before == after:
                return stored, None
            details = {"before": before, "after": after}
            entry = audit_entry(
                principal,
                "canned_response.updated",
                "canned_response",
                response_id,
                details,
                client,
            )
            return changed, entry

        return await self.store.change_canned_response(response_id, change, principal.id)

    async def delete_canned_response(
        self, response_id: str, principal: Principal, client: str | None
    ) -> None:
        def audit(deleted: CannedResponse) -> AuditEntry:
            return audit_entry(
                principal,
                "canned_response.deleted",
                "canned_response",
                response_id,
                {"before": _canned_json(deleted)},
                client,
            )

        await self.store.delete_canned_response(response_id, audit)


def _shown(setting: Setting, value: str) -> str:
    return value if value == UNREADABLE else shown(setting, value)


def _canned_json(response: CannedResponse) -> dict[str, str]:
    return {"shortcut": response.shortcut, "title": response.title, "text": response.text}
