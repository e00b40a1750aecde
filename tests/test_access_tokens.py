"""Access tokens and passwords (omnichannel_core.modules.access.tokens, .passwords)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from omnichannel_core.errors import InvalidInput, Unauthenticated
from omnichannel_core.modules.access import passwords, tokens
from omnichannel_core.timestamps import utcnow

SECRET = "s" * 48


def signer() -> tokens.TokenSigner:
    return tokens.TokenSigner(SECRET, timedelta(minutes=15))


def test_an_issued_token_names_its_user_and_session():
    """check() gives back the user and session a token was issued for."""
    claims = signer().check(signer().issue("usr_1", "ses_1"))
    assert (claims.user_id, claims.session_id) == ("usr_1", "ses_1")


def test_expired_forged_and_unsigned_tokens_are_refused():
    """Expired: a message saying so; another secret, alg none, a refresh-type or a token
    without a session: not valid."""
    expired = signer().issue("usr_1", "ses_1", now=utcnow() - timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="expired"):
        signer().check(expired)
    now = int(utcnow().timestamp())
    base = {"iss": "omnichannel", "sub": "usr_1", "sid": "ses_1", "iat": now, "exp": now + 60}
    forged = [
        jwt.encode({**base, "typ": "access"}, "another secret" * 4, algorithm="HS256"),
        jwt.encode({**base, "typ": "access"}, None, algorithm="none"),
        jwt.encode({**base, "typ": "refresh"}, SECRET, algorithm="HS256"),
        jwt.encode({**base, "typ": "access", "sid": 7}, SECRET, algorithm="HS256"),
        jwt.encode({**base, "typ": "access", "iss": "someone"}, SECRET, algorithm="HS256"),
        "not.a.token",
    ]
    for token in forged:
        with pytest.raises(Unauthenticated, match="not valid"):
            signer().check(token)


def test_secrets_are_stored_as_digests_and_look_different():
    """Refresh tokens and API keys are random, prefixed, and stored as SHA-256."""
    refresh, key = tokens.new_refresh_token(), tokens.new_api_key()
    assert refresh.startswith("ocr_") and key.startswith("ock_")
    assert tokens.digest(key) != key and len(tokens.digest(key)) == 64
    assert not tokens.looks_like_access_token(key)
    assert tokens.looks_like_access_token(signer().issue("u", "s"))


def test_passwords_hash_check_and_strength():
    """argon2id hashes verify the right password only; weak or non-string ones are 400."""
    hashed = passwords.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$")
    assert passwords.password_matches(hashed, "a long enough password")
    assert not passwords.password_matches(hashed, "another password!!")
    assert not passwords.password_matches("not a hash", "whatever password")
    for weak in ("short", None, "x" * 2000):
        with pytest.raises(InvalidInput):
            passwords.check_strength(weak)


def test_the_unknown_users_hash_costs_what_a_users_does():
    """The hash a login with an unknown email is checked against has the parameters new
    hashes get (so the check takes as long), and is written in the code, not made as each
    process starts: no password a user would type matches it."""
    decoy = passwords.unknown_user_hash()
    assert not passwords.needs_rehash(decoy)
    assert decoy == passwords._UNKNOWN_USER_HASH  # nothing hashed at start-up
    assert not passwords.password_matches(decoy, "a long enough password")
    assert not passwords.password_matches(None, "a long enough password")  # checked against it
