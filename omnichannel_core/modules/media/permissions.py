"""The media module's permissions. Downloading a message's media needs the inbox's
``conversations:read`` (and, for an agent, that the conversation is theirs or nobody's)."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

MEDIA_UPLOAD = "media:upload"
"""Upload media to attach to a message, and read back one's own uploads."""
MEDIA_READ_ALL = "media:read_all"
"""Read any media the server keeps by its id, whoever uploaded it (admins)."""
CONVERSATIONS_READ = "conversations:read"
"""The inbox's: a message's media is read like the message."""

PERMISSIONS = [
    PermissionSpec(
        MEDIA_UPLOAD,
        "upload media to attach to messages, and read back one's own uploads",
        (Role.SUPERVISOR, Role.AGENT),
        scopes=("send",),
    ),
    PermissionSpec(
        MEDIA_READ_ALL, "read any media the server keeps by its id, whoever uploaded it"
    ),
]
