"""Access tokens (short-lived signed JWTs) and the opaque secrets: refresh tokens and API keys.

An access token names its user (``sub``) and session (``sid``) and is checked on every
request against the store (`omnichannel_core.modules.access.service`), so a logout, a
deactivation or a role change applies to it at once, not when it expires. Refresh tokens
and API keys are random, shown once, and stored only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import attrs
import jwt

from omnichannel_core.module import Unauthenticated, utcnow

ALGORITHM = "HS256"
ISSUER = "omnichannel"
REFRESH_TOKEN_PREFIX = "ocr_"  # noqa: S105 (a prefix, not a secret)
API_KEY_PREFIX = "ock_"
API_KEY_SHOWN_PREFIX_LENGTH = 12  # "ock_" and 8 characters: enough to tell keys apart


def digest(secret: str) -> str:
    """How refresh tokens and API keys are stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def looks_like_access_token(token: str) -> bool:
    """JWTs have three dot-separated parts; keys and refresh tokens have none."""
    return token.count(".") == 2


@attrs.frozen
class AccessClaims:
    user_id: str
    session_id: str


@attrs.frozen
class TokenSigner:
    """Signs and checks access tokens with the server's secret."""

    secret: str = attrs.field(repr=False)
    lifetime: timedelta

    def issue(self, user_id: str, session_id: str, now: datetime | None = None) -> str:
        now = now or utcnow()
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
            "typ": "access",
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def check(self, token: str) -> AccessClaims:
        """The token's claims, or raise Unauthenticated saying why (expired, not valid)."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],  # never "none", never what the token asks for
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(
                "the access token has expired; get a new one from /api/auth/refresh"
            ) from None
        except jwt.PyJWTError:
            raise Unauthenticated("the access token is not valid") from None
        if claims.get("typ") != "access" or not all(
            isinstance(claims.get(name), str) for name in ("sub", "sid")
        ):
            raise Unauthenticated("the access token is not valid")
        return AccessClaims(claims["sub"], claims["sid"])
