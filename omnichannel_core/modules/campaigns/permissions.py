"""Who may do what with campaigns (docs/campaigns.md, "Who may do what"). Admins hold every
permission; supervisors run campaigns; agents see none of it."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

CAMPAIGNS_READ = "campaigns:read"
CAMPAIGNS_WRITE = "campaigns:write"
"""Creating, changing and deleting drafts, and previewing them."""
CAMPAIGNS_LAUNCH = "campaigns:launch"
"""Launching, pausing, resuming and cancelling: what sends messages."""

PERMISSIONS = [
    PermissionSpec(
        CAMPAIGNS_READ,
        "read campaigns, their recipients and their reports",
        (Role.SUPERVISOR,),
        scopes=("read",),
    ),
    PermissionSpec(
        CAMPAIGNS_WRITE,
        "create, change and delete draft campaigns; preview them",
        (Role.SUPERVISOR,),
    ),
    PermissionSpec(
        CAMPAIGNS_LAUNCH, "launch, pause, resume and cancel campaigns", (Role.SUPERVISOR,)
    ),
]
