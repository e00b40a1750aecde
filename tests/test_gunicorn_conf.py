"""The gunicorn settings of ``omnichannel serve``, seen from outside the real server: where
its control socket goes, and how a generated API key is shown."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

from omnichannel_core.cli import gunicorn_command
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET

GUNICORNC = str(Path(sys.executable).parent / "gunicornc")
SOCKET_WAIT_SECONDS = 10
START_SECONDS = 60
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


def test_a_generated_key_is_named_by_file_in_a_log(tmp_path):
    """Without OMNICHANNEL_API_KEY, the server generates a key; its log (not a terminal)
    says which file holds it and never holds the key itself."""
    with running_server(tmp_path, {"OMNICHANNEL_API_KEY": None}) as server:
        key = (tmp_path / "data" / "api-key").read_text().strip()
        with server.client(key) as client:
            assert client.get("/api/conversations").status_code == 200
        log = server.log()
    assert key not in log
    assert f"read it from {tmp_path / 'data' / 'api-key'}" in log


def read_until(fd: int, text: bytes, seconds: float) -> bytes:
    """What the terminal ``fd`` shows until ``text`` appears (or the time is up)."""
    shown = b""
    deadline = time.monotonic() + seconds
    while text not in shown and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                shown += os.read(fd, 4096)
            except OSError:  # the other side closed
                break
    return shown


def test_a_generated_key_is_shown_on_a_terminal(tmp_path):
    """On a terminal, the generated key is printed once, with the file that keeps it."""
    server = ServerProcess(tmp_path, {"OMNICHANNEL_API_KEY": None})
    terminal, its_side = pty.openpty()
    process = subprocess.Popen(
        server.command(),
        cwd=tmp_path,
        env=server.env,
        stdin=subprocess.DEVNULL,
        stdout=its_side,
        stderr=its_side,
        start_new_session=True,
    )
    os.close(its_side)
    try:
        shown = read_until(terminal, b"shown only this once", START_SECONDS)
    finally:
        process.terminate()
        process.wait(timeout=20)
        os.close(terminal)
    key = (tmp_path / "data" / "api-key").read_text().strip()
    assert f"API key: {key}".encode() in shown
    assert str(tmp_path / "data" / "api-key").encode() in shown
