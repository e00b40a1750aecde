"""The conformance suite: what every channel must do, checked against the real server.

A channel's test module subclasses :class:`ChannelConformance` (under a name pytest
collects, ``Test...``) and says how to fake its provider and sign its webhooks; the suite
then starts the real gunicorn server with the channel loaded from its installed entry
point, once per class, and checks the contract the core relies on: hook implementations
that match the hookspecs, 501 for the generic routes whose hook is missing, a webhook
stored and readable through the inbox API, retries stored once, statuses applied forward
only, forged and unsigned webhooks refused with nothing stored, and a health report of
the documented shape, configured and not. Each failure says what the channel got wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from omnichannel_core.models import DeliveryStatus
from omnichannel_core.testing.channel_under_test import ChannelUnderTest
from omnichannel_core.testing.conformance_servers import ConformanceServers
from omnichannel_core.testing.hook_check import hookspec_problems, load_channel
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess
from omnichannel_core.testing.webhook_call import WebhookCall

GENERIC_ROUTES: dict[str, tuple[str, str]] = {
    "receive": ("POST", "webhook"),
    "status": ("POST", "status"),
    "send": ("POST", "messages"),
    "health": ("GET", "health"),
}
"""The hook behind each generic route every channel gets: (method, path)."""

RETRIES = 3


def _brief(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:300]!r}"


def _health_shape_problems(report: Any, channel: str) -> list[str]:
    """What is wrong with a health report's shape: ``ok`` bool, ``detail`` str, ``checks``
    object."""
    if not isinstance(report, dict):
        return [f"the health report is {type(report).__name__}, not an object"]
    expected = {"ok": bool, "detail": str, "checks": dict}
    return [
        f"health {field!r} is {report.get(field)!r}, not a {kind.__name__}"
        f" (health must return ChannelHealth(ok, detail, checks) for {channel!r})"
        for field, kind in expected.items()
        if not isinstance(report.get(field), kind)
    ]


SEND_WAIT_SECONDS = 20
"""How long a send waits for the outbox's first attempt (its runner runs beside the server)."""


class ChannelConformance(ConformanceServers):
    """Subclass as ``Test<Name>Conformance``, set :attr:`channel`, and define
    :meth:`provider`, :meth:`environ`, :meth:`inbound` and (when the channel reports
    delivery statuses) :meth:`status`. The class itself is not collected (no ``Test``
    prefix). Override :meth:`new_address`, :meth:`new_provider_message_id`,
    :meth:`forge` or :meth:`unsign` when the defaults do not fit the provider.

    What to define is :class:`ChannelUnderTest`'s; the servers and clients the tests take
    are :class:`ConformanceServers`' class-scoped fixtures; the tests are here.
    """

    # helpers of the tests ------------------------------------------------------------

    def _require(self, hooks: frozenset[str], hook: str, needed_for: str) -> None:
        if hook not in hooks:
            pytest.skip(f"channel {self.channel!r} does not implement {hook}: {needed_for}")

    def _deliver(self, client: httpx.Client, call: WebhookCall, what: str) -> httpx.Response:
        response = call.post(client, self.channel)
        assert response.is_success, (
            f"{what}: POST /api/channels/{self.channel}/{call.path} answered {_brief(response)};"
            " a webhook the provider signed must be accepted with a 2xx (or the test's"
            " inbound()/status() does not sign it as the provider does)"
        )
        return response

    def _require_status_callbacks(self, hooks: frozenset[str]) -> None:
        if type(self).status is not ChannelUnderTest.status:
            return
        if "status" in hooks:
            pytest.fail(
                f"channel {self.channel!r} implements the status hook, so"
                f" {type(self).__name__} must define status(provider_message_id, recipient,"
                " status): the signed callback moving one sent message to that status",
                pytrace=False,
            )
        pytest.skip(
            f"{type(self).__name__} defines no status() and channel {self.channel!r} does"
            " not implement the status hook: no delivery statuses to check"
        )

    def _sent(
        self, public: httpx.Client, api: httpx.Client, hooks: frozenset[str], recipient: str
    ) -> dict[str, Any]:
        """A message sent to ``recipient`` through the messages route, in answer to a
        message from them when the channel receives (some providers, such as Messenger,
        let a business write only to a customer who wrote recently)."""
        if "receive" in hooks:
            hello = self.inbound(self.new_provider_message_id(), recipient, "conformance: hi")
            self._deliver(public, hello, "the customer's message before the reply")
        response = api.post(
            f"/api/channels/{self.channel}/messages",
            json={"to": recipient, "text": "conformance: a sent message"},
            headers={"Prefer": f"wait={SEND_WAIT_SECONDS}"},  # the first attempt's outcome
        )
        assert response.status_code == 201, (
            f"sending to {recipient!r} through POST /api/channels/{self.channel}/messages"
            f" with Prefer: wait={SEND_WAIT_SECONDS} answered {_brief(response)}, not 201:"
            " send failed against the fake provider"
        )
        message = response.json()
        assert message["provider_message_id"], (
            f"the message sent to {recipient!r} has no provider_message_id (status"
            f" {message['status']!r}): send must return SendResult(provider_message_id=...)"
            " with the provider's id, which status callbacks name"
        )
        return message

    # the suite -----------------------------------------------------------------------

    def test_hook_implementations_match_the_hookspecs(self) -> None:
        """Every hook implementation of the channel names a hook of the hookspecs and takes
        only that hook's arguments (pluggy's own validation, as the server registers it)."""
        problem = self._entry_point_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        problems = hookspec_problems(self.channel, load_channel(self.channel))
        assert not problems, "\n".join(problems)

    def test_missing_hooks_answer_501(
        self, conformance_api: httpx.Client, conformance_hooks: frozenset[str]
    ) -> None:
        """Each generic route whose hook the channel does not implement answers 501 with a
        JSON error naming the hook, and the server serves the rest."""
        missing = [hook for hook in GENERIC_ROUTES if hook not in conformance_hooks]
        if not missing:
            pytest.skip(
                f"channel {self.channel!r} implements every hook behind a generic route"
                f" ({', '.join(GENERIC_ROUTES)}): no route to answer 501"
            )
        problems = []
        for hook in missing:
            method, path = GENERIC_ROUTES[hook]
            payload = {"to": self.new_address(), "text": "conformance"} if hook == "send" else {}
            response = conformance_api.request(
                method,
                f"/api/channels/{self.channel}/{path}",
                json=payload if method == "POST" else None,
            )
            body = response.json() if "json" in response.headers.get("content-type", "") else None
            if (
                response.status_code != 501
                or not isinstance(body, dict)
                or body.get("hook") != hook
            ):
                problems.append(
                    f"{method} {path} (no {hook} hook) answered {_brief(response)}, not 501"
                    f" with a JSON error naming {hook!r}"
                )
        assert not problems, "\n".join(problems)

    def test_webhook_message_is_stored(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """A signed webhook carrying one text message is stored: the inbox API shows one
        inbound message with the provider's id and the text, from a contact whose identity
        on the channel is the sender."""
        self._require(conformance_hooks, "receive", "no webhook to store")
        provider_id, sender = self.new_provider_message_id(), self.new_address()
        text = f"conformance round trip {uuid.uuid4().hex[:8]}"
        self._deliver(conformance_public, self.inbound(provider_id, sender, text), "the webhook")
        inbox = InboxReader(conformance_api)
        stored = inbox.messages_with_provider_id(self.channel, provider_id)
        assert len(stored) == 1, (
            f"after the webhook carrying provider id {provider_id!r} was accepted, the inbox"
            f" holds {len(stored)} messages with that id on {self.channel!r}, not 1: receive"
            " must return WebhookResult(messages=(InboundMessage(provider_message_id=...),))"
            " with the provider's id"
        )
        (message,) = stored
        assert message["direction"] == "inbound", f"stored as {message['direction']!r}"
        assert message["text"] == text, (
            f"the message was stored with text {message['text']!r}, not the {text!r} the"
            " webhook carried"
        )
        identities = inbox.contact(message["contact_id"])["identities"]
        assert {"channel": self.channel, "address": sender} in identities, (
            f"the message was stored for a contact with identities {identities}, not one"
            f" reached at {sender!r} on {self.channel!r}: InboundMessage.sender must be the"
            " customer's address the webhook names"
        )

    def test_retried_webhook_is_stored_once(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """The same webhook delivered three times (a provider's retries) is accepted each
        time and stored once."""
        self._require(conformance_hooks, "receive", "no webhook to retry")
        provider_id = self.new_provider_message_id()
        call = self.inbound(provider_id, self.new_address(), "conformance: retried")
        for attempt in range(1, RETRIES + 1):
            self._deliver(conformance_public, call, f"delivery {attempt} of the same webhook")
        stored = InboxReader(conformance_api).messages_with_provider_id(self.channel, provider_id)
        assert len(stored) == 1, (
            f"the same webhook delivered {RETRIES} times stored {len(stored)} messages with"
            f" provider id {provider_id!r}, not 1: the store keeps one message per (channel,"
            " provider_message_id), so receive must give the provider's id unchanged"
        )

    def test_status_moves_forward_only(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """A message sent through the channel's messages route (after the customer wrote,
        when the channel receives) moves to delivered on a DELIVERED callback, then to read
        on a READ one, and stays read when a DELIVERED callback arrives after it."""
        self._require(conformance_hooks, "send", "no message to send and track")
        self._require_status_callbacks(conformance_hooks)
        recipient = self.new_address()
        message = self._sent(conformance_public, conformance_api, conformance_hooks, recipient)
        provider_id = message["provider_message_id"]
        inbox = InboxReader(conformance_api)
        first = self.status(provider_id, recipient, DeliveryStatus.DELIVERED)
        self._deliver(conformance_public, first, "the DELIVERED callback")
        now = inbox.message(message["id"])["status"]
        assert now == "delivered", (
            f"after a DELIVERED callback for provider id {provider_id!r} the message is"
            f" {now!r}, not 'delivered': the callback must return StatusUpdate("
            "provider_message_id, DELIVERED) (or a StatusWatermark for the recipient)"
        )
        read = self.status(provider_id, recipient, DeliveryStatus.READ)
        self._deliver(conformance_public, read, "the READ callback")
        now = inbox.message(message["id"])["status"]
        assert now == "read", (
            f"after a READ callback for provider id {provider_id!r} the message is {now!r},"
            " not 'read': the callback must return StatusUpdate(provider_message_id, READ)"
            " (or a StatusWatermark for the recipient)"
        )
        delivered = self.status(provider_id, recipient, DeliveryStatus.DELIVERED)
        self._deliver(conformance_public, delivered, "the DELIVERED callback after READ")
        now = inbox.message(message["id"])["status"]
        assert now == "read", (
            f"a DELIVERED callback after READ left the message {now!r}: statuses move forward"
            " only, so it must stay 'read'"
        )

    def test_forged_signature_is_refused(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """A webhook with a signature that does not match it is answered 403 and nothing
        is stored."""
        self._check_refused(conformance_public, conformance_api, conformance_hooks, self.forge)

    def test_unsigned_webhook_is_refused(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """A webhook without its signature is answered 403 and nothing is stored."""
        self._check_refused(conformance_public, conformance_api, conformance_hooks, self.unsign)

    def _check_refused(
        self,
        public: httpx.Client,
        api: httpx.Client,
        hooks: frozenset[str],
        tamper: Callable[[WebhookCall], WebhookCall],
    ) -> None:
        self._require(hooks, "receive", "no webhook to authenticate")
        provider_id = self.new_provider_message_id()
        call = tamper(self.inbound(provider_id, self.new_address(), "conformance: forged"))
        response = call.post(public, self.channel)
        assert response.status_code == 403, (
            f"a webhook that is not signed right ({tamper.__name__}) answered"
            f" {_brief(response)}, not 403: receive must check the signature and raise"
            " WebhookRejected"
        )
        stored = InboxReader(api).messages_with_provider_id(self.channel, provider_id)
        assert not stored, f"the refused webhook's message {provider_id!r} was stored anyway"

    def test_health_report_has_the_documented_shape(
        self,
        conformance_api: httpx.Client,
        conformance_public: httpx.Client,
        conformance_hooks: frozenset[str],
    ) -> None:
        """Configured against the fake, the channel's health is ok, with ``ok`` (bool),
        ``detail`` (str) and ``checks`` (object), on its own route (200) and in ``/health``."""
        self._require(conformance_hooks, "health", "the server reports it as 'no health hook'")
        response = conformance_api.get(f"/api/channels/{self.channel}/health")
        report = response.json()
        problems = _health_shape_problems(report, self.channel)
        assert not problems, "\n".join(problems)
        assert report["ok"] is True and response.status_code == 200, (
            f"configured against the fake provider, the channel's health answered"
            f" {_brief(response)}: it should be ok (or environ() misses a setting)"
        )
        overall = conformance_public.get("/health").json()["channels"].get(self.channel)
        problems = _health_shape_problems(overall, self.channel)
        assert not problems, "in GET /health: " + "\n".join(problems)

    def test_unconfigured_server_starts_and_health_says_why(
        self, conformance_unconfigured_server: ServerProcess
    ) -> None:
        """Without its settings the channel still loads and the server serves; its health
        is not ok (503) and its detail says why."""
        hooks = self._loaded_hooks(conformance_unconfigured_server)
        self._require(hooks, "health", "the server started; no health report to check")
        with conformance_unconfigured_server.client() as api:
            response = api.get(f"/api/channels/{self.channel}/health")
        report = response.json()
        problems = _health_shape_problems(report, self.channel)
        assert not problems, "\n".join(problems)
        assert report["ok"] is False and response.status_code == 503, (
            f"without its settings ({dict(self.unconfigured_environ())}) the channel's health"
            f" answered {_brief(response)}: it must say ok=false"
        )
        assert report["detail"].strip(), (
            "the unconfigured channel's health has an empty detail: it must say what is"
            " missing (e.g. 'not configured: API_TOKEN')"
        )
