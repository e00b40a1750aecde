"""The gunicorn settings of ``omnichannel serve``, seen from outside the real server."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

from omnichannel_core.cli import gunicorn_command
from omnichannel_core.testing.server import ServerProcess
from tests.conftest import WEBHOOK_SECRET

GUNICORNC = str(Path(sys.executable).parent / "gunicornc")
SOCKET_WAIT_SECONDS = 10
UNIX_SOCKET_PATH_MAX = 107  # as omnichannel_core.gunicorn_conf (importing it reads the env)


class ServerWithControlSocket(ServerProcess):
    """The real server as ``omnichannel serve`` runs it: with gunicorn's control socket."""

    def command(self) -> list[str]:
        return gunicorn_command(control_socket=True)


def user_env(home: Path) -> dict[str, str | None]:
    """A user whose home is ``home``, with no XDG_RUNTIME_DIR (gunicorn's first choice)."""
    return {"HOME": str(home), "XDG_RUNTIME_DIR": None, "WEBHOOK_SECRET": WEBHOOK_SECRET}


def wait_for_socket(path: Path) -> bool:
    """Whether a Unix socket appears at ``path`` (gunicorn binds it in a thread)."""
    deadline = time.monotonic() + SOCKET_WAIT_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and stat.S_ISSOCK(path.stat().st_mode):
            return True
        time.sleep(0.05)
    return False


def listeners(socket_path: Path) -> str:
    """What ``gunicornc -s socket_path -c 'show listeners'`` answers."""
    result = subprocess.run(
        [GUNICORNC, "-s", str(socket_path), "-c", "show listeners", "-j"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_each_server_has_its_control_socket_in_its_data_dir(tmp_path):
    """Two servers of one user (one HOME, no XDG_RUNTIME_DIR) each put their control socket
    in their own data folder, where ``gunicornc -s`` reaches that server, and nothing is
    created in the home folder (gunicorn's default is ``~/.gunicorn/gunicorn.ctl`` for
    all of them). A stopped server removes its socket."""
    home = tmp_path / "home"
    home.mkdir()
    first = ServerWithControlSocket(tmp_path / "first", user_env(home)).start()
    try:
        second = ServerWithControlSocket(tmp_path / "second", user_env(home)).start()
        try:
            for server in (first, second):
                socket_path = server.workdir / "data" / "gunicorn.ctl"
                assert wait_for_socket(socket_path), server.log()
                assert str(server.port) in listeners(socket_path)
        finally:
            second.stop()
    finally:
        first.stop()
    assert list(home.iterdir()) == []
    assert not (tmp_path / "first" / "data" / "gunicorn.ctl").exists()


def test_a_data_dir_too_deep_for_a_socket_runs_without_one(tmp_path):
    """A data folder whose socket path would pass a Unix socket's limit: the server runs,
    without a control socket, logging one warning that says why (gunicorn alone logs an
    error at every start), and still creates nothing in the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    deep = tmp_path / ("d" * (UNIX_SOCKET_PATH_MAX - len(str(tmp_path))))
    env = {**user_env(home), "OMNICHANNEL_DATA_DIR": str(deep)}
    server = ServerWithControlSocket(tmp_path / "server", env).start()
    try:
        with server.client() as client:
            assert client.get("/api/conversations").status_code == 200
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines()]
    warnings = [line["event"] for line in lines if line["level"] == "warning"]
    assert [line for line in lines if line["level"] == "error"] == []
    assert len(warnings) == 1 and "OMNICHANNEL_DATA_DIR" in warnings[0]
    assert not (deep / "gunicorn.ctl").exists()
    assert list(home.iterdir()) == []
