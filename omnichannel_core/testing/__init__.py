"""The kit for testing a channel or a module: the conformance suite, the real server (and a
separate worker), a fake provider API, the in-process app, a module's store on each
backend, and the agents' event stream read over HTTP. docs/plugins.md ("Testing a channel")
and docs/writing-a-module.md show it in use::

    from omnichannel_core.testing import ChannelConformance, FakeProvider, WebhookCall
    from omnichannel_core.testing import run_app, run_store, running_server, running_worker

The names are imported on first use: pytest loads this package (its ``plugin`` module) in
every test run where omnichannel-core is installed, which must stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnichannel_core.testing.conformance import ChannelConformance
    from omnichannel_core.testing.event_stream import EventStream, ServerEvent, open_stream
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
        WorkerProcess,
        channels_except,
        free_port,
        running_server,
        running_worker,
    )
    from omnichannel_core.testing.stores import run_store
    from omnichannel_core.testing.webhook_call import WebhookCall

_MODULES = {
    "ChannelConformance": "conformance",
    "EventStream": "event_stream",
    "ServerEvent": "event_stream",
    "open_stream": "event_stream",
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
    "WorkerProcess": "server",
    "running_worker": "server",
    "run_store": "stores",
}

__all__ = [
    "API_KEY",
    "AUTH",
    "ChannelConformance",
    "EventStream",
    "FakeProvider",
    "InProcessApp",
    "InboxReader",
    "RecordedRequest",
    "ScriptedResponse",
    "ServerEvent",
    "ServerProcess",
    "WebhookCall",
    "WorkerProcess",
    "channels_except",
    "free_port",
    "open_stream",
    "run_app",
    "run_store",
    "running_server",
    "running_worker",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
