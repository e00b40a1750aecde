"""Facebook's subscription handshake through the real server: ``GET webhook`` echoes the
challenge for the right verify token only, and the token never reaches the log."""

from __future__ import annotations

import pytest
from messenger_events import VERIFY_TOKEN, verify

GOOD = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}


def test_right_token_echoes_the_challenge_as_plain_text(facebook_server):
    """mode subscribe and the verify token: 200 with exactly the challenge, text/plain,
    and no credentials needed."""
    with facebook_server.client(api_key=None) as anonymous:
        response = verify(anonymous, GOOD)
    assert response.status_code == 200, response.text
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {**GOOD, "hub.verify_token": "not-the-token"},
        {**GOOD, "hub.verify_token": VERIFY_TOKEN + "x"},
        {**GOOD, "hub.verify_token": ""},
        {k: v for k, v in GOOD.items() if k != "hub.verify_token"},
        {**GOOD, "hub.mode": "unsubscribe"},
        {k: v for k, v in GOOD.items() if k != "hub.mode"},
        {},
    ],
    ids=["wrong", "longer", "empty", "absent", "other-mode", "no-mode", "nothing"],
)
def test_anything_else_is_403_json(client, params):
    """A wrong, longer, empty or absent token, or a mode other than subscribe: 403 with a
    JSON error, and the challenge is not echoed."""
    response = verify(client, params)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "webhook_rejected"
    assert "1158201444" not in response.text
    assert VERIFY_TOKEN not in response.text


@pytest.mark.parametrize("challenge", [None, "", "<script>" + "x" * 300])
def test_a_missing_or_unusable_challenge_is_400(client, challenge):
    """Right token but no challenge, or one that is not short printable text: 400."""
    params = {**GOOD, "hub.challenge": challenge}
    response = verify(client, {k: v for k, v in params.items() if v is not None})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "hub.challenge"


def test_the_verify_token_stays_out_of_the_log(client, facebook_server):
    """After good and bad handshakes, the server log holds no verify token."""
    verify(client, GOOD)
    verify(client, {**GOOD, "hub.verify_token": VERIFY_TOKEN + "-typo"})
    assert VERIFY_TOKEN not in facebook_server.log()


def test_unconfigured_handshake_is_503_naming_the_variable(unconfigured_server):
    """Without FACEBOOK_VERIFY_TOKEN: 503 channel_unavailable naming it, never 200."""
    with unconfigured_server.client() as client:
        response = verify(client, GOOD)
    assert response.status_code == 503, response.text
    assert "FACEBOOK_VERIFY_TOKEN" in response.json()["message"]
