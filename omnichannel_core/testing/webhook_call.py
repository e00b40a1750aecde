"""What a channel's conformance test hands the suite: the provider's requests, ready to send.

A test builds each :class:`WebhookCall` as the provider would send it (body, signature
headers) without knowing the server's address; the suite posts it to the channel's route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs
import httpx


def _copied(mapping: Mapping[str, str]) -> dict[str, str]:
    return dict(mapping)


@attrs.frozen
class WebhookCall:
    """One request a provider makes to the channel.

    :param path: relative to ``/api/channels/{channel}/``: ``"webhook"``, ``"status"`` or a
        route the channel contributes.
    :param body: the raw body, exactly as signed.
    :param headers: sent as given (signature, content type); no API key is sent, as a
        provider sends none.
    :param query: query parameters.
    """

    path: str
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_copied)
    query: Mapping[str, str] = attrs.field(factory=dict, converter=_copied)

    def post(self, client: httpx.Client, channel: str) -> httpx.Response:
        """POST this call to ``channel`` through ``client``."""
        return client.post(
            f"/api/channels/{channel}/{self.path}",
            content=self.body,
            headers=self.headers,
            params=self.query,
        )


class ProviderFake(Protocol):
    """What a conformance test's ``provider()`` yields: a fake API listening at ``url``."""

    url: str
