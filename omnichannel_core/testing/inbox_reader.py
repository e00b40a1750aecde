"""Reads what a server stored, through its inbox API, as a test checks it.

The API is the only view a test of the real server has of the store: what a channel's
webhook stored is what an agent would see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

PAGE_LIMIT = 200  # the API's largest page


class InboxReader:
    """Reads contacts, conversations and messages with ``client`` (which must send an API
    key, as :meth:`ServerProcess.client` does)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.client.get(path, params=params)
        if response.status_code != 200:
            raise AssertionError(f"GET {path} answered {response.status_code}: {response.text}")
        return response.json()

    def _items(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a paged list, following ``next_cursor``."""
        query = {**(params or {}), "limit": PAGE_LIMIT}
        while True:
            page = self._get(path, query)
            yield from page["items"]
            if not page["next_cursor"]:
                return
            query = {**query, "cursor": page["next_cursor"]}

    def conversations(self, channel: str) -> list[dict[str, Any]]:
        """Every conversation on ``channel``."""
        return list(self._items("/api/conversations", {"channel": channel}))

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every message of the conversation, oldest first."""
        return list(self._items(f"/api/conversations/{conversation_id}/messages"))

    def messages_with_provider_id(
        self, channel: str, provider_message_id: str
    ) -> list[dict[str, Any]]:
        """The messages on ``channel`` the provider knows as ``provider_message_id`` (one, or
        none; more would be a duplicate the store should have refused)."""
        return [
            message
            for conversation in self.conversations(channel)
            for message in self.messages(conversation["id"])
            if message["provider_message_id"] == provider_message_id
        ]

    def message(self, message_id: str) -> dict[str, Any]:
        return self._get(f"/api/messages/{message_id}")

    def contact(self, contact_id: str) -> dict[str, Any]:
        return self._get(f"/api/contacts/{contact_id}")
