"""The Graph API client against the fake Graph API over real HTTP (no server): the token in
the header and the proof on every call, Graph's errors read and classified, failures to
connect and lost answers told apart, and the proof masked in httpx's log line."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
import pytest
from fake_graph import GRAPH_VERSION, FakeGraph, GraphAnswer
from messenger_events import APP_SECRET, PAGE_ID, PAGE_TOKEN
from omnichannel_facebook.graph_client import (
    GraphAnswerLost,
    GraphClient,
    GraphError,
    GraphUnreachable,
    MaskAppsecretProof,
    appsecret_proof,
    graph_error,
)
from omnichannel_facebook.settings import parse_settings

from omnichannel_core.channel import (
    Config,
)
from omnichannel_core.testing.server import free_port

TIMEOUT = httpx.Timeout(5.0)


def client_for(url: str, token: str = PAGE_TOKEN) -> GraphClient:
    settings = parse_settings(
        Config(
            environ={
                "FACEBOOK_PAGE_ACCESS_TOKEN": token,
                "FACEBOOK_APP_SECRET": APP_SECRET,
                "FACEBOOK_VERIFY_TOKEN": "v",
                "FACEBOOK_GRAPH_API_VERSION": GRAPH_VERSION,
                "FACEBOOK_GRAPH_API_BASE_URL": url,
            }
        )
    )
    return GraphClient(settings, TIMEOUT)


@pytest.fixture(scope="module")
def graph():
    with FakeGraph(PAGE_TOKEN, APP_SECRET, PAGE_ID) as fake:
        yield fake


def test_appsecret_proof_is_hmac_sha256_of_the_token():
    """The proof is the hex HMAC-SHA256 of the token keyed with the app secret."""
    expected = hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert appsecret_proof(PAGE_TOKEN, APP_SECRET) == expected


def test_every_call_carries_the_token_in_the_header_and_the_proof(graph):
    """GET and POST both send Authorization: Bearer <token> and appsecret_proof, and the
    token never appears in the URL."""
    client = client_for(graph.url)
    assert client.get("me", {"fields": "id,name"})["id"] == PAGE_ID
    client.post("me/messages", {"recipient": {"id": "1"}, "message": {"text": "x"}})
    for request in graph.all_requests()[-2:]:
        assert request.bearer == PAGE_TOKEN
        assert request.query["appsecret_proof"] == graph.proof
        assert "access_token" not in request.query
        assert PAGE_TOKEN not in request.path
    assert graph.all_requests()[-2].query["fields"] == "id,name"
    assert graph.all_requests()[-2].path == f"/{GRAPH_VERSION}/me"


def test_graph_errors_are_read_with_code_subcode_and_trace(graph):
    """A Graph error answer becomes GraphError with status, code, subcode, message and
    fbtrace_id."""
    graph.queue(GraphAnswer.error(100, subcode=2018001, message="(#100) No matching user found"))
    with pytest.raises(GraphError) as raised:
        client_for(graph.url).post("me/messages", {"recipient": {"id": "1"}, "message": {}})
    error = raised.value
    assert (error.status, error.code, error.subcode) == (400, 100, 2018001)
    assert error.message == "(#100) No matching user found"
    assert error.fbtrace_id
    assert error.details()["graph_code"] == 100
    assert not (error.is_rate_limit or error.is_invalid_token or error.is_transient)


def test_a_wrong_token_is_graphs_code_190(graph):
    """The fake refuses another token with 190, which the client marks as invalid token."""
    with pytest.raises(GraphError) as raised:
        client_for(graph.url, token="EAAGsomethingelse").get("me")
    assert raised.value.is_invalid_token


@pytest.mark.parametrize(
    ("status", "code", "rate_limit", "transient"),
    [
        (400, 4, True, False),
        (400, 17, True, False),
        (400, 32, True, False),
        (400, 613, True, False),
        (400, 80006, True, False),
        (429, None, True, False),
        (500, 2, False, True),
        (400, 1200, False, True),
        (503, None, False, True),
        (400, 100, False, False),
        (403, 10, False, False),
    ],
)
def test_error_classes(status, code, rate_limit, transient):
    """Rate limits: 4, 17, 32, 613, 80000-80014 and HTTP 429; outages: 5xx, 1, 2, 1200."""
    error = GraphError(status, code, "x")
    assert (error.is_rate_limit, error.is_transient) == (rate_limit, transient)


def test_secrets_in_graphs_message_are_masked():
    """Should Graph echo the token in its message, the error carries "[redacted]" instead."""
    response = httpx.Response(
        400, json={"error": {"message": f"bad token {PAGE_TOKEN}", "code": 190}}
    )
    error = graph_error(response, (PAGE_TOKEN, APP_SECRET))
    assert PAGE_TOKEN not in error.message and "[redacted]" in error.message


def test_an_answer_that_is_not_graph_json_is_still_an_error():
    """A 502 from a proxy, HTML: GraphError with the status and no Graph code."""
    error = graph_error(httpx.Response(502, text="<html>bad gateway</html>"), ())
    assert (error.status, error.code) == (502, None)
    assert error.is_transient


def test_nobody_listening_is_unreachable():
    """A refused connection: GraphUnreachable (the request never left)."""
    with pytest.raises(GraphUnreachable):
        client_for(f"http://127.0.0.1:{free_port()}").get("me")


def test_a_success_without_json_is_a_lost_answer(graph):
    """200 with a body that is not JSON: the request was acted on, maybe; GraphAnswerLost."""
    graph.queue(GraphAnswer.garbage())
    with pytest.raises(GraphAnswerLost):
        client_for(graph.url).post("me/messages", {"recipient": {"id": "1"}, "message": {}})


def test_httpx_request_lines_mask_the_proof(graph, caplog):
    """httpx logs each request's URL at INFO: the appsecret_proof in it is masked."""
    with caplog.at_level(logging.INFO, logger="httpx"):
        client_for(graph.url).get("me")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines, "httpx logged no request line"
    assert all(graph.proof not in line for line in lines)
    assert any("appsecret_proof=[masked]" in line for line in lines)


def test_mask_filter_leaves_other_lines_alone():
    """A record without a proof passes through unchanged."""
    record = logging.LogRecord("httpx", logging.INFO, "", 0, "HTTP %s %d", ("GET", 200), None)
    assert MaskAppsecretProof().filter(record)
    assert record.getMessage() == "HTTP GET 200"
