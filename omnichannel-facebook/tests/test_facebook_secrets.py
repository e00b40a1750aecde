"""No secret in the server's log, at debug level, after every kind of Graph call: the page
token, the app secret, the verify token and the appsecret_proof never appear, while the
Graph calls themselves are logged (method, path, status)."""

from __future__ import annotations

import json

from fake_graph import INVALID_PARAMETER, FakeGraph, GraphAnswer
from messenger_events import (
    APP_SECRET,
    PAGE_TOKEN,
    VERIFY_TOKEN,
    post_webhook,
    text_event,
    unique_psid,
    verify,
    webhook,
)
from server_waits import WAIT, checked_health


def test_graph_calls_are_logged_without_secrets(debug_server, fake_graph: FakeGraph):
    """A handshake, a webhook with a profile lookup, a send, a refused send and a health
    check: each Graph call has a facebook_graph_call line with method, path (no query) and
    status, and no secret is anywhere in the log."""
    psid = unique_psid()
    fake_graph.set_profile(psid, {"first_name": "Ada", "last_name": "Lovelace"})
    secret_text = "my card number is 4111 1111 1111 1111"
    with debug_server.client() as client:
        verify(
            client,
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        )
        assert post_webhook(client, webhook(text_event(psid, secret_text))).status_code == 200
        contact = client.get("/api/contacts", params={"q": psid}).json()["items"][0]
        [conversation] = client.get(
            "/api/conversations", params={"channel": "facebook", "limit": 200}
        ).json()["items"]
        assert conversation["contact_id"] == contact["id"]
        path = f"/api/conversations/{conversation['id']}/messages"
        assert client.post(path, json={"text": "the reply"}, headers=WAIT).status_code == 201
        fake_graph.queue(GraphAnswer.error(INVALID_PARAMETER))
        assert client.post(path, json={"text": "refused"}, headers=WAIT).status_code == 422
        assert checked_health(client).status_code == 200

    log = debug_server.log()
    for secret in (PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN, fake_graph.proof, secret_text):
        assert secret not in log
    calls = [
        entry
        for entry in (json.loads(line) for line in log.splitlines() if line.startswith("{"))
        if entry.get("event") == "facebook_graph_call"
    ]
    seen = {(c["method"], c["path"], c["status"]) for c in calls}
    assert ("GET", f"/v21.0/{psid}", 200) in seen
    assert ("POST", "/v21.0/me/messages", 200) in seen
    assert ("POST", "/v21.0/me/messages", 400) in seen
    assert ("GET", "/v21.0/me", 200) in seen
