"""The server's own secrets: the bootstrap API key and the access-token signing secret, and
the keys derived from the latter for other purposes (a chat widget's visitor tokens).

Each comes from its variable (``OMNICHANNEL_API_KEY``, ``OMNICHANNEL_JWT_SECRET``) or, when
that is not set, from a file in the data directory that the first start creates (mode 0600,
exclusively, so every gunicorn worker reads the same one). The generated API key is printed
once, on a terminal; the signing secret never leaves its file. Keys are compared as SHA-256
digests in constant time.

The bootstrap key acts as an admin-scoped key, so a fresh server can be driven before any
user exists; users, their sessions and the keys admins create are the access module's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs

from omnichannel_core.config import Config

KEY_FILE = "api-key"
SIGNING_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name)


@attrs.frozen
class ApiKeys:
    digests: tuple[bytes, ...] = attrs.field(repr=False)

    @classmethod
    def of(cls, keys: tuple[str, ...]) -> ApiKeys:
        return cls(tuple(hashlib.sha256(key.encode()).digest() for key in keys))

    def accepts(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        accepted = False
        for known in self.digests:  # no early exit: time does not tell which key matched
            accepted |= hmac.compare_digest(digest, known)
        return accepted


def key_file(config: Config) -> Path:
    return config.data_dir / KEY_FILE


def create_secret_file(path: Path, generate: Callable[[], str]) -> str | None:
    """Write ``generate()`` to ``path`` (0600) unless the file exists; returns the new value
    when this call created it, else None. Safe from several processes at once: the value is
    written to a private temporary file first and linked into place whole, so nobody can
    read ``path`` while it is empty (gunicorn's workers start together and each reads it)."""
    if path.exists():
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = generate()
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp makes it 0600
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # fails if the file exists: the first writer wins
        except FileExistsError:
            return None
    finally:
        os.unlink(draft)
    return value


def ensure_api_key(config: Config) -> str | None:
    """Create the generated key if no key is configured and none exists yet.

    Returns the new key when this call created it (so the caller prints it once), else None.
    """
    if config.api_keys:
        return None
    return create_secret_file(key_file(config), lambda: "ock_" + secrets.token_urlsafe(32))


def bootstrap_keys(config: Config) -> ApiKeys:
    """The accepted bootstrap keys: the configured ones, or the generated one."""
    if config.api_keys:
        return ApiKeys.of(config.api_keys)
    ensure_api_key(config)
    key = key_file(config).read_text().strip()
    return ApiKeys.of((key,))


def signing_secret(config: Config) -> str:
    """The secret access tokens are signed with: configured, or generated once."""
    if config.jwt_secret:
        return config.jwt_secret
    path = config.data_dir / SIGNING_SECRET_FILE
    create_secret_file(path, lambda: secrets.token_urlsafe(48))
    return path.read_text().strip()


def derived_secret(config: Config, purpose: str) -> bytes:
    """A 32-byte key of its own for ``purpose`` (e.g. ``"webchat-visitor-tokens"``), derived
    from the access-token signing secret (HMAC-SHA256): kept like it, so the same on every
    server that shares ``OMNICHANNEL_JWT_SECRET``, and changed with it. No one holding the
    derived key learns the signing secret, and keys of two purposes are unrelated."""
    if not purpose:
        raise ValueError("a derived secret needs a purpose")
    label = b"omnichannel derived secret:" + purpose.encode()
    return hmac.new(signing_secret(config).encode(), label, hashlib.sha256).digest()
