"""Who may do what with the settings (docs/settings.md, "Who may read and change them").
Everyone reads them (agents need the canned responses and the business hours); only admins
change them, and only they see the channels' variables."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

SETTINGS_READ = "settings:read"
SETTINGS_MANAGE = "settings:manage"
"""Contributed by the core (`omnichannel_core.system`), held by admins alone."""

PERMISSIONS = [
    PermissionSpec(
        SETTINGS_READ,
        "read the business's settings (name, time zone, hours, holidays, SLA, away"
        " messages) and the canned responses; told of settings.updated",
        (Role.SUPERVISOR, Role.AGENT),
        scopes=("read",),
    ),
]
