"""``OMNICHANNEL_TRUST_PROXY``: a boolean, as it used to be, or the number of proxies in front
of the server."""

from __future__ import annotations

import pytest

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError


def trust_proxy_of(environ: dict[str, str]) -> int:
    return Config.from_environ(environ, dotenv=None).trust_proxy


def test_off_by_default():
    """Unset or empty, no proxy is trusted (0, which callers read as false)."""
    assert trust_proxy_of({}) == 0
    assert trust_proxy_of({"OMNICHANNEL_TRUST_PROXY": ""}) == 0
    assert not Config().trust_proxy


@pytest.mark.parametrize(
    ("raw", "hops"),
    [
        ("false", 0),
        ("FALSE", 0),
        ("no", 0),
        ("off", 0),
        ("0", 0),
        ("true", 1),
        (" True ", 1),
        ("yes", 1),
        ("on", 1),
        ("1", 1),
        ("2", 2),
        (" 3 ", 3),
        ("10", 10),
    ],
)
def test_booleans_and_counts_are_accepted(raw, hops):
    """The booleans it took before still work (false is 0, true is 1 proxy); a whole number
    of 0 or more is that many proxies. The value is truthy exactly when on."""
    parsed = trust_proxy_of({"OMNICHANNEL_TRUST_PROXY": raw})
    assert parsed == hops
    assert type(parsed) is int
    assert bool(parsed) is (hops > 0)


@pytest.mark.parametrize("raw", ["maybe", "-1", "1.5", "two", "+2", "1_0", "2 proxies", "٣"])
def test_a_bad_value_raises_one_line_naming_the_variable(raw):
    """Anything else is a ConfigError naming the variable, what it accepts and what it got."""
    with pytest.raises(ConfigError) as raised:
        trust_proxy_of({"OMNICHANNEL_TRUST_PROXY": raw})
    message = raised.value.message
    assert message == (
        "OMNICHANNEL_TRUST_PROXY: must be true, false or a number of proxies (0 or more),"
        f" got {raw!r}"
    )
    assert raised.value.details["variable"] == "OMNICHANNEL_TRUST_PROXY"
