"""Customers' names from the User Profile API: filled when Facebook answers, cached, and
skipped (the message still stored) when it refuses; the cache's rules pinned in process."""

from __future__ import annotations

import pytest
from fake_graph import GRAPH_VERSION, GraphAnswer
from messenger_events import post_webhook, text_event, unique_psid, webhook
from omnichannel_facebook.graph_client import GraphError, GraphUnreachable
from omnichannel_facebook.profiles import (
    MAX_LOOKUPS_PER_WEBHOOK,
    NAME_TTL_SECONDS,
    PAUSE_SECONDS,
    REFUSED_TTL_SECONDS,
    ProfileNames,
    name_from_profile,
)

# through the server ----------------------------------------------------------------------


def test_contact_is_named_from_the_profile(client, inbox, fake_graph):
    """Facebook answering first and last name: the new contact is "First Last"; the lookup
    asked for those fields, with the token and the proof."""
    psid = unique_psid()
    fake_graph.set_profile(psid, {"first_name": "Ada", "last_name": "Lovelace"})
    assert post_webhook(client, webhook(text_event(psid, "hi"))).status_code == 200
    assert inbox.contact_of(psid)["display_name"] == "Ada Lovelace"
    [lookup] = fake_graph.profile_requests(psid)
    assert lookup.path == f"/{GRAPH_VERSION}/{psid}"
    assert lookup.query["fields"] == "first_name,last_name"
    assert lookup.query["appsecret_proof"] == fake_graph.proof


def test_names_are_cached(client, inbox, fake_graph):
    """More messages from a named customer ask Facebook no more."""
    psid = unique_psid()
    fake_graph.set_profile(psid, {"first_name": "Grace", "last_name": "Hopper"})
    for text in ("one", "two", "three"):
        assert post_webhook(client, webhook(text_event(psid, text))).status_code == 200
    assert len(fake_graph.profile_requests(psid)) == 1
    assert len(inbox.messages_of(psid)) == 3


def test_a_refused_lookup_stores_the_message_unnamed(client, inbox, fake_graph):
    """Facebook refusing this customer's profile (#100): the message is stored, the contact
    has no name, and the refusal is remembered (no second lookup)."""
    psid = unique_psid()
    fake_graph.set_profile(psid, GraphAnswer.error(100, subcode=33, message="(#100) no"))
    for text in ("first", "second"):
        assert post_webhook(client, webhook(text_event(psid, text))).status_code == 200
    contact = inbox.contact_of(psid)
    assert contact is not None and contact["display_name"] is None
    assert [m["text"] for m in inbox.messages_of(psid)] == ["first", "second"]
    assert len(fake_graph.profile_requests(psid)) == 1


# the cache's rules ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Facebook:
    """Answers lookups from a table: a name, or an exception to raise."""

    def __init__(self, answers: dict[str, str | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, psid: str) -> str | None:
        self.asked.append(psid)
        answer = self.answers.get(psid)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_name_is_kept_a_day():
    """A found name is answered from the cache until a day has passed."""
    clock, facebook = Clock(), Facebook({"1": "Ada"})
    names = ProfileNames(facebook, clock)
    assert names.names(["1"]) == {"1": "Ada"}
    clock.now += NAME_TTL_SECONDS - 1
    assert names.names(["1"]) == {"1": "Ada"}
    assert facebook.asked == ["1"]
    clock.now += 2
    names.names(["1"])
    assert facebook.asked == ["1", "1"]


def test_a_refusal_about_one_customer_is_kept_an_hour():
    """#100 for one PSID: no name, not asked again for an hour; others still looked up."""
    clock = Clock()
    facebook = Facebook({"1": GraphError(400, 100, "no"), "2": "Bob"})
    names = ProfileNames(facebook, clock)
    assert names.names(["1", "2"]) == {"2": "Bob"}
    assert names.names(["1"]) == {}
    clock.now += REFUSED_TTL_SECONDS + 1
    names.names(["1"])
    assert facebook.asked == ["1", "2", "1"]


@pytest.mark.parametrize(
    "error",
    [
        GraphError(400, 190, "token"),
        GraphError(403, 10, "permission"),
        GraphError(400, 230, "permission"),
        GraphError(400, 613, "rate limit"),
    ],
    ids=["invalid-token", "no-permission", "permission-2xx", "rate-limited"],
)
def test_an_error_about_every_lookup_pauses_them_all(error):
    """A bad token, a missing permission or a rate limit: nobody is looked up for five
    minutes, then lookups resume."""
    clock = Clock()
    facebook = Facebook({"1": error, "2": "Bob"})
    names = ProfileNames(facebook, clock)
    assert names.names(["1", "2"]) == {}
    assert facebook.asked == ["1"]
    clock.now += PAUSE_SECONDS + 1
    assert names.names(["2"]) == {"2": "Bob"}


def test_an_unreachable_graph_pauses_lookups_for_a_minute():
    """No connection: no lookups for a minute; the message is not held up by retries."""
    clock = Clock()
    facebook = Facebook({"1": GraphUnreachable("ConnectError"), "2": "Bob"})
    names = ProfileNames(facebook, clock)
    assert names.names(["1", "2"]) == {}
    clock.now += 61
    assert names.names(["2"]) == {"2": "Bob"}


def test_lookups_per_webhook_are_bounded():
    """A batch from many new customers looks up at most MAX_LOOKUPS_PER_WEBHOOK of them;
    the rest are looked up with their next message."""
    psids = [str(n) for n in range(MAX_LOOKUPS_PER_WEBHOOK + 3)]
    facebook = Facebook(dict.fromkeys(psids, "Someone"))
    names = ProfileNames(facebook, Clock())
    assert len(names.names(psids)) == MAX_LOOKUPS_PER_WEBHOOK
    assert len(names.names(psids[MAX_LOOKUPS_PER_WEBHOOK:])) == 3


def test_ids_that_are_not_psids_are_never_looked_up():
    """Only digits go into the profile URL's path."""
    facebook = Facebook({})
    assert ProfileNames(facebook, Clock()).names(["../me", "12a"]) == {}
    assert facebook.asked == []


@pytest.mark.parametrize(
    ("profile", "name"),
    [
        ({"first_name": "Ada", "last_name": "Lovelace"}, "Ada Lovelace"),
        ({"first_name": "Cher"}, "Cher"),
        ({"first_name": " ", "last_name": ""}, None),
        ({}, None),
    ],
)
def test_name_from_profile(profile, name):
    """First and last name joined; None when neither is given."""
    assert name_from_profile(profile) == name
