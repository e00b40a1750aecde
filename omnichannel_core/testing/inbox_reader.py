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
    key, as :meth:`ServerProcess.client` does). With ``channel``, the ``..._of(address)``
    methods look on that channel unless told another."""

    def __init__(self, client: httpx.Client, channel: str | None = None) -> None:
        self.client = client
        self.channel = channel

    def _channel(self, channel: str | None) -> str:
        chosen = channel or self.channel
        if chosen is None:
            raise TypeError("name the channel: InboxReader(client, channel) or channel=...")
        return chosen

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

    def contact_of(self, address: str, channel: str | None = None) -> dict[str, Any] | None:
        """The contact reached at ``address`` on the channel, if any."""
        identity = {"channel": self._channel(channel), "address": address}
        matches = [
            contact
            for contact in self._items("/api/contacts", {"q": address})
            if identity in contact["identities"]
        ]
        assert len(matches) <= 1, f"two contacts with the identity {identity}: {matches}"
        return matches[0] if matches else None

    def conversations_of(self, contact_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        """The contact's conversations on the channel."""
        return [
            conversation
            for conversation in self.conversations(self._channel(channel))
            if conversation["contact_id"] == contact_id
        ]

    def conversation_of(self, address: str, channel: str | None = None) -> dict[str, Any]:
        """The one conversation of the contact reached at ``address`` on the channel."""
        contact = self.contact_of(address, channel)
        assert contact is not None, f"no contact for {address}"
        found = self.conversations_of(contact["id"], channel)
        assert len(found) == 1, f"{len(found)} conversations for {address}: {found}"
        return found[0]

    def messages_of(self, address: str, channel: str | None = None) -> list[dict[str, Any]]:
        """Every message of the conversation with ``address``, oldest first."""
        return self.messages(self.conversation_of(address, channel)["id"])

    def contact(self, contact_id: str) -> dict[str, Any]:
        return self._get(f"/api/contacts/{contact_id}")
