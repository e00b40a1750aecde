"""The access API: login and sessions under ``/api/auth/``, users, API keys and the audit
log. Each resource declares the permission each method needs; the work is done by
`omnichannel_core.access.service.Access`."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.access.policy import Permission, Principal
from omnichannel_core.access.service import Access, TokenPair, display_name_of, role_of
from omnichannel_core.config import Config
from omnichannel_core.errors import InvalidInput
from omnichannel_core.serialization import to_json
from omnichannel_core.web import payloads
from omnichannel_core.web.body import read_json_object
from omnichannel_core.web.client_address import client_address
from omnichannel_core.web.inbox_routes import page_body


def token_body(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "refresh_expires_in": pair.refresh_expires_in,
        "user": to_json(pair.user),
    }


class _AccessResource:
    permissions: dict[str, Permission] = {}

    def __init__(self, access: Access, config: Config) -> None:
        self.access = access
        self.store = access.store
        self.config = config

    async def body(self, req: falcon.asgi.Request, allowed: set[str]) -> dict[str, Any]:
        data = await read_json_object(req, self.config.max_body_bytes)
        payloads.reject_unknown(data, allowed)
        return data

    def client(self, req: falcon.asgi.Request) -> str:
        return client_address(req, self.config.trust_proxy, self.config.proxy_header)


class Login(_AccessResource):
    """``POST /api/auth/login`` with ``{"email", "password"}``: tokens for a session."""

    public_methods = frozenset({"POST"})
    strict_rate_limit = True

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await self.body(req, {"email", "password"})
        pair = await self.access.login(data.get("email"), data.get("password"), self.client(req))
        resp.media = token_body(pair)


class Refresh(_AccessResource):
    """``POST /api/auth/refresh`` with ``{"refresh_token"}``: a new pair; the old token is
    spent, and spending it again ends the session."""

    public_methods = frozenset({"POST"})
    strict_rate_limit = True

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await self.body(req, {"refresh_token"})
        resp.media = token_body(
            await self.access.refresh(data.get("refresh_token"), self.client(req))
        )


class Logout(_AccessResource):
    """``POST /api/auth/logout``: end the caller's session (its refresh token too)."""

    permissions = {"POST": Permission.OWN_ACCOUNT}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.access.logout(req.context.principal, self.client(req))
        resp.status = 204


class Me(_AccessResource):
    """``GET /api/auth/me``: who the caller is and what they may do."""

    permissions = {"GET": Permission.OWN_ACCOUNT}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        principal: Principal = req.context.principal
        body: dict[str, Any] = {
            "kind": principal.kind,
            "id": principal.id,
            "name": principal.name,
            "role": principal.role.value if principal.role else None,
            "permissions": sorted(permission.value for permission in principal.permissions),
        }
        if principal.kind == "user":
            body["user"] = to_json(await self.store.get_user(principal.id))
        resp.media = body


class Password(_AccessResource):
    """``POST /api/auth/password`` with ``{"current_password", "new_password"}``: a user
    changes their own password; their other sessions end."""

    permissions = {"POST": Permission.OWN_ACCOUNT}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await self.body(req, {"current_password", "new_password"})
        await self.access.change_password(
            req.context.principal,
            data.get("current_password"),
            data.get("new_password"),
            self.client(req),
        )
        resp.status = 204


class Users(_AccessResource):
    """``GET /api/users`` (paged) and ``POST`` ``{"email", "display_name", "role",
    "password"}`` (admins)."""

    permissions = {"GET": Permission.USERS_READ, "POST": Permission.USERS_MANAGE}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        resp.media = page_body(await self.store.list_users(cursor, limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await self.body(req, {"email", "display_name", "role", "password"})
        user = await self.access.create_user(
            req.context.principal,
            data.get("email"),
            data.get("display_name"),
            data.get("role"),
            data.get("password"),
            self.client(req),
        )
        resp.status = 201
        resp.media = to_json(user)


class UserItem(_AccessResource):
    """``GET`` and ``PATCH /api/users/{user_id}`` (``display_name``, ``role``, ``active``,
    ``password``: admins)."""

    permissions = {"GET": Permission.USERS_READ, "PATCH": Permission.USERS_MANAGE}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_user(user_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_id: str
    ) -> None:
        data = await self.body(req, {"display_name", "role", "active", "password"})
        if not data:
            raise InvalidInput("give at least one of display_name, role, active, password")
        changes: dict[str, Any] = {}
        if "display_name" in data:
            changes["display_name"] = display_name_of(data["display_name"])
        if "role" in data:
            changes["role"] = role_of(data["role"])
        if "active" in data:
            if not isinstance(data["active"], bool):
                raise InvalidInput("active must be true or false", field="active")
            changes["active"] = data["active"]
        if "password" in data:
            changes["password"] = data["password"]
        user = await self.access.update_user(
            req.context.principal, user_id, changes, self.client(req)
        )
        resp.media = to_json(user)


class ApiKeys(_AccessResource):
    """``GET /api/api-keys`` (paged) and ``POST`` ``{"name", "scopes"}``: the answer holds
    the key itself, shown this once."""

    permissions = {"GET": Permission.API_KEYS_MANAGE, "POST": Permission.API_KEYS_MANAGE}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        resp.media = page_body(await self.store.list_api_keys(cursor, limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await self.body(req, {"name", "scopes"})
        key, secret = await self.access.create_api_key(
            req.context.principal, data.get("name"), data.get("scopes"), self.client(req)
        )
        resp.status = 201
        resp.media = {**to_json(key), "key": secret}


class ApiKeyItem(_AccessResource):
    """``GET`` and ``DELETE /api/api-keys/{key_id}`` (revoke; it stays listed)."""

    permissions = {"GET": Permission.API_KEYS_MANAGE, "DELETE": Permission.API_KEYS_MANAGE}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_api_key(key_id))

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key_id: str
    ) -> None:
        key = await self.access.revoke_api_key(req.context.principal, key_id, self.client(req))
        resp.media = to_json(key)


class AuditLog(_AccessResource):
    """``GET /api/audit?action=&cursor=&limit=``: newest first (admins)."""

    permissions = {"GET": Permission.AUDIT_READ}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        action = payloads.filter_param(req, "action")
        resp.media = page_body(await self.store.list_audit(action, cursor, limit))


def mount_access(app: falcon.asgi.App, access: Access, config: Config) -> None:
    routes = {
        "/api/auth/login": Login,
        "/api/auth/refresh": Refresh,
        "/api/auth/logout": Logout,
        "/api/auth/me": Me,
        "/api/auth/password": Password,
        "/api/users": Users,
        "/api/users/{user_id}": UserItem,
        "/api/api-keys": ApiKeys,
        "/api/api-keys/{key_id}": ApiKeyItem,
        "/api/audit": AuditLog,
    }
    for path, resource in routes.items():
        app.add_route(path, resource(access, config))
