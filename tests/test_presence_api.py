"""Presence through the real server: a user is connected while one of their ``GET
/api/events`` streams is open, sets themselves away and back with ``PUT /api/presence``,
goes offline when their last stream closes, or once the timeout passes when the process
holding it is killed; the ``Presence`` service (read here through a local plugin's route)
counts each connected user once."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.support.processes import is_alive, wait_for
from tests.support.sqlite_files import read_rows
from tests.support.sse import EventStream, open_stream
from tests.support.users import client_for, create_user, login

PRESENT_PLUGIN = '''
"""A test's window on the Presence service: GET /api/test/present answers present()."""

from omnichannel_core import hookimpl
from omnichannel_core.module import Operation, Presence, Route, to_json


class Present:
    operations = {
        "GET": Operation("Who is connected (the Presence service)", permission="users:read")
    }

    def __init__(self, context):
        self.context = context

    async def on_get(self, req, resp):
        resp.media = to_json(await self.context.service(Presence).present())


@hookimpl
def register_routes(context):
    return [Route("/api/test/present", Present(context))]
'''

TIMEOUT_SECONDS = 20
"""The module's server: a stream refreshes every 6.7 s and sends its keepalive every 3.3 s,
so a closed stream is noticed within 3.3 s, and one left open expires 10 s or more after it
closed."""
SHORT_TIMEOUT_SECONDS = 4
"""The crash test's server: a stream not seen for 4 s is gone (refreshed every 1.3 s)."""


@contextlib.contextmanager
def presence_server(workdir: Path, timeout: float) -> Iterator[ServerProcess]:
    """A server (two workers and its job runner) whose streams count for ``timeout``
    seconds without news, with the local plugin that shows the Presence service."""
    plugins = workdir / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "presence_window.py").write_text(PRESENT_PLUGIN)
    env = {"OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS": str(timeout)}
    with running_server(workdir, env, workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with presence_server(tmp_path_factory.mktemp("presence"), TIMEOUT_SECONDS) as process:
        yield process


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@contextlib.contextmanager
def signed_in(server: ServerProcess, role: str = "agent") -> Iterator[tuple[str, str]]:
    """A new user of ``role``: their id and an access token."""
    with server.client() as admin:
        user = create_user(admin, role)
    yield user["id"], login(server, user["email"])["access_token"]


@contextlib.contextmanager
def stream_of(server: ServerProcess, token: str) -> Iterator[EventStream]:
    """An open ``GET /api/events`` of ``token``'s caller, once it said ``ready``."""
    with open_stream(server.base_url, token) as (response, events):
        assert response.status_code == 200
        events.next_of("ready")
        yield events


def own(server: ServerProcess, token: str) -> dict[str, Any]:
    with client_for(server, token) as client:
        response = client.get("/api/presence")
    assert response.status_code == 200, response.text
    return response.json()


def set_status(server: ServerProcess, token: str, status: str) -> dict[str, Any]:
    with client_for(server, token) as client:
        response = client.put("/api/presence", json={"status": status})
    assert response.status_code == 200, response.text
    return response.json()


def present(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """What the Presence service says: each connected user, by id."""
    with server.client() as admin:
        response = admin.get("/api/test/present")
    assert response.status_code == 200, response.text
    users = response.json()
    assert len({user["user_id"] for user in users}) == len(users)
    return {user["user_id"]: user for user in users}


def test_a_user_is_online_while_a_stream_is_open_and_away_when_they_say_so(server):
    """Before any stream, a user is offline (and available); with a stream open they are
    online and the Presence service lists them, connected since the stream opened. Setting
    ``away`` makes them away in both, ``available`` online again. Closing the stream makes
    them offline, within the keepalive, not the timeout, and the service drops them."""
    with signed_in(server) as (user_id, token):
        assert own(server, token) == {
            "user_id": user_id,
            "status": "available",
            "presence": "offline",
            "streams": 0,
            "connected_since": None,
        }
        before = datetime.now(UTC)
        with stream_of(server, token):
            now = own(server, token)
            assert (now["presence"], now["status"], now["streams"]) == ("online", "available", 1)
            since = datetime.fromisoformat(now["connected_since"])
            assert before <= since <= datetime.now(UTC)
            assert present(server)[user_id] == {
                "user_id": user_id,
                "status": "available",
                "connected_since": now["connected_since"],
                "streams": 1,
            }

            away = set_status(server, token, "away")
            assert (away["presence"], away["status"], away["streams"]) == ("away", "away", 1)
            assert own(server, token) == away
            assert present(server)[user_id]["status"] == "away"

            back = set_status(server, token, "available")
            assert (back["presence"], back["status"]) == ("online", "available")
            assert present(server)[user_id]["status"] == "available"
        closed = time.monotonic()
        wait_for(lambda: own(server, token)["presence"] == "offline", "offline", timeout=15)
        assert time.monotonic() - closed < TIMEOUT_SECONDS / 2  # closed, not expired
        assert own(server, token)["connected_since"] is None
        assert user_id not in present(server)


def test_the_status_is_kept_across_reconnects(server):
    """A status set while offline stays offline (nobody is away unless connected); the
    user's next stream makes them away, and so does the one after."""
    with signed_in(server, "supervisor") as (user_id, token):
        assert set_status(server, token, "away")["presence"] == "offline"
        for _ in range(2):
            with stream_of(server, token):
                assert own(server, token)["presence"] == "away"
                assert present(server)[user_id]["status"] == "away"
            wait_for(lambda: own(server, token)["presence"] == "offline", "offline", timeout=15)


def test_two_streams_of_one_user_count_once(server):
    """A user with two streams open (perhaps on two workers) is one connected user with two
    streams, connected since the first; closing one leaves them online, closing both makes
    them offline. Another user's stream, and an API key's, count apart (a key has none)."""
    with (
        signed_in(server) as (user_id, token),
        signed_in(server) as (other_id, other_token),
    ):
        with stream_of(server, token):
            first_since = own(server, token)["connected_since"]
            with (
                stream_of(server, token),
                stream_of(server, other_token),
                stream_of(server, API_KEY),
            ):
                mine = own(server, token)
                assert (mine["presence"], mine["streams"]) == ("online", 2)
                assert mine["connected_since"] == first_since
                users = present(server)
                assert set(users) == {user_id, other_id}  # the key has no presence
                assert users[user_id]["streams"] == 2
                assert users[user_id]["connected_since"] == first_since
                assert users[other_id]["streams"] == 1
            wait_for(lambda: own(server, token)["streams"] == 1, "one stream left", timeout=15)
            assert own(server, token)["presence"] == "online"
            wait_for(lambda: other_id not in present(server), "the other user gone", timeout=15)
            assert present(server)[user_id]["streams"] == 1
        wait_for(lambda: user_id not in present(server), "offline", timeout=15)


def test_an_api_key_has_no_presence_and_a_bad_status_is_refused(server, admin):
    """An API key asking for, or setting, its presence gets a 400 JSON error saying only a
    user has one; a status other than available or away is refused with 400 naming the
    field, and the user's status is unchanged."""
    for response in (
        admin.get("/api/presence"),
        admin.put("/api/presence", json={"status": "away"}),
    ):
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_input"
        assert "only a signed-in user has a presence" in body["message"]
    with signed_in(server) as (_, token), client_for(server, token) as client:
        for bad in ({"status": "busy"}, {}, {"status": None}):
            response = client.put("/api/presence", json=bad)
            assert response.status_code == 400, response.text
            assert "status" in response.text
        assert own(server, token)["status"] == "available"


def test_the_stream_of_a_killed_process_expires_after_the_timeout(tmp_path):
    """A web worker holding a user's stream is killed (``kill -9``: it removes nothing):
    the user stays connected, by the stream's last refresh, until the timeout
    (``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS``, 4 s here) has passed since it, then is
    offline; the job runner prunes the stream from the store."""
    with (
        presence_server(tmp_path, SHORT_TIMEOUT_SECONDS) as server,
        signed_in(server) as (user_id, token),
    ):
        database = tmp_path / "data" / "omnichannel.db"
        query = "SELECT process, seen_at FROM presence_streams WHERE user_id = ?"
        with stream_of(server, token):
            time.sleep(2)  # a refresh or two: the stream goes on being seen while open
            assert own(server, token)["presence"] == "online"
            ((process, _),) = read_rows(database, query, (user_id,))
            worker = int(process.rsplit(":", 1)[1])
            os.kill(worker, signal.SIGKILL)
            wait_for(lambda: not is_alive(worker), "the worker killed", timeout=10)
            ((_, seen_at),) = read_rows(database, query, (user_id,))  # left as it was
            last_seen = datetime.fromisoformat(seen_at)
        answers = []

        def offline() -> bool:
            answer = own(server, token)
            answers.append((datetime.now(UTC), answer["presence"]))
            return answer["presence"] == "offline"

        wait_for(offline, "the killed worker's stream to expire", timeout=20)
        for when, presence in answers:
            if (when - last_seen).total_seconds() < SHORT_TIMEOUT_SECONDS - 0.1:
                assert presence == "online", f"offline {when - last_seen} after it was seen"
        assert any(presence == "online" for _, presence in answers), "expired too soon to see"
        wait_for(
            lambda: read_rows(database, query, (user_id,)) == [],
            "the job runner to prune the stream",
            timeout=20,
        )
