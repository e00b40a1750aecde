"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile).

Hashing and checking take tens of milliseconds of CPU on purpose, so callers run them off
the event loop. Checking against :func:`unknown_user_hash` when no user has the email makes
a failed login take as long whether or not the account exists.
"""

from __future__ import annotations

import functools

import argon2

from omnichannel_core.module import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps one request from costing more

_hasher = argon2.PasswordHasher()

_UNKNOWN_USER_PASSWORD = "no user has this password; it only costs the same time"  # noqa: S105
_UNKNOWN_USER_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$3fT9l07q13wS97CWCBBCEA"
    "$GJPfT2oXz1CmrHItFyDJEk3QevQB7OaVAA/dnGdF0tk"
)
"""That password's hash with today's parameters, made once and written here: hashing it as
each process started cost every process (a worker, a command) 64 MiB and a few hundred
milliseconds of CPU."""


@functools.cache
def unknown_user_hash() -> str:
    """A hash no password a user types matches, made with the parameters of the users'
    hashes, so checking a password against it costs what checking a user's does. Hashed
    again (once per process) only if argon2's parameters change from the ones above."""
    if _hasher.check_needs_rehash(_UNKNOWN_USER_HASH):
        return _hasher.hash(_UNKNOWN_USER_PASSWORD)
    return _UNKNOWN_USER_HASH


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


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed; ``password_hash`` None (no such user) checks
    it against :func:`unknown_user_hash`, which takes as long and matches nothing."""
    if len(password) > MAX_LENGTH:
        return False
    if password_hash is None:
        password_hash = unknown_user_hash()
    try:
        return _hasher.verify(password_hash, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
