"""The client's IP address, for rate limits and the audit log.

Without ``OMNICHANNEL_TRUST_PROXY`` it is the connection's peer as the ASGI server reports
it (see below): the app reads no forwarding header, since anyone can send them. With it, it
is the left-most valid address of the first forwarding header present, in Falcon's order of
preference (``Forwarded: for=``, else ``X-Forwarded-For``, else ``X-Real-IP``): the same
header ``req.access_route[0]`` reads, so webhooks (`omnichannel_core.web.body`) and this
agree on who the client is.

Left-most is the original client only when the proxy in front *replaces* the header rather
than appending to what the client sent (nginx: ``proxy_set_header X-Forwarded-For
$remote_addr``, not ``$proxy_add_x_forwarded_for``); otherwise a client chooses its own
address.

The "peer" is what the ASGI server reports, and uvicorn (under gunicorn) already replaces
it, and the scheme, from ``X-Forwarded-For``/``X-Forwarded-Proto`` when the connection comes
from ``FORWARDED_ALLOW_IPS`` (gunicorn's ``forwarded_allow_ips``, loopback by default),
taking the right-most address it does not trust, which a client cannot forge. So with a
proxy on the same host, the peer is already the client even with the setting off.

Entries that are not IP addresses (``unknown``, RFC 7239 obfuscated ``_names``,
garbage) are skipped, and a header with none falls back to the connection's peer: unlike
``access_route`` and, on ASGI, ``remote_addr``, a malformed header never raises.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import falcon

BRACKETED = re.compile(r"^\[([^\]]+)\](?::[0-9]{1,5})?$")
"""``[2001:db8::1]`` or ``[2001:db8::1]:443``."""
WITH_PORT = re.compile(r"^([^:\[\]]+):[0-9]{1,5}$")
"""``192.0.2.1:8080`` (one colon: not a bare IPv6 address)."""


def client_address(req: falcon.Request, trust_proxy: bool) -> str:
    """The client's address, normalized (``::ffff:192.0.2.1`` is ``192.0.2.1``).

    :param req: the request (ASGI or WSGI).
    :param trust_proxy: read the forwarding headers (``OMNICHANNEL_TRUST_PROXY``).
    """
    if trust_proxy:
        for candidate in _forwarded_candidates(req):
            address = parse_address(candidate)
            if address is not None:
                return address
    peer = connection_peer(req)
    return parse_address(peer) or peer


def connection_peer(req: falcon.Request) -> str:
    """The address of the connection's other end. On ASGI it is read from the scope:
    Falcon's ``req.remote_addr`` there is the last entry of ``access_route``, which parses the
    forwarding headers and raises on a malformed one that any client can send
    (``Forwarded: for="[::1]:x"``)."""
    scope = getattr(req, "scope", None)
    if scope is None:  # WSGI: REMOTE_ADDR, read without parsing any header
        return req.remote_addr
    client = scope.get("client")
    if client is not None and not isinstance(client, (tuple, list)):
        # ASGI allows any iterable, which may be read only once: keep it readable for Falcon.
        client = scope["client"] = tuple(client)
    return str(client[0]) if client else "127.0.0.1"


def _forwarded_candidates(req: falcon.Request) -> Iterable[str]:
    """The entries of the one forwarding header ``access_route`` would read, left to right."""
    if req.get_header("Forwarded") is not None:
        return [hop.src for hop in req.forwarded or () if hop.src]
    for name in ("X-Forwarded-For", "X-Real-IP"):
        value = req.get_header(name)
        if value is not None:
            return value.split(",")
    return []


def parse_address(raw: str) -> str | None:
    """The IP address in ``raw`` (``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``,
    ``[2001:db8::1]:443``, optionally quoted), normalized; None when there is none."""
    value = raw.strip().strip('"').strip()
    with_port = BRACKETED.match(value) or WITH_PORT.match(value)
    host = with_port.group(1) if with_port else value
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
