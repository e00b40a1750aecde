"""A channel's own routes are behind the same authentication and permission checks as the
core's: a route that is not public must name its permission, OPTIONS stays the core's, HEAD
follows GET, and WebSocket connections are authenticated before they are accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.hooktypes import ChannelRoute
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.fixtures.distributions import install_distributions
from tests.support.users import create_user, login


class Pong:
    async def on_get(self, req, resp) -> None:
        resp.media = {"pong": True}


class Preflight:
    async def on_get(self, req, resp) -> None:
        resp.media = {}

    async def on_options(self, req, resp) -> None:
        resp.media = {"hijacked": True}


class HeadOnly:
    async def on_head(self, req, resp) -> None:
        resp.set_header("X-Seen", "yes")


def routes_channel(*routes: ChannelRoute) -> object:
    class Channel:
        @hookimpl
        def channel_routes(self) -> list[ChannelRoute]:
            return list(routes)

    return Channel()


def failure_of(tmp_path: Path, channel: object) -> str:
    """The load error ``/api/plugins`` reports for ``channel`` (as ``probe``)."""
    found: list[str] = []

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        found.extend(failure["error"] for failure in plugins["failed"])
        missing = await conductor.simulate_get("/api/channels/probe/pong", headers=AUTH)
        assert missing.status_code == 404

    run_app(tmp_path, {"probe": channel}, scenario)
    [error] = found
    return error


def test_a_route_that_is_not_public_must_name_its_permission(tmp_path):
    """A channel route with no ``permission`` and not public does not load: no default
    could fit every route (a message read by any agent was once the result)."""
    error = failure_of(tmp_path, routes_channel(ChannelRoute("pong", Pong())))
    assert "must name the permission" in error and "'pong'" in error


def test_a_channel_may_not_answer_options(tmp_path):
    """OPTIONS passes authentication for CORS preflights, so a channel responder for it
    would be open to anyone: such a channel does not load."""
    channel = routes_channel(ChannelRoute("pong", Preflight(), permission="channels:read"))
    assert "on_options" in failure_of(tmp_path, channel)


def test_head_on_a_channel_route_needs_the_permission_it_names(tmp_path):
    """A route serving only HEAD is checked against its own permission, and denied
    without credentials."""
    channel = routes_channel(ChannelRoute("pong", HeadOnly(), permission="channels:read"))

    async def scenario(conductor: testing.ASGIConductor) -> None:
        allowed = await conductor.simulate_head("/api/channels/probe/pong", headers=AUTH)
        assert (allowed.status_code, allowed.headers.get("X-Seen")) == (200, "yes")
        anonymous = await conductor.simulate_head("/api/channels/probe/pong")
        assert anonymous.status_code == 401

    run_app(tmp_path, {"probe": channel}, scenario)


# WebSockets, through the real server and a real WebSocket client -------------------------


@pytest.fixture(scope="module")
def socket_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the pip-installed echo channel, which has WebSocket routes."""
    site = install_distributions(tmp_path_factory.mktemp("site") / "packages", "echo")
    workdir = tmp_path_factory.mktemp("sockets")
    env = {"PYTHONPATH": str(site), "ECHO_TOKEN": "echo-token", "WEBHOOK_SECRET": "s"}
    with running_server(workdir, env) as process:
        yield process


def first_message(server: ServerProcess, path: str, token: str | None) -> str:
    """What the server sends first on ``path``, or ``closed <code>: <reason>`` when it
    refuses."""

    async def talk() -> str:
        url = server.base_url.replace("http://", "ws://") + path
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with websockets.connect(url, additional_headers=headers) as socket:
                return await socket.recv()
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code}: {closed.rcvd.reason}" if closed.rcvd else "lost"

    return asyncio.run(talk())


def test_a_private_websocket_route_is_authenticated_before_it_is_accepted(socket_server):
    """No credentials or a bad one: closed with 3401 and the reason before the route runs;
    a caller without the route's permission: 3403 naming it; one with it reaches the route,
    which knows who is calling."""
    path = "/api/channels/echo/live"
    with socket_server.client() as admin:
        agent = create_user(admin, "agent")
        supervisor = create_user(admin, "supervisor")
    agent_token = login(socket_server, agent["email"])["access_token"]
    supervisor_token = login(socket_server, supervisor["email"])["access_token"]
    assert first_message(socket_server, path, None) == (
        "closed 3401: send Authorization: Bearer <access token or API key>"
    )
    assert first_message(socket_server, path, "not-a-key") == (
        "closed 3401: the API key or access token is not valid"
    )
    refused = first_message(socket_server, path, agent_token)
    assert refused.startswith("closed 3403:") and "reports:read" in refused
    assert first_message(socket_server, path, supervisor_token) == "user"


def test_a_public_websocket_route_needs_no_credentials(socket_server):
    """A route the channel marks public takes anyone; the channel authenticates it."""
    assert first_message(socket_server, "/api/channels/echo/open", None) == "anonymous"


def test_refused_websockets_leave_no_stack_trace(socket_server):
    """A socket on a route with no WebSocket responder is closed with 3405; on no route,
    3404; and the server log holds no traceback for any refused socket."""
    assert first_message(socket_server, "/api/channels/echo/ping", API_KEY).startswith(
        "closed 3405"
    )
    assert first_message(socket_server, "/api/nowhere", API_KEY).startswith("closed 3404")
    log = socket_server.log_path.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_socket_can_check_its_credential_again_and_learns_of_a_revocation(socket_server):
    """``req.context.authenticate_again`` re-checks the credential a socket was opened
    with: allowed while the key lives; once it is revoked, the route closes with 3401."""
    with socket_server.client() as admin:
        key = admin.post("/api/api-keys", json={"name": "live", "scopes": ["read"]}).json()

        async def talk() -> list[str]:
            url = socket_server.base_url.replace("http://", "ws://") + "/api/channels/echo/live"
            headers = {"Authorization": f"Bearer {key['key']}"}
            heard = []
            async with websockets.connect(url, additional_headers=headers) as socket:
                heard.append(await socket.recv())
                await socket.send("again")
                heard.append(await socket.recv())
                revoked = await asyncio.to_thread(admin.delete, f"/api/api-keys/{key['id']}")
                assert revoked.status_code == 200
                await socket.send("again")
                try:
                    heard.append(await socket.recv())
                except websockets.ConnectionClosed as closed:
                    heard.append(f"closed {closed.rcvd.code}: {closed.rcvd.reason}")
            return heard

        heard = asyncio.run(talk())
    assert heard == ["api_key", "still allowed", "closed 3401: the API key has been revoked"]
