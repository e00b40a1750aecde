"""``omnichannel settings rotate-key``: every stored secret sealed again with the current
key (the first of ``OMNICHANNEL_SECRET_KEY``) and in the current format (bound to its name),
so the old key can be dropped; and the values stored plain of variables a channel now
declares secret sealed (docs/settings.md, "Rotating the key")."""

from __future__ import annotations

import argparse

import attrs

from omnichannel_core.module import (
    AuditEntry,
    Command,
    ConfigError,
    Principal,
    SecretUnreadable,
    audit_entry,
)
from omnichannel_core.modules.settings.channel_values import ChannelValues
from omnichannel_core.modules.settings.records import Settings, StoredValue
from omnichannel_core.modules.settings.store import SETTINGS_RECORD, SettingsStore

COMMAND_LINE = Principal("system", "command-line", "command line", frozenset())
"""Who rotates: the server's machine."""


def rotate_key(store: SettingsStore, values: ChannelValues) -> Command:
    async def run(args: argparse.Namespace) -> int:
        box = values.box()
        declared = await values.by_name()
        resealed: list[str] = []
        sealed: list[str] = []

        def change(stored: Settings) -> tuple[Settings, AuditEntry | None]:
            resealed.clear()
            sealed.clear()
            unreadable: list[str] = []
            channel_values = dict(stored.channel_values)
            for name, value in sorted(channel_values.items()):
                if not value.sealed:
                    setting = declared.get(name)
                    if setting is not None and setting.secret:  # a variable now secret
                        channel_values[name] = StoredValue(box.seal(value.value, name), True)
                        sealed.append(name)
                    continue
                try:
                    if box.current(value.value):
                        continue
                    opened = box.open(value.value, name)
                except SecretUnreadable:
                    unreadable.append(name)
                    continue
                channel_values[name] = StoredValue(box.seal(opened, name), True)
                resealed.append(name)
            if unreadable:
                raise ConfigError(
                    f"{', '.join(unreadable)} will not open with any key of"
                    " OMNICHANNEL_SECRET_KEY: put the key they were sealed with back in the"
                    " ring (after the new one) and run this again, or set them again through"
                    " PATCH /api/settings; nothing was changed"
                )
            if not resealed and not sealed:
                return stored, None
            entry = audit_entry(
                COMMAND_LINE,
                "settings.key_rotated",
                SETTINGS_RECORD,
                SETTINGS_RECORD,
                {"resealed": list(resealed), "sealed": list(sealed), "key_id": box.key_id},
                None,
            )
            return attrs.evolve(stored, channel_values=channel_values), entry

        await store.change(change, COMMAND_LINE.id)
        if sealed:
            print(
                f"sealed {len(sealed)} value(s) stored plain of variables now secret, with key"
                f" {box.key_id}: {', '.join(sealed)}"
            )
        if resealed:
            print(
                f"sealed {len(resealed)} stored secret(s) again with key {box.key_id}:"
                f" {', '.join(resealed)}; every server takes them within seconds. Once"
                " each server runs with the new key first, drop the old one from"
                " OMNICHANNEL_SECRET_KEY."
            )
        if not resealed and not sealed:
            print(f"every stored secret is sealed with the current key ({box.key_id}) already")
        return 0

    return Command(
        "settings",
        "rotate-key",
        "seal every stored secret again with the current key",
        run,
        description="Seal every stored secret (the channel credentials admins stored) again"
        " with the current key, the first of OMNICHANNEL_SECRET_KEY, and seal the values"
        " stored plain of variables a channel now declares secret. To rotate: put a new"
        " key first in OMNICHANNEL_SECRET_KEY (the old one after it) on every server and"
        " restart them, run this once, then drop the old key. Refuses, changing nothing,"
        " when a secret opens with no key of the ring.",
        group_help="manage the stored settings from the server's machine",
        group_description="Manage the settings stored in the server's store, from the"
        " server's machine: run it with the server's environment.",
    )
