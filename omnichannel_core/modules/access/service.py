"""Access, as the API and the command line use it: who is calling, logins and sessions, users
and API keys, and the audit entries of every change. *What* each caller may do is the core's
policy (each module contributes its permissions); the records are kept by the access store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import timedelta
from typing import Any

import attrs
import structlog

from omnichannel_core.module import (
    UNSET,
    ApiKeys,
    AuditLog,
    Config,
    Forbidden,
    InvalidInput,
    Policy,
    Principal,
    RateLimited,
    Role,
    Unauthenticated,
    audit_entry,
    bootstrap_keys,
    check_grant,
    signing_secret,
    utcnow,
)
from omnichannel_core.modules.access import passwords, tokens
from omnichannel_core.modules.access.permissions import API_KEYS_MANAGE
from omnichannel_core.modules.access.records import ApiKey, RefreshOutcome, User
from omnichannel_core.modules.access.store import AccessStore

log = structlog.get_logger("omnichannel.access")

BOOTSTRAP = ("api_key", "bootstrap")
"""Who the key from OMNICHANNEL_API_KEY (or generated on first start) is: admin-scoped."""
COMMAND_LINE = ("system", "command-line")
"""Who makes the changes done with ``omnichannel users ...`` on the server's machine."""

KEY_USE_RECORDED_EVERY = timedelta(minutes=1)  # last_used_at is this precise, at most


def is_bootstrap(principal: Principal) -> bool:
    return (principal.kind, principal.id) == BOOTSTRAP


def is_command_line(principal: Principal) -> bool:
    return (principal.kind, principal.id) == COMMAND_LINE


def command_line(policy: Policy) -> Principal:
    """The actor of ``omnichannel users ...``: every permission."""
    return Principal(*COMMAND_LINE, "command line", policy.everything)


def user_principal(policy: Policy, user: User, session_id: str) -> Principal:
    return Principal(
        "user", user.id, user.display_name, policy.of_role(user.role), user.role, session_id
    )


def key_principal(policy: Policy, key: ApiKey) -> Principal:
    return Principal("api_key", key.id, key.name, policy.granted_by(key.scopes))


@attrs.frozen
class TokenPair:
    """What a login or a refresh answers."""

    access_token: str
    expires_in: int
    refresh_token: str = attrs.field(repr=False)
    refresh_expires_in: int
    user: User


def normalize_email(value: object, field: str = "email") -> str:
    """A plausible email address, lower-cased; raise InvalidInput otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not (at and local and "." in domain and len(email) <= 254) or any(
        character.isspace() for character in email
    ):
        raise InvalidInput(f"{field} must be an email address like ana@example.com", field=field)
    return email


class Access:
    """Logins, sessions, users and keys.

    The server's secrets are read (and made, on a first start) when first needed, not before:
    ``omnichannel users create-admin`` needs neither, so the server still generates (and
    shows) its own on its first start.
    """

    def __init__(self, store: AccessStore, audit: AuditLog, policy: Policy, config: Config) -> None:
        self.store = store
        self.audit = audit
        self.policy = policy
        self.config = config
        self.bootstrap_principal = Principal(*BOOTSTRAP, "bootstrap key", policy.everything)
        self.refresh_lifetime = timedelta(days=config.refresh_token_days)
        self.lockout_window = timedelta(minutes=config.login_lockout_minutes)
        self._signer: tokens.TokenSigner | None = None
        self._bootstrap: ApiKeys | None = None

    @property
    def signer(self) -> tokens.TokenSigner:
        """Signs and checks access tokens with the server's secret."""
        if self._signer is None:
            lifetime = timedelta(minutes=self.config.access_token_minutes)
            self._signer = tokens.TokenSigner(signing_secret(self.config), lifetime)
        return self._signer

    @property
    def bootstrap(self) -> ApiKeys:
        """The bootstrap keys (``OMNICHANNEL_API_KEY``, or the generated one)."""
        if self._bootstrap is None:
            self._bootstrap = bootstrap_keys(self.config)
        return self._bootstrap

    # Who is calling

    async def authenticate(self, token: str) -> Principal | None:
        """The caller presenting ``token`` (an access token or an API key); None when it is
        neither (another authenticator may know it); Unauthenticated, saying why, for one
        that is ours but does not hold (expired, ended, revoked)."""
        if tokens.looks_like_access_token(token):
            claims = self.signer.check(token)
            user = await self.store.session_user(claims.user_id, claims.session_id)
            if user is None:
                raise Unauthenticated("the session has ended; log in again")
            return user_principal(self.policy, user, claims.session_id)
        if self.bootstrap.accepts(token):
            return self.bootstrap_principal
        key = await self.store.api_key_by_hash(tokens.digest(token))
        if key is None:
            return None  # not a key of ours: another authenticator may know it
        if key.revoked:
            raise Unauthenticated("the API key has been revoked")
        await self._note_key_use(key)
        return key_principal(self.policy, key)

    async def _note_key_use(self, key: ApiKey) -> None:
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at >= KEY_USE_RECORDED_EVERY:
            await self.store.touch_api_key(key.id, now)

    # Sessions

    async def login(self, email: object, password: object, client: str | None) -> TokenPair:
        """Check the password and start a session. The same answer for an unknown email, an
        inactive user and a wrong password; too many failures for one email (whether or not
        it has an account) lock it for a while."""
        address = normalize_email(email)
        if not isinstance(password, str):
            raise InvalidInput("password must be a string", field="password")
        await self._reserve_attempt(address)
        found = await self.store.user_credentials(address)
        credentials = found if found is not None and found.user.active else None
        checked = None if credentials is None else credentials.password_hash
        matches = await asyncio.to_thread(passwords.password_matches, checked, password)
        if credentials is None or not matches:
            await self._audit(None, "auth.login_failed", "user", None, {"email": address}, client)
            raise Unauthenticated("the email or password is not right")
        user = credentials.user
        await self.store.clear_login_failures(address)
        if passwords.needs_rehash(credentials.password_hash):
            rehashed = await asyncio.to_thread(passwords.hash_password, password)
            await self.store.update_user(user.id, password_hash=rehashed)
        session_id, pair = await self._start_session(user)
        actor = user_principal(self.policy, user, session_id)
        await self._audit(actor, "auth.login", "user", user.id, {}, client)
        return pair

    async def _reserve_attempt(self, email: str) -> None:
        """Count a password check for ``email`` as failed until it succeeds, or raise
        RateLimited while too many recent failures lock the email. Counting *before* the
        check, in one store write, keeps concurrent guesses within the limit."""
        now = utcnow()
        locked_until = await self.store.reserve_login_attempt(
            email, now, self.lockout_window, self.config.login_lockout_failures
        )
        if locked_until is not None:
            wait = (locked_until - now).total_seconds()
            raise RateLimited(
                "too many failed logins for this email; try again later",
                retry_after=max(1, math.ceil(wait)),
            )

    async def refresh(self, refresh_token: object, client: str | None) -> TokenPair:
        """Swap a refresh token for a new pair; a token used twice ends its session."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise InvalidInput("refresh_token must be a non-empty string", field="refresh_token")
        now = utcnow()
        successor = tokens.new_refresh_token()
        refreshed = await self.store.rotate_refresh_token(
            tokens.digest(refresh_token),
            tokens.digest(successor),
            now + self.refresh_lifetime,
            now,
        )
        if refreshed.outcome is RefreshOutcome.REUSED:
            await self._audit(
                None, "auth.refresh_token_reused", "session", refreshed.session_id, {}, client
            )
            log.warning("refresh_token_reused")
            raise Unauthenticated(
                "this refresh token was already used, so its session has ended; log in again"
            )
        if refreshed.outcome is not RefreshOutcome.ROTATED or refreshed.user is None:
            raise Unauthenticated("the refresh token is not valid or has expired; log in again")
        assert refreshed.session_id is not None
        return self._pair(refreshed.user, refreshed.session_id, successor)

    async def logout(self, principal: Principal, client: str | None) -> None:
        if principal.session_id is None:
            raise InvalidInput("only a user's session can be logged out; revoke a key instead")
        await self.store.end_session(principal.session_id)
        await self._audit(principal, "auth.logout", "user", principal.id, {}, client)

    async def change_password(
        self, principal: Principal, current: object, new: object, client: str | None
    ) -> None:
        """A user changes their own password; their other sessions end."""
        if principal.kind != "user" or principal.session_id is None:
            raise InvalidInput("only a logged-in user has a password to change")
        if not isinstance(current, str):
            raise InvalidInput("current_password must be a string", field="current_password")
        password = passwords.check_strength(new, "new_password")
        if password == current:
            raise InvalidInput("new_password must differ from the current one")
        credentials = await self.store.user_credentials_by_id(principal.id)
        email = credentials.user.email
        await self._reserve_attempt(email)  # a stolen session may not guess the password
        if not await asyncio.to_thread(
            passwords.password_matches, credentials.password_hash, current
        ):
            details = {"email": email}
            await self._audit(
                principal, "user.password_change_failed", "user", principal.id, details, client
            )
            raise Forbidden("current_password is not right", field="current_password")
        await self.store.clear_login_failures(email)
        await self.store.update_user(
            principal.id, password_hash=await asyncio.to_thread(passwords.hash_password, password)
        )
        await self.store.end_user_sessions(principal.id, except_session_id=principal.session_id)
        await self._audit(principal, "user.password_changed", "user", principal.id, {}, client)

    async def _start_session(self, user: User) -> tuple[str, TokenPair]:
        refresh_token = tokens.new_refresh_token()
        session_id = await self.store.create_session(
            user.id, tokens.digest(refresh_token), utcnow() + self.refresh_lifetime
        )
        return session_id, self._pair(user, session_id, refresh_token)

    def _pair(self, user: User, session_id: str, refresh_token: str) -> TokenPair:
        return TokenPair(
            access_token=self.signer.issue(user.id, session_id),
            expires_in=int(self.signer.lifetime.total_seconds()),
            refresh_token=refresh_token,
            refresh_expires_in=int(self.refresh_lifetime.total_seconds()),
            user=user,
        )

    # Users

    async def create_user(
        self,
        actor: Principal,
        email: object,
        display_name: object,
        role: object,
        password: object,
        client: str | None,
    ) -> User:
        address = normalize_email(email)
        name = display_name_of(display_name)
        user_role = role_of(role)
        await self._check_role_grant(actor, user_role)
        checked = passwords.check_strength(password)
        password_hash = await asyncio.to_thread(passwords.hash_password, checked)
        user = await self.store.create_user(address, name, user_role, password_hash)
        details = {"email": user.email, "role": user.role.value}
        await self._audit(actor, "user.created", "user", user.id, details, client)
        return user

    async def update_user(
        self, actor: Principal, user_id: str, changes: dict[str, Any], client: str | None
    ) -> User:
        """Apply an admin's changes (display_name, role, active, password); each kind of
        change is audited on its own. A new password or a deactivation ends the user's
        sessions."""
        before = await self.store.get_user(user_id)
        check_grant(actor, self.policy.of_role(before.role), f"{before.role.value} user {user_id}")
        if "role" in changes and changes["role"] != before.role:
            await self._check_role_grant(actor, changes["role"])
        password_hash = UNSET
        if "password" in changes:
            checked = passwords.check_strength(changes["password"])
            password_hash = await asyncio.to_thread(passwords.hash_password, checked)
        user = await self.store.update_user(
            user_id,
            display_name=changes.get("display_name", UNSET),
            role=changes.get("role", UNSET),
            active=changes.get("active", UNSET),
            password_hash=password_hash,
        )
        if password_hash is not UNSET:
            await self.store.end_user_sessions(user_id)
        for action, details in _user_changes(before, user, password_hash is not UNSET):
            await self._audit(actor, action, "user", user_id, details, client)
        return user

    async def _check_role_grant(self, actor: Principal, role: Role) -> None:
        """``actor`` may make a user of ``role``: it holds every permission of the role, and
        the first admin comes only from the command line on the server's machine."""
        check_grant(actor, self.policy.of_role(role), f"the {role.value} role")
        first_admin = role is Role.ADMIN and not await self.store.has_active_admin()
        if first_admin and not is_command_line(actor):
            raise Forbidden(
                "the first admin is created on the server's machine, with"
                " `omnichannel users create-admin`",
                field="role",
            )

    # API keys

    async def create_api_key(
        self, actor: Principal, name: object, scopes: object, client: str | None
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is shown this once."""
        key_name = display_name_of(name, "name")
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) for s in scopes)
        ):
            raise InvalidInput("scopes must be a non-empty list of scope names", field="scopes")
        granted = self.policy.of_scopes(tuple(scopes))
        check_grant(actor, granted, "this key")
        if actor.kind == "api_key" and not is_bootstrap(actor) and API_KEYS_MANAGE in granted:
            # Its copies would outlive its revocation: only people (and the operator's
            # bootstrap key, which no API call revokes) make key managers.
            raise Forbidden(
                "an API key may not create a key that manages keys; a user must",
                permission=API_KEYS_MANAGE,
            )
        secret = tokens.new_api_key()
        key = await self.store.create_api_key(
            key_name,
            tuple(sorted(set(scopes))),
            secret[: tokens.API_KEY_SHOWN_PREFIX_LENGTH],
            tokens.digest(secret),
            created_by=actor.id if actor.kind == "user" else None,
        )
        details = {"name": key.name, "scopes": list(key.scopes)}
        await self._audit(actor, "api_key.created", "api_key", key.id, details, client)
        return key, secret

    async def revoke_api_key(self, actor: Principal, key_id: str, client: str | None) -> ApiKey:
        held = await self.store.get_api_key(key_id)
        check_grant(actor, self.policy.granted_by(held.scopes), f"API key {key_id}")
        key = await self.store.revoke_api_key(key_id, utcnow())
        await self._audit(actor, "api_key.revoked", "api_key", key.id, {"name": key.name}, client)
        return key

    # Audit

    async def _audit(
        self,
        actor: Principal | None,
        action: str,
        target_type: str | None,
        target_id: str | None,
        details: dict[str, Any],
        client: str | None,
    ) -> None:
        entry = audit_entry(actor, action, target_type, target_id, details, client)
        await self.audit.append(entry)
        log.info("audit", action=action, actor_type=entry.actor_type, actor_id=entry.actor_id)


def display_name_of(value: object, field: str = "display_name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > 200:
        raise InvalidInput(f"{field} must be at most 200 characters", field=field)
    return value.strip()


def role_of(value: object) -> Role:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return Role(value)
    choices = ", ".join(role.value for role in Role)
    raise InvalidInput(f"role must be one of {choices}", field="role")


def _user_changes(
    before: User, after: User, password_reset: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The audit entries an update makes: one per kind of change."""
    changes: list[tuple[str, dict[str, Any]]] = []
    if before.role != after.role:
        changes.append(("user.role_changed", {"from": before.role.value, "to": after.role.value}))
    if before.active != after.active:
        changes.append(("user.activated" if after.active else "user.deactivated", {}))
    if before.display_name != after.display_name:
        changes.append(("user.renamed", {"from": before.display_name, "to": after.display_name}))
    if password_reset:
        changes.append(("user.password_reset", {}))
    return changes
