"""Two servers sharing Firestore and Pub/Sub (their official emulators): a visitor's socket
is on server A, the agent answers through server B, and the reply reaches the visitor
through the event log and the bus. A visitor token from one server works on the other
(both derive the visitor key from the one signing secret)."""

from __future__ import annotations

import pytest
from visitor_client import VisitorClient, new_client_id

pytestmark = pytest.mark.anyio


async def test_the_socket_on_a_gets_the_reply_sent_through_b(two_servers, site):
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
    first, second = two_servers
    async with VisitorClient(first.base_url, site.origin) as on_a:
        await on_a.start()
        await on_a.write("written on A")
        token = on_a.token
    async with VisitorClient(second.base_url, site.origin, token) as on_b:
        await on_b.start()
        assert on_b.conversation is not None
        async with on_b.socket() as socket:
            (message,) = await socket.messages(1)
            assert message["text"] == "written on A"
