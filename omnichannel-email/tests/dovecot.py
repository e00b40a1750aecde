"""A real IMAP server for the email channel's tests: Dovecot (Debian's ``dovecot-imapd``),
run from a configuration of its own in a temporary folder, on free loopback ports, and
stopped by its PID. Nothing under ``/etc`` is read or touched.

Each server holds one mailbox, :data:`USER` (password :data:`PASSWORD`), in maildir
folders. It listens for plain IMAP with STARTTLS offered, and for IMAP over TLS, with the
test run's certificate (``smtp_server.make_certificates``, trusted through
``EMAIL_TLS_CA_FILE``). ``idle=False`` makes one that does not offer IDLE, to test polling.
Mail is delivered with IMAP APPEND (:meth:`Dovecot.append`), as a mail server would file
it; the helpers here use the standard library's ``imaplib``, not the code under test.

The fixtures (``dovecot``, ``dovecot_without_idle``) are imported by ``conftest.py``: one
server per test module.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_server import Certificates

from omnichannel_core.testing.server import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
HOST = "127.0.0.1"
USER = "support@example.test"
PASSWORD = "imap password 0123"  # a space: passwords are taken as they are
START_SECONDS = 15.0
STOP_SECONDS = 10.0

CONFIG = """\
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
{capability}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
"""
"""``../shared/recipes/dovecot-imap-test.conf`` (checked with Dovecot 2.3.19 on Debian 12),
with TLS added. As root, Dovecot runs its processes as its own users, as packaged; as
another user, as that user."""
NO_IDLE = (
    "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT THREAD=REFERENCES"
    " MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LITERAL+"
)


def require_dovecot() -> None:
    """Fail, saying what to install, when Dovecot is missing (``.ci/run`` installs it):
    the IMAP tests are never skipped silently."""
    if not Path(DOVECOT).exists():
        pytest.fail(
            f"Dovecot is not installed ({DOVECOT}): apt-get install -y dovecot-imapd",
            pytrace=False,
        )


class Dovecot:
    """One Dovecot server in a folder of its own under the system's temporary folder
    (short: its sockets' paths must be; reachable by Dovecot's own users), removed when it
    stops; :meth:`start` waits until it answers."""

    def __init__(self, certificates: Certificates, *, idle: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.certificates = certificates
        self.idle = idle
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def _users(self) -> dict[str, object]:
        if os.geteuid() == 0:
            dovecot = pwd.getpwnam("dovecot")
            return {
                "internal_user": "dovecot",
                "internal_group": "dovecot",
                "login_user": "dovenull",
                "uid": dovecot.pw_uid,
                "gid": dovecot.pw_gid,
            }
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(os.getegid()).gr_name
        return {
            "internal_user": me.pw_name,
            "internal_group": group,
            "login_user": me.pw_name,
            "uid": me.pw_uid,
            "gid": os.getegid(),
        }

    def start(self) -> Dovecot:
        users = self._users()
        self.root.chmod(0o755)  # the mail processes, as Dovecot's users, reach the maildirs
        mail = self.root / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, int(users["uid"]), int(users["gid"]))  # type: ignore[call-overload]
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        config = self.root / "dovecot.conf"
        config.write_text(
            CONFIG.format(
                host=HOST,
                root=self.root,
                cert=self.certificates.cert_file,
                key=self.certificates.key_file,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                capability="" if self.idle else NO_IDLE,
                **users,
            )
        )
        with (self.root / "stdout.log").open("ab") as log:
            self.process = subprocess.Popen(
                [DOVECOT, "-c", str(config), "-F"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.imap_port), 1):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer in {START_SECONDS}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM to Dovecot's master by its PID (it stops its own processes), SIGKILL to
        its process group if it does not stop in time; then remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.root / "stdout.log", self.root / "dovecot.log")
            if path.exists()
        )

    def env(self, security: str = "none", folder: str = "INBOX") -> dict[str, str | None]:
        """The ``EMAIL_IMAP_*`` settings of a server reading ``folder`` of this mailbox."""
        port = self.imaps_port if security == "ssl" else self.imap_port
        return {
            "EMAIL_IMAP_HOST": HOST,
            "EMAIL_IMAP_PORT": str(port),
            "EMAIL_IMAP_SECURITY": security,
            "EMAIL_IMAP_USERNAME": USER,
            "EMAIL_IMAP_PASSWORD": PASSWORD,
            "EMAIL_IMAP_FOLDER": folder,
            "EMAIL_TLS_CA_FILE": str(self.certificates.ca_file),
        }

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in ``imaplib`` session, as a mail client's."""
        with imaplib.IMAP4(HOST, self.imap_port, timeout=30) as client:
            client.starttls(ssl.create_default_context(cafile=self.certificates.ca_file))
            client.login(USER, PASSWORD)
            yield client

    def append(self, mail: bytes, folder: str = "INBOX") -> None:
        """File ``mail`` into ``folder``, unread."""
        with self.session() as client:
            status, answer = client.append(_quoted(folder), None, None, mail)
            assert status == "OK", answer

    def create(self, folder: str) -> None:
        with self.session() as client:
            status, answer = client.create(_quoted(folder))
            assert status == "OK", answer

    def delete(self, folder: str) -> None:
        with self.session() as client:
            status, answer = client.delete(_quoted(folder))
            assert status == "OK", answer

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.session() as client:
            status, answer = client.status(_quoted(folder), "(UIDVALIDITY)")
            assert status == "OK", answer
            text = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
            return int(text.rsplit("UIDVALIDITY", 1)[1].strip(" )"))

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """Each mail's flags, by UID (read without changing them)."""
        with self.session() as client:
            status, answer = client.select(_quoted(folder), readonly=True)
            assert status == "OK", answer
            status, lines = client.uid("FETCH", "1:*", "(FLAGS)")
            assert status == "OK", lines
            found: dict[int, set[str]] = {}
            for line in lines:
                if not isinstance(line, bytes) or b"FLAGS" not in line:
                    continue
                text = line.decode()
                uid = int(text.split("UID ", 1)[1].split()[0].strip(")"))
                flags = text.split("FLAGS (", 1)[1].split(")", 1)[0].split()
                found[uid] = set(flags)
            return found


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def running_dovecot(certificates: Certificates, *, idle: bool = True) -> Iterator[Dovecot]:
    """``with running_dovecot(certificates) as server:`` a started Dovecot, stopped (and its
    folder removed) at the end."""
    require_dovecot()
    server = Dovecot(certificates, idle=idle)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dovecot(tls_certificates: Certificates) -> Iterator[Dovecot]:
    """Dovecot offering IDLE, one per test module."""
    with running_dovecot(tls_certificates) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot_without_idle(tls_certificates: Certificates) -> Iterator[Dovecot]:
    """Dovecot that does not offer IDLE (the poller asks it every so often), one per test
    module."""
    with running_dovecot(tls_certificates, idle=False) as server:
        yield server
