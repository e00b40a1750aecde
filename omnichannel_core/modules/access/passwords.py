"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile).

Hashing and checking take tens of milliseconds of CPU on purpose, so callers run them off
the event loop. Checking against :data:`UNKNOWN_USER_HASH` when no user has the email makes
a failed login take as long whether or not the account exists.
"""

from __future__ import annotations

import argon2

from omnichannel_core.module import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps one request from costing more

_hasher = argon2.PasswordHasher()

UNKNOWN_USER_HASH = _hasher.hash("no user has this password; it only costs the same time")


def check_strength(password: object, field: str = "password") -> str:
    """The password, or raise InvalidInput saying what a valid one is."""
    if not isinstance(password, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"{field} must be at least {MIN_LENGTH} characters long", field=field)
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"{field} must be at most {MAX_LENGTH} characters long", field=field)
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (checked at login, when
    the password is at hand to hash again)."""
    return _hasher.check_needs_rehash(password_hash)


def password_matches(password_hash: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
