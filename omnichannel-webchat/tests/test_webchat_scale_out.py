"""Two servers sharing Firestore and Pub/Sub (their official emulators): a visitor's socket
is on server A, the agent answers through server B, and the reply reaches the visitor
through the event log and the bus. Neither server is given ``WEBCHAT_VISITOR_SECRET``: each
derives the visitor key from the signing secret they share (``OMNICHANNEL_JWT_SECRET``), so
a visitor token from one works on the other."""

from __future__ import annotations

import pytest
from visitor_client import VisitorClient, new_client_id

pytestmark = pytest.mark.anyio


async def test_the_socket_on_a_gets_the_reply_sent_through_b(two_servers, site):
    """An agent's reply and typing sent through server B reach the visitor's socket held by
    server A: A's reader of the event log hears of B's events over Pub/Sub."""
    first, second = two_servers
    async with VisitorClient(first.base_url, site.origin) as visitor:
        await visitor.start()
        async with visitor.socket() as socket:
            client_id = new_client_id()
            await socket.send({"type": "message", "client_id": client_id, "text": "on A"})
            await socket.until("ack", client_id=client_id)
            conversation_id = (await socket.until("conversation"))["conversation"]["id"]
            with second.client() as agent:
                agent.post(
                    f"/api/conversations/{conversation_id}/messages", json={"text": "from B"}
                ).raise_for_status()
                assert agent.post(f"/api/conversations/{conversation_id}/typing").status_code == 204
            shown = await socket.until("message", timeout=15, text="from B")
            assert shown["message"]["from"] == "agent"


async def test_a_token_from_a_resumes_on_b_with_the_history(two_servers, site):
    """A token server A issued, without a visitor secret of its own, is read by server B
    (which would otherwise start a new visitor): both derived the same key from their shared
    signing secret, and the visitor finds their conversation and its history on B."""
    first, second = two_servers
    assert "WEBCHAT_VISITOR_SECRET" not in first.env | second.env  # the key is derived
    async with VisitorClient(first.base_url, site.origin) as on_a:
        await on_a.start()
        await on_a.write("written on A")
        token = on_a.token
    async with VisitorClient(second.base_url, site.origin, token) as on_b:
        await on_b.start()
        assert on_a.visitor is not None and on_b.visitor is not None
        assert on_b.visitor["id"] == on_a.visitor["id"]
        assert on_b.conversation is not None
        async with on_b.socket() as socket:
            (message,) = await socket.messages(1)
            assert message["text"] == "written on A"
