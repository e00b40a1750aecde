"""The README's shell examples work when run as written: each test runs one with bash, with
only what a reader would change (the port a test server gets, the path to the virtualenv,
a password the reader chose)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from omnichannel_core.modules.access.passwords import MAX_LENGTH, MIN_LENGTH
from omnichannel_core.testing.server import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SH_BLOCK = re.compile(r"^```sh\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
VENV_BIN = str(Path(sys.executable).parent)
RUN_SECONDS = 120

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")),
    reason="the README's examples use curl and openssl",
)


def sh_block_after(marker: str) -> str:
    """The first ``sh`` code block of the README after the text ``marker``."""
    text = README.read_text()
    match = SH_BLOCK.search(text, text.index(marker))
    assert match is not None, f"no sh block after {marker!r}"
    return match["code"]


def as_run_here(script: str, port: int, receiver_port: int | None = None) -> str:
    """``script`` with the README's ports and virtualenv replaced by this test's."""
    here = script.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
    if receiver_port is not None:
        here = here.replace("127.0.0.1:8025", f"127.0.0.1:{receiver_port}").replace(
            '"127.0.0.1", 8025', f'"127.0.0.1", {receiver_port}'
        )
    return here.replace(".venv/bin/", VENV_BIN + "/")


def reader_env(port: int, **settings: str) -> dict[str, str]:
    """A reader's shell: no omnichannel setting but the port (and ``settings``)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNICHANNEL_")}
    return {**env, "PORT": str(port), **settings}


def run_bash(script: str, cwd: Path, env: Mapping[str, str], stdin: str = "") -> str:
    """Run ``script`` with bash in ``cwd``; its output (stdout and stderr). Whatever it left
    running is stopped by its process group when it does not finish in time."""
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(stdin, timeout=RUN_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    return output


def test_the_whole_loop_runs_as_written(tmp_path):
    """The README's "Try the whole loop", its reply, then its command that stops the
    server: a receiver and one server start in the background with the channel's variables,
    the example waits for /health before it posts, the signed webhook is stored and listed,
    the reply reaches the receiver and is sent, and ``kill $SERVER $RECEIVER`` stops the
    server (it exits 0)."""
    port, receiver_port = free_port(), free_port()
    loop = sh_block_after("Try the whole loop")
    reply = sh_block_after("Reply in it")
    stop = sh_block_after("When you are done, stop both")
    script = as_run_here(
        f"{loop}\n{reply}\n{stop}\nwait $SERVER\necho server exited with $?\n",
        port,
        receiver_port,
    )
    output = run_bash(script, tmp_path, reader_env(port))
    assert '"address": "user-42"' in output, output
    assert 'received: {"id": "msg_' in output and '"text": "Hi Ada!"' in output, output
    assert '"status": "sent"' in output, output
    assert output.rstrip().endswith("server exited with 0"), output
    assert "omnichannel.log" in os.listdir(tmp_path)


def test_the_users_example_runs_as_written(tmp_path):
    """The README's "Users and API keys" against a running server: the admin is created with
    the password typed at the prompt, the login's access token is taken out of the JSON into
    ACCESS_TOKEN, and with it a user and an API key are created."""
    password = "ana-chose-this-password"
    with running_server(tmp_path, {}) as server:
        script = as_run_here(sh_block_after("### Users and API keys"), server.port)
        script = script.replace("<the password you chose>", password)
        env = reader_env(server.port, OMNICHANNEL_DATA_DIR=str(tmp_path / "data"))
        output = run_bash(script, tmp_path, env, stdin=f"{password}\n{password}\n")
    assert "created admin ana@example.com" in output, output
    assert '"email": "bo@example.com"' in output, output
    assert '"name": "crm-sync"' in output, output


def test_a_refused_login_says_why_and_sets_no_token(tmp_path):
    """The README's login with a wrong password prints the server's reason, not a Python
    traceback, and leaves ACCESS_TOKEN empty."""
    with running_server(tmp_path, {}) as server:
        block = as_run_here(sh_block_after("### Users and API keys"), server.port)
        login = block[block.index("ACCESS_TOKEN=") : block.index("\ncurl", block.index("ACCESS"))]
        script = f'{login}\necho "token: [$ACCESS_TOKEN]"\n'
        output = run_bash(script, tmp_path, reader_env(server.port))
    assert "the email or password is not right" in output
    assert "Traceback" not in output
    assert "token: []" in output


def test_the_password_rule_the_readme_states_is_the_real_one():
    """The README states the length rule passwords.check_strength applies."""
    assert f"has {MIN_LENGTH} to {MAX_LENGTH} characters" in README.read_text()


def test_the_emulator_commands_make_the_pubsub_data_dir_first():
    """The Pub/Sub emulator exits at once unless its --data-dir exists: the README's
    emulator commands make it before starting the emulator."""
    block = sh_block_after("### The emulators, locally")
    data_dir = re.search(r"--data-dir=(\S+)", block)
    assert data_dir is not None
    before = block[: data_dir.start()]
    assert f"mkdir -p {data_dir[1]}" in before


def test_the_campaign_example_runs_as_written(tmp_path):
    """The README's campaign on the quickstart's server: after the loop and its reply, the
    Contacts section's VIP segment and the Campaigns example tag Ada, send the segment a
    campaign on the HTTP channel, and its report counts her sent; the receiver prints her
    message with its variable filled."""
    port, receiver_port = free_port(), free_port()
    loop = sh_block_after("Try the whole loop")
    reply = sh_block_after("Reply in it")
    segment = sh_block_after("Agents see the contacts of the")
    campaign = sh_block_after("send the VIP segment above a campaign")
    stop = sh_block_after("When you are done, stop both")
    script = as_run_here(
        f"{loop}\n{reply}\n{segment}\n{campaign}\n{stop}\nwait $SERVER\n", port, receiver_port
    )
    output = run_bash(script, tmp_path, reader_env(port))
    assert '"text": "Hi Ada, 20% off today. Reply STOP to opt out."' in output, output
    assert '"status": "completed"' in output and '"targeted": 1' in output, output


def test_the_dashboard_example_runs_as_written(tmp_path):
    """The README's dashboard on the quickstart's server, after the loop and its reply: the
    week's report counts the conversation and its first response."""
    port, receiver_port = free_port(), free_port()
    loop = sh_block_after("Try the whole loop")
    reply = sh_block_after("Reply in it")
    dashboard = sh_block_after("the week's figures count Ada's conversation")
    stop = sh_block_after("When you are done, stop both")
    script = as_run_here(
        f"{loop}\n{reply}\nsleep 1\n{dashboard}\n{stop}\nwait $SERVER\n", port, receiver_port
    )
    output = run_bash(script, tmp_path, reader_env(port))
    assert '"conversations_opened": 1' in output, output
    assert '"refresh_seconds": 5' in output, output
    assert '"first_response": {"count": 1' in output, output


def test_the_settings_example_runs_as_written(tmp_path):
    """The README's settings on the quickstart's server: the change answers the settings
    with the business's name, time zone and hours, and the canned response is created."""
    port, receiver_port = free_port(), free_port()
    loop = sh_block_after("Try the whole loop")
    settings = sh_block_after("made by admins and listed for agents")
    stop = sh_block_after("When you are done, stop both")
    script = as_run_here(f"{loop}\n{settings}\n{stop}\nwait $SERVER\n", port, receiver_port)
    output = run_bash(script, tmp_path, reader_env(port))
    assert '"business": {"name": "Acme", "timezone": "Europe/Madrid"}' in output, output
    assert '"friday": [{"start": "09:00", "end": "15:00"}]' in output, output
    assert '"shortcut": "/hours"' in output, output
