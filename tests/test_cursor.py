"""List cursors: a cursor that no list could have made is refused, whatever its shape.

A list's cursor is base64 JSON of the sort key of a page's last item: its timestamp, as the
stores write it, and its id, with the prefix of that list's records. Forging one of the
right shape (``["", ""]``, a date in another format, another list's id) used to be taken
as a position; it is a 400 naming the cursor, on every list of the API.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from omnichannel_core.errors import InvalidInput
from omnichannel_core.paging import decode_list_cursor, encode_cursor
from omnichannel_core.store.firestore.events import decode_position
from omnichannel_core.testing.server import ServerProcess
from tests.store_contract.paging import FORGED_AT, FORGED_ID_BODY, forged_keys
from tests.support.signing import inbound_message, post_webhook, unique

LISTS = ["contacts", "conversations", "messages", "history", "users", "api-keys", "audit"]
FORGED = forged_keys("ct")


@pytest.mark.parametrize("key", FORGED.values(), ids=FORGED.keys())
def test_a_forged_key_is_invalid_input_naming_the_cursor(key):
    """decode_list_cursor refuses each forged key with InvalidInput, parameter "cursor"."""
    with pytest.raises(InvalidInput) as refused:
        decode_list_cursor(encode_cursor(*key), "ct")
    assert refused.value.details == {"parameter": "cursor"}


def test_a_key_a_list_could_make_is_decoded():
    """The stores' own timestamps and ids (26 characters of new_id, or an older record's
    shorter id) decode to the key they hold."""
    for record_id in (f"ct_{FORGED_ID_BODY}", "ct_old", "ct_in-1"):
        cursor = encode_cursor(FORGED_AT, record_id)
        assert decode_list_cursor(cursor, "ct") == (FORGED_AT, record_id)


# the lists of the API, on the real server (SQLite) -----------------------------------------


@pytest.fixture(scope="module")
def lists(server: ServerProcess) -> dict[str, tuple[str, str]]:
    """Every list route of the API with the id prefix of its records; each holds items."""
    with server.client() as client:
        assert post_webhook(client, inbound_message(unique("+1555"))).status_code == 200
        conversation = client.get("/api/conversations").json()["items"][0]["id"]
        for status in ("pending", "open"):  # two changes: a history of two pages of one
            changed = client.patch(f"/api/conversations/{conversation}", json={"status": status})
            assert changed.status_code == 200
        key = {"name": "cursor-test", "scopes": ["read"]}
        assert client.post("/api/api-keys", json=key).status_code == 201
        user = {"email": f"{unique('c')}@example.com", "display_name": "C", "role": "agent"}
        created = client.post("/api/users", json={**user, "password": "a-long-password"})
        assert created.status_code == 201
    return {
        "contacts": ("/api/contacts", "ct"),
        "conversations": ("/api/conversations", "cv"),
        "messages": (f"/api/conversations/{conversation}/messages", "msg"),
        "history": (f"/api/conversations/{conversation}/history", "chg"),
        "users": ("/api/users", "usr"),
        "api-keys": ("/api/api-keys", "key"),
        "audit": ("/api/audit", "aud"),
    }


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.mark.parametrize("name", LISTS)
def test_every_list_refuses_a_forged_cursor_with_400(client, lists, name):
    """Each list answers 400 invalid_input with "parameter": "cursor" to every forged
    cursor (``["", ""]`` among them), and still pages with the cursors it makes."""
    path, prefix = lists[name]
    for case, key in forged_keys(prefix).items():
        response = client.get(path, params={"cursor": encode_cursor(*key)})
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"] == "invalid_input"
        assert response.json()["parameter"] == "cursor", case
    first = client.get(path, params={"limit": 1}).json()
    if first["next_cursor"] is not None:
        assert client.get(path, params={"cursor": first["next_cursor"]}).status_code == 200
    # made by no page of this list, but one could have been: it is a position like any
    plausible = encode_cursor(FORGED_AT, f"{prefix}_{FORGED_ID_BODY}")
    assert client.get(path, params={"cursor": plausible}).status_code == 200


def test_a_cursor_spelling_a_lone_surrogate_is_refused():
    """JSON may spell a lone surrogate (``\\ud800``), which no store can take (Firestore's
    client failed encoding it, a 500): the cursor is refused as any other forgery."""
    with pytest.raises(InvalidInput):
        decode_list_cursor(encode_cursor("2026-01-02T03:04:05.678901Z", "ct_\ud800"), "ct")
    with pytest.raises(InvalidInput):
        decode_position(encode_cursor("99999999999999999999", "ev_\ud800"))
    with pytest.raises(InvalidInput):
        decode_position(encode_cursor("1", "ev_a/b"))
