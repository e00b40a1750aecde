"""Who may read the dashboard (docs/dashboard.md): supervisors and admins. Agents see their
own queue in the inbox, not the team's figures."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

REPORTS_READ = "reports:read"

PERMISSIONS = [
    PermissionSpec(
        REPORTS_READ,
        "read the dashboard: the queue now, and the figures of a period",
        (Role.SUPERVISOR,),
        scopes=("read",),
    ),
]
