"""The email channel's health through the real server: what is missing or invalid, and
whether the SMTP (and IMAP) server takes the login, checked at most once a minute; and what a
send does with a login the server refuses."""

from __future__ import annotations

import time

import httpx
import pytest
from dovecot import running_dovecot
from omnichannel_email.health import imap_login
from omnichannel_email.settings import MailServer, Security
from omnichannel_email.tls import tls_context
from smtp_server import PASSWORD, USERNAME, WRONG_PASSWORD, SmtpServer, email_env, serving

from omnichannel_core.testing.server import ServerProcess, free_port

HEALTH = "/api/channels/email/health"
WAIT = {"Prefer": "wait=10"}
EMAIL_VARIABLES = (
    "EMAIL_FROM_ADDRESS",
    "EMAIL_FROM_NAME",
    "EMAIL_SMTP_HOST",
    "EMAIL_SMTP_PORT",
    "EMAIL_SMTP_SECURITY",
    "EMAIL_SMTP_USERNAME",
    "EMAIL_SMTP_PASSWORD",
    "EMAIL_INBOUND_SECRET",
    "EMAIL_IMAP_HOST",
    "EMAIL_TLS_CA_FILE",
)


def checked_health(client: httpx.Client, seconds: float = 10.0) -> httpx.Response:
    """The channel's health once its login checks are over (a check another request
    started answers "checking" meanwhile, by design)."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(HEALTH)
        if response.json()["checks"].get("credentials") != "checking":
            return response
        assert time.monotonic() < deadline, f"still checking after {seconds}s"
        time.sleep(0.05)


def test_configured_channel_with_accepted_login_is_healthy(email_server, smtp: SmtpServer):
    """Everything set and the SMTP server takes the login (over STARTTLS): 200, ok,
    credentials and smtp "accepted"; no password in the answer."""
    with email_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    checks = body["checks"]
    assert (checks["configured"], checks["credentials"], checks["smtp"]) == (
        True,
        "accepted",
        "accepted",
    )
    assert "imap" not in checks
    assert checks["checked_at"]
    assert PASSWORD not in response.text
    assert (USERNAME, True) in smtp.logins()


def test_login_check_is_cached(email_server, smtp: SmtpServer):
    """Asking again within the minute answers from the cache: no new login."""
    with email_server.client() as client:
        assert checked_health(client).status_code == 200
        before = len(smtp.logins())
        for _ in range(3):
            assert client.get(HEALTH).json()["ok"] is True
    assert len(smtp.logins()) == before


@pytest.fixture(scope="module")
def unconfigured_server(tmp_path_factory):
    """The email channel loaded with no EMAIL_* variable set."""
    env = {**email_env(None), **dict.fromkeys(EMAIL_VARIABLES)}
    with serving(tmp_path_factory.mktemp("unconfigured"), env) as server:
        yield server


def test_unconfigured_channel_names_what_is_missing(unconfigured_server: ServerProcess):
    """Unconfigured, the channel loads, and its health is 503 naming every missing variable
    (credentials "missing": nothing to check)."""
    with unconfigured_server.client() as client:
        response = client.get(HEALTH)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["missing"] == [
        "EMAIL_FROM_ADDRESS",
        "EMAIL_SMTP_HOST",
        "a way to receive (EMAIL_INBOUND_SECRET, or EMAIL_IMAP_HOST and its login)",
    ]
    assert body["checks"]["credentials"] == "missing"
    assert "EMAIL_SMTP_HOST" in body["detail"]


def test_unconfigured_channel_refuses_to_send(unconfigured_server: ServerProcess):
    """A send on the unconfigured channel is stored and failed channel_unavailable."""
    with unconfigured_server.client() as client:
        response = client.post(
            "/api/channels/email/messages",
            json={"to": "ana@example.org", "text": "x"},
            headers=WAIT,
        )
    assert response.status_code == 503, response.text
    assert response.json()["stored_message"]["error_code"] == "channel_unavailable"


@pytest.fixture(scope="module")
def wrong_password_server(tmp_path_factory, smtp: SmtpServer):
    """Configured with a password the SMTP server refuses."""
    env = email_env(smtp, EMAIL_SMTP_PASSWORD=WRONG_PASSWORD)
    with serving(tmp_path_factory.mktemp("wrong-password"), env) as server:
        yield server


def test_refused_login_makes_the_channel_unhealthy(wrong_password_server: ServerProcess):
    """The SMTP server answering 535 to AUTH: 503, credentials and smtp "rejected", the
    detail naming the settings to check; the password appears in no answer nor log."""
    with wrong_password_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["checks"]["credentials"], body["checks"]["smtp"]) == ("rejected", "rejected")
    assert "535" in body["detail"] and "EMAIL_SMTP_PASSWORD" in body["detail"]
    assert WRONG_PASSWORD not in response.text
    assert WRONG_PASSWORD not in wrong_password_server.log()


def test_refused_login_fails_the_send_clearly(wrong_password_server: ServerProcess, smtp):
    """A send with a refused login: 422 at once, failed after one attempt with the enhanced
    status 5.7.8 and a text naming EMAIL_SMTP_USERNAME and EMAIL_SMTP_PASSWORD; no mail."""
    to = f"wrong-login.{time.monotonic_ns()}@example.org"
    with wrong_password_server.client() as client:
        response = client.post(
            "/api/channels/email/messages", json={"to": to, "text": "x"}, headers=WAIT
        )
    assert response.status_code == 422, response.text
    stored = response.json()["stored_message"]
    assert (stored["status"], stored["attempts"], stored["error_code"]) == ("failed", 1, "5.7.8")
    assert "535" in stored["error_message"] and "EMAIL_SMTP_PASSWORD" in stored["error_message"]
    assert stored["error_details"]["smtp_step"] == "login"
    assert WRONG_PASSWORD not in response.text
    assert smtp.mails_to(to) == []


@pytest.fixture(scope="module")
def unreachable_server(tmp_path_factory, smtp: SmtpServer):
    """SMTP and IMAP hosts where nobody listens."""
    env = email_env(
        smtp,
        EMAIL_SMTP_PORT=str(free_port()),
        EMAIL_IMAP_HOST="127.0.0.1",
        EMAIL_IMAP_PORT=str(free_port()),
        EMAIL_IMAP_USERNAME=USERNAME,
        EMAIL_IMAP_PASSWORD=PASSWORD,
    )
    with serving(tmp_path_factory.mktemp("unreachable"), env) as server:
        yield server


def test_unreachable_servers_make_the_channel_unhealthy(unreachable_server: ServerProcess):
    """Nobody at the SMTP and IMAP ports: 503, smtp and imap "unreachable", each named in
    the detail, answered within the core's limit on a health check."""
    with unreachable_server.client() as client:
        started = time.monotonic()
        response = checked_health(client)
    assert time.monotonic() - started < 5
    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert (checks["credentials"], checks["smtp"], checks["imap"]) == (
        "unreachable",
        "unreachable",
        "unreachable",
    )
    detail = response.json()["detail"]
    assert "SMTP" in detail and "IMAP" in detail


# IMAP, against a real Dovecot ---------------------------------------------------------------


def imap_settings(dovecot, security: str, **overrides: str) -> MailServer:
    env = {**dovecot.env(security), **overrides}
    return MailServer(
        host=env["EMAIL_IMAP_HOST"],
        port=int(env["EMAIL_IMAP_PORT"]),
        security=Security(security),
        username=env["EMAIL_IMAP_USERNAME"],
        password=env["EMAIL_IMAP_PASSWORD"],
    )


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_imap_login_is_checked_with_each_security(dovecot, security: str):
    """The IMAP check logs in (TLS from the start, STARTTLS, or neither) and out: accepted."""
    context = tls_context(dovecot.certificates.ca_file)
    check = imap_login(imap_settings(dovecot, security), context)
    assert (check.outcome, check.detail) == ("accepted", "IMAP login accepted by 127.0.0.1")


def test_imap_login_refused_is_rejected(tls_certificates):
    """A password Dovecot refuses: rejected, naming the settings to check, not the
    password. (A Dovecot of its own: after a refused login, Dovecot slows down every login
    from the same address for a while.)"""
    context = tls_context(tls_certificates.ca_file)
    with running_dovecot(tls_certificates) as dovecot:
        server = imap_settings(dovecot, "starttls", EMAIL_IMAP_PASSWORD=WRONG_PASSWORD)
        check = imap_login(server, context)
    assert check.outcome == "rejected"
    assert "EMAIL_IMAP_PASSWORD" in check.detail and "AUTHENTICATIONFAILED" in check.detail
    assert WRONG_PASSWORD not in check.detail


def test_imap_certificate_is_verified(dovecot):
    """A certificate not trusted (no EMAIL_TLS_CA_FILE): unreachable, naming the setting."""
    check = imap_login(imap_settings(dovecot, "ssl"), tls_context(None))
    assert check.outcome == "unreachable"
    assert "EMAIL_TLS_CA_FILE" in check.detail


@pytest.fixture(scope="module")
def imap_server(tmp_path_factory, smtp: SmtpServer, dovecot):
    """Sending through the SMTP server, reading the Dovecot mailbox over STARTTLS."""
    env = email_env(smtp, EMAIL_INBOUND_SECRET=None, **dovecot.env("starttls"))
    with serving(tmp_path_factory.mktemp("imap"), env) as server:
        yield server


def test_channel_with_imap_checks_both_logins(imap_server: ServerProcess):
    """With IMAP set (and no webhook secret), health checks both logins: 200, ok, smtp and
    imap "accepted"."""
    with imap_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert (checks["credentials"], checks["smtp"], checks["imap"]) == (
        "accepted",
        "accepted",
        "accepted",
    )
