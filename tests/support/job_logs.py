"""Reading what the test plugins (``tests/fixtures/local_plugins/ticker.py``,
``listener.py``) and the servers write: JSON lines, one record each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects of ``text``, one a line; other lines (and a line still being
    written) are skipped."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of the file at ``path`` (none while it does not exist)."""
    return json_lines(path.read_text()) if path.exists() else []


def job_runs(
    path: Path, job: str = "ticker.tick", phase: str = "start", since: float = 0
) -> list[dict[str, Any]]:
    """The ``phase`` records of ``job`` in the ticker's file written at ``since`` (a
    ``time.time()``) or later, in the order written."""
    return [
        record
        for record in read_records(path)
        if record["job"] == job and record["phase"] == phase and record["at"] >= since
    ]


def log_events(text: str, event: str) -> list[dict[str, Any]]:
    """The records of a server's or worker's JSON log whose event is ``event``."""
    return [record for record in json_lines(text) if record.get("event") == event]


def problems(text: str) -> list[str]:
    """The lines of a log that report an error, a warning or a traceback."""
    found = []
    for line in text.splitlines():
        records = json_lines(line)
        level = records[0].get("level") if records else None
        if "Traceback" in line or level in ("warning", "error", "critical"):
            found.append(line)
    return found
