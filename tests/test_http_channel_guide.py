"""docs/channels/http.md shows the generic HTTP channel's contract as it is: its example
bodies, posted signed, are stored (and refused unsigned), its status example moves the
message it names, the outbound example has the fields the channel sends, and the limits it
states for sends are the channel's own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from falcon import testing

from omnichannel_core.channels import http
from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.testing import AUTH, FakeProvider, RecordedRequest, ScriptedResponse, run_app

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "channels" / "http.md"
SECRET = "http-guide-secret"


def examples() -> list[Any]:
    """The guide's JSON examples, in order: one message, a batch, a status, an outbound."""
    blocks = re.findall(r"^```json\n(.*?)^```$", GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    return [json.loads(block) for block in blocks]


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET, body)}


def test_the_guides_examples_are_what_the_channel_takes_and_sends(tmp_path):
    one, batch, status, outbound = examples()

    def receiver(request: RecordedRequest) -> ScriptedResponse:
        return ScriptedResponse.json(200, {"id": "remote-1"})

    with FakeProvider(answer=receiver) as provider:

        async def scenario(conductor: testing.ASGIConductor) -> None:
            for example in (one, batch):
                body = json.dumps(example).encode()
                unsigned = await conductor.simulate_post(
                    "/api/channels/http/webhook",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                assert unsigned.status_code == 403
                stored = await conductor.simulate_post(
                    "/api/channels/http/webhook", body=body, headers=signed(body)
                )
                assert stored.status_code == 200, stored.text
            contacts = (await conductor.simulate_get("/api/contacts", headers=AUTH)).json
            assert {"user-42", "user-7"} <= {
                identity["address"]
                for contact in contacts["items"]
                for identity in contact["identities"]
            }

            conversations = (await conductor.simulate_get("/api/conversations", headers=AUTH)).json
            [ada] = [
                c
                for c in conversations["items"]
                if c["contact_id"]
                in {
                    contact["id"]
                    for contact in contacts["items"]
                    if contact["display_name"] == "Ada Lovelace"
                }
            ]
            reply = await conductor.simulate_post(
                f"/api/conversations/{ada['id']}/messages",
                json={"text": "Hi Ada!"},
                headers={**AUTH, "Prefer": "wait=10"},  # answered once the outbox sent it
            )
            assert reply.status_code == 201, reply.text
            sent = provider.requests[-1]
            assert set(sent.json()) == set(outbound)
            assert sent.headers["idempotency-key"] == reply.json["id"]
            assert sent.headers[SIGNATURE_HEADER.lower()] == sign(SECRET, sent.body)

            body = json.dumps({**status, "id": "remote-1"}).encode()
            moved = await conductor.simulate_post(
                "/api/channels/http/status", body=body, headers=signed(body)
            )
            assert moved.status_code == 200, moved.text
            message = await conductor.simulate_get(
                f"/api/messages/{reply.json['id']}", headers=AUTH
            )
            assert message.json["status"] == status["status"]

        environ = {"WEBHOOK_SECRET": SECRET, "HTTP_CHANNEL_SEND_URL": f"{provider.url}/receive"}
        run_app(tmp_path, {}, scenario, environ=environ, jobs=True)


def test_the_guide_states_the_channels_send_limits():
    """What the guide tells a receiver about sends is what the channel does: one attempt,
    the read timeout, the retry and confirmation deadlines and the rate of its send_policy,
    and that a message in doubt is resent with the same key, so receivers must dedupe."""
    text = " ".join(GUIDE.read_text().split())
    policy = http.send_policy()
    assert policy.resend_safe
    assert policy.retry_for == 3600, "the guide says retries last an hour"
    stated = [
        "one attempt per call",
        f"no answer within {http.SEND_TIMEOUT_SECONDS:g} seconds",
        "for up to an hour (`OMNICHANNEL_SEND_RETRY_SECONDS`",
        f"for up to {policy.confirm_within / 60:g} minutes (`OMNICHANNEL_SEND_CONFIRM_SECONDS`",
        f"at most {policy.rate:g} messages a second",
        "same `Idempotency-Key`",
        "**Dedupe on `Idempotency-Key`.**",
    ]
    missing = [phrase for phrase in stated if phrase not in text]
    assert not missing, f"docs/channels/http.md no longer says: {missing}"
