"""The 40-line channel that opens docs/writing-a-channel.md works as the guide says: loaded
as a channel of the real app, a webhook with its token lands in the inbox, a wrong token is
refused, and an agent's reply goes out to the provider's URL (a fake of it, over real HTTP)
through the outbox, and comes back sent."""

from __future__ import annotations

import asyncio
import json
import re
import time
import types
from pathlib import Path

from falcon import testing

from omnichannel_core.testing import AUTH, FakeProvider, RecordedRequest, ScriptedResponse, run_app

WAIT = {**AUTH, "Prefer": "wait=10"}
"""A send answered once the outbox is done with it (sent, failed or in doubt)."""

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-a-channel.md"
TOKEN = "relay-test-token"


def minimal_channel() -> tuple[str, types.ModuleType]:
    """The guide's first python block (its source), run as a module."""
    source = re.search(r"^```python\n(.*?)^```$", GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    assert source is not None
    module = types.ModuleType("omnichannel_relay")
    exec(compile(source[1], "omnichannel_relay.py", "exec"), module.__dict__)
    return source[1], module


def relay_with_its_own_route() -> types.ModuleType:
    """The minimal channel with the lines section 8 adds to it (the python block that
    declares ``ExpiringSendResource``), run as one module."""
    source, _ = minimal_channel()
    blocks = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    [added] = [block for block in blocks if "class ExpiringSendResource" in block]
    module = types.ModuleType("omnichannel_relay")
    exec(compile(source + "\n" + added, "omnichannel_relay.py", "exec"), module.__dict__)
    return module


def test_the_guide_opens_with_a_channel_of_about_forty_lines():
    """The first example is the minimal channel: ``receive`` and ``send``, about 40 lines."""
    source, module = minimal_channel()
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) <= 45, len(lines)
    hooks = sorted(
        name for name in ("receive", "send", "status", "health") if hasattr(module, name)
    )
    assert hooks == ["receive", "send"]


def test_the_minimal_channel_receives_and_sends(tmp_path):
    """A webhook with the token stores the customer's message (a retried one once); one
    without it is refused with 403; a reply in the conversation is posted to
    RELAY_SEND_URL with the customer's address and text, and is stored sent with the id
    Relay gave; Relay refusing a send marks the reply failed after one attempt; an outage
    is retried by the outbox."""
    _, channel = minimal_channel()

    def relay(request: RecordedRequest) -> ScriptedResponse:
        if request.json()["text"] == "refused":
            return ScriptedResponse.json(400, {"error": "no"})
        if request.json()["text"] == "again" and len(provider.requests) == 3:
            return ScriptedResponse.json(503, {"error": "down"})  # once: the retry is taken
        return ScriptedResponse.json(200, {"id": f"relay-{len(provider.requests)}"})

    with FakeProvider(answer=relay) as provider:

        async def scenario(conductor: testing.ASGIConductor) -> None:
            webhook = "/api/channels/relay/webhook"
            body = json.dumps({"id": "r-1", "from": "+15550001", "text": "hello"})
            signed = {"X-Relay-Token": TOKEN, "Content-Type": "application/json"}
            for _ in range(2):
                stored = await conductor.simulate_post(webhook, body=body, headers=signed)
                assert stored.status_code == 200, stored.text
            forged = {**signed, "X-Relay-Token": "wrong"}
            refused = await conductor.simulate_post(webhook, body=body, headers=forged)
            assert refused.status_code == 403
            malformed = await conductor.simulate_post(webhook, body=b"[]", headers=signed)
            assert malformed.status_code == 400, malformed.text

            listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
            [conversation] = listed.json["items"]
            messages = f"/api/conversations/{conversation['id']}/messages"
            inbound = (await conductor.simulate_get(messages, headers=AUTH)).json["items"]
            assert [m["text"] for m in inbound] == ["hello"]

            reply = await conductor.simulate_post(messages, json={"text": "hi!"}, headers=WAIT)
            assert reply.status_code == 201, reply.text
            assert (reply.json["status"], reply.json["provider_message_id"]) == (
                "sent",
                "relay-1",
            )
            assert provider.requests[-1].json() == {"to": "+15550001", "text": "hi!"}

            failed = await conductor.simulate_post(messages, json={"text": "refused"}, headers=WAIT)
            assert failed.status_code == 422, failed.text
            stored_failure = (await conductor.simulate_get(messages, headers=AUTH)).json["items"]
            assert (stored_failure[-1]["status"], stored_failure[-1]["attempts"]) == ("failed", 1)

            again = await conductor.simulate_post(messages, json={"text": "again"}, headers=AUTH)
            assert (again.status_code, again.json["status"]) == (202, "queued"), again.text
            message = f"/api/messages/{again.json['id']}"
            deadline = time.monotonic() + 5
            while (stored := (await conductor.simulate_get(message, headers=AUTH)).json)[
                "status"
            ] == "queued" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert (stored["status"], stored["provider_message_id"]) == ("sent", "relay-4")
            assert stored["attempts"] == 2  # the 503, then the outbox's retry
            assert [r.json()["text"] for r in provider.requests[2:]] == ["again", "again"]

        environ = {"RELAY_TOKEN": TOKEN, "RELAY_SEND_URL": f"{provider.url}/send"}
        run_app(tmp_path, {"relay": channel}, scenario, environ=environ, jobs=True)


def test_the_declared_route_of_section_8_is_checked_sent_and_documented(tmp_path):
    """Relay's ``POST send/expiring`` from section 8: a bad body is refused 400 naming the
    field, before anything is sent; a good one reaches the responder as an ExpiringSend and
    goes out through Relay's ``send``; the route is in /api/openapi.json under Relay's
    path, with its body's schema and the permission its ChannelRoute names."""
    channel = relay_with_its_own_route()

    with FakeProvider(answer=lambda _: ScriptedResponse.json(200, {"id": "relay-9"})) as provider:

        async def scenario(conductor: testing.ASGIConductor) -> None:
            route = "/api/channels/relay/send/expiring"
            payload = {"to": "+15550002", "text": "soon gone", "expires_in_minutes": 0}
            refused = await conductor.simulate_post(route, json=payload, headers=AUTH)
            assert refused.status_code == 400, refused.text
            assert refused.json["field"] == "expires_in_minutes"
            assert provider.requests == []
            anonymous = await conductor.simulate_post(
                route, json={**payload, "expires_in_minutes": 5}
            )
            assert anonymous.status_code == 401

            sent = await conductor.simulate_post(
                route, json={**payload, "expires_in_minutes": 5}, headers=WAIT
            )
            assert sent.status_code == 201, sent.text
            assert sent.headers["Preference-Applied"] == "wait=10"
            assert (sent.json["status"], sent.json["provider_message_id"]) == ("sent", "relay-9")
            assert provider.requests[-1].json() == {"to": "+15550002", "text": "soon gone"}

            document = (await conductor.simulate_get("/api/openapi.json")).json
            operation = document["paths"][route]["post"]
            assert operation["operationId"] == "relaySendExpiring"
            assert operation["x-permission"] == "messages:send"
            schema = document["components"]["schemas"]["ExpiringSend"]
            assert schema["properties"]["expires_in_minutes"]["minimum"] == 1
            assert set(operation["responses"]) >= {"200", "201", "202"}

        environ = {"RELAY_TOKEN": TOKEN, "RELAY_SEND_URL": f"{provider.url}/send"}
        run_app(tmp_path, {"relay": channel}, scenario, environ=environ, jobs=True)
