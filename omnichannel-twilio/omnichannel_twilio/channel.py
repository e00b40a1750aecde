"""The Twilio channel's hook implementations (being built: see issue 3)."""

from __future__ import annotations

from omnichannel_core import hookimpl
from omnichannel_core.config import Config
from omnichannel_core.hooktypes import ChannelHealth

REQUIRED = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER")


class TwilioChannel:
    @hookimpl
    def health(self, config: Config) -> ChannelHealth:
        missing = [name for name in REQUIRED if not config.environ.get(name)]
        return ChannelHealth(ok=not missing, detail="not configured: " + ", ".join(missing))
