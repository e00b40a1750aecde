"""Users, sessions, roles, API keys and the audit log, through the real server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.users import (
    PASSWORD,
    client_for,
    create_admin_on_command_line,
    create_user,
    logged_in,
    login,
)

LOCKOUT_FAILURES = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("access")
    env = {
        "WEBHOOK_SECRET": "test-webhook-secret",
        "OMNICHANNEL_LOGIN_LOCKOUT_FAILURES": str(LOCKOUT_FAILURES),
    }
    with running_server(workdir, env, workers=2) as process:
        create_admin_on_command_line(process)  # so the bootstrap key may create more admins
        yield process


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """The bootstrap key: admin-scoped."""
    with server.client() as client:
        yield client


def new_conversation(admin: httpx.Client) -> dict[str, Any]:
    sender = unique("+1555")
    assert post_webhook(admin, inbound_message(sender, "hello")).status_code == 200
    items = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in items if c["address"] == sender]
    return conversation


def audit_actions(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return admin.get("/api/audit", params={"limit": 200, **params}).json()["items"]


# logging in --------------------------------------------------------------------------------


def test_login_answers_a_token_pair_and_me_tells_who_is_calling(server, admin):
    """A user logs in with email and password and gets an access token (Bearer, with its
    lifetime) and a refresh token; /api/auth/me names them, their role and permissions."""
    user = create_user(admin, "agent")
    tokens = login(server, user["email"].upper())  # email in any case
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 15 * 60
    assert tokens["refresh_token"].startswith("ocr_")
    assert tokens["user"]["id"] == user["id"]
    with client_for(server, tokens["access_token"]) as agent:
        me = agent.get("/api/auth/me").json()
    assert me["kind"] == "user" and me["id"] == user["id"] and me["role"] == "agent"
    assert "conversations:reply" in me["permissions"]
    assert "users:manage" not in me["permissions"]


def test_failed_logins_do_not_tell_whether_the_account_exists(server, admin):
    """A wrong password and an unknown email get the same 401 and message."""
    user = create_user(admin, "agent")
    with server.client(api_key=None) as anonymous:
        wrong = anonymous.post(
            "/api/auth/login", json={"email": user["email"], "password": "not the password"}
        )
        unknown = anonymous.post(
            "/api/auth/login",
            json={"email": f"{unique('nobody')}@example.com", "password": "not the password"},
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    failures = audit_actions(admin, action="auth.login_failed")
    assert {entry["details"]["email"] for entry in failures} >= {user["email"]}
    assert all("password" not in str(entry["details"]) for entry in failures)


@pytest.mark.parametrize("account_exists", [True, False])
def test_repeated_failures_lock_the_email_whether_or_not_it_exists(server, admin, account_exists):
    """After the configured number of failures for one email, logins for it answer 429 with
    Retry-After, even with the right password, and the same for an email with no account."""
    email = (
        create_user(admin, "agent")["email"] if account_exists else f"{unique('ghost')}@example.com"
    )
    with server.client(api_key=None) as anonymous:
        for _ in range(LOCKOUT_FAILURES):
            failed = anonymous.post("/api/auth/login", json={"email": email, "password": "x" * 12})
            assert failed.status_code == 401
        locked = anonymous.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.json()["error"] == "too_many_requests"


def test_concurrent_wrong_logins_never_check_more_passwords_than_the_lockout_allows(server, admin):
    """Twenty wrong logins for one email sent at once: at most the configured number are
    checked (401), the rest are refused (429), and then the right password is refused too;
    the lockout cannot be raced past."""
    email = create_user(admin, "agent")["email"]

    def attempt(_: int) -> int:
        with server.client(api_key=None) as anonymous:
            body = {"email": email, "password": "wrong password!"}
            return anonymous.post("/api/auth/login", json=body).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(401) <= LOCKOUT_FAILURES
    assert statuses.count(429) >= 20 - LOCKOUT_FAILURES
    assert set(statuses) <= {401, 429}
    with server.client(api_key=None) as anonymous:
        right = anonymous.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert right.status_code == 429


def test_login_rejects_malformed_input_clearly(server):
    """Bad login bodies get 400 naming the field, never 500."""
    with server.client(api_key=None) as anonymous:
        for body in ({"email": "not-an-email", "password": "x"}, {"email": 7}, {"extra": 1}):
            response = anonymous.post("/api/auth/login", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"] == "invalid_input"


# sessions ----------------------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(server, admin):
    """Refreshing answers a new pair; presenting the spent token again ends the whole
    session: the newest refresh token and the access tokens of the session stop working."""
    user = create_user(admin, "agent")
    first = login(server, user["email"])
    with server.client(api_key=None) as anonymous:
        second = anonymous.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        second = second.json()
        assert second["refresh_token"] != first["refresh_token"]
        with client_for(server, second["access_token"]) as agent:
            assert agent.get("/api/auth/me").status_code == 200
        replay = anonymous.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        newest = anonymous.post(
            "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert newest.status_code == 401
    with client_for(server, second["access_token"]) as agent:
        assert agent.get("/api/auth/me").status_code == 401
    assert audit_actions(admin, action="auth.refresh_token_reused")


def test_logout_ends_the_session_at_once(server, admin):
    """After logout the session's access token and refresh token are refused."""
    user = create_user(admin, "agent")
    tokens = login(server, user["email"])
    with client_for(server, tokens["access_token"]) as agent:
        assert agent.post("/api/auth/logout").status_code == 204
        assert agent.get("/api/auth/me").status_code == 401
    with server.client(api_key=None) as anonymous:
        refused = anonymous.post(
            "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
    assert refused.status_code == 401


def test_a_bad_or_forged_access_token_is_refused(server, admin):
    """A token that is not ours (bad signature, garbage) gets 401, never 500."""
    user = create_user(admin, "agent")
    token = login(server, user["email"])["access_token"]
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for bad in (forged, "a.b.c", "nonsense"):
        with client_for(server, bad) as client:
            response = client.get("/api/auth/me")
        assert response.status_code == 401, bad
        assert response.json()["error"] == "unauthenticated"


# users ------------------------------------------------------------------------------------


def test_deactivating_a_user_ends_their_sessions_at_once(server, admin):
    """An admin deactivates a user: their access token is refused on the next request, and
    they cannot log in (with the same answer as a wrong password)."""
    user, agent = logged_in(server, admin, "agent")
    with agent:
        assert agent.get("/api/conversations").status_code == 200
        changed = admin.patch(f"/api/users/{user['id']}", json={"active": False})
        assert changed.status_code == 200 and changed.json()["active"] is False
        assert agent.get("/api/conversations").status_code == 401
    with server.client(api_key=None) as anonymous:
        refused = anonymous.post(
            "/api/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
    assert refused.status_code == 401
    assert refused.json()["message"] == "the email or password is not right"
    assert any(
        e["target_id"] == user["id"] for e in audit_actions(admin, action="user.deactivated")
    )


def test_a_role_change_applies_at_once_and_is_audited(server, admin):
    """Promoting an agent to admin takes effect on their next request, without logging in
    again; the change is in the audit log with the old and new role."""
    user, client = logged_in(server, admin, "agent")
    with client:
        assert client.get("/api/audit").status_code == 403
        assert admin.patch(f"/api/users/{user['id']}", json={"role": "admin"}).status_code == 200
        assert client.get("/api/audit").status_code == 200
    [entry] = [
        e for e in audit_actions(admin, action="user.role_changed") if e["target_id"] == user["id"]
    ]
    assert entry["details"] == {"from": "agent", "to": "admin"}
    assert entry["actor_type"] == "api_key"


def test_only_admins_manage_users(server, admin):
    """A supervisor may list users but not create or change them."""
    _, supervisor = logged_in(server, admin, "supervisor")
    with supervisor:
        assert supervisor.get("/api/users").status_code == 200
        created = supervisor.post(
            "/api/users",
            json={
                "email": "x@example.com",
                "display_name": "X",
                "role": "admin",
                "password": PASSWORD,
            },
        )
        assert created.status_code == 403
        assert created.json() == {
            "error": "forbidden",
            "message": created.json()["message"],
            "permission": "users:manage",
        }


def test_user_creation_checks_its_input(server, admin):
    """Duplicate email (any case) is 409; a short password, an unknown role or a bad email
    is 400 naming the field."""
    user = create_user(admin, "agent")
    duplicate = admin.post(
        "/api/users",
        json={
            "email": user["email"].upper(),
            "display_name": "D",
            "role": "agent",
            "password": PASSWORD,
        },
    )
    assert duplicate.status_code == 409
    for field, value in (("password", "short"), ("role", "owner"), ("email", "no-at-sign")):
        body = {
            "email": f"{unique('u')}@example.com",
            "display_name": "U",
            "role": "agent",
            "password": PASSWORD,
        }
        body[field] = value
        response = admin.post("/api/users", json=body)
        assert response.status_code == 400, (field, response.text)
        assert response.json()["field"] == field


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(tmp_path):
    """With one admin user, demoting or deactivating them answers 409 and changes nothing."""
    with running_server(tmp_path, {"WEBHOOK_SECRET": "s"}) as server, server.client() as admin:
        email = create_admin_on_command_line(server)
        [only] = [u for u in admin.get("/api/users").json()["items"] if u["email"] == email]
        for change in ({"role": "agent"}, {"active": False}):
            response = admin.patch(f"/api/users/{only['id']}", json=change)
            assert response.status_code == 409, response.text
        assert admin.get(f"/api/users/{only['id']}").json()["role"] == "admin"


def test_a_user_changes_their_own_password(server, admin):
    """The current password is required; afterwards the old one fails, the new one works,
    the user's other sessions end and the current one goes on."""
    user = create_user(admin, "agent")
    other_session = login(server, user["email"])
    current = login(server, user["email"])
    new_password = "a much better passphrase"
    with client_for(server, current["access_token"]) as agent:
        wrong = agent.post(
            "/api/auth/password",
            json={"current_password": "wrong password!", "new_password": new_password},
        )
        assert wrong.status_code == 403
        weak = agent.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": "short"}
        )
        assert weak.status_code == 400
        changed = agent.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": new_password}
        )
        assert changed.status_code == 204
        assert agent.get("/api/auth/me").status_code == 200
    with client_for(server, other_session["access_token"]) as other:
        assert other.get("/api/auth/me").status_code == 401
    login(server, user["email"], new_password)
    with server.client(api_key=None) as anonymous:
        old = anonymous.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401


def test_wrong_current_passwords_count_toward_the_lockout_and_are_audited(server, admin):
    """A stolen session cannot guess the password through /api/auth/password: each wrong
    ``current_password`` is audited and counted with the email's failed logins, and once
    locked even the right one answers 429."""
    user = create_user(admin, "agent")
    tokens = login(server, user["email"])
    change = {"current_password": "wrong password!", "new_password": "a new passphrase!"}
    with client_for(server, tokens["access_token"]) as agent:
        for _ in range(LOCKOUT_FAILURES):
            assert agent.post("/api/auth/password", json=change).status_code == 403
        right = {**change, "current_password": PASSWORD}
        locked = agent.post("/api/auth/password", json=right)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    failed = [
        entry
        for entry in audit_actions(admin, action="user.password_change_failed")
        if entry["target_id"] == user["id"]
    ]
    assert len(failed) == LOCKOUT_FAILURES
    with server.client(api_key=None) as anonymous:
        body = {"email": user["email"], "password": PASSWORD}
        assert anonymous.post("/api/auth/login", json=body).status_code == 429


# agents and conversations -------------------------------------------------------------


def test_an_agent_sees_and_works_only_their_own_or_unassigned_conversations(server, admin):
    """The list holds only the agent's and unassigned conversations; someone else's is 403
    to read, to reply to and to change; its messages too."""
    agent_user, agent = logged_in(server, admin, "agent")
    other_user = create_user(admin, "agent")
    mine, free, theirs = (new_conversation(admin) for _ in range(3))
    admin.patch(f"/api/conversations/{mine['id']}", json={"assignee": agent_user["id"]})
    admin.patch(f"/api/conversations/{theirs['id']}", json={"assignee": other_user["id"]})
    with agent:
        listed = {
            c["id"] for c in agent.get("/api/conversations", params={"limit": 200}).json()["items"]
        }
        assert {mine["id"], free["id"]} <= listed
        assert theirs["id"] not in listed
        assert all(
            c["assignee"] in (None, agent_user["id"])
            for c in agent.get("/api/conversations").json()["items"]
        )
        path = f"/api/conversations/{theirs['id']}"
        assert agent.get(path).status_code == 403
        assert agent.patch(path, json={"status": "resolved"}).status_code == 403
        assert agent.get(f"{path}/messages").status_code == 403
        assert agent.post(f"{path}/messages", json={"text": "hi"}).status_code == 403
        [message] = admin.get(f"{path}/messages").json()["items"]
        assert agent.get(f"/api/messages/{message['id']}").status_code == 403
        assert agent.get(f"/api/conversations/{mine['id']}").status_code == 200


def test_an_agent_may_assign_only_to_themselves(server, admin):
    """An agent takes an unassigned conversation and gives it back; assigning it to someone
    else is 403. A supervisor assigns to anyone. Each assignment is audited."""
    agent_user, agent = logged_in(server, admin, "agent")
    other_user = create_user(admin, "agent")
    _, supervisor = logged_in(server, admin, "supervisor")
    conversation = new_conversation(admin)
    path = f"/api/conversations/{conversation['id']}"
    with agent, supervisor:
        assert agent.patch(path, json={"assignee": other_user["id"]}).status_code == 403
        taken = agent.patch(path, json={"assignee": agent_user["id"], "status": "pending"})
        assert taken.status_code == 200 and taken.json()["assignee"] == agent_user["id"]
        assert agent.patch(path, json={"assignee": None}).status_code == 200
        assert supervisor.patch(path, json={"assignee": other_user["id"]}).status_code == 200
    entries = [
        e
        for e in audit_actions(admin, action="conversation.assigned")
        if e["target_id"] == conversation["id"]
    ]
    assert [e["details"]["to"] for e in reversed(entries)] == [
        agent_user["id"],
        None,
        other_user["id"],
    ]


def test_the_assignee_must_be_an_active_user(server, admin):
    """Assigning to an id that is no user, or to a deactivated user, is 400."""
    conversation = new_conversation(admin)
    gone = create_user(admin, "agent")
    admin.patch(f"/api/users/{gone['id']}", json={"active": False})
    for assignee in ("usr_nobody", gone["id"]):
        response = admin.patch(
            f"/api/conversations/{conversation['id']}", json={"assignee": assignee}
        )
        assert response.status_code == 400
        assert response.json()["field"] == "assignee"


# API keys ----------------------------------------------------------------------------------


def test_api_keys_are_shown_once_scoped_and_revocable(server, admin):
    """An admin creates a read-only key: its secret is in the creation answer only; it reads
    but may not reply (403 naming the permission); its last use is recorded; once revoked it
    is refused."""
    created = admin.post("/api/api-keys", json={"name": "dashboard", "scopes": ["read"]})
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith("ock_") and body["prefix"] == secret[:12]
    listed = admin.get("/api/api-keys").json()["items"]
    assert secret not in str(listed)
    conversation = new_conversation(admin)
    with client_for(server, secret) as program:
        assert program.get("/api/conversations").status_code == 200
        reply = program.post(
            f"/api/conversations/{conversation['id']}/messages", json={"text": "x"}
        )
        assert reply.status_code == 403
        assert reply.json()["permission"] == "conversations:reply"
        assert admin.get(f"/api/api-keys/{body['id']}").json()["last_used_at"] is not None
        revoked = admin.delete(f"/api/api-keys/{body['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = program.get("/api/conversations")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["message"]
    actions = {e["action"] for e in audit_actions(admin) if e["target_id"] == body["id"]}
    assert actions == {"api_key.created", "api_key.revoked"}


def test_api_key_scopes_are_checked(server, admin):
    """Unknown scopes and empty scope lists are 400; only admins create keys."""
    for scopes in (["everything"], [], "read"):
        response = admin.post("/api/api-keys", json={"name": "k", "scopes": scopes})
        assert response.status_code == 400, scopes
    _, supervisor = logged_in(server, admin, "supervisor")
    with supervisor:
        assert (
            supervisor.post("/api/api-keys", json={"name": "k", "scopes": ["read"]}).status_code
            == 403
        )


def test_a_key_grants_no_more_than_it_holds(server, admin):
    """A key that manages keys cannot mint a key with more permissions than its own, nor
    revoke one that has more; a key that manages users cannot create, promote, reset or
    deactivate a user whose role holds permissions it lacks. Each refusal is 403 naming a
    permission the caller lacks, and changes nothing."""
    key_manager = admin.post(
        "/api/api-keys", json={"name": "keys", "scopes": ["api_keys:manage", "read"]}
    ).json()
    user_manager = admin.post(
        "/api/api-keys", json={"name": "users", "scopes": ["users:manage", "users:read"]}
    ).json()
    admin_key = admin.post("/api/api-keys", json={"name": "all", "scopes": ["admin"]}).json()
    agent = create_user(admin, "agent")
    other_admin = create_user(admin, "admin")
    with client_for(server, key_manager["key"]) as keys:
        minted = keys.post("/api/api-keys", json={"name": "x", "scopes": ["admin"]})
        assert minted.status_code == 403 and minted.json()["permission"] == "audit:read"
        assert keys.post("/api/api-keys", json={"name": "x", "scopes": ["read"]}).status_code == 201
        copy = keys.post("/api/api-keys", json={"name": "x", "scopes": ["api_keys:manage"]})
        assert copy.status_code == 403  # its copies would outlive its revocation
        assert keys.delete(f"/api/api-keys/{admin_key['id']}").status_code == 403
    assert admin.get(f"/api/api-keys/{admin_key['id']}").json()["revoked_at"] is None
    new_admin = {
        "email": f"{unique('admin')}@example.com",
        "display_name": "Admin",
        "role": "admin",
        "password": PASSWORD,
    }
    with client_for(server, user_manager["key"]) as users:
        assert users.post("/api/users", json=new_admin).status_code == 403
        assert users.post("/api/users", json={**new_admin, "role": "agent"}).status_code == 403
        for change in ({"role": "admin"}, {"password": "taken over!!"}):
            assert users.patch(f"/api/users/{agent['id']}", json=change).status_code == 403
        for change in ({"password": "taken over!!"}, {"active": False}):
            assert users.patch(f"/api/users/{other_admin['id']}", json=change).status_code == 403
    assert admin.get(f"/api/users/{agent['id']}").json()["role"] == "agent"
    assert admin.get(f"/api/users/{other_admin['id']}").json()["active"] is True
    login(server, agent["email"])


def test_the_first_admin_comes_only_from_the_command_line(tmp_path):
    """With no admin yet, the bootstrap key may create agents and supervisors but neither
    create an admin nor promote a user to admin (403 saying how); once an admin exists, made
    with `omnichannel users create-admin`, it may."""
    with running_server(tmp_path, {"WEBHOOK_SECRET": "s"}) as server, server.client() as admin:
        agent = create_user(admin, "agent")
        body = {
            "email": f"{unique('admin')}@example.com",
            "display_name": "A",
            "role": "admin",
            "password": PASSWORD,
        }
        refused = admin.post("/api/users", json=body)
        assert refused.status_code == 403
        assert "omnichannel users create-admin" in refused.json()["message"]
        promoted = admin.patch(f"/api/users/{agent['id']}", json={"role": "admin"})
        assert promoted.status_code == 403
        create_admin_on_command_line(server)
        assert admin.post("/api/users", json=body).status_code == 201


def test_the_bootstrap_key_acts_as_an_admin(server, admin):
    """OMNICHANNEL_API_KEY keeps working, with every permission."""
    me = admin.get("/api/auth/me").json()
    assert me["kind"] == "api_key" and me["id"] == "bootstrap"
    assert "users:manage" in me["permissions"] and "audit:read" in me["permissions"]


# audit log ---------------------------------------------------------------------------------


def test_the_audit_log_is_for_admins_and_cannot_be_changed(server, admin):
    """Admins read it, newest first; supervisors and agents get 403; no method changes it."""
    user = create_user(admin, "supervisor")
    login(server, user["email"])
    entries = audit_actions(admin)
    assert entries[0]["at"] >= entries[-1]["at"]
    assert {"user.created", "auth.login"} <= {e["action"] for e in entries}
    with client_for(server, login(server, user["email"])["access_token"]) as supervisor:
        assert supervisor.get("/api/audit").status_code == 403
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        assert admin.request(method, "/api/audit").status_code == 405


def test_secrets_never_reach_the_log(server, admin):
    """Passwords, refresh tokens, access tokens and API keys are not in the server log."""
    user = create_user(admin, "agent", password="a secret passphrase 123")
    tokens = login(server, user["email"], "a secret passphrase 123")
    key = admin.post("/api/api-keys", json={"name": "log-check", "scopes": ["read"]}).json()["key"]
    with client_for(server, key) as program:
        program.get("/api/contacts")
    log = server.log()
    for secret in (
        "a secret passphrase 123",
        tokens["refresh_token"],
        tokens["access_token"],
        key,
        API_KEY,
    ):
        assert secret not in log


# the command line ------------------------------------------------------------------------


def test_create_admin_from_the_command_line(tmp_path):
    """`omnichannel users create-admin` makes an admin who can log in; with no --password it
    asks for it twice (with nothing to read, it says so, not a traceback); the same email
    again fails with a clear message and status 2."""
    env = {"OMNICHANNEL_DATA_DIR": str(tmp_path / "data"), "PATH": ""}

    def create_admin(*args: str, answers: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "omnichannel_core.cli", "users", "create-admin", *args],
            input=answers,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    given = create_admin("--email", "Ana@Example.com", "--name", "Ana", "--password", PASSWORD)
    assert given.returncode == 0, given.stderr
    assert "ana@example.com" in given.stdout
    asked = create_admin("--email", "bo@example.com", "--name", "Bo", answers=f"{PASSWORD}\n" * 2)
    assert asked.returncode == 0, asked.stderr
    again = create_admin("--email", "ana@example.com", "--name", "Ana", "--password", PASSWORD)
    assert again.returncode == 2
    assert "exists" in again.stderr or "already" in again.stderr
    untyped = create_admin("--email", "cy@example.com", "--name", "Cy", answers="")
    assert untyped.returncode == 2 and "Traceback" not in untyped.stderr
    assert "no password was typed" in untyped.stderr and "--password" in untyped.stderr
    assert not (tmp_path / "data" / "api-key").exists()  # the server still generates and shows it
    with running_server(tmp_path, {"OMNICHANNEL_DATA_DIR": str(tmp_path / "data")}) as server:
        tokens = login(server, "ana@example.com")
        assert tokens["user"]["role"] == "admin"
        login(server, "bo@example.com")
