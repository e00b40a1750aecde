"""The SQLite file on disk (``omnichannel_core.store.sqlite.file``), as
``SqliteDatabase`` makes and opens it: created private, and a path that cannot be used
refused with one clear line."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.store.sqlite.database import SqliteDatabase
from tests.support.sqlite_files import stores_on_file
from tests.support.stores import open_stores


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private_whatever_the_umask(tmp_path):
    """Even with umask 0, the folders the database creates are 0700 and the database, its
    -wal and -shm files and the writer lock are 0600: nobody else can read the messages. A
    folder that already existed keeps its mode."""
    tmp_path.chmod(0o755)
    path = tmp_path / "data" / "inner" / "store.db"
    previous = os.umask(0)
    try:
        with stores_on_file(path) as stores:
            asyncio.run(stores.inbox.ingest_inbound("sms", InboundMessage("p1", "+1", "secret")))
            asyncio.run(stores.inbox.list_contacts(None, None, 10))  # a reader opens the -shm
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-writer.lock")]
            assert {str(f): _mode(f) for f in files} == {str(f): 0o600 for f in files}
            assert _mode(tmp_path / "data") == 0o700
            assert _mode(tmp_path / "data" / "inner") == 0o700
            assert _mode(tmp_path) == 0o755
    finally:
        os.umask(previous)


def test_an_existing_database_file_keeps_its_mode(tmp_path):
    """The database creates the file 0600 only when it is absent; an existing file it opens
    keeps the mode its owner chose."""
    path = tmp_path / "shared.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    with stores_on_file(path):
        pass
    assert _mode(path) == 0o640


def _unusable_paths(tmp_path: Path) -> dict[str, Path]:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_bytes(b"these are notes, not a database\n" * 200)
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    return {
        "folder cannot be created": Path("/proc/nope/x.db"),
        "parent is a file": not_a_folder / "x.db",
        "not a SQLite file": not_sqlite,
        "path is a folder": folder,
    }


@pytest.mark.parametrize(
    "case",
    ["folder cannot be created", "parent is a file", "not a SQLite file", "path is a folder"],
)
def test_unusable_store_path_is_one_config_error_line(tmp_path, case):
    """A store path that cannot be used stops the database's migrate() (the first thing a
    server does with it) with a ConfigError: one line naming OMNICHANNEL_STORE, the path and
    the reason, and no other exception type."""
    path = _unusable_paths(tmp_path)[case]
    database = SqliteDatabase(path)
    with pytest.raises(ConfigError) as raised:
        asyncio.run(open_stores(database))
    asyncio.run(database.close())
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"OMNICHANNEL_STORE: cannot use {path}: ")
    assert len(message) > len(f"OMNICHANNEL_STORE: cannot use {path}: ")
    assert raised.value.details["variable"] == "OMNICHANNEL_STORE"
