"""The TLS settings every connection to a mail server uses (SMTP and IMAP alike).

Certificates are always verified, host name included: the system's CA store, plus
``EMAIL_TLS_CA_FILE`` when set (a mail server with a private CA, or a test server's
self-signed certificate). A context is built once per CA file: loading the system's store
takes a noticeable time, and an :class:`ssl.SSLContext` may be shared by connections.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path


@functools.lru_cache(maxsize=4)
def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context verifying the server against the system's CAs and ``ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def certificate_problem(error: BaseException | None) -> str | None:
    """A sentence for a failed certificate check among ``error`` and its causes, or None
    when the failure was something else."""
    for _ in range(8):  # a chain is short; a cycle must not loop for ever
        if error is None:
            return None
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = error.verify_message or error.reason or "not trusted"
            return (
                f"the server's TLS certificate was refused ({reason}); a private CA goes in"
                " EMAIL_TLS_CA_FILE"
            )
        error = error.__cause__ or error.__context__
    return None
