"""Checking the OpenAPI document against the real server: reading the served document,
following its references, and validating real responses against it (the test kit's
:mod:`omnichannel_core.testing.openapi_contract`, which channels' tests use too), and the
core's own lists of its operations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from omnichannel_core.testing.openapi_contract import Contract, fetch_document, lookup
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import install_distributions

__all__ = [
    "OPERATIONS",
    "PUBLIC_OPERATIONS",
    "Contract",
    "fetch_document",
    "lookup",
    "operations",
    "running_degraded_server",
]

OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC_OPERATIONS = {
    ("get", "/"),
    ("head", "/"),
    ("get", "/health"),
    ("head", "/health"),
    ("get", "/api/openapi.json"),
    ("post", "/api/channels/{channel}/webhook"),
    ("post", "/api/channels/{channel}/status"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
}


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    """Every operation the document describes, as (method, path template, operation)."""
    for template, item in document["paths"].items():
        for method in OPERATIONS:
            if method in item:
                yield method, template, item[method]


@contextmanager
def running_degraded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose ``http`` channel is not configured, beside a channel (``healthonly``,
    a real pip-installed fixture) that implements only ``health``."""
    site = install_distributions(tmp_path_factory.mktemp("site") / "packages", "healthonly")
    workdir = tmp_path_factory.mktemp("degraded")
    env = {"PYTHONPATH": str(site), "WEBHOOK_SECRET": "", "HTTP_CHANNEL_SEND_URL": ""}
    with running_server(workdir, env) as process:
        yield process
