"""Visitor tokens: who a widget's visitor is, signed by the server, kept by their browser.

A token is ``v1.<payload>.<signature>``: the payload is compact JSON in base64url, the
signature an HMAC-SHA256 of ``v1.<payload>`` with the channel's own key
(:attr:`~omnichannel_webchat.settings.WebchatSettings.token_key`), never the agents'. So an
agent's access token is no visitor token (its form and key differ), and no authenticator of
the agents' API knows a visitor token. A token expires after ``WEBCHAT_SESSION_DAYS``; one
older than :data:`ROTATE_AFTER` is replaced by a fresh one the next time it is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from omnichannel_core.channel import Unauthenticated, format_timestamp

VERSION = "v1"
ROTATE_AFTER = timedelta(days=1)
MAX_TOKEN_LENGTH = 4096
"""Longer than any token :func:`issue` makes (its claims are bounded: the longest address,
name and email fit, in UTF-8, with room to spare)."""
ANONYMOUS_PREFIX = "vis_"
VERIFIED_PREFIX = "user:"


@attrs.frozen
class Visitor:
    """Who a token says the visitor is.

    :param address: their address on the channel: ``vis_<random>`` for an anonymous
        visitor, ``user:<site user id>`` for one the site vouched for
        (:mod:`omnichannel_webchat.identity`), the same on every device.
    :param issued_at: when this token was made (the session may be older).
    """

    address: str
    issued_at: datetime
    expires_at: datetime
    name: str | None = None
    email: str | None = None

    @property
    def verified(self) -> bool:
        return self.address.startswith(VERIFIED_PREFIX)

    def due_for_rotation(self, now: datetime) -> bool:
        """Whether a fresh token should replace this one: a day after it was made, or
        halfway to its expiry when it lasts less than two days."""
        lifetime = self.expires_at - self.issued_at
        return now - self.issued_at >= min(ROTATE_AFTER, lifetime / 2)

    def public(self) -> dict[str, Any]:
        """What the visitor's own widget is shown of them."""
        return {
            "id": self.address,
            "verified": self.verified,
            "name": self.name,
            "email": self.email,
        }


def new_address() -> str:
    """An anonymous visitor's address: unguessable, so nobody can write as them."""
    return ANONYMOUS_PREFIX + secrets.token_urlsafe(18)


def issue(
    address: str,
    key: bytes,
    now: datetime,
    days: int,
    name: str | None = None,
    email: str | None = None,
) -> tuple[str, Visitor]:
    """A new token for ``address``, valid ``days`` from ``now``, and what it says."""
    visitor = Visitor(address, now, now + timedelta(days=days), name, email)
    claims: dict[str, Any] = {
        "sub": address,
        "iat": int(now.timestamp()),
        "exp": int(visitor.expires_at.timestamp()),
    }
    if name:
        claims["name"] = name
    if email:
        claims["email"] = email
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signed = f"{VERSION}.{payload}"
    token = f"{signed}.{_b64(_sign(signed, key))}"
    if len(token) > MAX_TOKEN_LENGTH:  # the claims' limits keep it far below
        raise ValueError(f"a visitor token of {len(token)} characters")
    return token, visitor


def read(token: str, key: bytes, now: datetime) -> Visitor:
    """The visitor ``token`` names; Unauthenticated when it is not one of ours (forged,
    garbled, an agent's) or has expired. The message never repeats the token."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise Unauthenticated("not a visitor token")
    version, payload, signature = token.split(".")
    expected = _b64(_sign(f"{version}.{payload}", key))
    if version != VERSION or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Unauthenticated("not a visitor token of this server")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        visitor = Visitor(
            address=_text(claims["sub"]),
            issued_at=_time(claims["iat"]),
            expires_at=_time(claims["exp"]),
            name=_optional(claims.get("name")),
            email=_optional(claims.get("email")),
        )
    except (ValueError, KeyError, TypeError):  # signed by us, so only a bug gets here
        raise Unauthenticated("not a visitor token of this server") from None
    if visitor.expires_at <= now:
        raise Unauthenticated(
            f"the visitor token expired at {format_timestamp(visitor.expires_at)}",
            expired=True,
        )
    return visitor


def _sign(signed: str, key: bytes) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a string")
    return value


def _optional(value: object) -> str | None:
    return None if value is None else _text(value)


def _time(value: object) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a time")
    return datetime.fromtimestamp(value, UTC)
