"""How the core fetches the media of an inbound Twilio message (the ``media_fetch`` hook).

Twilio names each item by a ``MediaUrl`` on its REST API
(``https://api.twilio.com/2010-04-01/Accounts/AC.../Messages/MM.../Media/ME...``), which
answers with a redirect to where the bytes are: ``mms.twiliocdn.com`` (for accounts that
enforce HTTP basic auth on media, a URL valid 4 hours) or ``s3-external-1.amazonaws.com``
(older, public media), as Twilio's support pages describe. So the API's host (the one of
``TWILIO_API_BASE_URL``) gets the account SID and auth token as basic auth, and the
redirect may lead to the hosts of ``TWILIO_MEDIA_HOSTS`` (by default ``*.twiliocdn.com``
and ``s3-external-1.amazonaws.com``), which get no credentials: the core sends them to the
first URL's host only. A ``MediaUrl`` on any other host is fetched without credentials,
only if it is one of those hosts.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from omnichannel_core.channel import Config, Media, MediaFetch
from omnichannel_twilio.settings import TwilioSettings

DEFAULT_MEDIA_HOSTS = ("*.twiliocdn.com", "s3-external-1.amazonaws.com")
"""Where Twilio's API redirects a media URL to."""


def media_hosts(config: Config) -> tuple[str, ...]:
    """``TWILIO_MEDIA_HOSTS`` (comma-separated; ``*.example.com`` for its subdomains), or
    Twilio's own CDN hosts when unset."""
    raw = config.settings.get("TWILIO_MEDIA_HOSTS", "")
    hosts = tuple(host.strip().lower() for host in raw.split(",") if host.strip())
    return hosts or DEFAULT_MEDIA_HOSTS


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def media_fetch_of(media: Media, config: Config, channel: str) -> MediaFetch:
    """The fetch of ``media``: basic auth for Twilio's API host; ChannelUnavailable while
    the account SID or auth token is missing (the core tries again later)."""
    settings = TwilioSettings.from_config(config)
    account_sid, auth_token = settings.require_credentials(channel)
    api = _origin(settings.api_base_url)
    headers = {}
    if _origin(media.url) == api:
        token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    hosts = (api[1] or "", *media_hosts(config))
    return MediaFetch(url=media.url, hosts=hosts, headers=headers)
