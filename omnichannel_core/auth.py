"""API keys, until users and roles arrive: from ``OMNICHANNEL_API_KEY``, or generated once.

When no key is configured, the first start writes a random key to ``<data dir>/api-key``
(mode 0600) and prints it once; later starts read it. The server is never open by default.
Keys are compared as SHA-256 digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import attrs

from omnichannel_core.config import Config

KEY_FILE = "api-key"


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


def ensure_api_key(config: Config) -> str | None:
    """Create the generated key if no key is configured and none exists yet.

    Returns the new key when this call created it (so the caller prints it once), else None.
    Safe from several processes at once: the file is created exclusively.
    """
    if config.api_keys:
        return None
    path = key_file(config)
    if path.exists():
        return None
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = "ock_" + secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def load_api_keys(config: Config) -> ApiKeys:
    """The accepted keys: the configured ones, or the generated one."""
    if config.api_keys:
        return ApiKeys.of(config.api_keys)
    ensure_api_key(config)
    key = key_file(config).read_text().strip()
    return ApiKeys.of((key,))
