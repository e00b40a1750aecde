"""Secrets kept in the store (the channel credentials admins set through the API), sealed
with AES-256-GCM under a key the store never holds.

The key ring comes from ``OMNICHANNEL_SECRET_KEY``: keys comma-separated, each 32 bytes in
URL-safe base64, the first the current one. :meth:`SecretBox.seal` always uses the current
key; :meth:`SecretBox.open` takes a secret sealed with any key of the ring, so a key is
rotated by putting a new one first, sealing every stored secret again (those that are not
:meth:`~SecretBox.current`), then dropping the old one.

Without the variable, a key is generated into the data dir (``secret-key``, mode 0600,
created once, exclusively, so every worker of the server reads the same one), as the
access-token signing secret is (`omnichannel_core.server_secrets`). That suits one machine
only: servers sharing a Firestore store would each generate their own, and none could open
what another sealed, so there the variable is required and :meth:`SecretBox.from_config`
refuses to start without it (:class:`SecretKeyRequired`).

A sealed secret reads ``ocs2.<key id>.<nonce and ciphertext, base64>``: the key id (8
characters derived from the key, which tell nothing of it) says which key of the ring opens
it, so a secret sealed with a key that left the ring fails with :class:`UnknownSecretKey`
rather than as a forgery. The version, the key id and the secret's **name** (what it is for:
a channel variable's, ``TWILIO_AUTH_TOKEN``) are authenticated with the ciphertext, so a
sealed value copied to another name in the store does not open there. ``ocs1`` secrets (the
first format, sealed without their name) still open; they are not :meth:`~SecretBox.current`,
so a rotation seals them again, bound.

:func:`mask` is how a secret is shown (the API, the audit log): never whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from omnichannel_core.config import SECRET_KEY, Config
from omnichannel_core.errors import (
    ConfigError,
    SecretKeyRequired,
    SecretUnreadable,
    UnknownSecretKey,
)
from omnichannel_core.server_secrets import create_secret_file

__all__ = [
    "KEY_FILE",
    "SecretBox",
    "SecretKeyRequired",
    "SecretUnreadable",
    "UnknownSecretKey",
    "generate_key",
    "mask",
    "shared_store",
]

KEY_FILE = "secret-key"
"""The generated key's file in the data dir, when ``OMNICHANNEL_SECRET_KEY`` is not set."""
KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = "ocs2"
"""The first part of every secret sealed now: this format, AES-256-GCM, bound to its name."""
UNBOUND_VERSION = "ocs1"
"""The first format, sealed without the secret's name: opened, never made."""
VERSIONS = (VERSION, UNBOUND_VERSION)
MASK = "••••"
SHOWN_TAIL = 4
"""How many last characters :func:`mask` shows, of a value long enough to spare them."""
MIN_SHOWN_LENGTH = 24
"""Values shorter than this are masked whole: 4 characters of a short password or token are
too large a part of it to show."""


def generate_key() -> str:
    """A new key, as ``OMNICHANNEL_SECRET_KEY`` takes it: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def _decode_key(text: str) -> bytes:
    if not SECRET_KEY.match(text):
        raise ValueError("a secret key is 32 bytes in URL-safe base64 (43 characters)")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=")


def _key_id(key: bytes) -> str:
    """8 characters that name ``key`` (a hash of it, which tells nothing of the key)."""
    digest = hashlib.sha256(b"omnichannel secret key id\0" + key).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def shared_store(config: Config) -> bool:
    """True when other servers may share this server's store (Firestore): then every
    server-wide secret must come from the environment, the same on each."""
    return config.store_url.startswith("firestore://")


class SecretBox:
    """Seals and opens secrets with a key ring, the first key the current one.

    :param keys: the ring, each key 32 bytes; the first seals, all open.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a secret box needs at least one key")
        ring: dict[str, AESGCM] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a secret key is {KEY_BYTES} bytes, not {len(key)}")
            ring.setdefault(_key_id(key), AESGCM(key))
        self._ring = ring
        self.key_id = _key_id(keys[0])
        """The current key's id: what :meth:`seal` writes into each secret."""

    def __repr__(self) -> str:  # key ids only
        return f"SecretBox(key_ids={list(self._ring)!r})"

    @classmethod
    def of_text(cls, keys: Sequence[str]) -> SecretBox:
        """The box of keys written as ``OMNICHANNEL_SECRET_KEY`` takes them."""
        return cls([_decode_key(key.strip()) for key in keys])

    @classmethod
    def from_config(cls, config: Config) -> SecretBox:
        """The server's box: the ring of ``OMNICHANNEL_SECRET_KEY``, or else the key in the
        data dir's ``secret-key`` file, created on first use.

        :raises SecretKeyRequired: the store is shared (Firestore) and the variable is not
            set: each server would generate a key of its own.
        :raises ConfigError: the key file cannot be made or read (its permissions, its
            folder), or holds something that is not a key.
        """
        if config.secret_keys:
            return cls.of_text(config.secret_keys)
        if shared_store(config):
            raise SecretKeyRequired(
                "OMNICHANNEL_SECRET_KEY must be set when the store is shared"
                f" ({config.store_url.split('://')[0]}://): every server seals and opens the"
                " stored secrets with it, so give each the same; make one with: python -c"
                " 'import secrets; print(secrets.token_urlsafe(32))'",
                variable="OMNICHANNEL_SECRET_KEY",
            )
        path = key_file(config)
        try:
            create_secret_file(path, generate_key)
            text = path.read_text(encoding="ascii").strip()
            return cls.of_text([text])
        except OSError as error:
            raise ConfigError(
                f"{path} cannot be read or made ({error.strerror or type(error).__name__}):"
                " let the server's user read it (mode 0600), or set OMNICHANNEL_SECRET_KEY",
                variable="OMNICHANNEL_SECRET_KEY",
            ) from None
        except ValueError:  # UnicodeDecodeError included
            raise ConfigError(
                f"{path} does not hold a secret key (32 bytes in URL-safe base64); restore"
                " it from a backup, or set OMNICHANNEL_SECRET_KEY",
                variable="OMNICHANNEL_SECRET_KEY",
            ) from None

    def seal(self, text: str, name: str) -> str:
        """``text`` encrypted and authenticated with the current key, as one line of ASCII,
        bound to ``name`` (what the secret is: a variable's name), which :meth:`open` must
        be given again."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = f"{VERSION}.{self.key_id}"
        data = _associated(VERSION, self.key_id, name)
        sealed = self._ring[self.key_id].encrypt(nonce, text.encode(), data)
        return f"{header}.{_b64encode(nonce + sealed)}"

    def open(self, token: str, name: str) -> str:
        """The text ``token`` was sealed from under ``name`` (an ``ocs1`` secret, sealed
        before names were bound, opens under any).

        :raises UnknownSecretKey: it was sealed with a key no longer in the ring.
        :raises SecretUnreadable: it is not a sealed secret, it was altered, or it was sealed
            under another name.
        """
        version, key_id, payload = _parts(token)
        cipher = self._ring.get(key_id)
        if cipher is None:
            raise UnknownSecretKey(
                f"this secret was sealed with key {key_id}, which OMNICHANNEL_SECRET_KEY no"
                " longer holds: put that key back in the ring (after the current one), or set"
                " the secret again",
                key_id=key_id,
            )
        nonce, sealed = payload[:NONCE_BYTES], payload[NONCE_BYTES:]
        try:
            text = cipher.decrypt(nonce, sealed, _associated(version, key_id, name))
        except InvalidTag:
            raise SecretUnreadable(
                f"this secret does not open with key {key_id} as {name}: it was altered, or"
                " sealed for another name",
                key_id=key_id,
            ) from None
        try:
            return text.decode()
        except UnicodeDecodeError:  # authenticated, so sealed so: not by this class
            raise SecretUnreadable("this secret is not text", key_id=key_id) from None

    def current(self, token: str) -> bool:
        """True when ``token`` was sealed with the current key, in the current format; a
        secret for which it is False is sealed again during a rotation (open, then seal).

        :raises SecretUnreadable: it is not a sealed secret.
        """
        version, key_id, _ = _parts(token)
        return version == VERSION and key_id == self.key_id

    def sealed_with(self, token: str) -> str:
        """The id of the key ``token`` was sealed with (whether the ring holds it or not).

        :raises SecretUnreadable: it is not a sealed secret.
        """
        _, key_id, _ = _parts(token)
        return key_id


def key_file(config: Config) -> Path:
    return config.data_dir / KEY_FILE


def _associated(version: str, key_id: str, name: str) -> bytes:
    """What GCM authenticates with the ciphertext: the header, and in the current format
    the secret's name."""
    header = f"{version}.{key_id}"
    if version == UNBOUND_VERSION:
        return header.encode()
    return f"{header}\0{name}".encode()


def _parts(token: str) -> tuple[str, str, bytes]:
    """The format, the key id and the nonce with the ciphertext of a sealed secret."""
    version, _, rest = token.partition(".") if isinstance(token, str) else ("", "", "")
    key_id, _, payload = rest.partition(".")
    if version not in VERSIONS or len(key_id) != 8 or not payload:
        raise SecretUnreadable(f"not a sealed secret (they start {VERSION}.)")
    try:
        data = _b64decode(payload)
    except (binascii.Error, ValueError):
        raise SecretUnreadable("not a sealed secret: its payload is not base64") from None
    if len(data) < NONCE_BYTES + 16:  # a nonce and GCM's tag at least
        raise SecretUnreadable("not a sealed secret: too short")
    return version, key_id, data


def mask(value: str) -> str:
    """How a secret is shown: never whole. ``••••`` and its last 4 characters when it has
    at least 24 (an API token: enough to tell two apart, too little to guess the rest),
    else ``••••`` alone (a password); empty stays empty (nothing is set)."""
    if not value:
        return ""
    if len(value) >= MIN_SHOWN_LENGTH:
        return MASK + value[-SHOWN_TAIL:]
    return MASK
