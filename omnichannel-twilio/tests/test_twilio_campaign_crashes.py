"""A campaign under fire, through the real server and the fake Twilio: no recipient gets it
twice, counted by the provider calls per number (each gets it once, but for a send a kill
cut off before Twilio got it: in doubt, never asked again), while job runners and the
server are killed with ``kill -9`` and restarted and the campaign is paused and resumed
twice (SQLite). test_twilio_campaign_firestore.py has two servers sharing Firestore."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from campaign_runs import (
    SEND_SECONDS,
    asked_once_or_in_doubt,
    asked_per_number,
    campaign_report,
    env_of,
    move_campaign,
    numbers_in_doubt,
    numbers_of,
    sends_settled,
    start_campaign,
    wait_for,
)
from fake_twilio import FakeTwilio
from twilio_signing import ACCOUNT_SID, AUTH_TOKEN, post_form, status_form

from omnichannel_core.testing.server import Deployment

# Not alone in a parallel run: it asserts nothing of timing (a kill that cuts off no send
# leaves less to check, not a failure), and the others need not wait its forty seconds.

SQLITE_RECIPIENTS = 1000


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


def _settle_with_callbacks(client: httpx.Client, twilio: FakeTwilio, sids: dict[str, str]) -> None:
    """Post Twilio's status callback for every message it took, as Twilio does: it settles
    the messages whose send's answer a kill cut off (in doubt)."""
    for request in twilio.message_requests():
        url = urlsplit(request.param("StatusCallback"))
        to = request.param("To") or ""
        form = status_form(sids[to], "delivered", to=to)
        response = post_form(client, f"{url.path}?{url.query}", form)
        assert response.status_code == 200, response.text


def test_a_campaign_reaches_each_of_1000_recipients_once_through_kills_and_pauses(
    tmp_path: Path, twilio: FakeTwilio
):
    """1,000 recipients at 80/s on SQLite, two job runners and a web server. Mid-run: a
    runner killed, the campaign paused and resumed twice, the server killed, the other
    runner killed. Twilio is asked at most once for every recipient: exactly once, but for
    a send a kill cut off before Twilio got it, left in doubt (never asked again)."""
    numbers = numbers_of(twilio, SQLITE_RECIPIENTS)
    deployment = Deployment(tmp_path, env_of(twilio))
    try:
        with deployment.client() as client:
            campaign_id = start_campaign(client, list(numbers), rate=80)

        def sent() -> int:
            return sum(asked_per_number(twilio).values())

        steps: list[tuple[float, Callable[[], None]]] = [
            (0.15, lambda: deployment.crash_runner(0)),
            (0.25, lambda: _pause_and_resume(deployment, campaign_id)),
            (0.40, lambda: _pause_and_resume(deployment, campaign_id)),
            (0.55, deployment.crash_server),
            (0.75, lambda: deployment.crash_runner(1)),
        ]
        for share, step in steps:
            wanted = share * SQLITE_RECIPIENTS
            wait_for(lambda wanted=wanted: sent() >= wanted, 120, f"not {share:.0%} sent")
            step()

        def finished() -> bool:
            report = campaign_report(deployment.client, campaign_id)
            return report["campaign"]["status"] == "completed"

        wait_for(finished, 120, "the campaign did not complete")
        wait_for(sends_settled(deployment.client, campaign_id), SEND_SECONDS, "sends unsettled")
        in_doubt = numbers_in_doubt(deployment.client, campaign_id)
        asked, never = asked_once_or_in_doubt(twilio, numbers, in_doubt)
        with deployment.client() as client:
            _settle_with_callbacks(client, twilio, numbers)

        def delivered() -> bool:
            counts = campaign_report(deployment.client, campaign_id)["counts"]
            return bool(counts["delivered"] == len(asked) and counts["in_doubt"] == len(never))

        wait_for(delivered, 60, "not every one Twilio took delivered")
        report = campaign_report(deployment.client, campaign_id)
    finally:
        deployment.stop()

    counts = report["counts"]
    assert counts["targeted"] == SQLITE_RECIPIENTS
    assert counts["skipped"] == {} and counts["failed"] == {}
    log = (tmp_path / "worker.log").read_text()
    print(
        f"\n{SQLITE_RECIPIENTS} recipients, none asked of Twilio twice through 3 kills and 2"
        f" pauses; {log.count('message_in_doubt')} sends cut off in doubt, settled by"
        f" their callbacks but for {len(never)} Twilio never got (in doubt until the"
        f" confirmation deadline); {log.count('message_requeued')} claimed and never sent,"
        " sent later"
    )


def _pause_and_resume(deployment: Deployment, campaign_id: str) -> None:
    move_campaign(deployment.client, campaign_id, "pause")
    time.sleep(1.0)
    move_campaign(deployment.client, campaign_id, "resume")
