"""The Facebook channel's health through the real server: configuration present, the page
token accepted by the (fake) Graph API, the check cached; unconfigured, the server still
starts and says why."""

from __future__ import annotations

from fake_graph import GRAPH_VERSION, PAGE_NAME, FakeGraph
from messenger_events import APP_SECRET, PAGE_ID, PAGE_TOKEN, WRONG_SECRET, WRONG_TOKEN
from server_waits import HEALTH, checked_health

REQUIRED = ("FACEBOOK_PAGE_ACCESS_TOKEN", "FACEBOOK_APP_SECRET", "FACEBOOK_VERIFY_TOKEN")


def test_configured_channel_with_accepted_token_is_healthy(client, fake_graph: FakeGraph):
    """Everything set and GET /me accepted: 200, ok, credentials "accepted", the page's id
    and name; asked with the token in the header and the proof; no secret in the answer."""
    response = checked_health(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["channel"] == "facebook"
    assert body["ok"] is True
    assert body["checks"]["configured"] is True
    assert body["checks"]["credentials"] == "accepted"
    assert body["checks"]["page"] == {"id": PAGE_ID, "name": PAGE_NAME}
    assert body["checks"]["checked_at"]
    for secret in (PAGE_TOKEN, APP_SECRET, fake_graph.proof):
        assert secret not in response.text
    [check, *_] = fake_graph.me_requests()
    assert check.path == f"/{GRAPH_VERSION}/me"
    assert check.bearer == PAGE_TOKEN
    assert check.query["appsecret_proof"] == fake_graph.proof


def test_health_check_is_cached(client, fake_graph: FakeGraph):
    """Asking again right away answers from the cache: no new request to Facebook."""
    assert checked_health(client).status_code == 200
    before = len(fake_graph.me_requests())
    for _ in range(3):
        assert client.get(HEALTH).json()["ok"] is True
    assert len(fake_graph.me_requests()) == before


def test_server_health_reports_the_channel(client):
    """The server-wide /health lists the facebook channel's report."""
    assert checked_health(client).status_code == 200
    response = client.get("/health")
    assert response.json()["channels"]["facebook"]["ok"] is True


def test_rejected_token_makes_the_channel_unhealthy(wrong_token_server):
    """Facebook answering 190 to GET /me: 503, not ok, credentials "rejected", and neither
    token appears in the answer or the log."""
    with wrong_token_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["credentials"] == "rejected"
    assert "190" in body["detail"]
    assert WRONG_TOKEN not in response.text and PAGE_TOKEN not in response.text
    assert WRONG_TOKEN not in wrong_token_server.log()


def test_a_wrong_app_secret_makes_the_channel_unhealthy(wrong_secret_server):
    """An app secret that is not the app's: Facebook refuses the appsecret_proof (#100), so
    503, credentials "rejected", with Graph's words; the secret is in neither answer nor log."""
    with wrong_secret_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["checks"]["credentials"] == "rejected"
    assert "appsecret_proof" in body["detail"]
    assert WRONG_SECRET not in response.text
    assert WRONG_SECRET not in wrong_secret_server.log()


def test_unreachable_graph_makes_the_channel_unhealthy(unreachable_server):
    """Nobody answering at FACEBOOK_GRAPH_API_BASE_URL: 503, credentials "unreachable"."""
    with unreachable_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    assert response.json()["checks"]["credentials"] == "unreachable"


def test_unconfigured_server_starts_and_health_names_what_is_missing(unconfigured_server):
    """No FACEBOOK_* variables: the server runs, and the channel's health is 503 naming
    every missing variable, configured false, credentials "missing"."""
    with unconfigured_server.client() as client:
        response = client.get(HEALTH)
        overall = client.get("/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["configured"] is False
    assert body["checks"]["credentials"] == "missing"
    assert body["checks"]["missing"] == list(REQUIRED)
    for name in REQUIRED:
        assert name in body["detail"]
    assert "facebook" in overall.json()["channels"]
