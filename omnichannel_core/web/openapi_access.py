"""The access API in the OpenAPI document: login and sessions, users, API keys and the audit
log (``web.access_routes``), their paths and their schemas.

Records as ``serialization.to_json`` writes them; request bodies as ``access.service`` and
``access.passwords`` check them, so a body the schema accepts is one the server takes.
"""

from __future__ import annotations

from omnichannel_core.access import passwords
from omnichannel_core.access.policy import SCOPE_PRESETS, Permission
from omnichannel_core.access.records import Role
from omnichannel_core.web.openapi_paths import (
    AUTHENTICATED,
    PAGING,
    PUBLIC,
    WRITE_ERRORS,
    body,
    errors,
    needs,
    no_content,
    ok,
    path_parameter,
    query_parameter,
)
from omnichannel_core.web.openapi_schemas import (
    Schema,
    nullable,
    page_of,
    ref,
    strict_object,
    timestamp,
)

ROLES = [role.value for role in Role]
PERMISSIONS = [permission.value for permission in Permission]
SCOPES = [*SCOPE_PRESETS, *PERMISSIONS]

# What `access.service.normalize_email` takes: surrounding spaces trimmed, then at most 254
# characters with no space, something before the first "@" and a "." after it.
EMAIL: Schema = {
    "type": "string",
    "pattern": r"^\s*(?=\S{1,254}\s*$)[^\s@]+@\S*\.\S*\s*$",
    "description": "an email address like ana@example.com (at most 254 characters); trimmed "
    "and lower-cased",
}
# `access.service.display_name_of`: a string with a non-space character, at most 200 long.
NAME: Schema = {"type": "string", "pattern": r"\S", "maxLength": 200}
PASSWORD: Schema = {
    "type": "string",
    "minLength": passwords.MIN_LENGTH,
    "maxLength": passwords.MAX_LENGTH,
    "writeOnly": True,
}
SECRET: Schema = {"type": "string", "writeOnly": True}


def nullable_timestamp(description: str) -> Schema:
    return {**timestamp(description), "type": ["string", "null"]}


# components: schemas ---------------------------------------------------------------------


def record_schemas() -> dict[str, Schema]:
    """User, ApiKey, AuditEntry, and what login and ``/api/auth/me`` answer."""
    api_key = {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "scopes": {
            "type": "array",
            "items": {"enum": SCOPES},
            "description": "scope names, sorted: a permission or a preset (`read`, `send`, "
            "`admin`)",
        },
        "prefix": {"type": "string", "description": "the key's first characters"},
        "created_by": {**nullable("string"), "description": "the id of the user who made it"},
        "created_at": timestamp("when the key was made"),
        "last_used_at": nullable_timestamp(
            "last use, recorded at most once a minute; null if never used"
        ),
        "revoked_at": nullable_timestamp("when it was revoked; null while it works"),
    }
    return {
        "User": strict_object(
            {
                "id": {"type": "string"},
                "email": {"type": "string", "description": "lower case; unique"},
                "display_name": {"type": "string"},
                "role": {"enum": ROLES},
                "active": {"type": "boolean", "description": "false: cannot log in"},
                "created_at": timestamp("when the user was made"),
                "updated_at": timestamp("last change"),
            },
            "A person who signs in to work the inbox.",
        ),
        "UserPage": page_of("User"),
        "ApiKey": strict_object(
            api_key, "A key a program authenticates with; the key itself is never shown again."
        ),
        "ApiKeyCreated": strict_object(
            {
                **api_key,
                "key": {
                    "type": "string",
                    "pattern": "^ock_",
                    "description": "the key itself, shown this once: keep it now",
                },
            },
            "A new API key, with the key itself.",
        ),
        "ApiKeyPage": page_of("ApiKey"),
        "AuditEntry": strict_object(
            {
                "id": {"type": "string"},
                "action": {
                    "type": "string",
                    "description": "e.g. `auth.login`, `auth.login_failed`, `auth.logout`, "
                    "`auth.refresh_token_reused`, `user.created`, `user.role_changed`, "
                    "`user.activated`, `user.deactivated`, `user.renamed`, "
                    "`user.password_changed`, `user.password_reset`, `api_key.created`, "
                    "`api_key.revoked`, `conversation.assigned`",
                },
                "actor_type": {
                    "enum": ["user", "api_key", "system", "anonymous"],
                    "description": "`system`: the command line; `anonymous`: no one logged "
                    "in (a failed login, a reused refresh token)",
                },
                "actor_id": nullable("string"),
                "target_type": {
                    **nullable("string"),
                    "description": "`user`, `api_key`, `session` or `conversation`",
                },
                "target_id": nullable("string"),
                "details": {"type": "object", "description": "what changed; by action"},
                "client_address": {**nullable("string"), "description": "who called from where"},
                "at": timestamp("when it happened"),
            },
            "One thing that happened, kept for good.",
        ),
        "AuditPage": page_of("AuditEntry"),
        "Tokens": strict_object(
            {
                "access_token": {
                    "type": "string",
                    "description": "send as `Authorization: Bearer <access_token>`",
                },
                "token_type": {"const": "Bearer"},
                "expires_in": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "seconds the access token lasts",
                },
                "refresh_token": {
                    "type": "string",
                    "pattern": "^ocr_",
                    "description": "for one call to /api/auth/refresh",
                },
                "refresh_expires_in": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "seconds the refresh token lasts",
                },
                "user": ref("User"),
            },
            "A session's tokens: a short-lived access token and a single-use refresh token.",
        ),
        "Caller": {
            **strict_object(
                {
                    "kind": {"enum": ["user", "api_key"]},
                    "id": {"type": "string", "description": "the user's or the key's id"},
                    "name": {"type": "string"},
                    "role": {"enum": [*ROLES, None], "description": "null for an API key"},
                    "permissions": {
                        "type": "array",
                        "items": {"enum": PERMISSIONS},
                        "description": "sorted",
                    },
                    "user": ref("User"),
                },
                "Who is calling and what they may do; `user` for a user only.",
            ),
            "required": ["kind", "id", "name", "role", "permissions"],
            "if": {"properties": {"kind": {"const": "user"}}},
            "then": {"required": ["user"]},
            "else": {"not": {"required": ["user"]}},
        },
    }


def access_request_schemas() -> dict[str, Schema]:
    """Request bodies, as ``web.access_routes`` and ``access.service`` accept them."""
    return {
        "Login": {
            "type": "object",
            "properties": {"email": EMAIL, "password": SECRET},
            "required": ["email", "password"],
            "additionalProperties": False,
        },
        "TokenRefresh": {
            "type": "object",
            "properties": {"refresh_token": {**SECRET, "minLength": 1}},
            "required": ["refresh_token"],
            "additionalProperties": False,
        },
        "PasswordChange": {
            "type": "object",
            "properties": {"current_password": SECRET, "new_password": PASSWORD},
            "required": ["current_password", "new_password"],
            "additionalProperties": False,
            "description": "new_password must differ from current_password.",
        },
        "UserCreate": {
            "type": "object",
            "properties": {
                "email": EMAIL,
                "display_name": NAME,
                "role": {"enum": ROLES},
                "password": PASSWORD,
            },
            "required": ["email", "display_name", "role", "password"],
            "additionalProperties": False,
        },
        "UserUpdate": {
            "type": "object",
            "properties": {
                "display_name": NAME,
                "role": {"enum": ROLES},
                "active": {
                    "type": "boolean",
                    "description": "false ends the user's sessions and stops their logins",
                },
                "password": {**PASSWORD, "description": "a new password; ends their sessions"},
            },
            "minProperties": 1,
            "additionalProperties": False,
        },
        "ApiKeyCreate": {
            "type": "object",
            "properties": {
                "name": NAME,
                "scopes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": SCOPES},
                    "description": "permission names, or the presets `read`, `send`, `admin`",
                },
            },
            "required": ["name", "scopes"],
            "additionalProperties": False,
        },
    }


def access_schemas() -> dict[str, Schema]:
    return {**record_schemas(), **access_request_schemas()}


# paths -----------------------------------------------------------------------------------

BODY_ERRORS = ("BadRequest", "PayloadTooLarge", "UnsupportedMediaType")
"""What a public operation that reads a JSON body may answer."""


def session_paths() -> dict[str, Schema]:
    refresh_once = (
        "Each refresh token works once: the answer holds its successor. Presenting a spent "
        "one again ends its session (a stolen token was replayed); log in again then."
    )
    return {
        "/api/auth/login": {
            "post": {
                "summary": "Log in with email and password: tokens for a new session",
                "description": "Public. A wrong password, an unknown email and an inactive "
                "user all answer the same 401. Too many failed logins for one email lock it "
                "for a while (429 with Retry-After); logins and refreshes also have their own "
                "stricter rate limit per client address.",
                "operationId": "login",
                "tags": ["auth"],
                "security": PUBLIC,
                "requestBody": body("Login"),
                "responses": {
                    **ok("Tokens", "Logged in."),
                    **errors(*BODY_ERRORS, "Unauthorized", "TooManyRequests"),
                },
            }
        },
        "/api/auth/refresh": {
            "post": {
                "summary": "Swap a refresh token for a new pair of tokens",
                "description": "Public. " + refresh_once,
                "operationId": "refreshTokens",
                "tags": ["auth"],
                "security": PUBLIC,
                "requestBody": body("TokenRefresh"),
                "responses": {
                    **ok("Tokens", "The session's new tokens."),
                    **errors(*BODY_ERRORS, "Unauthorized", "TooManyRequests"),
                },
            }
        },
        "/api/auth/logout": {
            "post": {
                "summary": "End the caller's session",
                "operationId": "logout",
                "tags": ["auth"],
                **needs(
                    Permission.OWN_ACCOUNT,
                    "Only a user's access token has a session to end (its refresh token stops "
                    "working too); an API key answers 400: revoke it instead.",
                ),
                "responses": {
                    **no_content("The session has ended."),
                    **errors("BadRequest", "Unauthorized", "TooManyRequests"),
                },
            }
        },
        "/api/auth/me": {
            "get": {
                "summary": "Who the caller is and what they may do",
                "operationId": "getCaller",
                "tags": ["auth"],
                **needs(Permission.OWN_ACCOUNT),
                "responses": {
                    **ok("Caller", "The caller."),
                    **errors("Unauthorized", "TooManyRequests"),
                },
            }
        },
        "/api/auth/password": {
            "post": {
                "summary": "Change one's own password",
                "operationId": "changePassword",
                "tags": ["auth"],
                **needs(
                    Permission.OWN_ACCOUNT,
                    "A logged-in user only (an API key answers 400). A wrong current_password "
                    "answers 403 `forbidden` with `field`. The user's other sessions end; this "
                    "one goes on.",
                ),
                "requestBody": body("PasswordChange"),
                "responses": {
                    **no_content("Changed."),
                    **errors(*WRITE_ERRORS),
                },
            }
        },
    }


def user_paths() -> dict[str, Schema]:
    return {
        "/api/users": {
            "get": {
                "summary": "List users, oldest first",
                "operationId": "listUsers",
                "tags": ["users"],
                **needs(Permission.USERS_READ),
                "parameters": PAGING,
                "responses": {
                    **ok("UserPage", "One page of users."),
                    **errors("BadRequest", *AUTHENTICATED),
                },
            },
            "post": {
                "summary": "Create a user",
                "operationId": "createUser",
                "tags": ["users"],
                **needs(Permission.USERS_MANAGE, "Written to the audit log."),
                "requestBody": body("UserCreate"),
                "responses": {
                    **ok("User", "The new user, active.", "201"),
                    **errors(*WRITE_ERRORS, "EmailTaken"),
                },
            },
        },
        "/api/users/{user_id}": {
            "parameters": [path_parameter("user_id", "the user's id")],
            "get": {
                "summary": "Get a user",
                "operationId": "getUser",
                "tags": ["users"],
                **needs(Permission.USERS_READ),
                "responses": {
                    **ok("User", "The user."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
            "patch": {
                "summary": "Change a user's display name, role, active flag or password",
                "operationId": "updateUser",
                "tags": ["users"],
                **needs(
                    Permission.USERS_MANAGE,
                    "A new password or a deactivation ends the user's sessions. The last "
                    "active admin cannot be demoted or deactivated (409). Each kind of change "
                    "is written to the audit log.",
                ),
                "requestBody": body("UserUpdate"),
                "responses": {
                    **ok("User", "The user as changed."),
                    **errors(*WRITE_ERRORS, "NotFound", "LastAdmin"),
                },
            },
        },
    }


def api_key_paths() -> dict[str, Schema]:
    return {
        "/api/api-keys": {
            "get": {
                "summary": "List API keys, oldest first, revoked ones included",
                "operationId": "listApiKeys",
                "tags": ["api-keys"],
                **needs(Permission.API_KEYS_MANAGE),
                "parameters": PAGING,
                "responses": {
                    **ok("ApiKeyPage", "One page of API keys, without the keys themselves."),
                    **errors("BadRequest", *AUTHENTICATED),
                },
            },
            "post": {
                "summary": "Create an API key",
                "operationId": "createApiKey",
                "tags": ["api-keys"],
                **needs(
                    Permission.API_KEYS_MANAGE,
                    "The answer holds the key itself, shown this once. The key may do what "
                    "its scopes grant, and use its own account (`account:own`). Written to "
                    "the audit log.",
                ),
                "requestBody": body("ApiKeyCreate"),
                "responses": {
                    **ok("ApiKeyCreated", "The new key, with the key itself.", "201"),
                    **errors(*WRITE_ERRORS),
                },
            },
        },
        "/api/api-keys/{key_id}": {
            "parameters": [path_parameter("key_id", "the key's id")],
            "get": {
                "summary": "Get an API key",
                "operationId": "getApiKey",
                "tags": ["api-keys"],
                **needs(Permission.API_KEYS_MANAGE),
                "responses": {
                    **ok("ApiKey", "The key, without the key itself."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
            "delete": {
                "summary": "Revoke an API key",
                "operationId": "revokeApiKey",
                "tags": ["api-keys"],
                **needs(
                    Permission.API_KEYS_MANAGE,
                    "The key stops working at once and stays listed with `revoked_at`; "
                    "revoking it again keeps the first time. Written to the audit log.",
                ),
                "responses": {
                    **ok("ApiKey", "The key, revoked."),
                    **errors(*AUTHENTICATED, "NotFound"),
                },
            },
        },
    }


def audit_paths() -> dict[str, Schema]:
    return {
        "/api/audit": {
            "get": {
                "summary": "Read the audit log, newest first",
                "operationId": "listAudit",
                "tags": ["audit"],
                **needs(Permission.AUDIT_READ),
                "parameters": [
                    query_parameter("action", "only this action, e.g. `auth.login_failed`"),
                    *PAGING,
                ],
                "responses": {
                    **ok("AuditPage", "One page of audit entries."),
                    **errors("BadRequest", *AUTHENTICATED),
                },
            }
        },
    }


def access_paths() -> dict[str, Schema]:
    return {**session_paths(), **user_paths(), **api_key_paths(), **audit_paths()}
