"""``client_address``: the connection's peer unless proxies are trusted, then the entry as
many places from the right of the one forwarding header they write as there are trusted
proxies."""

from __future__ import annotations

import falcon
import falcon.asgi
import pytest
from falcon import testing

from omnichannel_core.config import Config
from omnichannel_core.routes import Operation, Response, Route
from omnichannel_core.web.client_address import client_address, parse_address
from omnichannel_core.web.errors import install_error_handlers
from omnichannel_core.web.mounting import Mounts
from omnichannel_core.web.protection import RateLimits

PEER = "10.0.0.9"
"""The last proxy, as the server sees the connection."""
FORGED = "198.51.100.66"
"""An address a client puts in its own forwarding header."""
XFF, FORWARDED, X_REAL_IP = "x-forwarded-for", "forwarded", "x-real-ip"


def request(headers: dict[str, str] | None = None, peer: str = PEER):
    return testing.create_asgi_req(headers=headers or {}, remote_addr=peer)


def test_untrusted_forwarded_headers_are_ignored():
    """Without OMNICHANNEL_TRUST_PROXY, forwarding headers (which anyone can send) do not
    change the address: it is the connection's peer."""
    req = request(
        {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=198.51.100.1", "X-Real-IP": "1.1.1.1"}
    )
    assert client_address(req, trust_proxy=0, header=XFF) == PEER


def test_no_forwarding_header_means_the_peer_even_when_trusted():
    """Trusting a proxy, a request without forwarding headers is the peer's."""
    assert client_address(request(), trust_proxy=1, header=XFF) == PEER


def test_one_appending_proxy_ignores_what_the_client_sent():
    """Through one proxy that appends to X-Forwarded-For (nginx's
    ``$proxy_add_x_forwarded_for``), the entries the client sent come first and the proxy's
    last: the client is the right-most entry, and forged ones to its left change nothing."""
    for forged in (FORGED, f"{FORGED}, 192.0.2.1", "127.0.0.1"):
        req = request({"X-Forwarded-For": f"{forged}, 203.0.113.7"})
        assert client_address(req, trust_proxy=1, header=XFF) == "203.0.113.7"


def test_one_replacing_proxy_gives_its_only_entry():
    """A proxy that replaces X-Forwarded-For leaves one entry, the client: 1 hop is right for
    it as well."""
    assert client_address(
        request({"X-Forwarded-For": "203.0.113.7"}), trust_proxy=1, header=XFF
    ) == ("203.0.113.7")


def test_true_counts_as_one_proxy():
    """``trust_proxy=True`` (how callers and older tests pass the setting) is 1 hop."""
    req = request({"X-Forwarded-For": f"{FORGED}, 203.0.113.7"})
    assert client_address(req, trust_proxy=True, header=XFF) == "203.0.113.7"


def test_two_proxies_take_the_second_entry_from_the_right():
    """With 2 trusted proxies the right-most entry is the outer proxy (as the inner one saw
    it) and the one before it the client; entries further left are the client's own."""
    req = request({"X-Forwarded-For": f"{FORGED}, 203.0.113.7, 10.0.0.1"})
    assert client_address(req, trust_proxy=2, header=XFF) == "203.0.113.7"
    assert client_address(req, trust_proxy=1, header=XFF) == "10.0.0.1"


def test_fewer_entries_than_proxies_give_the_left_most():
    """A header shorter than the count of trusted proxies gives its left-most entry."""
    req = request({"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    assert client_address(req, trust_proxy=3, header=XFF) == "203.0.113.7"
    real_ip = request({"X-Real-IP": "203.0.113.9"})
    assert client_address(real_ip, trust_proxy=2, header=X_REAL_IP) == "203.0.113.9"


@pytest.mark.parametrize(
    "chosen", ["garbage", "unknown", "_hidden", "", "203.0.113.7:x", "example.com"]
)
def test_an_entry_that_is_no_address_where_the_client_should_be_means_the_peer(chosen):
    """When the counted entry is not an IP address, the client is the peer, not the next
    valid entry to its left: that one is the client's to choose."""
    req = request({"X-Forwarded-For": f"{FORGED}, {chosen}"})
    assert client_address(req, trust_proxy=1, header=XFF) == PEER
    req = request({"X-Forwarded-For": f"{FORGED}, {chosen}, 10.0.0.1"})
    assert client_address(req, trust_proxy=2, header=XFF) == PEER


def test_entries_that_are_no_address_left_of_the_client_do_not_matter():
    """Garbage the client sent before the counted entry is never read."""
    req = request({"X-Forwarded-For": 'garbage, , "[::1]:x", 203.0.113.7:5555'})
    assert client_address(req, trust_proxy=1, header=XFF) == "203.0.113.7"


def test_trusted_forwarded_header_is_counted_from_the_right_too():
    """The RFC 7239 Forwarded header is counted by element, from the right; quotes, brackets
    and ports are removed."""
    req = request(
        {
            "Forwarded": f'for={FORGED}, for="[2001:db8:cafe::17]:4711";proto=https,'
            " for=10.0.0.1;proto=https"
        }
    )
    assert client_address(req, trust_proxy=2, header=FORWARDED) == "2001:db8:cafe::17"
    assert client_address(req, trust_proxy=1, header=FORWARDED) == "10.0.0.1"
    assert client_address(req, trust_proxy=5, header=FORWARDED) == FORGED


def test_a_forwarded_element_without_for_counts_as_a_hop():
    """A Forwarded element with no ``for=`` still is one proxy's: counting it, its missing
    address means the peer, rather than the client's element before it."""
    req = request({"Forwarded": f"for={FORGED}, proto=https;by=10.0.0.1"})
    assert client_address(req, trust_proxy=1, header=FORWARDED) == PEER


def test_a_quote_the_client_leaves_open_cannot_swallow_the_proxies_elements():
    """A client's unterminated quote does not merge the proxies' elements into its own (as
    Falcon's parser does, leaving the forged address where the count lands): elements are
    split at every comma."""
    header = f'for={FORGED}, for=", for=203.0.113.7, for="[2001:db8::2]"'
    req = request({"Forwarded": header})
    assert client_address(req, trust_proxy=2, header=FORWARDED) == "203.0.113.7"
    assert req.forwarded[0].src == FORGED  # what Falcon would count on


@pytest.mark.parametrize(
    ("header", "expected"),
    [("x-forwarded-for", "203.0.113.7"), ("forwarded", "198.51.100.1"), ("x-real-ip", PEER)],
)
def test_only_the_configured_header_is_read(header, expected):
    """The address comes from the one header the proxies write (OMNICHANNEL_PROXY_HEADER);
    the others are what a client sent and are ignored, whichever is present."""
    req = request({"Forwarded": "for=198.51.100.1", "X-Forwarded-For": "203.0.113.7"})
    assert client_address(req, trust_proxy=1, header=header) == expected


def test_a_client_cannot_choose_its_address_with_a_header_the_proxy_does_not_write():
    """Behind a proxy that appends to X-Forwarded-For, a Forwarded header the client sends
    changes nothing; behind one that sets X-Real-IP, neither does an X-Forwarded-For."""
    forged = request({"Forwarded": f"for={FORGED}", "X-Forwarded-For": "203.0.113.7"})
    assert client_address(forged, trust_proxy=1, header=XFF) == "203.0.113.7"
    forged = request({"X-Forwarded-For": FORGED, "X-Real-IP": "203.0.113.9"})
    assert client_address(forged, trust_proxy=1, header=X_REAL_IP) == "203.0.113.9"


def test_x_real_ip_is_one_entry():
    """X-Real-IP holds one address; a list in it is no address, so the peer."""
    real_ip = request({"X-Real-IP": "203.0.113.9"})
    assert client_address(real_ip, trust_proxy=1, header=X_REAL_IP) == "203.0.113.9"
    listed = request({"X-Real-IP": f"{FORGED}, 203.0.113.9"})
    assert client_address(listed, trust_proxy=1, header=X_REAL_IP) == PEER


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "not-an-address"},
        {"X-Forwarded-For": ""},
        {"X-Forwarded-For": ",,,"},
        {"Forwarded": 'for="[::1]:abc"'},  # makes Falcon's access_route raise
        {"Forwarded": 'for="[::1'},
        {"Forwarded": "for=unknown"},
        {"Forwarded": "proto=https"},
        {"Forwarded": ""},
        {"Forwarded": ";;=,=;"},
    ],
)
def test_a_header_without_a_valid_address_falls_back_to_the_peer(headers):
    """A forwarding header with no valid address never raises: the peer is the client."""
    for hops in (1, 2):
        for header in ("x-forwarded-for", "forwarded", "x-real-ip"):
            assert client_address(request(headers), trust_proxy=hops, header=header) == PEER


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
    assert (
        client_address(request(peer="::ffff:192.0.2.1"), trust_proxy=0, header=XFF) == "192.0.2.1"
    )


def test_falcon_can_still_read_the_peer_afterwards():
    """Reading the peer leaves the ASGI scope readable, so Falcon's own ``remote_addr`` and
    ``access_route`` (used elsewhere in the same request) still see it."""
    req = request({"X-Forwarded-For": "203.0.113.7"})
    assert client_address(req, trust_proxy=0, header=XFF) == PEER
    assert req.remote_addr == PEER
    assert req.access_route == ["203.0.113.7", PEER]


class Things:
    operations = {"GET": Operation("Things", public=True, responses={200: Response()})}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


def test_forged_entries_do_not_escape_the_address_rate_limit():
    """End to end, with the setting parsed from the environment: behind one appending proxy,
    a client that sends a new X-Forwarded-For each time is still one address, refused once
    its limit (1 a minute) is spent; another client has its own."""
    config = Config.from_environ(
        {"OMNICHANNEL_TRUST_PROXY": "true", "OMNICHANNEL_RATE_LIMIT": "1"}, dotenv=None
    )
    mounts = Mounts(config)
    app = falcon.asgi.App(middleware=[RateLimits(config, mounts, clock=lambda: 0.0)])
    install_error_handlers(app)
    mounts.mount(app, "test", Route("/things", Things()))
    client = testing.TestClient(app)
    statuses = [
        client.simulate_get(
            "/things", headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7"}
        ).status_code
        for n in range(3)
    ]
    assert statuses == [200, 429, 429]
    other = client.simulate_get("/things", headers={"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 200
