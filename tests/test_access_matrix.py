"""Every operation of the OpenAPI document, called by every kind of caller, answers as the
permission matrix of docs/access.md says, through the real server.

The expected table below is copied from docs/access.md by hand, not read from the code's own
declarations (``permissions`` on the resources, ``ROLE_PERMISSIONS`` in the policy), so a
route that declares the wrong permission, or a role given one it should not have, fails
here. Allowed callers send ``{}`` as the body of writes: they get a 400 after the checks
that matter here, and nothing changes that a later check depends on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx
import jwt
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import SIGNATURE_HEADER, inbound_message, post_webhook, signature, unique
from tests.support.users import create_admin_on_command_line, create_user, login

JWT_SECRET = "access-matrix-jwt-secret-0123456789abcdefghijklm"  # 48 characters

# docs/access.md, "Roles": the permissions of each role, as the table lists them.
EVERY_PERMISSION = frozenset(
    {
        "account:own",
        "contacts:read",
        "contacts:write",
        "conversations:read",
        "conversations:write",
        "conversations:reply",
        "messages:send",
        "channels:read",
        "outbox:read",
        "plugins:read",
        "reports:read",
        "users:read",
        "users:manage",
        "api_keys:manage",
        "audit:read",
        "settings:manage",
        "settings:read",
        "media:upload",
        "media:read_all",
        "contacts:merge",
        "contacts:import",
        "contacts:export",
        "contacts:erase",
        "crm:attributes",
        "notes:manage",
        "segments:read",
        "segments:write",
        "campaigns:read",
        "campaigns:write",
        "campaigns:launch",
    }
)
AGENT_PERMISSIONS = frozenset(
    {
        "account:own",
        "contacts:read",
        "contacts:write",
        "conversations:read",  # own or unassigned: the conversation used here is unassigned
        "conversations:write",
        "conversations:reply",
        "channels:read",
        "users:read",
        "media:upload",
        "settings:read",  # the canned responses and the business hours
    }
)
ROLE_PERMISSIONS = {
    "agent": AGENT_PERMISSIONS,
    "supervisor": AGENT_PERMISSIONS
    | {"messages:send", "outbox:read", "plugins:read", "reports:read"}
    | {"contacts:merge", "contacts:import", "contacts:export", "segments:read", "segments:write"}
    | {"campaigns:read", "campaigns:write", "campaigns:launch"},
    "admin": EVERY_PERMISSION,
}
# docs/access.md, "API keys for programs": the preset ``read`` is every ``*:read`` but users
# and audit, and every caller holds ``account:own``.
READ_SCOPE = frozenset(
    {"account:own"}
    | {p for p in EVERY_PERMISSION if p.endswith(":read")} - {"users:read", "audit:read"}
)


PUBLIC = "public"
"""Needs no credentials (``security: []``): the system routes, login and refresh, and the
provider callbacks, which their channel authenticates by signature."""

# (method, path template) -> the permission docs/access.md says it needs, or PUBLIC.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/"): PUBLIC,
    ("HEAD", "/"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("HEAD", "/health"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/plugins"): "plugins:read",
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/refresh"): PUBLIC,
    ("POST", "/api/auth/logout"): "account:own",
    ("GET", "/api/auth/me"): "account:own",
    ("POST", "/api/auth/password"): "account:own",
    ("GET", "/api/contacts"): "contacts:read",
    ("GET", "/api/contacts/{contact_id}"): "contacts:read",
    ("PATCH", "/api/contacts/{contact_id}"): "contacts:write",
    ("POST", "/api/contacts"): "contacts:write",
    ("POST", "/api/contacts/{contact_id}/identities"): "contacts:merge",
    ("DELETE", "/api/contacts/{contact_id}/identities"): "contacts:merge",
    ("GET", "/api/contacts/{contact_id}/duplicates"): "contacts:read",
    ("GET", "/api/contacts/{contact_id}/notes"): "contacts:read",
    ("POST", "/api/contacts/{contact_id}/notes"): "contacts:write",
    ("PATCH", "/api/contacts/{contact_id}/notes/{note_id}"): "contacts:write",
    ("DELETE", "/api/contacts/{contact_id}/notes/{note_id}"): "contacts:write",
    ("GET", "/api/contacts/{contact_id}/timeline"): "contacts:read",
    ("GET", "/api/contacts/{contact_id}/avatar"): "contacts:read",
    ("GET", "/api/contacts/{contact_id}/export"): "contacts:export",
    ("POST", "/api/contacts/{contact_id}/erase"): "contacts:erase",
    ("POST", "/api/crm/merges"): "contacts:merge",
    ("GET", "/api/crm/attributes"): "contacts:read",
    ("POST", "/api/crm/attributes"): "crm:attributes",
    ("PATCH", "/api/crm/attributes/{key}"): "crm:attributes",
    ("DELETE", "/api/crm/attributes/{key}"): "crm:attributes",
    ("GET", "/api/crm/segments"): "segments:read",
    ("POST", "/api/crm/segments"): "segments:write",
    ("POST", "/api/crm/segments/preview"): "segments:read",
    ("GET", "/api/crm/segments/{segment_id}"): "segments:read",
    ("PATCH", "/api/crm/segments/{segment_id}"): "segments:write",
    ("DELETE", "/api/crm/segments/{segment_id}"): "segments:write",
    ("GET", "/api/crm/segments/{segment_id}/contacts"): "segments:read",
    ("GET", "/api/crm/segments/{segment_id}/count"): "segments:read",
    ("GET", "/api/crm/imports"): "contacts:import",
    ("POST", "/api/crm/imports"): "contacts:import",
    ("GET", "/api/crm/imports/{import_id}"): "contacts:import",
    ("POST", "/api/crm/imports/{import_id}/cancel"): "contacts:import",
    ("GET", "/api/crm/exports/contacts"): "contacts:export",
    ("GET", "/api/conversations"): "conversations:read",
    ("GET", "/api/conversations/{conversation_id}"): "conversations:read",
    ("PATCH", "/api/conversations/{conversation_id}"): "conversations:write",
    ("GET", "/api/conversations/{conversation_id}/messages"): "conversations:read",
    ("POST", "/api/conversations/{conversation_id}/messages"): "conversations:reply",
    ("POST", "/api/conversations/{conversation_id}/typing"): "conversations:reply",
    ("GET", "/api/conversations/{conversation_id}/history"): "conversations:read",
    ("GET", "/api/messages/{message_id}"): "conversations:read",
    ("POST", "/api/messages/{message_id}/retry"): "conversations:reply",
    ("POST", "/api/messages/{message_id}/cancel"): "conversations:reply",
    ("GET", "/api/outbox"): "outbox:read",
    ("POST", "/api/channels/{channel}/webhook"): PUBLIC,
    ("POST", "/api/channels/{channel}/status"): PUBLIC,
    ("POST", "/api/channels/{channel}/messages"): "messages:send",
    ("GET", "/api/channels/{channel}/health"): "channels:read",
    ("GET", "/api/users"): "users:read",
    ("POST", "/api/users"): "users:manage",
    ("GET", "/api/users/{user_id}"): "users:read",
    ("PATCH", "/api/users/{user_id}"): "users:manage",
    ("GET", "/api/api-keys"): "api_keys:manage",
    ("POST", "/api/api-keys"): "api_keys:manage",
    ("GET", "/api/api-keys/{key_id}"): "api_keys:manage",
    ("DELETE", "/api/api-keys/{key_id}"): "api_keys:manage",
    ("GET", "/api/audit"): "audit:read",
    ("GET", "/api/events"): "conversations:read",
    ("GET", "/api/presence"): "account:own",
    ("PUT", "/api/presence"): "account:own",
    ("POST", "/api/media"): "media:upload",
    ("GET", "/api/media/{media_id}"): "media:upload",
    ("GET", "/api/messages/{message_id}/media/{index}"): "conversations:read",
    ("GET", "/api/dashboard"): "reports:read",
    ("GET", "/api/dashboard/report"): "reports:read",
    ("GET", "/api/campaigns"): "campaigns:read",
    ("POST", "/api/campaigns"): "campaigns:write",
    ("GET", "/api/campaigns/{campaign_id}"): "campaigns:read",
    ("PATCH", "/api/campaigns/{campaign_id}"): "campaigns:write",
    ("DELETE", "/api/campaigns/{campaign_id}"): "campaigns:write",
    ("POST", "/api/campaigns/{campaign_id}/launch"): "campaigns:launch",
    ("POST", "/api/campaigns/{campaign_id}/pause"): "campaigns:launch",
    ("POST", "/api/campaigns/{campaign_id}/resume"): "campaigns:launch",
    ("POST", "/api/campaigns/{campaign_id}/cancel"): "campaigns:launch",
    ("POST", "/api/campaigns/{campaign_id}/preview"): "campaigns:write",
    ("GET", "/api/campaigns/{campaign_id}/recipients"): "campaigns:read",
    ("GET", "/api/campaigns/{campaign_id}/report"): "campaigns:read",
    ("GET", "/api/campaigns/{campaign_id}/export"): "campaigns:read",
    ("GET", "/api/settings"): "settings:read",
    ("PATCH", "/api/settings"): "settings:manage",
    ("GET", "/api/settings/canned-responses"): "settings:read",
    ("POST", "/api/settings/canned-responses"): "settings:manage",
    ("GET", "/api/settings/canned-responses/{response_id}"): "settings:read",
    ("PATCH", "/api/settings/canned-responses/{response_id}"): "settings:manage",
    ("DELETE", "/api/settings/canned-responses/{response_id}"): "settings:manage",
}

# Operations of the document this test does not call, each with the reason. None today; an
# entry must name an operation the document has (checked below), so nothing is skipped
# silently.
SKIPPED: dict[tuple[str, str], str] = {}

SIGNED_PATHS = {"/api/channels/{channel}/webhook", "/api/channels/{channel}/status"}
LOGOUT = ("POST", "/api/auth/logout")
REVOKE_KEY = ("DELETE", "/api/api-keys/{key_id}")

UNAUTHENTICATED_CALLERS = ("no credentials", "malformed token", "expired token", "revoked key")
ROLE_OF_CALLER = {
    "agent": "agent",
    "supervisor": "supervisor",
    "admin user": "admin",
    "bootstrap key": "admin",
}
SCOPES_OF_CALLER = {"read key": READ_SCOPE}
"""API keys with partial scopes, and the permissions those scopes give."""
CALLERS = (*UNAUTHENTICATED_CALLERS, *ROLE_OF_CALLER, *SCOPES_OF_CALLER)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@attrs.frozen
class World:
    """The records whose ids fill the path templates, and each caller's credentials."""

    path_values: dict[str, str]
    tokens: dict[str, str | None]
    emails: dict[str, str]
    """The email of each user caller, to log in a fresh session for each logout check."""
    live_forged_token: str
    """Signed like the expired token, but not expired: it must work, or the expired token
    would fail for some other reason."""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, receiver: FakeProvider
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("access-matrix")
    env = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound",  # so the channel is healthy
        "OMNICHANNEL_JWT_SECRET": JWT_SECRET,
    }
    with running_server(workdir, env, workers=2) as process:
        create_admin_on_command_line(process)  # so the bootstrap key may create more admins
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """The bootstrap key: admin-scoped."""
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    with server.client(api_key=None) as anonymous:
        response = anonymous.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def forge_access_token(user_id: str, session_id: str, expires_in: int) -> str:
    """An access token signed with the server's secret, built here from the claims the docs
    name (so it does not depend on the code's own signer)."""
    now = int(time.time())
    claims = {
        "iss": "omnichannel",
        "sub": user_id,
        "sid": session_id,
        "iat": now - 3600,
        "exp": now + expires_in,
        "typ": "access",
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def session_of(access_token: str) -> tuple[str, str]:
    """The user and session ids of a real access token (checked with the known secret)."""
    claims = jwt.decode(access_token, JWT_SECRET, algorithms=["HS256"], issuer="omnichannel")
    return claims["sub"], claims["sid"]


def new_api_key(admin: httpx.Client, scopes: list[str]) -> dict[str, Any]:
    response = admin.post("/api/api-keys", json={"name": unique("matrix"), "scopes": scopes})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(server: ServerProcess, admin: httpx.Client) -> World:
    sender = unique("+1555")
    assert post_webhook(admin, inbound_message(sender, "hello")).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    assert conversation["assignee"] is None  # so agents may act on it
    [message] = admin.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    target_user = create_user(admin, "agent")
    kept_key = new_api_key(admin, ["read"])

    revoked = new_api_key(admin, ["admin"])
    with server.client(api_key=revoked["key"]) as program:
        assert program.get("/api/auth/me").status_code == 200
    assert admin.delete(f"/api/api-keys/{revoked['id']}").status_code == 200

    emails: dict[str, str] = {}
    tokens: dict[str, str | None] = {
        "no credentials": None,
        "malformed token": "eyJhbGciOiJIUzI1NiJ9.not-json.not-a-signature",
        "bootstrap key": API_KEY,
    }
    for caller, role in ROLE_OF_CALLER.items():
        if caller == "bootstrap key":
            continue
        emails[caller] = create_user(admin, role)["email"]
        tokens[caller] = login(server, emails[caller])["access_token"]
    expiring_user = create_user(admin, "admin")
    user_id, session_id = session_of(login(server, expiring_user["email"])["access_token"])
    tokens["expired token"] = forge_access_token(user_id, session_id, expires_in=-600)
    tokens["revoked key"] = revoked["key"]
    tokens["read key"] = kept_key["key"]
    return World(
        path_values={
            "contact_id": conversation["contact_id"],
            "conversation_id": conversation["id"],
            "message_id": message["id"],
            "user_id": target_user["id"],
            "key_id": kept_key["id"],
            "channel": "http",
            "media_id": "med_not_kept_here",  # unknown: allowed callers get 404
            "index": "0",  # the http message has no media: allowed callers get 404
            # unknown, so that no allowed caller's write (a DELETE) spoils a later check
            "note_id": "note_not_here",
            "key": "not_declared",
            "segment_id": "seg_not_here",
            "import_id": "imp_not_here",
            "campaign_id": cancelled_campaign(admin, conversation["contact_id"]),
            "response_id": "cr_not_here",  # unknown: no allowed caller's write changes one
        },
        tokens=tokens,
        emails=emails,
        live_forged_token=forge_access_token(user_id, session_id, expires_in=600),
    )


def cancelled_campaign(admin: httpx.Client, contact_id: str) -> str:
    """A real campaign that no allowed caller can change: every write to a cancelled one
    answers 409 (or 400 for a bad body), so each reaches the code behind its route."""
    draft = {
        "name": unique("matrix"),
        "channel": "http",
        "audience": {"kind": "contacts", "contact_ids": [contact_id]},
        "message": {"text": "hello"},
        "schedule": {"at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
    }
    created = admin.post("/api/campaigns", json=draft)
    assert created.status_code == 201, created.text
    campaign_id: str = created.json()["id"]
    for action in ("launch", "cancel"):
        answer = admin.post(f"/api/campaigns/{campaign_id}/{action}")
        assert answer.status_code == 200, answer.text
    return campaign_id


def documented_operations(document: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """Each (METHOD, path) of the document, and whether it is public (``security: []``)."""
    default_public = document.get("security", []) == []
    operations = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                public = operation["security"] == [] if "security" in operation else default_public
                operations[(method.upper(), path)] = public
    return operations


def test_the_credentials_used_fail_only_for_the_reason_they_stand_for(server, world):
    """A token signed like the expired one but still valid works, so the expired token is
    refused for its expiry; the revoked key is refused as revoked."""
    with server.client(api_key=world.live_forged_token) as live:
        assert live.get("/api/auth/me").status_code == 200
    with server.client(api_key=world.tokens["expired token"]) as expired:
        response = expired.get("/api/auth/me")
    assert response.status_code == 401 and "expired" in response.json()["message"]
    with server.client(api_key=world.tokens["revoked key"]) as revoked:
        response = revoked.get("/api/auth/me")
    assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_the_document_has_exactly_the_operations_of_the_matrix(document):
    """Every operation in the expected table is documented, every documented operation is
    in the table (or the skip list), and the document marks public exactly the operations
    docs/access.md says need no credentials."""
    documented = documented_operations(document)
    assert set(SKIPPED) <= set(documented), "the skip list names operations not documented"
    expected = set(EXPECTED) - set(SKIPPED)
    assert sorted(expected - set(documented)) == [], "in docs/access.md, not in the document"
    assert sorted(set(documented) - set(EXPECTED) - set(SKIPPED)) == [], (
        "documented, not in the expected table: add them from docs/access.md"
    )
    wrongly_marked = [
        f"{method} {path}: documented {'public' if public else 'with security'}"
        for (method, path), public in sorted(documented.items())
        if (method, path) in EXPECTED and public != (EXPECTED[(method, path)] == PUBLIC)
    ]
    assert wrongly_marked == []


def request_for(
    server: ServerProcess,
    admin: httpx.Client,
    world: World,
    operation: tuple[str, str],
    caller: str,
) -> httpx.Request:
    """The request ``caller`` makes for ``operation``: real ids in the path, ``{}`` as the
    body of a write (signed for the provider callbacks), a throwaway key to revoke and a
    fresh session to log out, so no check spoils a later one."""
    method, template = operation
    values = dict(world.path_values)
    if operation == REVOKE_KEY:
        values["key_id"] = new_api_key(admin, ["read"])["id"]
    token = world.tokens[caller]
    if operation == LOGOUT and caller in world.emails:
        token = login(server, world.emails[caller])["access_token"]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content = None
    if method in ("POST", "PATCH", "PUT"):
        content = b"{}"
        headers["Content-Type"] = "application/json"
        if template in SIGNED_PATHS:
            headers[SIGNATURE_HEADER] = signature(content)
    return httpx.Request(
        method, server.base_url + template.format(**values), headers=headers, content=content
    )


def expectation(permission: str, caller: str) -> str:
    if permission == PUBLIC:
        return "public: neither 401 nor 403"
    if caller in UNAUTHENTICATED_CALLERS:
        return "401 unauthenticated"
    if caller in SCOPES_OF_CALLER:
        held = SCOPES_OF_CALLER[caller]
    else:
        held = ROLE_PERMISSIONS[ROLE_OF_CALLER[caller]]
    if permission in held:
        return "allowed: neither 401 nor 403"
    return f"403 forbidden, lacking {permission!r}"


def meets(expected: str, response: httpx.Response) -> bool:
    status = response.status_code
    if status >= 500:
        return False
    if expected.startswith(("public", "allowed")):
        return status not in (401, 403)
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if expected.startswith("401"):
        return status == 401 and error == "unauthenticated"
    permission = expected.split("'")[1]
    return status == 403 and error == "forbidden" and body.get("permission") == permission


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def test_every_operation_answers_every_caller_as_the_matrix_says(server, admin, world, document):
    """For each documented operation and each caller: public operations never answer 401 or
    403; the others answer 401 to no credentials, a malformed token, an expired token and a
    revoked key; a user or the bootstrap key gets 403 (naming the permission) exactly when
    docs/access.md's matrix denies its role the permission, and otherwise neither 401 nor
    403. Nobody ever gets a 5xx."""
    documented = documented_operations(document)
    operations = sorted((set(documented) | set(EXPECTED)) - set(SKIPPED))
    mismatches = []
    with httpx.Client(timeout=10) as http:
        for operation in operations:
            method, path = operation
            if operation not in EXPECTED:
                mismatches.append(f"{method} {path}: documented but not in the expected table")
                continue
            for caller in CALLERS:
                request = request_for(server, admin, world, operation, caller)
                response = http.send(request, stream=True)  # /api/events never ends
                if not response.headers.get("content-type", "").startswith("text/event-"):
                    response.read()
                response.close()
                expected = expectation(EXPECTED[operation], caller)
                if not meets(expected, response):
                    mismatches.append(
                        f"{method} {path} ({request.url.path}) as {caller}: expected"
                        f" {expected}, got {response.status_code} {response.text[:300]}"
                    )
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)
