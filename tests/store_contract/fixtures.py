"""What every part of the store contract shares: the ``run`` and ``store`` fixtures, and
builders for the records the tests feed in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import Conversation
from omnichannel_core.store import Store

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]


def inbound(
    provider_message_id: str,
    sender: str = "+15550001",
    text: str | None = "hello",
    sender_name: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        provider_message_id=provider_message_id,
        sender=sender,
        text=text,
        sender_name=sender_name,
    )


class StoreFixtures:
    """The fixtures every contract part uses. A backend's test class overrides ``store``."""

    @pytest.fixture
    def run(self) -> Iterator[Run[Any]]:
        """Runs a coroutine to completion on this test's own event loop."""
        loop = asyncio.new_event_loop()
        try:
            yield loop.run_until_complete
        finally:
            loop.close()

    @pytest.fixture
    def store(self, run: Run[Any]) -> Store:  # pragma: no cover - overridden by backends
        raise NotImplementedError("a backend's test class provides the store fixture")

    def _conversation(self, store: Store, run: Run[Any], channel: str = "sms") -> Conversation:
        return run(store.resolve_recipient(channel, "+15550100"))[1]
