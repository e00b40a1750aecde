"""Access through the real server: bearer API keys on every /api/ route except the public
ones, several configured keys, and the key generated when none is configured."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from omnichannel_core.testing.server import ServerProcess, running_server

KEY_ONE = "first-key-abcdefgh"
KEY_TWO = "second-key-ijklmnop"

PROTECTED = [
    ("GET", "/api/plugins"),
    ("GET", "/api/contacts"),
    ("GET", "/api/contacts/ct_missing"),
    ("PATCH", "/api/contacts/ct_missing"),
    ("GET", "/api/conversations"),
    ("GET", "/api/conversations/cv_missing"),
    ("PATCH", "/api/conversations/cv_missing"),
    ("GET", "/api/conversations/cv_missing/messages"),
    ("POST", "/api/conversations/cv_missing/messages"),
    ("GET", "/api/messages/msg_missing"),
    ("POST", "/api/channels/http/messages"),
    ("GET", "/api/channels/http/health"),
]
GENERATED_KEY_LINE = re.compile(r"one was generated; read it from (\S+)")


@pytest.fixture(scope="module")
def two_key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server configured with two comma-separated API keys."""
    workdir = tmp_path_factory.mktemp("two-keys")
    env = {"OMNICHANNEL_API_KEY": f"{KEY_ONE}, {KEY_TWO}", "WEBHOOK_SECRET": "s"}
    with running_server(workdir, env) as process:
        yield process


def request(server: ServerProcess, method: str, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return client.request(method, path, headers=headers, json={})


def assert_unauthenticated(response: httpx.Response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert body["message"]
    return body


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=lambda value: str(value))
def test_protected_route_without_key_is_401(two_key_server, method, path):
    """Every non-public /api/ route answers 401 JSON with WWW-Authenticate when no key is sent."""
    body = assert_unauthenticated(request(two_key_server, method, path))
    assert "Bearer" in body["message"]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=lambda value: str(value))
def test_protected_route_with_wrong_key_is_401(two_key_server, method, path):
    """A bearer token that is not a configured key is refused on every protected route."""
    assert_unauthenticated(
        request(two_key_server, method, path, Authorization="Bearer not-the-key")
    )


@pytest.mark.parametrize(
    "header",
    [f"Basic {KEY_ONE}", KEY_ONE, "Bearer", f"Token {KEY_ONE}", f"Bearer: {KEY_ONE}"],
    ids=["basic", "bare-key", "bearer-only", "token", "bearer-colon"],
)
def test_wrong_scheme_is_401(two_key_server, header):
    """The key must come as "Bearer <key>": other schemes, a bare key or an empty token fail."""
    assert_unauthenticated(request(two_key_server, "GET", "/api/contacts", Authorization=header))


def test_key_is_not_a_prefix_match(two_key_server):
    """A configured key with extra characters, or cut short, is not accepted."""
    for token in (KEY_ONE + "x", KEY_ONE[:-1], f"{KEY_ONE},{KEY_TWO}"):
        assert_unauthenticated(
            request(two_key_server, "GET", "/api/contacts", Authorization=f"Bearer {token}")
        )


@pytest.mark.parametrize("key", [KEY_ONE, KEY_TWO])
def test_each_configured_key_works(two_key_server, key):
    """Each key of a comma-separated OMNICHANNEL_API_KEY opens the API."""
    response = two_key_server.client(key).get("/api/contacts")
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_scheme_is_case_insensitive(two_key_server):
    """ "bearer" in lower case is the same scheme (RFC 9110: schemes are case-insensitive)."""
    response = request(two_key_server, "GET", "/api/contacts", Authorization=f"bearer {KEY_TWO}")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/api/openapi.json"])
def test_public_pages_need_no_key(two_key_server, path):
    """/, /health and the OpenAPI document answer without any key."""
    assert request(two_key_server, "GET", path).status_code == 200


@pytest.mark.parametrize("route", ["webhook", "status"])
def test_channel_webhooks_need_no_key(two_key_server, route):
    """POST webhook and status are public: the channel judges them (here 403 for a missing
    signature), the API key is not asked for."""
    response = request(two_key_server, "POST", f"/api/channels/http/{route}")
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"


def test_webhook_route_other_methods_are_not_public(two_key_server):
    """Only POST on the webhook route is public: any other method asks for the key first
    (401), and with the key answers 405."""
    response = request(two_key_server, "GET", "/api/channels/http/webhook")
    assert_unauthenticated(response)
    response = two_key_server.client(KEY_ONE).get("/api/channels/http/webhook")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_generated_key_is_created_printed_once_and_required(tmp_path):
    """With no OMNICHANNEL_API_KEY the first start creates <data dir>/api-key (mode 0600),
    says once where it is (the key itself is printed only on a terminal, never into a log),
    requires it; a restart on the same data folder reuses it silently."""
    env = {"OMNICHANNEL_API_KEY": None, "WEBHOOK_SECRET": "s"}
    with running_server(tmp_path, env, workers=2) as first:
        key_path = tmp_path / "data" / "api-key"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = key_path.read_text().strip()
        announced = GENERATED_KEY_LINE.findall(first.log())
        assert announced == [str(key_path)]
        assert key not in first.log()

        assert_unauthenticated(first.client(None).get("/api/contacts"))
        assert_unauthenticated(first.client("ock_guessed").get("/api/contacts"))
        assert first.client(key).get("/api/contacts").status_code == 200
        first_log_length = len(first.log())

    with running_server(tmp_path, env) as second:
        second_start_log = second.log()[first_log_length:]
        assert "Listening at" in second_start_log
        assert key not in second_start_log
        assert not GENERATED_KEY_LINE.search(second_start_log)
        assert key_path.read_text().strip() == key
        assert second.client(key).get("/api/contacts").status_code == 200
        assert_unauthenticated(second.client(None).get("/api/contacts"))


def test_configured_key_means_no_generated_key(tmp_path):
    """When OMNICHANNEL_API_KEY is set no key file is written and no key is printed."""
    with running_server(tmp_path, {}) as server:
        assert server.client().get("/api/contacts").status_code == 200
        assert not (tmp_path / "data" / "api-key").exists()
        assert not GENERATED_KEY_LINE.search(server.log())


@pytest.mark.parametrize(
    "path", ["//api/contacts", "///api/contacts", "/api//contacts", "//api/channels/http/messages"]
)
def test_doubled_slashes_do_not_bypass_the_key(two_key_server, path):
    """Auth is decided on the matched resource, not the path's spelling: a path with doubled
    slashes that still reaches a protected resource needs the key like the plain one."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", two_key_server.port, timeout=10)
    try:
        connection.request(
            "POST" if path.endswith("messages") else "GET",
            path,
            body=b'{"to": "x", "text": "y"}',
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status in (401, 404), response.status
    finally:
        connection.close()


def test_workers_starting_together_all_read_the_one_generated_signing_secret(tmp_path):
    """gunicorn's workers each read (or generate) the signing secret as they start: started
    together, they all get the same non-empty secret (one once read an empty, half-written
    file and signed with an empty key: 500s on login)."""
    script = (
        "import sys; from pathlib import Path;"
        " from omnichannel_core.server_secrets import signing_secret;"
        " from omnichannel_core.config import Config;"
        " print(signing_secret(Config(data_dir=Path(sys.argv[1]), jwt_secret=None)))"
    )
    for round_number in range(3):
        data_dir = tmp_path / f"round-{round_number}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(data_dir)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(8)
        ]
        secrets_read = {process.communicate(timeout=60)[0].strip() for process in processes}
        assert len(secrets_read) == 1 and "" not in secrets_read
        assert [path.name for path in data_dir.iterdir()] == ["jwt-secret"]
