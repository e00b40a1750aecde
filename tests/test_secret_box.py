"""``omnichannel_core.secret_box``: secrets sealed with AES-256-GCM under a key ring from
``OMNICHANNEL_SECRET_KEY`` or a key file generated in the data dir, bound to their names,
opened with any key of the ring, refused clearly with the wrong key or name, rotated, and
shown masked."""

from __future__ import annotations

import base64
import multiprocessing
import secrets
import stat
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.secret_box import (
    KEY_FILE,
    SecretBox,
    SecretKeyRequired,
    SecretUnreadable,
    UnknownSecretKey,
    generate_key,
    mask,
)

NAME = "TWILIO_AUTH_TOKEN"
OLD_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()  # with its padding "="
NEW_KEY = base64.urlsafe_b64encode(bytes(range(100, 132))).decode().rstrip("=")
"""Fixed keys: the tests' names are the same in every process of a parallel run."""


def box_of(*keys: str) -> SecretBox:
    return SecretBox.of_text(keys)


def config_of(tmp_path: Path, environ: dict[str, str] | None = None) -> Config:
    return Config.from_environ({"OMNICHANNEL_DATA_DIR": str(tmp_path), **(environ or {})}, None)


@pytest.mark.parametrize("text", ["AC-auth-token-1234", "", "contraseña ✓ 🔑", "x" * 10_000])
def test_a_sealed_secret_opens_to_its_text(text):
    """Whatever is sealed opens to the same text; the sealed form shows none of it."""
    box = box_of(NEW_KEY)
    token = box.seal(text, NAME)
    assert box.open(token, NAME) == text
    assert token.isascii() and "\n" not in token
    if text:
        assert text not in token


def test_each_seal_differs():
    """The same text sealed twice gives two secrets (a fresh nonce each time), which say
    nothing of being equal."""
    box = box_of(NEW_KEY)
    assert box.seal("same", NAME) != box.seal("same", NAME)


def test_a_secret_sealed_with_another_key_fails_clearly():
    """A box whose ring lacks the sealing key refuses with UnknownSecretKey, naming the
    key's id, not with a garbled text or a generic error."""
    token = box_of(OLD_KEY).seal("secret", NAME)
    with pytest.raises(UnknownSecretKey) as refused:
        box_of(NEW_KEY).open(token, NAME)
    assert refused.value.details["key_id"] == box_of(OLD_KEY).key_id
    assert "OMNICHANNEL_SECRET_KEY" in refused.value.message
    assert isinstance(refused.value, SecretUnreadable)


def test_an_altered_secret_is_refused():
    """Changing any character of the ciphertext, or putting another key's id of the ring
    in its header, is detected by GCM's tag."""
    box = box_of(NEW_KEY, OLD_KEY)
    token = box.seal("secret", NAME)
    start = len(token) - 46  # the payload: 34 bytes, 46 characters; the last has spare bits
    for at in range(start, len(token) - 1):
        flipped = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        with pytest.raises(SecretUnreadable):
            box.open(flipped, NAME)
    moved = token.replace(box.key_id, box_of(OLD_KEY).key_id, 1)
    with pytest.raises(SecretUnreadable) as refused:
        box.open(moved, NAME)
    assert not isinstance(refused.value, UnknownSecretKey)


@pytest.mark.parametrize(
    "token", ["", "plain text", "ocs1.", "ocs1.abcdefgh.", "ocs2.abcdefgh.AAAA", "ocs1.short.AAAA"]
)
def test_something_that_is_no_sealed_secret_is_refused(token):
    """Text that is not a sealed secret raises SecretUnreadable from open, current and
    sealed_with alike."""
    box = box_of(NEW_KEY)
    for read in (lambda token: box.open(token, NAME), box.current, box.sealed_with):
        with pytest.raises(SecretUnreadable):
            read(token)


def test_rotation_opens_the_old_and_seals_with_the_new():
    """With the new key first and the old one after, a secret sealed before opens, is not
    ``current``, and sealed again is; once the old key leaves the ring only the secrets
    sealed again open."""
    before = box_of(OLD_KEY).seal("token-before-rotation", NAME)
    rotating = box_of(NEW_KEY, OLD_KEY)
    assert rotating.open(before, NAME) == "token-before-rotation"
    assert not rotating.current(before)
    assert rotating.sealed_with(before) == box_of(OLD_KEY).key_id
    again = rotating.seal(rotating.open(before, NAME), NAME)
    assert rotating.current(again)
    rotated = box_of(NEW_KEY)
    assert rotated.open(again, NAME) == "token-before-rotation"
    with pytest.raises(UnknownSecretKey):
        rotated.open(before, NAME)


def test_a_generated_key_is_one_the_variable_takes(tmp_path):
    """``generate_key`` makes a key ``OMNICHANNEL_SECRET_KEY`` accepts, new each time."""
    key = generate_key()
    assert key != generate_key()
    config = config_of(tmp_path, {"OMNICHANNEL_SECRET_KEY": key})
    assert SecretBox.from_config(config).key_id == box_of(key).key_id


def test_the_key_id_tells_nothing_of_the_key():
    """The key id is short and not part of the key's text; the box's repr shows ids only."""
    box = box_of(NEW_KEY, OLD_KEY)
    assert len(box.key_id) == 8
    assert box.key_id not in NEW_KEY
    assert NEW_KEY not in repr(box) and OLD_KEY not in repr(box)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("", ""),
        ("short", "••••"),
        ("elevenchars", "••••"),
        ("twelve-chars", "••••"),
        ("a-password-of-23-chars!", "••••"),
        ("an-api-token-of-24-chars", "••••hars"),
        ("EAAG" + "x" * 100 + "9f3a", "••••9f3a"),
    ],
)
def test_mask_never_shows_the_whole_value(value, shown):
    """A value of 24 characters or more (a token) shows its last 4; a shorter one (a
    password, whose last 4 would be too large a part of it) nothing; an empty one stays
    empty (nothing is set)."""
    assert mask(value) == shown
    if value:
        assert value not in mask(value)


def test_the_key_ring_comes_from_the_environment(tmp_path):
    """``OMNICHANNEL_SECRET_KEY`` (comma-separated, the first current) makes the box; no
    key file is written."""
    config = config_of(tmp_path, {"OMNICHANNEL_SECRET_KEY": f"{NEW_KEY}, {OLD_KEY}"})
    box = SecretBox.from_config(config)
    assert box.key_id == box_of(NEW_KEY).key_id
    assert box.open(box_of(OLD_KEY).seal("old", NAME), NAME) == "old"
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize(
    "value",
    ["short", NEW_KEY + "A", NEW_KEY[:-1] + "+", f"{NEW_KEY},{NEW_KEY}"],
    ids=["short", "long", "not-urlsafe", "twice"],
)
def test_a_malformed_key_stops_start_up_without_showing_it(tmp_path, value):
    """A key that is not 32 bytes of URL-safe base64, or one given twice, is a ConfigError
    naming the variable, never the value; a configured key stays out of the config's
    repr."""
    with pytest.raises(ConfigError) as refused:
        config_of(tmp_path, {"OMNICHANNEL_SECRET_KEY": value})
    assert refused.value.details["variable"] == "OMNICHANNEL_SECRET_KEY"
    assert value not in refused.value.message
    assert NEW_KEY not in repr(config_of(tmp_path, {"OMNICHANNEL_SECRET_KEY": NEW_KEY}))


def test_without_the_variable_a_key_file_is_made_once_0600(tmp_path):
    """Without the variable, the first box makes ``secret-key`` in the data dir, readable
    by the server's user only; later boxes read the same key."""
    config = config_of(tmp_path / "data")
    first = SecretBox.from_config(config)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.seal("kept", NAME)
    assert SecretBox.from_config(config).open(token, NAME) == "kept"
    assert SecretBox.from_config(config_of(tmp_path / "data")).key_id == first.key_id


def _seal_in_a_process(data_dir: str, start: threading.Barrier) -> str:
    start.wait()
    config = Config.from_environ({"OMNICHANNEL_DATA_DIR": data_dir}, None)
    return SecretBox.from_config(config).seal(
        f"from {multiprocessing.current_process().name}", NAME
    )


def test_processes_starting_together_share_one_key_file(tmp_path):
    """Workers that make their box at the same moment all end up with the one key the first
    wrote: what any of them sealed, any other opens."""
    context = multiprocessing.get_context("fork")
    start = context.Manager().Barrier(6)
    with ProcessPoolExecutor(6, mp_context=context) as pool:
        tokens = list(pool.map(_seal_in_a_process, [str(tmp_path)] * 6, [start] * 6))
    box = SecretBox.from_config(config_of(tmp_path))
    assert len({box.sealed_with(token) for token in tokens}) == 1
    assert all(box.open(token, NAME).startswith("from ") for token in tokens)
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE]
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_a_shared_store_needs_the_variable(tmp_path):
    """On Firestore (servers sharing one store) a generated key would differ per machine:
    the box is refused with SecretKeyRequired naming the variable, and nothing is written;
    with the variable set it is made."""
    environ = {"OMNICHANNEL_STORE": "firestore://demo-project"}
    with pytest.raises(SecretKeyRequired) as refused:
        SecretBox.from_config(config_of(tmp_path, environ))
    assert "OMNICHANNEL_SECRET_KEY" in refused.value.message
    assert isinstance(refused.value, ConfigError)
    assert not (tmp_path / KEY_FILE).exists()
    environ["OMNICHANNEL_SECRET_KEY"] = NEW_KEY
    assert SecretBox.from_config(config_of(tmp_path, environ)).key_id == box_of(NEW_KEY).key_id


def test_a_key_file_that_holds_no_key_is_a_config_error(tmp_path):
    """A damaged key file stops the box with a ConfigError naming the file, rather than
    sealing with a key nobody can get back."""
    (tmp_path / KEY_FILE).write_text("not a key\n")
    with pytest.raises(ConfigError) as refused:
        SecretBox.from_config(config_of(tmp_path))
    assert KEY_FILE in refused.value.message


def test_a_secret_opens_only_under_the_name_it_was_sealed_for():
    """A sealed value copied to another variable in the store does not open there: the name
    is authenticated with the ciphertext, and the refusal names neither value."""
    box = box_of(NEW_KEY)
    token = box.seal("the-auth-token", "TWILIO_AUTH_TOKEN")
    assert box.open(token, "TWILIO_AUTH_TOKEN") == "the-auth-token"
    for other in ("WEBHOOK_SECRET", "TWILIO_AUTH_TOKEN2", ""):
        with pytest.raises(SecretUnreadable) as refused:
            box.open(token, other)
        assert not isinstance(refused.value, UnknownSecretKey)
        assert "the-auth-token" not in refused.value.message


def test_a_secret_sealed_before_names_were_bound_still_opens_and_is_not_current():
    """An ``ocs1`` secret (sealed without its name) opens under any name, and is not
    ``current`` even with the current key, so a rotation seals it again, bound."""
    key = bytes(range(100, 132))
    box = SecretBox([key])
    nonce = secrets.token_bytes(12)
    header = f"ocs1.{box.key_id}"
    payload = nonce + AESGCM(key).encrypt(nonce, b"unbound", header.encode())
    token = f"{header}.{base64.urlsafe_b64encode(payload).decode().rstrip('=')}"
    assert box.open(token, NAME) == "unbound"
    assert box.open(token, "ANY_NAME") == "unbound"
    assert not box.current(token)
    assert box.current(box.seal("unbound", NAME))


def test_a_key_file_the_server_cannot_read_is_a_config_error(tmp_path, monkeypatch):
    """A key file the server's user may not read stops the box with a ConfigError naming
    the file and the variable, not a PermissionError the API would answer 500 to."""
    (tmp_path / KEY_FILE).write_text(NEW_KEY + "\n")

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # the tests may run as root
    with pytest.raises(ConfigError) as refused:
        SecretBox.from_config(config_of(tmp_path))
    assert KEY_FILE in refused.value.message
    assert "Permission denied" in refused.value.message
    assert refused.value.details["variable"] == "OMNICHANNEL_SECRET_KEY"


def test_a_key_file_that_cannot_be_read_at_all_is_a_config_error(tmp_path):
    """A key file that is no text (a binary file), or a folder where the file should be, is
    a ConfigError naming the file, never an error of another kind."""
    path = tmp_path / KEY_FILE
    path.write_bytes(b"\xff\xfe" + bytes(range(40)))
    with pytest.raises(ConfigError) as refused:
        SecretBox.from_config(config_of(tmp_path))
    assert KEY_FILE in refused.value.message
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError) as refused:
        SecretBox.from_config(config_of(tmp_path))
    assert KEY_FILE in refused.value.message
