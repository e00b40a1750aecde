"""Fixtures for the email channel's tests: the real SMTP server and the real server sending
through it (``smtp_server.py``), and the real IMAP server (``dovecot.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

# The helpers beside this file are imported by name: this folder is not a package (the
# core's tests/ owns that name) and pytest runs with --import-mode=importlib, which does
# not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from dovecot import (
    dovecot,  # noqa: F401 - fixtures, found by pytest here
    dovecot_without_idle,  # noqa: F401
)
from smtp_server import (
    _forget_smtp_scripts,  # noqa: F401 - fixtures, found by pytest here
    email_server,  # noqa: F401
    smtp,  # noqa: F401
    tls_certificates,  # noqa: F401
)
