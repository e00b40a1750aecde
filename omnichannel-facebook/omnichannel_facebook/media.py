"""How the core fetches a Messenger attachment (the ``media_fetch`` hook).

Messenger names an image, audio, video or file attachment by a URL on Facebook's CDN
(``scontent.xx.fbcdn.net``, ``cdn.fbsbx.com``, ``lookaside.fbsbx.com``...), signed and
short-lived, readable without the page's token: the core fetches it soon after the webhook,
before it expires, from those hosts only (``FACEBOOK_MEDIA_HOSTS``, by default
``*.fbcdn.net`` and ``*.fbsbx.com``), and sends no credentials.
"""

from __future__ import annotations

from omnichannel_core.channel import Config, Media, MediaFetch

DEFAULT_MEDIA_HOSTS = ("*.fbcdn.net", "*.fbsbx.com")


def media_hosts(config: Config) -> tuple[str, ...]:
    """``FACEBOOK_MEDIA_HOSTS`` (comma-separated; ``*.example.com`` for its subdomains), or
    Facebook's CDN hosts when unset."""
    raw = config.settings.get("FACEBOOK_MEDIA_HOSTS", "")
    hosts = tuple(host.strip().lower() for host in raw.split(",") if host.strip())
    return hosts or DEFAULT_MEDIA_HOSTS


def media_fetch_of(media: Media, config: Config) -> MediaFetch:
    return MediaFetch(url=media.url, hosts=media_hosts(config))
