"""Fixtures for the webchat channel's tests: the real server with the webchat channel alone
(``webchat_server``), the site that embeds the widget (``site``, another origin), and a
scripted visitor (``visitor_client.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers beside this file are imported by name: this folder is not a package (the
# core's tests/ owns that name) and pytest runs with --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))

from webchat_servers import (
    IDENTITY_SECRET,  # noqa: F401 - used by tests through the module
    site,  # noqa: F401 - fixtures, found by pytest here
    two_servers,  # noqa: F401
    webchat_server,  # noqa: F401
)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """The async tests (``pytest.mark.anyio``) run on asyncio, as the server does."""
    return "asyncio"
