"""Starts and stops the official Firestore and Pub/Sub emulators (gcloud, Java) for tests:
the kit's ``firestore_emulator`` and ``pubsub_emulator`` fixtures, and
:func:`use_firestore_emulator`, which points a test's Firestore clients at one.

Each emulator runs as ``gcloud ... start`` in its own session, so the whole tree (gcloud's
Python, the emulator's shell wrapper, the Java server) shares one process group that
``Emulator.stop`` signals as a unit: SIGTERM, then SIGKILL if the group outlives the timeout.
gcloud only calls ``setpgid`` when it is not already a session leader, so it stays in our group.

gcloud gets its own ``CLOUDSDK_CONFIG`` under the work directory, so it writes its logs and
caches there and not into ``~/.config/gcloud``; ``CLOUDSDK_CORE_CHECK_GCE_METADATA=false``
stops its probe of the GCE metadata server (otherwise a DNS query leaves the machine on every
start with a fresh config, seen with strace); prompts, usage reporting and update checks are off.

Facts measured on the development machine (Cloud SDK 528.0.0, OpenJDK 17, loopback only):

- The Pub/Sub emulator is not in gcloud's GA track here: ``gcloud emulators pubsub start``
  fails with "Invalid choice: 'pubsub'"; ``gcloud beta emulators pubsub start`` works. It needs
  ``--data-dir`` to exist (it writes ``env.yaml`` there) or gcloud exits at once.
- Readiness: both emulators answer ``GET /`` with 200 "Ok" once they serve requests (Pub/Sub
  also answers ``GET /v1/projects/P/topics`` then). Start time until then: Firestore 1.7-2.6 s,
  Pub/Sub 1.3-2.6 s; ``START_TIMEOUT_SECONDS`` (60) leaves room for a loaded CI machine.
- Memory (RSS): the Firestore Java server about 120 MB after start, about 285 MB after 1000
  small writes; the Pub/Sub Java server about 105 MB after start, about 185 MB after 1000
  messages; gcloud's own Python about 60 MB per emulator; Firestore's shell wrapper 3 MB.
- Stop: on SIGTERM to the group gcloud exits at once and the Java servers within about 0.4 s,
  so SIGKILL is a fallback only. The Java processes are briefly zombies (re-parented to pid 1,
  which reaps them); ``group_alive`` counts a zombie as gone.
- Security rules: ``PUT /emulator/v1/projects/{project}:securityRules`` with
  ``{"rules": {"files": [{"name": "firestore.rules", "content": TEXT}]}}`` answers 200 with an
  empty JSON object and applies to that project only; rules that do not compile answer 400
  "Error compiling rules: ..." with line and column. A project with no rules loaded (and no
  ``--rules`` flag) allows every request.
- Admin bypass: REST calls with ``Authorization: Bearer owner`` ignore the rules. The Admin SDK
  path is the same bypass: google-cloud-firestore, when ``FIRESTORE_EMULATOR_HOST`` is set,
  talks gRPC over an insecure channel and sends ``authorization: Bearer owner`` metadata, so
  it ignores the app's credentials and the rules. Calls with no Authorization header are
  judged with ``request.auth == null``; an unsigned ID token (``alg: none`` JWT with ``sub``,
  ``aud`` = project, ``iss`` = securetoken URL; see ``fake_id_token``) is accepted as
  ``request.auth`` (uid = ``sub``) and judged by the rules; ``allow read, write: if false``
  answers 403 PERMISSION_DENIED to both. A Bearer value that is not a JWT answers 400
  "invalid jwt".

Parallel runs (pytest-xdist) share one emulator of each kind between their workers
(:func:`shared_emulator`): each test uses a project of its own, so the workers cannot see
each other's data, and each emulator started costs a Java server's start, its JIT warm-up and
100-300 MB. The first worker to need one starts it under a file lock in a folder the xdist
controller hands every worker, and records its address and process group there; the others
read the record; the controller stops every recorded emulator once all its workers are done
(:func:`stop_shared_emulators`), since a worker may finish while others still use it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import httpx

from omnichannel_core.testing.server import free_port

if TYPE_CHECKING:
    import pytest

GCLOUD = "gcloud"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
LOG_TAIL_LINES = 40

FIRESTORE_CREDENTIALS = (
    "FIREBASE_PROJECT_ID",
    "FIREBASE_PRIVATE_KEY",
    "FIREBASE_CLIENT_EMAIL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
"""What `omnichannel_core.store.firestore.client` would take real credentials from."""


class EmulatorError(RuntimeError):
    """An emulator could not be started: gcloud is missing, it exited, or it never answered."""


@attrs.define
class Emulator:
    """One running emulator: where it listens, its process (the group leader) and its log.

    ``process`` is None for an emulator another process started (a parallel run's shared
    one, :func:`shared_emulator`): it is then known by its process group ``pgid`` alone."""

    name: str
    host_port: str
    process: subprocess.Popen[bytes] | None
    log_path: Path
    pgid: int = attrs.field(kw_only=True)
    """The process group of gcloud and every child it spawned (start_new_session)."""
    stopped: bool = attrs.field(default=False, init=False)

    @pgid.default
    def _leader_pid(self) -> int:
        if self.process is None:
            raise TypeError("an Emulator without its process needs its pgid")
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{self.host_port}"

    def group_alive(self) -> bool:
        """Whether any process of the group still exists (a zombie awaiting its reaper counts
        as gone: it holds no port and no memory)."""
        return any(_state(pid) not in ("Z", "X", None) for pid in _group_members(self.pgid))

    def stop(self) -> None:
        """Stops the whole process group: SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS.
        Safe to call twice: once the group is gone it is never signalled again, since the
        kernel may then hand its number to someone else's process group."""
        if self.stopped:
            return
        if self.group_alive():
            _signal_group(self.pgid, signal.SIGTERM)
            if not _wait_group_gone(self, STOP_TIMEOUT_SECONDS):
                _signal_group(self.pgid, signal.SIGKILL)
                if not _wait_group_gone(self, STOP_TIMEOUT_SECONDS):
                    raise EmulatorError(f"{self.name} emulator group {self.pgid} survived SIGKILL")
        if self.process is not None:
            _reap(self.process)
        self.stopped = True

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_firestore(workdir: Path) -> Emulator:
    """Starts the Firestore emulator (native mode) on a free loopback port."""
    return _start("firestore", ["emulators", "firestore", "start"], workdir)


def start_pubsub(workdir: Path) -> Emulator:
    """Starts the Pub/Sub emulator on a free loopback port (beta track: see module docs)."""
    data_dir = workdir / "pubsub-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = ["beta", "emulators", "pubsub", "start", f"--data-dir={data_dir}"]
    return _start("pubsub", command, workdir)


def use_firestore_emulator(monkeypatch: pytest.MonkeyPatch, host_port: str) -> None:
    """Point every Firestore client built in this test at the emulator
    (``FIRESTORE_EMULATOR_HOST``), with no real credentials around."""
    for name in FIRESTORE_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host_port)


def reset_firestore(emulator: Emulator, project: str) -> None:
    """Deletes every document of the project's default database."""
    url = f"{emulator.base_url}/emulator/v1/projects/{project}/databases/(default)/documents"
    httpx.delete(url, timeout=30).raise_for_status()


def load_firestore_rules(emulator: Emulator, project: str, rules_text: str) -> None:
    """Loads security rules for one project; raises with the compiler's message if they do
    not compile."""
    url = f"{emulator.base_url}/emulator/v1/projects/{project}:securityRules"
    body = {"rules": {"files": [{"name": "firestore.rules", "content": rules_text}]}}
    response = httpx.put(url, json=body, timeout=30)
    if response.status_code != 200:
        raise EmulatorError(f"rules rejected ({response.status_code}): {response.text}")


SHARED_RECORD_SUFFIX = ".emulator.json"


def shared_emulator(name: str, start: Callable[[Path], Emulator], folder: Path) -> Emulator:
    """The emulator ``name`` that every process handed ``folder`` shares: the one recorded
    there if it still runs, else one ``start`` starts now (in ``folder / name``), recorded.

    The check and the start hold an exclusive lock on ``folder / (name + ".lock")``, so two
    workers asking at once start one emulator. The emulator is not stopped when the process
    that started it exits (another may still use it): :func:`stop_shared_emulators` stops it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"{name}{SHARED_RECORD_SUFFIX}"
    with (folder / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if record.exists():
            emulator = _recorded(record)
            if emulator.group_alive():
                return emulator
        emulator = start(folder / name)
        atexit.unregister(emulator.stop)
        known = {
            "name": emulator.name,
            "host_port": emulator.host_port,
            "log_path": str(emulator.log_path),
            "pgid": emulator.pgid,
        }
        record.write_text(json.dumps(known))
        return emulator


def stop_shared_emulators(folder: Path) -> None:
    """Stops every emulator :func:`shared_emulator` recorded in ``folder`` (by process
    group: they may have been started by processes that exited since)."""
    for record in sorted(folder.glob(f"*{SHARED_RECORD_SUFFIX}")):
        _recorded(record).stop()
        record.unlink()


def _recorded(record: Path) -> Emulator:
    """The emulator a record of :func:`shared_emulator` names, without its process."""
    known = json.loads(record.read_text())
    return Emulator(
        name=known["name"],
        host_port=known["host_port"],
        process=None,
        log_path=Path(known["log_path"]),
        pgid=known["pgid"],
    )


def fake_id_token(project: str, uid: str) -> str:
    """An unsigned (``alg: none``) Firebase ID token for ``uid``: the emulator accepts it as
    ``request.auth`` without checking a signature, so rules can be tested per user."""
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "custom"},
    }
    return f"{_jwt_part({'alg': 'none', 'typ': 'JWT'})}.{_jwt_part(claims)}."


def _jwt_part(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _start(name: str, gcloud_args: list[str], workdir: Path) -> Emulator:
    gcloud = shutil.which(GCLOUD)
    if gcloud is None:
        raise EmulatorError(
            f"the {name} emulator needs the Google Cloud SDK: `{GCLOUD}` is not on PATH "
            "(install google-cloud-cli with its firestore/pubsub emulator components and Java)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    host_port = f"127.0.0.1:{free_port()}"
    log_path = workdir / f"{name}-emulator.log"
    command = [gcloud, *gcloud_args, f"--host-port={host_port}", "--quiet"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - gcloud, found on PATH, our arguments
            command,
            cwd=workdir,
            env=_gcloud_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator = Emulator(name=name, host_port=host_port, process=process, log_path=log_path)
    atexit.register(emulator.stop)
    try:
        _wait_ready(emulator, process)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def _gcloud_env(workdir: Path) -> dict[str, str]:
    config_dir = workdir / "gcloud-config"
    config_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }


def _wait_ready(emulator: Emulator, process: subprocess.Popen[bytes]) -> None:
    """Polls ``GET /`` until it answers "Ok" (both emulators do once they serve requests)."""
    started = time.monotonic()
    deadline = started + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(
                f"{emulator.name} emulator exited with {process.returncode} before "
                f"answering on {emulator.host_port}; log tail:\n{emulator.log_tail()}"
            )
        try:
            response = httpx.get(emulator.base_url + "/", timeout=2)
            if response.status_code == 200 and response.text.strip() == "Ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise EmulatorError(
        f"{emulator.name} emulator did not answer on {emulator.host_port} within "
        f"{START_TIMEOUT_SECONDS}s; log tail ({emulator.log_path}):\n{emulator.log_tail()}"
    )


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_group_gone(emulator: Emulator, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emulator.process is not None:
            _reap(emulator.process, block=False)
        if not emulator.group_alive():
            return True
        time.sleep(0.1)
    return not emulator.group_alive()


def _reap(process: subprocess.Popen[bytes], block: bool = True) -> None:
    """Collects gcloud's exit status so it does not linger as our zombie."""
    if block:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
    else:
        process.poll()


def _group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid``, read from /proc (Linux, like our CI)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]
