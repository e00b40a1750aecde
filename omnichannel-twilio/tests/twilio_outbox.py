"""Sending through the real server's outbox, as the Twilio tests do it.

A send is stored ``queued`` and answered ``202``; the server's job runner sends it after the
answer (docs/delivery.md). A test that checks the outcome of the first attempt in the answer
sends ``Prefer: wait`` (:data:`WAIT`); one that watches the retries polls the message
(:func:`message_when`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

WAIT_SECONDS = 10
WAIT = {"Prefer": f"wait={WAIT_SECONDS}"}
"""Answer once the first attempt is over: 201 when Twilio took the message, else its error."""


def message_when(
    client: httpx.Client,
    message_id: str,
    done: Callable[[dict[str, Any]], bool],
    seconds: float = 10.0,
) -> dict[str, Any]:
    """``GET /api/messages/{message_id}`` until ``done`` says yes of it; AssertionError with
    the last state after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(f"/api/messages/{message_id}")
        assert response.status_code == 200, response.text
        message = response.json()
        if done(message):
            return message
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {seconds}s the message is still {message}")
        time.sleep(0.05)


def taken(message: dict[str, Any]) -> bool:
    """Twilio took it: the message has Twilio's SID."""
    return message["provider_message_id"] is not None


def ended(message: dict[str, Any]) -> bool:
    """A terminal status: nothing more will be attempted."""
    return message["status"] in ("failed", "undelivered", "cancelled")
