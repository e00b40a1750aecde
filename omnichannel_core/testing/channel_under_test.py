"""What a channel's conformance test tells the suite: how to fake its provider, configure
the channel against the fake, and sign the provider's webhooks.

:class:`ChannelUnderTest` is the part of
:class:`~omnichannel_core.testing.ChannelConformance` a channel's test module fills in;
its defaults (fresh addresses and ids, a forged or missing signature) fit most providers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import ClassVar

import attrs
import pytest

from omnichannel_core.models import DeliveryStatus
from omnichannel_core.testing.webhook_call import ProviderFake, WebhookCall


class ChannelUnderTest:
    """The channel a conformance suite checks, as its test module describes it: set
    :attr:`channel`, define :meth:`provider`, :meth:`environ`, :meth:`inbound` and (when the
    channel reports delivery statuses) :meth:`status`; override the other methods when
    their defaults do not fit the provider."""

    channel: ClassVar[str] = ""
    """The channel's entry point name in ``omnichannel.channels``; the server loads the
    installed distribution, so install it first (``pip install -e .``)."""

    def provider(self) -> AbstractContextManager[ProviderFake]:
        """A fake of the provider's API, over real HTTP on loopback, that accepts sends
        (answering each with a fresh provider id); what it yields has ``.url``. One per
        class, started before the server."""
        raise NotImplementedError(
            f"{type(self).__name__} must define provider(): a context manager yielding a fake"
            " of the provider's API (e.g. omnichannel_core.testing.FakeProvider) with a .url"
        )

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        """The channel's settings (server environment variables) pointing at the fake at
        ``provider_url``; a value of None removes a variable."""
        raise NotImplementedError(
            f"{type(self).__name__} must define environ(provider_url): the channel's"
            " settings, with its API base URL pointing at the fake"
        )

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        """The webhook a provider sends for one text message ``text`` from ``sender`` (the
        customer's address on the channel, the contact's identity), with the provider's id
        ``provider_message_id``, signed as the provider signs it."""
        raise NotImplementedError(
            f"{type(self).__name__} must define inbound(provider_message_id, sender, text):"
            " a signed WebhookCall carrying one text message"
        )

    def status(
        self, provider_message_id: str, recipient: str, status: DeliveryStatus
    ) -> WebhookCall:
        """The callback a provider sends when the message it knows as
        ``provider_message_id``, sent to ``recipient``, reached ``status`` (DELIVERED or
        READ), signed as the provider signs it. A channel whose provider reports no
        delivery status leaves it undefined (the status test is then skipped, unless the
        channel implements the ``status`` hook)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define status(provider_message_id, recipient,"
            " status): a signed WebhookCall moving one sent message to that status"
        )

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        """The environment of a server where the channel has no settings; map a variable to
        None to remove it should the test run's own environment set it."""
        return {}

    def new_address(self) -> str:
        """A customer address on the channel that no other test uses."""
        return f"conformance-{uuid.uuid4().hex[:16]}"

    def new_provider_message_id(self) -> str:
        """A provider message id that no other test uses."""
        return f"conformance-{uuid.uuid4().hex}"

    def forge(self, call: WebhookCall) -> WebhookCall:
        """``call`` with a signature the channel must refuse. By default, the headers that
        sign it (those that differ between two webhooks) come from another webhook."""
        other = self._other_webhook()
        signing = self._signing_headers(call, other)
        return attrs.evolve(
            call, headers={**call.headers, **{h: other.headers[h] for h in signing}}
        )

    def unsign(self, call: WebhookCall) -> WebhookCall:
        """``call`` without its signature. By default, without the headers that differ
        between two webhooks."""
        signing = self._signing_headers(call, self._other_webhook())
        return attrs.evolve(
            call, headers={k: v for k, v in call.headers.items() if k not in signing}
        )

    def _other_webhook(self) -> WebhookCall:
        return self.inbound(self.new_provider_message_id(), self.new_address(), "another text")

    def _signing_headers(self, call: WebhookCall, other: WebhookCall) -> set[str]:
        signing = {name for name, value in call.headers.items() if other.headers.get(name) != value}
        if not signing:
            pytest.fail(
                f"two webhooks from {type(self).__name__}.inbound() carry the same headers, so"
                " the suite cannot tell which of them sign a webhook: define forge(call) and"
                " unsign(call) to return the call with a wrong and with no signature",
                pytrace=False,
            )
        return signing
