"""The client's IP address, for rate limits and the audit log.

With ``OMNICHANNEL_TRUST_PROXY`` off (0, the default) it is the connection's peer as the ASGI
server reports it (see below): the app reads no forwarding header, since anyone can send them.

Set to N, it says N proxies of yours stand in front of the server, and the client is the N-th
entry from the *right* of the one forwarding header your proxies write,
``OMNICHANNEL_PROXY_HEADER`` (``X-Forwarded-For`` by default, or ``Forwarded`` or
``X-Real-IP``). Only that header is read: a proxy passes the others through as the client
sent them, so reading whichever is present would let a client choose its address by sending
one the proxy does not write. Counting from the right because each proxy adds, at the right
end, the address the request came to it from: the right-most N entries were written by
proxies you trust, and the N-th of them is whoever connected to the outermost one. Everything
to its left is what the client sent, and is ignored: a proxy that *appends* (nginx's
``$proxy_add_x_forwarded_for``, most load balancers) keeps the client's own
``X-Forwarded-For``, so its left-most entry is whatever the client chose. With one proxy the
client is the right-most entry whether that proxy appends or replaces the header, so 1
(``true``) is right for both. A header with fewer than N entries gives its left-most one (the
client sent none). N must not exceed the proxies on any path to the server: one more, and the
count reaches into what the client sent.

An entry that is not an IP address (``unknown``, RFC 7239 obfuscated ``_names``, an empty or
garbled entry, a ``Forwarded`` element without ``for=``) still counts as a hop. If the chosen
entry is one, the client is the connection's peer rather than the next valid entry: those to
its left are the client's own words, so skipping would let a client pick its address by
sending it before a garbled one. Unlike ``access_route`` and, on ASGI, ``remote_addr``, a
malformed header never raises.

The "peer" is what the ASGI server reports, and uvicorn (under gunicorn) already replaces
it, and the scheme, from ``X-Forwarded-For``/``X-Forwarded-Proto`` when the connection comes
from ``FORWARDED_ALLOW_IPS`` (gunicorn's ``forwarded_allow_ips``, loopback by default),
taking the right-most address it does not trust, which a client cannot forge. So with a
proxy on the same host, the peer is already the client even with the setting off.
"""

from __future__ import annotations

import ipaddress
import re

import falcon

from omnichannel_core.config import Config

BRACKETED = re.compile(r"^\[([^\]]+)\](?::[0-9]{1,5})?$")
"""``[2001:db8::1]`` or ``[2001:db8::1]:443``."""
WITH_PORT = re.compile(r"^([^:\[\]]+):[0-9]{1,5}$")
"""``192.0.2.1:8080`` (one colon: not a bare IPv6 address)."""


def client_address(req: falcon.Request, trust_proxy: int, header: str) -> str:
    """The client's address, normalized (``::ffff:192.0.2.1`` is ``192.0.2.1``).

    :param req: the request (ASGI or WSGI).
    :param trust_proxy: how many proxies of yours stand in front of the server
        (``OMNICHANNEL_TRUST_PROXY``); 0 reads no forwarding header.
    :param header: the one forwarding header they write (``OMNICHANNEL_PROXY_HEADER``, one
        of `omnichannel_core.config.PROXY_HEADERS`).
    :returns: the ``trust_proxy``-th entry from the right of the forwarding header (its
        left-most with fewer entries); the connection's peer when the setting is 0, no
        forwarding header is present, or that entry is not an IP address.
    """
    if trust_proxy > 0:
        entries = _forwarding_entries(req, header)
        if entries:
            address = parse_address(entries[max(len(entries) - trust_proxy, 0)])
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


def _forwarding_entries(req: falcon.Request, header: str) -> list[str]:
    """The entries of ``header``, left to right, one per hop.

    ``Forwarded`` is split at every comma, quoted or not, rather than read through Falcon's
    ``req.forwarded``: no address contains a comma, so each element a proxy appended stays one
    entry whatever the client sent before it, whereas in Falcon's parser a quote the client
    leaves open swallows the proxies' elements up to their next quote, and the count would
    land on an entry of the client's. An element without ``for=`` is kept, as ``""``: a proxy
    added it, and dropping it would shift the client's entries towards the right."""
    value = req.get_header(header)
    if value is None:
        return []
    if header == "forwarded":
        return [_forwarded_for(element) for element in value.split(",")]
    if header == "x-real-ip":
        return [value]
    return value.split(",")


def _forwarded_for(element: str) -> str:
    """The raw ``for=`` value of one ``Forwarded`` element (``for="[::1]:80";proto=https``),
    or ``""`` when it has none."""
    for pair in element.split(";"):
        name, _, value = pair.partition("=")
        if name.strip().lower() == "for":
            return value
    return ""


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


def caller_address(req: falcon.Request, config: Config) -> str:
    """The caller's address, as the rate limits and the audit log count it (behind
    ``OMNICHANNEL_TRUST_PROXY`` proxies, the address they give)."""
    return client_address(req, config.trust_proxy, config.proxy_header)
