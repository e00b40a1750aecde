"""Agents' and visitors' credentials never stand in for each other, through the real server:
an agent's access token (a JWT from ``POST /api/auth/login``) opens none of the visitor API,
and a visitor's token none of the agents' API. The visitor API's own rules for its tokens
are in test_webchat_protocol.py."""

from __future__ import annotations

from typing import Any

import pytest
import websockets
from visitor_client import VisitorClient, new_client_id

from omnichannel_core.testing.event_stream import open_stream
from omnichannel_core.testing.server import ServerProcess
from omnichannel_core.testing.users import create_user, login

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def agent_token(webchat_server: ServerProcess) -> str:
    """The access token of an agent logged in on the server, checked to work on the agents'
    API (so a refusal below is the visitor API's, not a bad token)."""
    with webchat_server.client() as admin:
        agent = create_user(admin, "agent")
    token = login(webchat_server, agent["email"])["access_token"]
    with webchat_server.client(api_key=token) as as_agent:
        assert as_agent.get("/api/conversations").status_code == 200
    return token


VISITOR_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("message", {"client_id": new_client_id(), "text": "written with an agent's token"}),
    ("typing", {}),
    ("poll", {"wait": 0}),
]


@pytest.mark.parametrize(("path", "body"), VISITOR_CALLS, ids=[path for path, _ in VISITOR_CALLS])
async def test_an_agents_access_token_is_no_visitor_token(
    webchat_server, site, agent_token, path, body
):
    """``POST message``, ``typing`` and ``poll`` with an agent's access token as the bearer
    answer 401, from the site's own origin and with a body the route takes: the visitor API
    reads only visitor tokens."""
    async with VisitorClient(webchat_server.base_url, site.origin, agent_token) as visitor:
        answer = await visitor.post(path, json=body)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "unauthenticated"


async def test_an_agents_access_token_does_not_open_the_socket(webchat_server, site, agent_token):
    """A socket whose ``hello`` carries an agent's access token is closed with 4401 before it
    is ready, as one with a forged visitor token is."""
    visitor = VisitorClient(webchat_server.base_url, site.origin, agent_token)
    async with visitor:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with visitor.socket():
                pass
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_visitor_token_opens_none_of_the_agents_api(webchat_server, site):
    """A visitor's token, good on the visitor API, answers 401 on ``GET /api/conversations``
    and on the agents' event stream, ``GET /api/events``."""
    async with VisitorClient(webchat_server.base_url, site.origin) as visitor:
        await visitor.start()
        assert (await visitor.post("typing")).status_code == 204  # a good visitor token
        token = visitor.token
    assert token is not None
    with webchat_server.client(api_key=token) as as_visitor:
        assert as_visitor.get("/api/conversations").status_code == 401
    with open_stream(webchat_server.base_url, token) as (response, _):
        assert response.status_code == 401
