"""Waiting on the real server without sleeping blind: for a send's first attempt (``Prefer:
wait``), for a message the outbox works on, and for the channel's token check.

A send is stored and answered ``202``; the outbox's runner sends it (docs/delivery.md). A
test that checks a send's outcome in the answer asks to wait for the first attempt; one
that checks what happens after it polls the message, with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

WAIT = {"Prefer": "wait=10"}
"""Answer a send once the outbox's first attempt is over (at most 10 s): 201 or the error."""
HEALTH = "/api/channels/facebook/health"
POLL_SECONDS = 0.05


def message_when(
    inbox: Any, message_id: str, done: Callable[[dict[str, Any]], bool], seconds: float = 15.0
) -> dict[str, Any]:
    """The message (read with ``inbox``, an InboxReader) once ``done(message)``;
    AssertionError showing it after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        message = inbox.message(message_id)
        if done(message):
            return message
        if time.monotonic() >= deadline:
            raise AssertionError(f"not so after {seconds} s: {message}")
        time.sleep(POLL_SECONDS)


def settled(message: dict[str, Any]) -> bool:
    """The outbox is done with it: sent (or beyond), or ended."""
    return message["status"] not in ("queued", "sending")


def checked_health(client: httpx.Client, seconds: float = 10.0) -> httpx.Response:
    """``GET`` the channel's health once its page token check has an answer. The first check
    runs once per worker, single-flight: while it runs (the server's own start-up ``/health``
    may have begun it, on a busy machine), every caller is told ``credentials: checking``."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(HEALTH)
        checks = response.json().get("checks", {})
        if checks.get("credentials") != "checking" or time.monotonic() >= deadline:
            return response
        time.sleep(POLL_SECONDS)
