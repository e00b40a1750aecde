"""``Prefer: wait=N`` (RFC 7240) on the routes that send, and the status their answer has.

A send is answered ``202`` as soon as the message and its outbox entry are stored. A caller
who sends ``Prefer: wait=N`` is answered once the first attempt is over, or after N seconds
(at most :data:`MAX_WAIT_SECONDS`), whichever comes first: ``201`` when the provider took the
message, ``202`` when it is still queued (scheduled, or waiting for its pace); a failed
attempt is the error it was (``422``, ``502``, ``503``, ``504``) with ``stored_message``. The
answer says ``Preference-Applied: wait=N``. A repeated ``Idempotency-Key`` is ``200``.
"""

from __future__ import annotations

import re

import falcon.asgi

from omnichannel_core.models import DeliveryStatus, Message
from omnichannel_core.routes import Response
from omnichannel_core.serialization import to_json

MAX_WAIT_SECONDS = 30
"""The longest wait a caller may ask for; a longer one is cut to it."""
SEND_ANSWERS: dict[int | str, Response] = {
    202: Response(Message, "Accepted: stored `queued`; the outbox sends it."),
    201: Response(Message, "Sent (with `Prefer: wait`): the provider took the message."),
    200: Response(Message, "Replayed: the message this Idempotency-Key already queued."),
}
"""What a route that sends answers, for its ``Operation(responses=...)``."""
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,9})\"?\s*$", re.IGNORECASE)


def prefer_wait(req: falcon.asgi.Request) -> int | None:
    """The seconds ``Prefer: wait=N`` asks for (cut to :data:`MAX_WAIT_SECONDS`), None
    without one. Preferences may be ignored (RFC 7240 §2): a malformed one is."""
    header = req.get_header("Prefer")
    if not header:
        return None
    for preference in header.split(","):
        token = preference.split(";", 1)[0]  # parameters of a preference do not matter here
        found = _WAIT.match(token)
        if found:
            seconds = min(int(found.group(1)), MAX_WAIT_SECONDS)
            return seconds or None
    return None


def applied(resp: falcon.asgi.Response, waited: int) -> None:
    """Say that the server waited as the caller preferred (on a failure's answer too)."""
    resp.set_header("Preference-Applied", f"wait={waited}")


def taken(message: Message) -> bool:
    """The provider took the message: it has the provider's id, or a status past sending."""
    return message.provider_message_id is not None or (
        message.status.rank >= DeliveryStatus.SENT.rank and not message.status.is_terminal
    )


def answer_sent(
    resp: falcon.asgi.Response, message: Message, created: bool, waited: int | None
) -> None:
    """Answer a send: ``200`` for a replay, ``201`` when the provider took the message (a
    caller who waited), else ``202``."""
    if not created:
        resp.status = 200
    else:
        resp.status = 201 if taken(message) else 202
        if waited:
            applied(resp, waited)
    resp.media = to_json(message)


SEND_NOTES = (
    "The message is stored `queued` with its outbox entry and answered `202`; the outbox"
    " sends it (docs/delivery.md). Send `Prefer: wait=N` (N ≤ 30) to be answered once the"
    " first attempt is over: `201` when the provider took it, or the error it met, with"
    " `stored_message`; still `202` if N seconds were not enough. `send_at` schedules it."
)
