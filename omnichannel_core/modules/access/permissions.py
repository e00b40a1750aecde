"""The permissions of access: one's own account, users, API keys and the audit log."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

OWN_ACCOUNT = "account:own"
USERS_READ = "users:read"
USERS_MANAGE = "users:manage"
API_KEYS_MANAGE = "api_keys:manage"
AUDIT_READ = "audit:read"

PERMISSIONS = [
    PermissionSpec(
        OWN_ACCOUNT,
        "one's own account: who am I, log out, change my password",
        everyone=True,
    ),
    PermissionSpec(USERS_READ, "list and read users", (Role.SUPERVISOR, Role.AGENT)),
    PermissionSpec(USERS_MANAGE, "create users, change their role, deactivate them"),
    PermissionSpec(API_KEYS_MANAGE, "create, list and revoke API keys"),
    PermissionSpec(AUDIT_READ, "read the audit log"),
]
