"""``client_address``: the connection's peer unless the proxy is trusted, then the left-most
valid address of the forwarding header Falcon's ``access_route`` reads."""

from __future__ import annotations

import pytest
from falcon import testing

from omnichannel_core.web.client_address import client_address, parse_address

PEER = "10.0.0.9"


def request(headers: dict[str, str] | None = None, peer: str = PEER):
    return testing.create_asgi_req(headers=headers or {}, remote_addr=peer)


def test_untrusted_forwarded_headers_are_ignored():
    """Without OMNICHANNEL_TRUST_PROXY, forwarding headers (which anyone can send) do not
    change the address: it is the connection's peer."""
    req = request(
        {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=198.51.100.1", "X-Real-IP": "1.1.1.1"}
    )
    assert client_address(req, trust_proxy=False) == PEER


def test_no_forwarding_header_means_the_peer_even_when_trusted():
    """Trusting a proxy, a request without forwarding headers is the peer's."""
    assert client_address(request(), trust_proxy=True) == PEER


def test_trusted_x_forwarded_for_gives_its_left_most_address():
    """X-Forwarded-For lists the client first, then each proxy: the first is the client."""
    req = request({"X-Forwarded-For": "203.0.113.7, 198.51.100.2, 10.0.0.1"})
    assert client_address(req, trust_proxy=True) == "203.0.113.7"


def test_trusted_forwarded_header_gives_its_first_for():
    """The RFC 7239 Forwarded header's first ``for=`` is the client; quotes, brackets and
    ports are removed."""
    req = request({"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.1'})
    assert client_address(req, trust_proxy=True) == "2001:db8:cafe::17"


def test_forwarded_wins_over_x_forwarded_for():
    """With both headers present, Forwarded is read, as Falcon's access_route does, so the
    audit log and webhook requests agree on the client."""
    req = request({"Forwarded": "for=198.51.100.1", "X-Forwarded-For": "203.0.113.7"})
    assert client_address(req, trust_proxy=True) == "198.51.100.1"
    assert req.access_route[0] == "198.51.100.1"


def test_x_real_ip_is_the_last_resort():
    """X-Real-IP is read only when neither Forwarded nor X-Forwarded-For is present."""
    req = request({"X-Real-IP": "203.0.113.9"})
    assert client_address(req, trust_proxy=True) == "203.0.113.9"


def test_entries_that_are_not_addresses_are_skipped():
    """``unknown``, obfuscated ``_names`` and garbage are passed over for the next valid
    address, left to right."""
    forwarded = request({"Forwarded": "for=unknown, for=_hidden, for=198.51.100.17"})
    assert client_address(forwarded, trust_proxy=True) == "198.51.100.17"
    x_forwarded = request({"X-Forwarded-For": "garbage, , 203.0.113.7:5555, 10.0.0.1"})
    assert client_address(x_forwarded, trust_proxy=True) == "203.0.113.7"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "not-an-address"},
        {"X-Forwarded-For": ""},
        {"Forwarded": 'for="[::1]:abc"'},  # makes Falcon's access_route raise
        {"Forwarded": "for=unknown"},
        {"Forwarded": "proto=https"},
    ],
)
def test_a_header_without_a_valid_address_falls_back_to_the_peer(headers):
    """A forwarding header with no valid address never raises: the peer is the client."""
    assert client_address(request(headers), trust_proxy=True) == PEER


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1:8080 ", "192.0.2.1"),
        ('"192.0.2.1"', "192.0.2.1"),
        ("2001:DB8::0001", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[2001:db8::1", None),
        ("example.com", None),
        ("_hidden", None),
        ("", None),
    ],
)
def test_parse_address_normalizes_or_refuses(raw, address):
    """Addresses are normalized (IPv6 compressed and lower case, IPv4-mapped IPv6 as IPv4),
    ports and quotes dropped; anything else is None."""
    assert parse_address(raw) == address


def test_peer_is_normalized_too():
    """An IPv4-mapped peer (a dual-stack socket) counts as its IPv4 address."""
    assert client_address(request(peer="::ffff:192.0.2.1"), trust_proxy=False) == "192.0.2.1"


def test_falcon_can_still_read_the_peer_afterwards():
    """Reading the peer leaves the ASGI scope readable, so Falcon's own ``remote_addr`` and
    ``access_route`` (used elsewhere in the same request) still see it."""
    req = request({"X-Forwarded-For": "203.0.113.7"})
    assert client_address(req, trust_proxy=False) == PEER
    assert req.remote_addr == PEER
    assert req.access_route == ["203.0.113.7", PEER]
