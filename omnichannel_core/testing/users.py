"""Users of a real server (:class:`~omnichannel_core.testing.server.ServerProcess`) for tests
of who may call what: made through the API with the server's key (``POST /api/users``), then
logged in as docs/access.md says (``POST /api/auth/login``). An agent's access token is what
a channel's own routes must tell from their own callers' credentials::

    with server.client() as admin:
        user, agent = logged_in(server, admin, "agent")
    with agent:
        assert agent.get("/api/conversations").status_code == 200

The first admin is made on the command line (``omnichannel users create-admin``); until one
exists the API creates users of every other role, agents and supervisors.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from omnichannel_core.testing.server import ServerProcess

PASSWORD = "correct horse battery staple"  # noqa: S105 - test users only
"""The password of every user :func:`create_user` makes, unless given another."""


def create_user(
    admin: httpx.Client, role: str, password: str = PASSWORD, name: str | None = None
) -> dict[str, Any]:
    """A new user with ``role`` (``agent``, ``supervisor``...; its email is unique), made
    by ``admin`` (a client with the server's key, or an admin's token), as the API answered
    (``id``, ``email``...)."""
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com".lower()
    response = admin.post(
        "/api/users",
        json={
            "email": email,
            "display_name": name or f"Test {role}",
            "role": role,
            "password": password,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def login(server: ServerProcess, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """The token pair of a fresh session (``access_token``, ``refresh_token``...)."""
    with server.client(api_key=None) as anonymous:
        response = anonymous.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def client_for(server: ServerProcess, token: str) -> httpx.Client:
    """A client sending ``Authorization: Bearer <token>`` (an access token or a key)."""
    return server.client(api_key=token)


def logged_in(
    server: ServerProcess, admin: httpx.Client, role: str
) -> tuple[dict[str, Any], httpx.Client]:
    """A new user of ``role`` and a client with their access token."""
    user = create_user(admin, role)
    tokens = login(server, user["email"])
    return user, client_for(server, tokens["access_token"])
