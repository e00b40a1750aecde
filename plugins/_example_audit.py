"""Example local plugin: logs every outbound send, for every channel, with its outcome.

Copy to ``plugins/audit.py`` to enable. A ``wrapper=True`` implementation runs around the
channel's own implementation; ``channel`` says which channel it is wrapping.
"""

from __future__ import annotations

import structlog

from omnichannel_core.channel import (
    hookimpl,
)

log = structlog.get_logger("omnichannel.audit")


@hookimpl(wrapper=True)
def send(channel, message):
    log.info("audit_send_started", channel=channel, message_id=message.id)
    try:
        result = yield
    except Exception as error:
        log.warning("audit_send_failed", channel=channel, message_id=message.id, error=str(error))
        raise
    log.info("audit_send_returned", channel=channel, message_id=message.id)
    return result
