"""gcp-storage-emulator (PyPI) for the media store's Cloud Storage tests: started on a free
loopback port in its own session, as `omnichannel_core.testing.emulators` starts the
Firestore and Pub/Sub emulators, and stopped the same way (its process group, by PID).

It serves the JSON API google-cloud-storage speaks, in memory, with one bucket made at
start; ``STORAGE_EMULATOR_HOST=http://HOST:PORT`` points the client at it, without
credentials. Measured here: ready in about 0.5 s. It ignores ``if_generation_match``
(an upload over an existing object succeeds): the media store only ever rewrites a name with
the same bytes, so that is harmless.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import time
from pathlib import Path

import httpx

from omnichannel_core.testing.emulators import Emulator, EmulatorError
from omnichannel_core.testing.server import free_port

BUCKET = "omnichannel-media-test"
START_TIMEOUT_SECONDS = 30


def start_storage_emulator(workdir: Path) -> Emulator:
    """The emulator, serving the bucket :data:`BUCKET`, once it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "storage-emulator.log"
    command = [
        str(Path(sys.executable).parent / "gcp-storage-emulator"),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--in-memory",
        f"--default-bucket={BUCKET}",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator = Emulator("storage", f"127.0.0.1:{port}", process, log_path)
    atexit.register(emulator.stop)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            emulator.stop()
            raise EmulatorError(f"storage emulator exited:\n{emulator.log_tail()}")
        try:
            if httpx.get(f"{emulator.base_url}/storage/v1/b", timeout=2).status_code == 200:
                return emulator
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    emulator.stop()
    raise EmulatorError(f"storage emulator did not answer:\n{emulator.log_tail()}")
