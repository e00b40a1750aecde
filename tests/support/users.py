"""Users for tests against the real server: the first admin created on the command line as
the docs say, the others through the API with the bootstrap key (which may create admins
once an admin exists), logged in through /api/auth/login."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from omnichannel_core.testing.server import ServerProcess
from tests.support.signing import unique

PASSWORD = "correct horse battery staple"
CREATE_ADMIN = (sys.executable, "-m", "omnichannel_core.cli", "users", "create-admin")


def create_user(
    admin: httpx.Client, role: str, password: str = PASSWORD, name: str | None = None
) -> dict[str, Any]:
    """A new user with ``role`` (its email is unique), as the API answered."""
    email = f"{unique(role)}@example.com".lower()
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
    """The token pair of a fresh session."""
    with server.client(api_key=None) as anonymous:
        response = anonymous.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def client_for(server: ServerProcess, token: str) -> httpx.Client:
    """A client sending ``Authorization: Bearer <token>`` (an access token or a key)."""
    return server.client(api_key=token)


def logged_in(server: ServerProcess, admin: httpx.Client, role: str) -> tuple[dict, httpx.Client]:
    """A new user of ``role`` and a client with their access token."""
    user = create_user(admin, role)
    tokens = login(server, user["email"])
    return user, client_for(server, tokens["access_token"])


def create_admin_on_command_line(server: ServerProcess, name: str = "Test admin") -> str:
    """An admin made with ``omnichannel users create-admin`` against the server's store (the
    only way to make the first one); returns their email."""
    email = f"{unique('admin')}@example.com".lower()
    created = subprocess.run(
        [*CREATE_ADMIN, "--email", email, "--name", name, "--password", PASSWORD],
        env=server.env,
        cwd=server.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    return email
