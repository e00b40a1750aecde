"""Each channel's send policy, as the outbox applies it: the channel's ``send_policy`` (or
the defaults), overridden by ``OMNICHANNEL_SEND_RATES``, ``OMNICHANNEL_SEND_RETRY_SECONDS``
and ``OMNICHANNEL_SEND_CONFIRM_SECONDS``.
"""

from __future__ import annotations

import time

import attrs
import structlog

from omnichannel_core.channel import SendPolicy
from omnichannel_core.module import Channels, Config, HookNotImplemented

log = structlog.get_logger("omnichannel.outbox")

EVERY_CHANNEL = "*"
"""The key of ``OMNICHANNEL_SEND_RATES`` for every channel without a rate of its own."""
POLICY_SECONDS = 60.0
"""How long a channel's policy is kept before its hook is asked again."""


@attrs.frozen
class Pace:
    """Where a message's sends are counted: ``key`` (``channel`` or ``channel:sender``) at
    ``rate`` messages per second (0: unpaced)."""

    key: str
    rate: float


@attrs.frozen
class ChannelPolicy:
    """A channel's policy with the configuration's overrides applied."""

    channel: str
    policy: SendPolicy
    rates: dict[str, float]
    retry_for: float
    confirm_within: float

    @property
    def resend_safe(self) -> bool:
        return self.policy.resend_safe

    def pace(self, address: str) -> Pace:
        """The pace of a message to ``address``: its sender's when the channel paces per
        sender, else the channel's; configured rates win over the channel's defaults."""
        sender = self.policy.sender(address) if self.policy.sender is not None else None
        configured = self.rates.get(self.channel, self.rates.get(EVERY_CHANNEL))
        if sender is None:
            return Pace(self.channel, self.policy.rate if configured is None else configured)
        key = f"{self.channel}:{sender.identity}"
        for rate in (self.rates.get(key), configured, sender.rate):
            if rate is not None:
                return Pace(key, rate)
        return Pace(key, self.policy.rate)


class SendPolicies:
    """The policy of each channel, asked of its hook once a minute at most."""

    def __init__(self, channels: Channels, config: Config) -> None:
        self.channels = channels
        self.config = config
        self._cache: dict[str, tuple[float, ChannelPolicy]] = {}

    async def of(self, channel: str) -> ChannelPolicy:
        cached = self._cache.get(channel)
        if cached is not None and time.monotonic() - cached[0] < POLICY_SECONDS:
            return cached[1]
        policy = self._resolve(channel, await self._hook_policy(channel))
        self._cache[channel] = (time.monotonic(), policy)
        return policy

    async def _hook_policy(self, channel: str) -> SendPolicy:
        if not self.channels.loaded(channel) or not self.channels.implements(
            channel, "send_policy"
        ):
            return SendPolicy()
        try:
            policy = await self.channels.call(channel, "send_policy", config=self.config)
        except HookNotImplemented:
            return SendPolicy()
        except Exception:
            log.exception("send_policy_failed", channel=channel)
            return SendPolicy()
        if not isinstance(policy, SendPolicy):
            log.error("send_policy_invalid", channel=channel, returned=type(policy).__name__)
            return SendPolicy()
        return policy

    def _resolve(self, channel: str, policy: SendPolicy) -> ChannelPolicy:
        config = self.config
        return ChannelPolicy(
            channel=channel,
            policy=policy,
            rates={
                key: rate
                for key, rate in config.send_rates.items()
                if key in (channel, EVERY_CHANNEL) or key.startswith(channel + ":")
            },
            retry_for=config.send_retry_seconds.get(channel, policy.retry_for),
            confirm_within=config.send_confirm_seconds.get(channel, policy.confirm_within),
        )
