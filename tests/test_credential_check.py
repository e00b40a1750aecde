"""``omnichannel_core.credential_check``: the provider asked at most once per TTL per key,
single-flight, and the health report built from the settings and the answer."""

from __future__ import annotations

import asyncio
import threading
import time

import attrs
import pytest

from omnichannel_core.channel_settings import ChannelSettings
from omnichannel_core.credential_check import (
    ACCEPTED,
    CHECKING,
    MISSING,
    REJECTED,
    UNREACHABLE,
    CredentialCheck,
    CredentialChecker,
    credentials_health,
)


class Provider:
    """Counts how often it is asked; answers ``answer`` (or waits for ``release`` first)."""

    def __init__(self, answer: CredentialCheck, release: threading.Event | None = None):
        self.answer = answer
        self.release = release
        self.asked = threading.Event()
        self.calls = 0

    def ask(self) -> CredentialCheck:
        self.calls += 1
        self.asked.set()
        if self.release is not None:
            assert self.release.wait(10), "the test never released the provider"
        return self.answer


@attrs.frozen
class ExampleSettings(ChannelSettings):
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


def test_the_answer_is_stamped_and_kept_for_the_ttl():
    """The first check asks and stamps checked_at and expires; a second one within the TTL
    answers from the cache without asking."""
    checker = CredentialChecker(ttl_seconds=60.0)
    provider = Provider(CredentialCheck(ACCEPTED, "accepted by the provider"))
    first = checker.check("key", provider.ask)
    assert (first.outcome, first.detail) == (ACCEPTED, "accepted by the provider")
    assert first.checked_at is not None and first.checked_at.tzinfo is not None
    assert first.expires > time.monotonic()
    assert checker.check("key", provider.ask) is first
    assert provider.calls == 1


def test_failures_are_cached_too():
    """A rejection is kept as long as a success: a poller never floods the provider."""
    checker = CredentialChecker()
    provider = Provider(CredentialCheck(REJECTED, "wrong token"))
    assert checker.check("key", provider.ask).outcome == REJECTED
    assert checker.check("key", provider.ask).outcome == REJECTED
    assert provider.calls == 1


def test_an_expired_answer_is_asked_again():
    """Once ``now`` is past the answer's expiry the provider is asked anew."""
    checker = CredentialChecker(ttl_seconds=60.0)
    provider = Provider(CredentialCheck(UNREACHABLE, "no answer"))
    first = checker.check("key", provider.ask)
    later = time.monotonic() + 120.0
    second = checker.check("key", provider.ask, now=later)
    assert provider.calls == 2
    assert second is not first


def test_each_key_is_checked_on_its_own():
    """Other credentials (another key) are asked about separately."""
    checker = CredentialChecker()
    good = Provider(CredentialCheck(ACCEPTED, "ok"))
    bad = Provider(CredentialCheck(REJECTED, "no"))
    assert checker.check(("sid", "token"), good.ask).outcome == ACCEPTED
    assert checker.check(("sid", "other"), bad.ask).outcome == REJECTED
    assert (good.calls, bad.calls) == (1, 1)


def test_while_one_thread_asks_others_get_checking_then_the_stale_answer():
    """Single flight: during the first check others answer at once with "checking" (no
    checked_at) without asking; during a refresh, with the last answer; the running check
    then stores its own answer."""
    checker = CredentialChecker(in_progress_detail="token check in progress")
    release = threading.Event()
    slow = Provider(CredentialCheck(REJECTED, "first answer"), release)
    never = Provider(CredentialCheck(ACCEPTED, "must not be asked"))

    first = threading.Thread(target=checker.check, args=("key", slow.ask))
    first.start()
    assert slow.asked.wait(10)
    waiting = checker.check("key", never.ask)
    assert (waiting.outcome, waiting.detail, waiting.checked_at) == (
        CHECKING,
        "token check in progress",
        None,
    )
    assert waiting == checker.in_progress
    release.set()
    first.join(10)
    stale = checker.check("key", never.ask)
    assert stale.detail == "first answer"

    later = time.monotonic() + 2 * checker.ttl_seconds
    refresh_release = threading.Event()
    refresh = Provider(CredentialCheck(ACCEPTED, "second answer"), refresh_release)
    second = threading.Thread(target=checker.check, args=("key", refresh.ask, later))
    second.start()
    assert refresh.asked.wait(10)
    assert checker.check("key", never.ask, now=later) == stale
    refresh_release.set()
    second.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert never.calls == 0
    assert checker.check("key", never.ask).detail == "second answer"


def test_a_raising_ask_lets_the_next_caller_ask():
    """An exception from ask() propagates and does not leave the key marked as running."""
    checker = CredentialChecker()

    def broken() -> CredentialCheck:
        raise RuntimeError("bug in the channel")

    with pytest.raises(RuntimeError, match="bug in the channel"):
        checker.check("key", broken)
    provider = Provider(CredentialCheck(ACCEPTED, "ok"))
    assert checker.check("key", provider.ask).outcome == ACCEPTED
    assert provider.calls == 1


def test_health_without_credentials_says_missing():
    """No check (credentials not set): not ok, credentials "missing", detail naming every
    missing variable."""
    settings = ExampleSettings(missing=("EXAMPLE_TOKEN", "EXAMPLE_SECRET"))
    report = credentials_health(settings, None)
    assert report.ok is False
    assert report.detail == "not configured: missing EXAMPLE_TOKEN, EXAMPLE_SECRET"
    assert report.checks == {
        "configured": False,
        "missing": ["EXAMPLE_TOKEN", "EXAMPLE_SECRET"],
        "credentials": MISSING,
    }


def test_health_with_accepted_credentials_is_ok_and_carries_the_facts():
    """Configured and accepted: ok, the provider's detail, checked_at and the facts."""
    checker = CredentialChecker()
    answer = CredentialCheck(ACCEPTED, "accepted", facts={"page": {"id": "1", "name": "Shop"}})
    report = credentials_health(ExampleSettings(), checker.check("key", lambda: answer))
    assert (report.ok, report.detail) == (True, "accepted")
    assert report.checks["configured"] is True
    assert report.checks["credentials"] == ACCEPTED
    assert report.checks["checked_at"].endswith("Z")
    assert report.checks["page"] == {"id": "1", "name": "Shop"}
    assert "missing" not in report.checks and "invalid" not in report.checks


def test_health_while_checking_has_no_checked_at():
    """The "checking" answer: not ok, no checked_at."""
    checker = CredentialChecker()
    report = credentials_health(ExampleSettings(), checker.in_progress)
    assert (report.ok, report.detail) == (False, "credentials check in progress")
    assert report.checks["credentials"] == CHECKING
    assert "checked_at" not in report.checks


def test_health_of_accepted_credentials_with_other_problems_is_not_ok():
    """Credentials accepted but a variable unusable: not ok, the detail names the problem
    then what the provider said."""
    settings = ExampleSettings(invalid=("EXAMPLE_NUMBER must be an E.164 number",))
    report = credentials_health(settings, CredentialCheck(ACCEPTED, "accepted"))
    assert report.ok is False
    assert report.detail == "not configured: EXAMPLE_NUMBER must be an E.164 number; accepted"
    assert report.checks["invalid"] == ["EXAMPLE_NUMBER must be an E.164 number"]
    assert report.checks["credentials"] == ACCEPTED


def test_an_async_check_is_single_flight_on_the_event_loop():
    """check_async awaits the provider once; a second health request on the loop meanwhile
    gets "checking" at once, and afterwards the kept answer, without asking again."""
    checker = CredentialChecker()
    calls = 0

    async def scenario() -> None:
        nonlocal calls
        release = asyncio.Event()
        asked = asyncio.Event()

        async def ask() -> CredentialCheck:
            nonlocal calls
            calls += 1
            asked.set()
            await release.wait()
            return CredentialCheck(ACCEPTED, "accepted")

        first = asyncio.ensure_future(checker.check_async("key", ask))
        await asked.wait()
        assert (await checker.check_async("key", ask)).outcome == CHECKING
        release.set()
        assert (await first).outcome == ACCEPTED
        assert (await checker.check_async("key", ask)) is await first

    asyncio.run(scenario())
    assert calls == 1
