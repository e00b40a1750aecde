"""The server itself, through real gunicorn: what it says about itself, JSON errors for every
kind of bad request, size limits and the request id header."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from omnichannel_core import __version__
from omnichannel_core.testing.server import ServerProcess, channels_except, running_server

SMALL_LIMIT = 2048
MESSAGES = "/api/channels/http/messages"
WEBHOOK = "/api/channels/http/webhook"


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that refuses bodies over 2 KiB."""
    workdir = tmp_path_factory.mktemp("small-limit")
    env = {"WEBHOOK_SECRET": "s", "OMNICHANNEL_MAX_BODY_BYTES": str(SMALL_LIMIT)}
    with running_server(workdir, env) as process:
        yield process


def assert_json_error(response, status: int) -> dict:
    """The response has the status and the one error shape, with no traceback in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def test_root_names_system_version_and_channels(server):
    """GET / needs no key and names the system, its version and its channels."""
    response = server.client(None).get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "omnichannel"
    assert body["version"] == __version__
    assert body["channels"] == ["http"]


def test_health_reports_store_and_each_channel(server):
    """GET /health needs no key and reports the store and every loaded channel."""
    response = server.client(None).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert body["version"] == __version__
    assert body["store"]["ok"] is True
    assert body["store"]["backend"] == "sqlite"
    assert body["store"]["schema_current"] is True
    assert set(body["store"]["schema"]) == {
        "campaigns",
        "events",
        "audit",
        "jobs",
        "access",
        "inbox",
        "media",
        "crm",
        "crm_imports",
        "settings",
        "dashboard",
        "presence",
    }
    assert set(body["channels"]) == {"http"}
    assert isinstance(body["channels"]["http"]["ok"], bool)
    assert body["failed_plugins"] == []


def test_health_is_ok_when_the_channel_is_configured(server):
    """With WEBHOOK_SECRET and a send URL set, the http channel is healthy and so is the server."""
    body = server.client(None).get("/health").json()
    assert body["channels"]["http"]["ok"] is True
    assert body["status"] == "ok"


def test_health_is_degraded_when_a_channel_is_not_configured(small_limit_server):
    """A channel missing its settings makes /health say "degraded" (200, the store is fine)
    and name what is missing."""
    response = small_limit_server.client(None).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["channels"]["http"]["ok"] is False
    assert "HTTP_CHANNEL_SEND_URL" in body["channels"]["http"]["detail"]


def test_unknown_route_is_json_404(server):
    """A path no route matches answers 404 with the JSON error shape."""
    body = assert_json_error(server.client().get("/no/such/thing"), 404)
    assert body["error"] == "not_found"
    assert "/no/such/thing" in body["message"]


def test_unknown_api_route_is_json_404(server):
    """An unknown path under /api/ answers 404 JSON too (authenticated, so not 401)."""
    assert_json_error(server.client().get("/api/nothing-here"), 404)


def test_wrong_method_is_json_405(server):
    """A method the route does not serve answers 405 with the JSON error shape."""
    body = assert_json_error(server.client().delete("/health"), 405)
    assert body["error"] == "method_not_allowed"
    assert "DELETE" in body["message"]


def test_malformed_json_is_400(server):
    """A body that is not JSON answers 400 saying so."""
    response = server.client().post(
        MESSAGES, content=b'{"to": "x", "text": ', headers={"Content-Type": "application/json"}
    )
    body = assert_json_error(response, 400)
    assert "JSON" in body["message"]


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]", b'"just a string"', b"\xff\xfe not utf-8", b""],
    ids=["array", "string", "not-utf8", "empty"],
)
def test_json_that_is_not_an_object_is_400(server, content):
    """A JSON array, a bare string, bytes that are not UTF-8 or an empty body answer 400,
    never a 5xx."""
    response = server.client().post(
        MESSAGES, content=content, headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, 400)


def test_wrong_media_type_is_415(server):
    """A JSON route given another media type answers 415."""
    response = server.client().post(
        MESSAGES,
        content=b"to=x&text=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = assert_json_error(response, 415)
    assert "application/json" in body["message"]


def test_missing_media_type_is_415(server):
    """A JSON route given a body without Content-Type answers 415."""
    assert_json_error(server.client().post(MESSAGES, content=b'{"to": "x"}'), 415)


def test_oversized_body_with_content_length_is_413(small_limit_server):
    """A body whose Content-Length exceeds the limit answers 413 JSON naming the limit."""
    response = small_limit_server.client().post(
        MESSAGES,
        content=b'{"to": "x", "text": "' + b"a" * SMALL_LIMIT + b'"}',
        headers={"Content-Type": "application/json"},
    )
    body = assert_json_error(response, 413)
    assert str(SMALL_LIMIT) in body["message"]


def test_oversized_chunked_body_is_413(small_limit_server):
    """A chunked body with no Content-Length is cut off at the limit and answered 413."""

    def chunks() -> Iterator[bytes]:
        yield b'{"to": "x", "text": "'
        for _ in range(4):
            yield b"a" * 1000
        yield b'"}'

    response = small_limit_server.client().post(
        MESSAGES, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_json_error(response, 413)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_webhook_is_413(small_limit_server, chunked):
    """The public webhook route enforces the same limit, before the channel sees the body."""
    payload = b"x" * (SMALL_LIMIT + 1)
    content = iter([payload[:1000], payload[1000:]]) if chunked else payload
    response = small_limit_server.client(None).post(WEBHOOK, content=content)
    assert_json_error(response, 413)


def test_body_at_the_limit_is_accepted(small_limit_server):
    """A body of exactly the limit is read (here: a well-formed request the channel rejects
    for its missing signature, proving the body got through the size check)."""
    response = small_limit_server.client(None).post(WEBHOOK, content=b" " * SMALL_LIMIT)
    body = assert_json_error(response, 403)
    assert body["error"] == "webhook_rejected"


def test_unknown_channel_is_404(server):
    """A channel that is not loaded answers 404 JSON naming it."""
    body = assert_json_error(server.client().post("/api/channels/nope/webhook", json={}), 404)
    assert body["channel"] == "nope"
    assert body["message"] == "unknown channel 'nope'"


def test_a_disabled_channel_says_it_is_disabled_and_by_what(tmp_path):
    """With OMNICHANNEL_DISABLE_PLUGINS naming the built-in http channel, its routes answer
    404 saying the channel is disabled and by which variable, not that it is unknown; a
    channel nobody installed is still unknown."""
    env = {"WEBHOOK_SECRET": "s", "OMNICHANNEL_DISABLE_PLUGINS": channels_except([])}
    with running_server(tmp_path, env) as server, server.client() as client:
        for method, path in [("POST", WEBHOOK), ("POST", MESSAGES), ("GET", "/api/channels/http")]:
            body = assert_json_error(client.request(method, path, json={}), 404)
            assert body["channel"] == "http"
            assert body["message"] == (
                "channel 'http' is disabled: OMNICHANNEL_DISABLE_PLUGINS names it"
            )
        unknown = assert_json_error(client.post("/api/channels/nope/webhook", json={}), 404)
        assert unknown["message"] == "unknown channel 'nope'"


def test_valid_request_id_is_echoed(server):
    """A well-formed X-Request-ID sent by the client comes back unchanged."""
    response = server.client().get("/health", headers={"X-Request-ID": "client-req.42:a_b"})
    assert response.headers["X-Request-ID"] == "client-req.42:a_b"


@pytest.mark.parametrize(
    "given", ["has spaces in it", "x" * 129, "semi;colon", "ünïcode"], ids=str.__len__
)
def test_invalid_request_id_is_replaced(server, given):
    """A malformed or overlong X-Request-ID is not echoed; a generated one replaces it."""
    response = server.client().get("/health", headers={"X-Request-ID": given.encode()})
    echoed = response.headers["X-Request-ID"]
    assert echoed != given
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_missing_request_id_is_generated_and_unique(server):
    """Without X-Request-ID each response carries a fresh generated id, errors included."""
    client = server.client()
    ids = {client.get("/").headers["X-Request-ID"] for _ in range(3)}
    ids.add(client.get("/missing").headers["X-Request-ID"])
    assert len(ids) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
