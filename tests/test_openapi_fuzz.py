"""Schemathesis fuzzes every operation of the OpenAPI document against the real server,
with the bootstrap key, and no answer may be a server error.

The CLI runs in a subprocess with a fixed seed and a bounded number of examples per
operation, so a failure reproduces and the run stays short. Path parameters are often real
ids (a contact, conversation, message, user, API key, the ``http`` channel) so the requests
get past the lookups to the code behind them, and otherwise generated. The document is given
as a file: schemathesis leaves out the operation serving the schema when given its URL. On a
failure the test prints schemathesis' report (each failing request, with a curl line to
replay it) and the server's log lines about server errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.users import create_user

SEED = 20240611
EXAMPLES_PER_OPERATION = 25
REAL_ID_PROBABILITY = 0.7
RUN_TIMEOUT_SECONDS = 600  # a hung run fails instead of blocking the suite; not a speed check
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, receiver: FakeProvider
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("openapi-fuzz")
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound"}
    with running_server(workdir, env, workers=2) as process:
        yield process


def real_path_values(admin: httpx.Client) -> dict[str, str]:
    """Ids of records made here, by path parameter name."""
    sender = unique("+1555")
    assert post_webhook(admin, inbound_message(sender, "hello")).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    [message] = admin.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    key = admin.post("/api/api-keys", json={"name": "fuzz", "scopes": ["read"]})
    assert key.status_code == 201, key.text
    return {
        "contact_id": conversation["contact_id"],
        "conversation_id": conversation["id"],
        "message_id": message["id"],
        "user_id": create_user(admin, "agent")["id"],
        "key_id": key.json()["id"],
        "channel": "http",
    }


def schemathesis_config(path_values: dict[str, str]) -> str:
    """A schemathesis.toml that puts each real id in its path parameter most of the time."""
    lines = []
    for name, value in path_values.items():
        lines += [f"[dictionaries.{name}]", f"values = [{json.dumps(value)}]", ""]
    lines.append("[parameters]")
    for name in path_values:
        lines.append(
            f'"path.{name}" = {{ dictionary = "{name}", probability = {REAL_ID_PROBABILITY} }}'
        )
    return "\n".join(lines) + "\n"


def server_error_lines(log: str) -> list[str]:
    """The server's log lines about a 5xx answer or an unhandled error."""
    lines = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                lines.append(line)
            continue
        if not isinstance(entry, dict):
            continue
        status = entry.get("status")
        if (isinstance(status, int) and status >= 500) or entry.get("level") in (
            "error",
            "critical",
        ):
            lines.append(line)
    return lines


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 30)  # a loaded machine's run takes 3 minutes, not 1
def test_no_operation_answers_a_server_error(server: ServerProcess, tmp_path: Path):
    """Every documented operation, fed generated valid and invalid input with the bootstrap
    key, answers something other than a 5xx."""
    with server.client() as admin:
        document = admin.get("/api/openapi.json")
        assert document.status_code == 200, document.text
        config = schemathesis_config(real_path_values(admin))
    (tmp_path / "openapi.json").write_text(document.text)
    (tmp_path / "schemathesis.toml").write_text(config)
    command = [
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        str(tmp_path / "openapi.json"),
        "--url",
        server.base_url,
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--continue-on-failure",
        # The event stream answers 200 and never ends, which the fuzzer takes for a hung
        # request; tests/test_events_api.py sends it bad cursors and credentials instead.
        "--exclude-path",
        "/api/events",
    ]
    # Run in a directory of its own, so no schemathesis.toml from elsewhere changes the run.
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    errors = "\n".join(server_error_lines(server.log())[-60:])
    assert run.returncode == 0, (
        f"schemathesis exited with {run.returncode}\n--- its output ---\n{run.stdout}"
        f"\n{run.stderr}\n--- server log, errors ---\n{errors}"
    )
