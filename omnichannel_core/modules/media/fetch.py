"""Fetching a provider's media over HTTP by the SSRF rules, as the channel's ``media_fetch``
hook describes it (:class:`MediaFetch`):

- only ``http`` and ``https`` URLs, on the hosts the channel names (``*.example.com``: any
  subdomain of it), at every hop;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each hop checked again;
- each hop's host must resolve to public addresses only (no private, loopback,
  link-local, shared, multicast or reserved one) unless ``OMNICHANNEL_MEDIA_FETCH_PRIVATE``
  allows them (tests); the request then goes to the very address that was checked (the
  URL's host in ``Host`` and in TLS), so a second lookup cannot lead elsewhere;
- the channel's headers (credentials) go to the first URL's origin only, never to a host
  a redirect leads to;
- the body is read as it streams, and refused once larger than the limit;
- environment proxies are not used (they would make the address checks moot).

A failure is :class:`FetchRefused` (it will not get better: a host not allowed, a 404, too
large) or :class:`FetchFailed` (worth trying again: a 5xx, a 429, no connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from email.message import Message as MimeHeaders

import attrs
import httpx

from omnichannel_core.channel import MediaFetch

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE = frozenset({408, 425, 429})
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class FetchRefused(Exception):
    """The media will not be fetched, whatever the retries."""


class FetchFailed(Exception):
    """This attempt failed; another may succeed (after ``retry_after`` seconds, when the
    provider said)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@attrs.frozen
class Fetched:
    content: bytes
    content_type: str | None
    filename: str | None


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """True when ``host`` is one of ``patterns`` (``*.example.com``: any subdomain of
    example.com, not example.com itself); case and a final dot do not count."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(network)
    for network in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")
)
"""IPv6 networks whose addresses carry an IPv4 one (IPv4-compatible, NAT64, 6to4,
Teredo): refused outright, since what they reach is an IPv4 address that may be private,
and no provider serves media from one."""


def is_public(address: str) -> bool:
    """True for an address on the public internet (an IPv4-mapped IPv6 address counts as
    its IPv4 one; one of :data:`EMBEDDING_IPV4` never does)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in network for network in EMBEDDING_IPV4):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


async def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``, in the resolver's order: every address it
    resolves to must be public (unless ``allow_private``); FetchRefused when one is not,
    FetchFailed when the lookup fails."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchFailed(f"{host} could not be resolved: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise FetchFailed(f"{host} resolves to no address")
    if not allow_private:
        private = [address for address in addresses if not is_public(address)]
        if private:
            raise FetchRefused(
                f"{host} resolves to a private, loopback or link-local address ({private[0]})"
            )
    return addresses


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    headers = MimeHeaders()
    headers["Content-Disposition"] = disposition
    return headers.get_filename()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


async def fetch_media(
    spec: MediaFetch, limit: int, allow_private: bool, client: httpx.AsyncClient
) -> Fetched:
    """The bytes at ``spec.url``, by the rules above; ``client`` must not follow redirects
    nor read the environment's proxies (:func:`fetch_client`)."""
    try:
        url = httpx.URL(spec.url)
    except httpx.InvalidURL:
        raise FetchRefused(f"not a URL: {spec.url[:200]!r}") from None
    first = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchRefused(f"only http(s) URLs are fetched, not {str(url)[:200]!r}")
        if not host_allowed(url.host, spec.hosts):
            raise FetchRefused(f"host {url.host!r} is not one the channel allows")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await checked_addresses(url.host, port, allow_private)
        headers = {"Host": url.netloc.decode("ascii")}
        if _origin(url) == first:
            headers.update(spec.headers)
        response = await _send(client, url, addresses, headers)
        try:
            if response.status_code in REDIRECTS and "Location" in response.headers:
                url = url.join(response.headers["Location"])
                continue
            return await _read(response, url, limit)
        finally:
            await response.aclose()
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


async def _send(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[str], headers: dict[str, str]
) -> httpx.Response:
    """GET ``url`` from the first of ``addresses`` that takes the connection (the URL's
    host still named in ``Host`` and in TLS); its response, streaming."""
    failure: httpx.HTTPError | None = None
    for address in addresses:
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers=headers,
            extensions={"sni_hostname": url.host},
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as error:
            failure = error  # the next address, as a resolver's caller would
        except httpx.HTTPError as error:
            raise FetchFailed(f"{url.host}: {type(error).__name__}: {error}") from None
    raise FetchFailed(f"{url.host}: {type(failure).__name__}: {failure}")


async def _read(response: httpx.Response, url: httpx.URL, limit: int) -> Fetched:
    status = response.status_code
    if status in RETRYABLE or status >= 500:
        raise FetchFailed(f"{url.host} answered {status}", _retry_after(response))
    if not 200 <= status < 300:
        raise FetchRefused(f"{url.host} answered {status}")
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limit:
        raise FetchRefused(f"the media is larger than {limit} bytes (OMNICHANNEL_MEDIA_MAX_BYTES)")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FetchRefused(
                    f"the media is larger than {limit} bytes (OMNICHANNEL_MEDIA_MAX_BYTES)"
                )
            chunks.append(chunk)
    except httpx.HTTPError as error:
        raise FetchFailed(f"{url.host}: {type(error).__name__}: {error}") from None
    return Fetched(
        b"".join(chunks),
        response.headers.get("Content-Type"),
        _filename(response.headers.get("Content-Disposition")),
    )


def fetch_client() -> httpx.AsyncClient:
    """The client :func:`fetch_media` needs: no redirects followed for it, no proxies from
    the environment, a timeout."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=TIMEOUT)
