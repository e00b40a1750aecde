"""How the outbox resolves a message's pace from its channel's ``send_policy`` and the
configuration: per sender where the channel says so, ``OMNICHANNEL_SEND_RATES`` winning."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import Sender, SendPolicy
from omnichannel_core.modules.inbox.send_policies import SendPolicies

WHATSAPP = "whatsapp:+14155238886"


def numbers(address: str) -> Sender | None:
    """Like Twilio's: WhatsApp from its sender (80/s), SMS from one number (the rate)."""
    if address.startswith("whatsapp:"):
        return Sender(WHATSAPP, rate=80.0)
    return Sender("+15550000000")


class Provider:
    """A channel whose send_policy is ``policy`` (None: it has no such hook)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def loaded(self, channel: str) -> bool:
        return True

    def implements(self, channel: str, hook: str) -> bool:
        return self.policy is not None

    async def call(self, channel: str, hook: str, **kwargs: Any) -> Any:
        if isinstance(self.policy, Exception):
            raise self.policy
        return self.policy


def paces(policy: Any, addresses: list[str], **environ: str) -> list[tuple[str, float]]:
    config = Config.from_environ(environ, dotenv=None)

    async def resolve() -> list[tuple[str, float]]:
        resolved = await SendPolicies(Provider(policy), config).of("sms")  # type: ignore[arg-type]
        return [(pace.key, pace.rate) for pace in map(resolved.pace, addresses)]

    return asyncio.run(resolve())


PER_SENDER = SendPolicy(rate=1.0, sender=numbers)
ADDRESSES = ["+15551234567", "+15557654321", "whatsapp:+15551234567"]


def test_each_sender_is_paced_on_its_own_key():
    """Messages to any customer from one sender share its key; the sender's own rate wins
    over the channel's."""
    assert paces(PER_SENDER, ADDRESSES) == [
        ("sms:+15550000000", 1.0),
        ("sms:+15550000000", 1.0),
        (f"sms:{WHATSAPP}", 80.0),
    ]


def test_configured_rates_win_sender_first_then_channel_then_every_channel():
    """A sender's key in OMNICHANNEL_SEND_RATES wins over the channel's, which wins over the
    channel's defaults; ``*`` is every channel without a rate of its own."""
    configured = paces(PER_SENDER, ADDRESSES, OMNICHANNEL_SEND_RATES=f"sms=3,sms:{WHATSAPP}=200")
    assert configured == [("sms:+15550000000", 3.0)] * 2 + [(f"sms:{WHATSAPP}", 200.0)]
    everywhere = paces(PER_SENDER, ADDRESSES, OMNICHANNEL_SEND_RATES="*=0,other=5")
    assert everywhere == [("sms:+15550000000", 0.0)] * 2 + [(f"sms:{WHATSAPP}", 0.0)]


def test_one_pace_for_a_channel_without_senders_or_policy():
    """Without a sender function every message shares the channel's pace; without the hook,
    or with one that fails or answers nonsense, the defaults (10/s) apply."""
    assert paces(SendPolicy(rate=7.0), ADDRESSES[:2]) == [("sms", 7.0)] * 2
    for broken in (None, RuntimeError("bug"), "not a policy"):
        assert paces(broken, ADDRESSES[:1]) == [("sms", 10.0)]


@pytest.mark.parametrize(
    "raw",
    ["twilio", "twilio=fast", "=3", "twilio=-1", "twilio=nan", "twilio=1e9", ":x=1"],
)
def test_malformed_rates_stop_start_up_naming_the_variable(raw):
    """A malformed OMNICHANNEL_SEND_RATES is a ConfigError naming the variable."""
    with pytest.raises(ConfigError) as refused:
        Config.from_environ({"OMNICHANNEL_SEND_RATES": raw}, dotenv=None)
    assert "OMNICHANNEL_SEND_RATES" in refused.value.message
