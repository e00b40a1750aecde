"""Users for tests against the real server: the first admin created on the command line as
the docs say, the others through the API with the bootstrap key (which may create admins
once an admin exists), logged in through /api/auth/login (the test kit's
:mod:`omnichannel_core.testing.users`, which channels' tests use too)."""

from __future__ import annotations

import subprocess
import sys

from omnichannel_core.testing.server import ServerProcess
from omnichannel_core.testing.users import PASSWORD, client_for, create_user, logged_in, login
from tests.support.signing import unique

__all__ = [
    "PASSWORD",
    "client_for",
    "create_admin_on_command_line",
    "create_user",
    "logged_in",
    "login",
]

CREATE_ADMIN = (sys.executable, "-m", "omnichannel_core.cli", "users", "create-admin")


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
