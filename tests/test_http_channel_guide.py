"""docs/channels/http.md shows the generic HTTP channel's contract as it is: its example
bodies, posted signed, are stored (and refused unsigned), its status example moves the
message it names, and the outbound example has the fields the channel sends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from falcon import testing

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
                f"/api/conversations/{ada['id']}/messages", json={"text": "Hi Ada!"}, headers=AUTH
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
        run_app(tmp_path, {}, scenario, environ=environ)
