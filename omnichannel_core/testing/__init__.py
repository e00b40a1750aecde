"""The kit for testing a channel: the conformance suite, the real server, a fake provider
API and the in-process app. docs/plugins.md ("Testing a channel") shows it in use::

    from omnichannel_core.testing import ChannelConformance, FakeProvider, WebhookCall

The names are imported on first use: pytest loads this package (its ``plugin`` module) in
every test run where omnichannel-core is installed, which must stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnichannel_core.testing.conformance import ChannelConformance
    from omnichannel_core.testing.fake_provider import (
        FakeProvider,
        RecordedRequest,
        ScriptedResponse,
    )
    from omnichannel_core.testing.in_process import AUTH, InProcessApp, run_app
    from omnichannel_core.testing.inbox_reader import InboxReader
    from omnichannel_core.testing.server import (
        API_KEY,
        ServerProcess,
        channels_except,
        free_port,
        running_server,
    )
    from omnichannel_core.testing.webhook_call import WebhookCall

_MODULES = {
    "ChannelConformance": "conformance",
    "WebhookCall": "webhook_call",
    "FakeProvider": "fake_provider",
    "RecordedRequest": "fake_provider",
    "ScriptedResponse": "fake_provider",
    "AUTH": "in_process",
    "InProcessApp": "in_process",
    "run_app": "in_process",
    "InboxReader": "inbox_reader",
    "API_KEY": "server",
    "ServerProcess": "server",
    "channels_except": "server",
    "free_port": "server",
    "running_server": "server",
}

__all__ = [
    "API_KEY",
    "AUTH",
    "ChannelConformance",
    "FakeProvider",
    "InProcessApp",
    "InboxReader",
    "RecordedRequest",
    "ScriptedResponse",
    "ServerProcess",
    "WebhookCall",
    "channels_except",
    "free_port",
    "run_app",
    "running_server",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
