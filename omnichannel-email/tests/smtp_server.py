"""A real SMTP server for the email channel's tests: aiosmtpd on a free loopback port, with
STARTTLS (or TLS from the start) and AUTH, recording every mail it takes; and the real
server (``omnichannel serve``) configured to send through it.

Its certificate is made for the test run by a CA of the test run (:func:`make_certificates`,
with the ``cryptography`` package), and the server under test trusts that CA through
``EMAIL_TLS_CA_FILE``, as an operator's private mail server would be trusted. A test may
script the answers to one recipient (:meth:`SmtpServer.script`): a 4xx or 5xx to ``RCPT`` or
to the mail's body, or the connection dropped once the body is in.

The fixtures (``tls_certificates``, ``smtp``, ``email_server``) are imported by
``conftest.py``; :func:`email_env` and :func:`serving` start a server configured otherwise.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import threading
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from omnichannel_core.testing.server import (
    ServerProcess,
    channels_except,
    free_port,
    serving,
)

HOST = "127.0.0.1"
FROM_ADDRESS = "support@example.test"
FROM_NAME = "Example Support"
MESSAGE_ID_DOMAIN = "example.test"
INBOUND_SECRET = "inbound-secret-0123456789abcdef"
USERNAME = "support@example.test"
PASSWORD = "smtp password 0123"  # a space: passwords are taken as they are
WRONG_PASSWORD = "not the password 9876"
WAIT_SECONDS = 15.0


@attrs.frozen
class Certificates:
    """The test CA (what ``EMAIL_TLS_CA_FILE`` names) and the server's certificate, made
    for ``127.0.0.1`` and ``localhost``."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path) -> Certificates:
    """A CA and a server certificate it signed, written to ``folder`` (PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("omnichannel test CA"))
        .issuer_name(_name("omnichannel test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certificates = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    certificates.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificates.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certificates.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificates


@attrs.frozen
class Answer:
    """A scripted answer to one step of a mail to a recipient.

    :param step: ``rcpt`` (the answer to ``RCPT TO``) or ``data`` (to the mail's body).
    :param reply: the SMTP reply line; None with ``drop``.
    :param drop: close the connection once the body is in, without an answer.
    """

    step: str
    reply: str | None = None
    drop: bool = False

    @classmethod
    def at_rcpt(cls, reply: str) -> Answer:
        return cls("rcpt", reply)

    @classmethod
    def at_data(cls, reply: str) -> Answer:
        return cls("data", reply)

    @classmethod
    def dropped(cls) -> Answer:
        return cls("data", drop=True)


@attrs.frozen
class Received:
    """A mail the server took (or dropped the connection on), and how it came."""

    mail_from: str
    recipients: tuple[str, ...]
    content: bytes
    tls: bool
    login: str | None
    answered: str

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def body(self, subtype: str) -> str:
        """The decoded ``text/<subtype>`` body, with ``\n`` line ends."""
        part = self.message.get_body((subtype,))
        assert part is not None, f"no text/{subtype} body"
        return str(part.get_content()).replace("\r\n", "\n")


class Recorder:
    """aiosmtpd's handler: keeps what comes, answers as scripted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.logins: list[tuple[str, bool]] = []

    def _next(self, recipient: str, step: str) -> Answer | None:
        with self.lock:
            queue = self.scripts.get(recipient.lower())
            if queue and queue[0].step == step:
                return queue.popleft()
        return None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        answer = self._next(address, "rcpt")
        if answer is not None and answer.reply is not None:
            return answer.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        answer = self._next(recipient, "data")
        reply = "250 2.0.0 OK: queued"
        if answer is not None:
            reply = "(dropped)" if answer.drop else answer.reply or reply
        login = session.auth_data.login.decode() if session.authenticated else None
        content = envelope.original_content or b""
        received = Received(
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            content=content,
            tls=session.ssl is not None,
            login=login,
            answered=reply,
        )
        with self.lock:
            self.received.append(received)
        if answer is not None and answer.drop:
            assert server.transport is not None
            server.transport.abort()
        return reply

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USERNAME
            and data.password.decode() == PASSWORD
        )
        with self.lock:
            self.logins.append((data.login.decode() if isinstance(data, LoginPassword) else "", ok))
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class SmtpServer:
    """One aiosmtpd server in a thread of its own.

    :param security: ``starttls`` (STARTTLS offered and required, AUTH only after it),
        ``ssl`` (TLS from the start) or ``none`` (no TLS offered at all).
    :param auth: offer AUTH and require a login before ``MAIL``.
    """

    def __init__(
        self, certificates: Certificates, security: str = "starttls", auth: bool = True
    ) -> None:
        self.certificates = certificates
        self.security = security
        self.recorder = Recorder()
        self.port = free_port()
        context = certificates.server_context()
        options: dict[str, Any] = {
            "hostname": HOST,
            "port": self.port,
            "server_hostname": "mail.example.test",
            "ident": "omnichannel test SMTP",
        }
        if auth:
            options.update(
                authenticator=self.recorder.authenticate,
                auth_required=True,
                # aiosmtpd counts only STARTTLS as TLS: with ssl, the whole session is
                auth_require_tls=security == "starttls",
            )
        if security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif security == "ssl":
            options.update(ssl_context=context)
        self.controller = Controller(self.recorder, **options)
        # aiosmtpd warns of its own deprecated attribute at every login, and of AUTH without
        # STARTTLS when the whole session is TLS (ssl)
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.controller.stop()

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        """The ``EMAIL_SMTP_*`` settings that point a server at this one."""
        return {
            "EMAIL_SMTP_HOST": HOST,
            "EMAIL_SMTP_PORT": str(self.port),
            "EMAIL_SMTP_SECURITY": self.security,
            "EMAIL_SMTP_USERNAME": USERNAME,
            "EMAIL_SMTP_PASSWORD": PASSWORD,
            "EMAIL_TLS_CA_FILE": str(self.certificates.ca_file),
            **overrides,
        }

    def script(self, recipient: str, *answers: Answer) -> None:
        """Answer the next mails to ``recipient`` so, in order (then accept)."""
        with self.recorder.lock:
            self.recorder.scripts[recipient.lower()].extend(answers)

    def reset(self) -> None:
        with self.recorder.lock:
            self.recorder.scripts.clear()

    def mails_to(self, recipient: str) -> list[Received]:
        with self.recorder.lock:
            return [mail for mail in self.recorder.received if recipient in mail.recipients]

    def wait_for(
        self, recipient: str, count: int = 1, seconds: float = WAIT_SECONDS
    ) -> list[Received]:
        """The mails to ``recipient`` once there are ``count`` of them."""
        deadline = time.monotonic() + seconds
        while True:
            mails = self.mails_to(recipient)
            if len(mails) >= count:
                return mails
            assert time.monotonic() < deadline, f"{len(mails)} mails to {recipient} in {seconds}s"
            time.sleep(0.05)

    def logins(self) -> list[tuple[str, bool]]:
        with self.recorder.lock:
            return list(self.recorder.logins)


def email_env(smtp: SmtpServer | None, **overrides: str | None) -> dict[str, str | None]:
    """The environment of a server whose email channel sends through ``smtp`` (only the
    email channel loaded); an override of None unsets the variable."""
    return {
        "OMNICHANNEL_DISABLE_PLUGINS": channels_except(["email"]),
        "EMAIL_FROM_ADDRESS": FROM_ADDRESS,
        "EMAIL_FROM_NAME": FROM_NAME,
        "EMAIL_INBOUND_SECRET": INBOUND_SECRET,
        **(smtp.env() if smtp is not None else {}),
        **overrides,
    }


MESSAGE_TEMPLATES = {
    "order_shipped.txt": "Order {{ order }} left with {{ carrier }}.\n{{ text }}\n",
    "order_shipped.html": "<p>Order <b>{{ order }}</b> left with {{ carrier }}.</p>",
    "needs_name.txt": "Hello {{ name }}",
    "escape_attempt.html": "<p>{{ ''.__class__.__mro__ }}</p>",
}
"""The message templates of ``EMAIL_TEMPLATES_DIR`` on :func:`email_server` (in
``messages/``)."""


def write_templates(folder: Path) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    for name, source in MESSAGE_TEMPLATES.items():
        (folder / "messages" / name).write_text(source)
    return folder


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """The test CA and the mail servers' certificate, one set per test run."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def smtp(tls_certificates: Certificates) -> Iterator[SmtpServer]:
    """The SMTP server: STARTTLS required, AUTH required after it; one per test run (each
    test mails its own recipients)."""
    with SmtpServer(tls_certificates) as server:
        yield server


@pytest.fixture(autouse=True)
def _forget_smtp_scripts(request: pytest.FixtureRequest) -> Iterator[None]:
    """A scripted answer a test did not use must not reach the next test."""
    yield
    if "smtp" in request.fixturenames:
        request.getfixturevalue("smtp").reset()


@pytest.fixture(scope="session")
def email_server(
    tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[ServerProcess]:
    """The real server with the email channel sending through :func:`smtp`, with the
    message templates of :data:`MESSAGE_TEMPLATES`."""
    templates = write_templates(tmp_path_factory.mktemp("email-templates"))
    env = email_env(smtp, EMAIL_TEMPLATES_DIR=str(templates))
    with serving(tmp_path_factory.mktemp("email"), env) as server:
        yield server
