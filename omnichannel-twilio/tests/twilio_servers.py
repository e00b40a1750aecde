"""The real server configured against the fake Twilio: its environment and a server whose
job runner runs, for the fixtures of conftest.py and the tests that start servers of their
own. (A module of its own name: ``conftest`` names several modules in a whole-suite run.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from fake_twilio import FakeTwilio
from twilio_signing import ACCOUNT_SID, AUTH_TOKEN, PHONE_NUMBER, PUBLIC_URL, WHATSAPP_NUMBER

from omnichannel_core.testing.server import (
    RUNNER_STARTED,
    START_TIMEOUT_SECONDS,
    ServerProcess,
    running_server,
)

ENABLE_ALL_CHANNELS = {"OMNICHANNEL_DISABLE_PLUGINS": ""}


def twilio_env(fake: FakeTwilio, **overrides: str | None) -> dict[str, str | None]:
    """The environment of a server whose Twilio channel calls ``fake``; an override of None
    unsets the variable."""
    return {
        **ENABLE_ALL_CHANNELS,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
        "TWILIO_WHATSAPP_NUMBER": WHATSAPP_NUMBER,
        "TWILIO_API_BASE_URL": fake.url,
        "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,
        # Media is fetched from the fake's CDN only, never from Twilio's real hosts.
        "TWILIO_MEDIA_HOSTS": "localhost",
        **overrides,
    }


@contextlib.contextmanager
def serving(workdir: Path, env: Mapping[str, str | None]) -> Iterator[ServerProcess]:
    """``running_server``, once its job runner runs too: the outbox sends from the runner,
    and a test's first send must not wait for it to start (a deadline of a second or two,
    counted from when the message was queued, would pass before its first attempt)."""
    with running_server(workdir, env) as server:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while RUNNER_STARTED.decode() not in server.log():
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the server's job runner did not start:\n{server.log()}")
            time.sleep(0.05)
        yield server
