"""The access API: login and sessions under ``/api/auth/``, users, API keys and the audit
log. Each resource declares its operations; the work is done by
`omnichannel_core.modules.access.service.Access`."""

from __future__ import annotations

import contextlib

import falcon
import falcon.asgi

from omnichannel_core.module import (
    AuditEntry,
    Config,
    ModuleContext,
    NotFound,
    Operation,
    PageOf,
    PageQuery,
    Principal,
    RateLimit,
    Response,
    Route,
    caller_address,
    to_json,
)
from omnichannel_core.modules.access.bodies import (
    ApiKeyCreate,
    ApiKeyCreated,
    AuditQuery,
    Caller,
    Login,
    PasswordChange,
    TokenRefresh,
    Tokens,
    UserCreate,
    UserUpdate,
)
from omnichannel_core.modules.access.permissions import (
    API_KEYS_MANAGE,
    AUDIT_READ,
    OWN_ACCOUNT,
    USERS_MANAGE,
    USERS_READ,
)
from omnichannel_core.modules.access.records import ApiKey, User
from omnichannel_core.modules.access.service import Access, TokenPair, display_name_of, role_of

REFRESH_ONCE = (
    "Each refresh token works once: the answer holds its successor. Presenting a spent one"
    " again ends its session (a stolen token was replayed); log in again then."
)


def tokens_of(pair: TokenPair) -> Tokens:
    return Tokens(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
        user=pair.user,
    )


class _AccessResource:
    def __init__(self, access: Access, config: Config) -> None:
        self.access = access
        self.store = access.store
        self.config = config

    def client(self, req: falcon.asgi.Request) -> str:
        return caller_address(req, self.config)


class LoginResource(_AccessResource):
    """``POST /api/auth/login`` with ``{"email", "password"}``: tokens for a session."""

    operations = {
        "POST": Operation(
            "Log in with email and password: tokens for a new session",
            public=True,
            body=Login,
            responses={200: Response(Tokens, "Logged in.")},
            errors=("Unauthorized", "TooManyRequests"),
            notes="Public. A wrong password, an unknown email and an inactive user all answer"
            " the same 401. Too many failed logins for one email lock it for a while (429 with"
            " Retry-After); logins and refreshes also have their own stricter rate limit per"
            " client address.",
            operation_id="login",
            tags=("auth",),
            rate_limit=RateLimit.STRICT,
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: Login = req.context.body
        pair = await self.access.login(body.email, body.password, self.client(req))
        resp.media = to_json(tokens_of(pair))


class RefreshResource(_AccessResource):
    """``POST /api/auth/refresh`` with ``{"refresh_token"}``: a new pair; the old token is
    spent, and spending it again ends the session."""

    operations = {
        "POST": Operation(
            "Swap a refresh token for a new pair of tokens",
            public=True,
            body=TokenRefresh,
            responses={200: Response(Tokens, "The session's new tokens.")},
            errors=("Unauthorized", "TooManyRequests"),
            notes="Public. " + REFRESH_ONCE,
            operation_id="refreshTokens",
            tags=("auth",),
            rate_limit=RateLimit.STRICT,
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: TokenRefresh = req.context.body
        pair = await self.access.refresh(body.refresh_token, self.client(req))
        resp.media = to_json(tokens_of(pair))


class LogoutResource(_AccessResource):
    """``POST /api/auth/logout``: end the caller's session (its refresh token too)."""

    operations = {
        "POST": Operation(
            "End the caller's session",
            permission=OWN_ACCOUNT,
            responses={204: Response(None, "The session has ended.")},
            errors=("BadRequest",),
            notes="Only a user's access token has a session to end (its refresh token stops"
            " working too); an API key answers 400: revoke it instead.",
            operation_id="logout",
            tags=("auth",),
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.access.logout(req.context.principal, self.client(req))
        resp.status = 204


class MeResource(_AccessResource):
    """``GET /api/auth/me``: who the caller is and what they may do."""

    operations = {
        "GET": Operation(
            "Who the caller is and what they may do",
            permission=OWN_ACCOUNT,
            responses={200: Response(Caller, "The caller.")},
            operation_id="getCaller",
            tags=("auth",),
        )
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        principal: Principal = req.context.principal
        user = None
        if principal.kind == "user":
            with contextlib.suppress(NotFound):  # a user another authenticator vouches for
                user = await self.store.get_user(principal.id)
        caller = Caller(
            kind=principal.kind,
            id=principal.id,
            name=principal.name,
            role=principal.role,
            permissions=tuple(sorted(principal.permissions)),
            user=user,
        )
        body = to_json(caller)
        if user is None:
            del body["user"]  # a key has no user: the field is absent, not null
        resp.media = body


class PasswordResource(_AccessResource):
    """``POST /api/auth/password`` with ``{"current_password", "new_password"}``: a user
    changes their own password; their other sessions end."""

    operations = {
        "POST": Operation(
            "Change one's own password",
            permission=OWN_ACCOUNT,
            body=PasswordChange,
            responses={204: Response(None, "Changed.")},
            notes="A logged-in user only (an API key answers 400). A wrong current_password"
            " answers 403 `forbidden` with `field`. The user's other sessions end; this one"
            " goes on.",
            operation_id="changePassword",
            tags=("auth",),
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: PasswordChange = req.context.body
        await self.access.change_password(
            req.context.principal, body.current_password, body.new_password, self.client(req)
        )
        resp.status = 204


class UsersResource(_AccessResource):
    """``GET /api/users`` (paged) and ``POST`` a new user (admins)."""

    operations = {
        "GET": Operation(
            "List users, oldest first",
            permission=USERS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(User), "One page of users.")},
            operation_id="listUsers",
            tags=("users",),
        ),
        "POST": Operation(
            "Create a user",
            permission=USERS_MANAGE,
            body=UserCreate,
            responses={201: Response(User, "The new user, active.")},
            errors=("EmailTaken",),
            notes="Written to the audit log.",
            operation_id="createUser",
            tags=("users",),
        ),
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: PageQuery = req.context.query
        resp.media = to_json(await self.store.list_users(query.cursor, query.limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: UserCreate = req.context.body
        user = await self.access.create_user(
            req.context.principal,
            body.email,
            body.display_name,
            body.role,
            body.password,
            self.client(req),
        )
        resp.status = 201
        resp.media = to_json(user)


class UserResource(_AccessResource):
    """``GET`` and ``PATCH /api/users/{user_id}`` (admins change)."""

    operations = {
        "GET": Operation(
            "Get a user",
            permission=USERS_READ,
            responses={200: Response(User, "The user.")},
            errors=("NotFound",),
            operation_id="getUser",
            tags=("users",),
        ),
        "PATCH": Operation(
            "Change a user's display name, role, active flag or password",
            permission=USERS_MANAGE,
            body=UserUpdate,
            responses={200: Response(User, "The user as changed.")},
            errors=("NotFound", "LastAdmin"),
            notes="A new password or a deactivation ends the user's sessions. The last active"
            " admin cannot be demoted or deactivated (409). Each kind of change is written to"
            " the audit log.",
            operation_id="updateUser",
            tags=("users",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_user(user_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_id: str
    ) -> None:
        changes = req.context.body.changes()
        if "display_name" in changes:
            changes["display_name"] = display_name_of(changes["display_name"])
        if "role" in changes:
            changes["role"] = role_of(changes["role"])
        user = await self.access.update_user(
            req.context.principal, user_id, changes, self.client(req)
        )
        resp.media = to_json(user)


class ApiKeysResource(_AccessResource):
    """``GET /api/api-keys`` (paged) and ``POST`` a new key: the answer holds the key
    itself, shown this once."""

    operations = {
        "GET": Operation(
            "List API keys, oldest first, revoked ones included",
            permission=API_KEYS_MANAGE,
            query=PageQuery,
            responses={
                200: Response(PageOf(ApiKey), "One page of API keys, without the keys themselves.")
            },
            operation_id="listApiKeys",
            tags=("api-keys",),
        ),
        "POST": Operation(
            "Create an API key",
            permission=API_KEYS_MANAGE,
            body=ApiKeyCreate,
            responses={201: Response(ApiKeyCreated, "The new key, with the key itself.")},
            notes="The answer holds the key itself, shown this once. The key may do what its"
            " scopes grant, and use its own account (`account:own`). Written to the audit log.",
            operation_id="createApiKey",
            tags=("api-keys",),
        ),
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: PageQuery = req.context.query
        resp.media = to_json(await self.store.list_api_keys(query.cursor, query.limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: ApiKeyCreate = req.context.body
        key, secret = await self.access.create_api_key(
            req.context.principal, body.name, list(body.scopes), self.client(req)
        )
        resp.status = 201
        resp.media = to_json(ApiKeyCreated.of(key, secret))


class ApiKeyResource(_AccessResource):
    """``GET`` and ``DELETE /api/api-keys/{key_id}`` (revoke; it stays listed)."""

    operations = {
        "GET": Operation(
            "Get an API key",
            permission=API_KEYS_MANAGE,
            responses={200: Response(ApiKey, "The key, without the key itself.")},
            errors=("NotFound",),
            operation_id="getApiKey",
            tags=("api-keys",),
        ),
        "DELETE": Operation(
            "Revoke an API key",
            permission=API_KEYS_MANAGE,
            responses={200: Response(ApiKey, "The key, revoked.")},
            errors=("NotFound",),
            notes="The key stops working at once and stays listed with `revoked_at`; revoking"
            " it again keeps the first time. Written to the audit log.",
            operation_id="revokeApiKey",
            tags=("api-keys",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_api_key(key_id))

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key_id: str
    ) -> None:
        key = await self.access.revoke_api_key(req.context.principal, key_id, self.client(req))
        resp.media = to_json(key)


class AuditResource(_AccessResource):
    """``GET /api/audit?action=&cursor=&limit=``: newest first (admins)."""

    operations = {
        "GET": Operation(
            "Read the audit log, newest first",
            permission=AUDIT_READ,
            query=AuditQuery,
            responses={200: Response(PageOf(AuditEntry), "One page of audit entries.")},
            operation_id="listAudit",
            tags=("audit",),
        )
    }

    def __init__(self, access: Access, config: Config, context: ModuleContext) -> None:
        super().__init__(access, config)
        self.audit = context.audit

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: AuditQuery = req.context.query
        resp.media = to_json(await self.audit.list(query.action, query.cursor, query.limit))


def access_routes(access: Access, context: ModuleContext) -> list[Route]:
    config = context.config
    resources = {
        "/api/auth/login": LoginResource(access, config),
        "/api/auth/refresh": RefreshResource(access, config),
        "/api/auth/logout": LogoutResource(access, config),
        "/api/auth/me": MeResource(access, config),
        "/api/auth/password": PasswordResource(access, config),
        "/api/users": UsersResource(access, config),
        "/api/users/{user_id}": UserResource(access, config),
        "/api/api-keys": ApiKeysResource(access, config),
        "/api/api-keys/{key_id}": ApiKeyResource(access, config),
        "/api/audit": AuditResource(access, config, context),
    }
    return [Route(path, resource) for path, resource in resources.items()]
