"""The visitor API through the real server: sessions, the socket, resync, the fallback, and
the security rules (origins, tokens, identity, limits). The browser's side is
test_webchat_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from omnichannel_webchat import tokens
from visitor_client import PREFIX, Socket, VisitorClient, new_client_id
from webchat_servers import IDENTITY_SECRET, OTHER_ORIGIN, VISITOR_SECRET, webchat_serving

from omnichannel_core.channel import utcnow
from omnichannel_core.testing.server import ServerProcess

pytestmark = pytest.mark.anyio


def reply(server: ServerProcess, conversation_id: str, text: str) -> dict[str, Any]:
    with server.client() as agent:
        answer = agent.post(f"/api/conversations/{conversation_id}/messages", json={"text": text})
        assert answer.status_code in (201, 202), answer.text
        return answer.json()


async def sent(server: ServerProcess, messages: list[dict[str, Any]]) -> None:
    """Once the outbox has sent each of ``messages`` (agents' replies)."""
    for _ in range(100):
        with server.client() as agent:
            statuses = {agent.get(f"/api/messages/{m['id']}").json()["status"] for m in messages}
        if statuses <= {"sent", "delivered", "read"}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not sent: {statuses}")


async def frames_for(socket: Any, seconds: float) -> list[dict[str, Any]]:
    """Every frame the socket gets in the next ``seconds``."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - loop.time()) > 0:
            frames.append(await socket.receive(left))
    return frames


def visitor_of(server: ServerProcess, site: Any) -> VisitorClient:
    return VisitorClient(server.base_url, site.origin)


async def test_a_visitor_writes_and_the_agent_answers_over_the_socket(webchat_server, site):
    """A visitor's message over the socket is acknowledged and stored in a new conversation the
    agents' API shows; the agent's reply reaches the socket without the message's metadata, and
    is then ``delivered``."""
    async with visitor_of(webchat_server, site) as visitor:
        session = await visitor.start()
        assert session["conversation"] is None
        assert session["settings"]["title"] == "Acme support"
        async with visitor.socket() as socket:
            client_id = new_client_id()
            await socket.send({"type": "message", "client_id": client_id, "text": "hello?"})
            ack = await socket.until("ack", client_id=client_id)
            assert ack["message"]["from"] == "visitor"
            conversation = await socket.until("conversation")
            conversation_id = conversation["conversation"]["id"]
            with webchat_server.client() as agent:
                messages = agent.get(f"/api/conversations/{conversation_id}/messages").json()
            assert [m["text"] for m in messages["items"]] == ["hello?"]
            reply(webchat_server, conversation_id, "Hi, how can I help?")
            shown = await socket.until("message", **{"from": "agent"})
            assert shown["message"]["text"] == "Hi, how can I help?"
            assert "metadata" not in shown["message"]
        # delivered once a widget had it
        for _ in range(50):
            with webchat_server.client() as agent:
                items = agent.get(f"/api/conversations/{conversation_id}/messages").json()["items"]
            if items[-1]["status"] == "delivered":
                break
            await asyncio.sleep(0.1)
        assert items[-1]["status"] == "delivered"


async def test_a_resend_after_a_drop_is_stored_once_and_ids_are_per_visitor(webchat_server, site):
    """A resend with the same client id is the stored message (200, same id); the same client
    id from another visitor is their own new message, so no visitor can suppress another's."""
    async with visitor_of(webchat_server, site) as one, visitor_of(webchat_server, site) as two:
        await one.start()
        await two.start()
        client_id = new_client_id()
        first = await one.write("once", client_id)
        again = await one.write("once", client_id)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["message"]["id"] == again.json()["message"]["id"]
        # the same client id from another visitor is their own message, not a duplicate
        theirs = await two.write("mine", client_id)
        assert theirs.status_code == 201
        assert theirs.json()["message"]["id"] != first.json()["message"]["id"]


async def test_a_reconnect_replays_what_was_missed_once_in_order(webchat_server, site):
    """Replies sent while no socket was open are replayed after the widget's cursor, in order,
    and nothing comes twice (a message comes again only with a new status)."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        written = (await visitor.write("first")).json()["message"]
        async with visitor.socket() as socket:
            await socket.until("message", id=written["id"])
            cursor = socket.cursor
        await visitor.start()
        conversation_id = visitor.conversation["id"]
        replies = [reply(webchat_server, conversation_id, f"missed {n}") for n in range(3)]
        await sent(webchat_server, replies)  # by the outbox, while no socket was open
        async with visitor.socket(after=cursor, since=written["id"]) as socket:
            texts = [m["text"] for m in await socket.messages(3)]
            assert texts == ["missed 0", "missed 1", "missed 2"]
            later = await frames_for(socket, 1.0)
        # nothing twice: a message comes again only with a new status (sent -> delivered)
        told = [(f["message"]["id"], f["message"]["status"]) for f in later if "message" in f]
        assert len(told) == len(set(told))
        assert {status for _, status in told} <= {"delivered", "read"}


async def test_a_reconnect_without_a_cursor_reads_the_history_after_the_last_message(
    webchat_server, site
):
    """Without a cursor the socket sends the messages after ``since``; a new device (no
    ``since``) gets the whole history."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        first = (await visitor.write("one")).json()["message"]
        await visitor.write("two")
        await visitor.start()
        async with visitor.socket(since=first["id"]) as socket:
            (message,) = await socket.messages(1)
            assert message["text"] == "two"
        async with visitor.socket() as socket:  # a new device: the whole history
            assert [m["text"] for m in await socket.messages(2)] == ["one", "two"]
            state = await socket.until("conversation")
            assert state["cursor"] is not None  # the history's end: where to resume
        await visitor.write("three")
        async with visitor.socket(after=state["cursor"]) as socket:  # a replay, no history
            (message,) = await socket.messages(1)
            assert message["text"] == "three"


async def test_a_resolved_conversation_reaches_the_widget(webchat_server, site):
    """An agent resolving the conversation reaches the open socket as a ``conversation`` frame."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        await visitor.write("bye")
        await visitor.start()
        async with visitor.socket() as socket:
            with webchat_server.client() as agent:
                agent.patch(
                    f"/api/conversations/{visitor.conversation['id']}", json={"status": "resolved"}
                ).raise_for_status()
            frame = await socket.until("conversation")
            while frame["conversation"]["status"] != "resolved":
                frame = await socket.until("conversation")


async def test_typing_and_read_go_both_ways(webchat_server, site):
    """An agent's typing reaches the socket; the visitor's ``read`` of the agent's reply makes
    it ``read`` for the agents."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        await visitor.write("hi")
        await visitor.start()
        conversation_id = visitor.conversation["id"]
        async with visitor.socket() as socket:
            with webchat_server.client() as agent:
                assert agent.post(f"/api/conversations/{conversation_id}/typing").status_code == 204
            typing = await socket.until("typing")
            assert typing["typing"] is True
            sent = reply(webchat_server, conversation_id, "read me")
            await socket.until("message", text="read me")
            await socket.send({"type": "read", "up_to": sent["id"]})
        for _ in range(50):
            with webchat_server.client() as agent:
                status = agent.get(f"/api/messages/{sent['id']}").json()["status"]
            if status == "read":
                break
            await asyncio.sleep(0.1)
        assert status == "read"


async def test_the_long_polling_fallback_gets_the_same_frames(webchat_server, site):
    """Long polling gets the history at once, then waits for the agent's reply and answers it."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        await visitor.write("by polling")
        await visitor.start()
        first = (await visitor.post("poll", json={"wait": 1})).json()
        assert first["frames"][0]["type"] == "ready"
        assert [f["message"]["text"] for f in first["frames"] if f["type"] == "message"] == [
            "by polling"
        ]
        waiting = asyncio.create_task(
            visitor.post("poll", json={"after": first["cursor"], "wait": 10})
        )
        await asyncio.sleep(0.3)
        reply(webchat_server, visitor.conversation["id"], "polled answer")
        answer = (await waiting).json()
        texts = [f["message"]["text"] for f in answer["frames"] if f["type"] == "message"]
        assert "polled answer" in texts


async def test_a_visitor_reads_only_their_own_conversation(webchat_server, site):
    """Another visitor can neither mark read nor download a visitor's message: 404, nothing of
    it in the answer."""
    async with visitor_of(webchat_server, site) as one, visitor_of(webchat_server, site) as two:
        await one.start()
        await two.start()
        theirs = (await one.write("private")).json()["message"]
        refused = await two.post("read", json={"up_to": theirs["id"]})
        assert refused.status_code == 404
        media = await two.http.get(f"{PREFIX}/media/{theirs['id']}/0", headers=two.headers())
        assert media.status_code == 404
        assert "private" not in media.text


async def test_origins_are_checked_on_http_and_on_connect(webchat_server, site):
    """The visitor routes answer CORS to the allowed site only and refuse another site's page
    (403, and 3403 on the socket); the agents' API gives the site no CORS."""
    async with httpx.AsyncClient(base_url=webchat_server.base_url) as client:
        allowed = await client.post(f"{PREFIX}/session", json={}, headers={"Origin": site.origin})
        assert allowed.headers["Access-Control-Allow-Origin"] == site.origin
        refused = await client.post(f"{PREFIX}/session", json={}, headers={"Origin": OTHER_ORIGIN})
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
        preflight = await client.options(
            f"{PREFIX}/message",
            headers={"Origin": site.origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        # the agents' API stays closed to the site
        api = await client.get("/api/conversations", headers={"Origin": site.origin})
        assert "Access-Control-Allow-Origin" not in api.headers
    url = "ws" + webchat_server.base_url.removeprefix("http") + f"{PREFIX}/socket"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(url, additional_headers={"Origin": OTHER_ORIGIN}) as ws:
            await ws.recv()
    assert closed.value.rcvd.code == 3403


async def test_tokens_are_the_visitors_own(webchat_server, site):
    """A visitor token is no credential of the agents' API, an API key is no visitor token, a
    forged token closes the socket with 4401, and an unknown token on ``session`` starts a new
    visitor."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        # a visitor token is no agent credential
        async with httpx.AsyncClient(base_url=webchat_server.base_url) as client:
            api = await client.get("/api/conversations", headers=visitor.headers())
            assert api.status_code == 401
        # and an agent's key is no visitor token
        with webchat_server.client() as agent:
            as_visitor = agent.post(
                f"{PREFIX}/message", json={"client_id": new_client_id(), "text": "x"}
            )
        assert as_visitor.status_code == 401
        # a forged token is refused on the socket with 4401
        forged = VisitorClient(webchat_server.base_url, site.origin, visitor.token[:-3] + "AAA")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with forged.socket():
                pass
        assert closed.value.rcvd.code == 4401
        # and an unknown token on POST session is a new visitor, not an error
        fresh = await forged.http.post(f"{PREFIX}/session", json={"token": "v1.x.y"})
        await forged.http.aclose()
        assert fresh.status_code == 200
        assert fresh.json()["visitor"]["id"] != visitor.visitor["id"]


async def test_a_socket_without_hello_is_closed(webchat_server, site):
    """A first frame that is not ``hello`` closes the socket with 4400."""
    url = "ws" + webchat_server.base_url.removeprefix("http") + f"{PREFIX}/socket"
    async with websockets.connect(url, additional_headers={"Origin": site.origin}) as ws:
        await ws.send(json.dumps({"type": "message", "text": "no hello"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4400


def sign(user_id: str) -> str:
    return hmac.new(IDENTITY_SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def test_a_verified_user_is_the_same_contact_on_every_device(webchat_server, site):
    """A visitor with a valid identity proof is ``user:<id>``, and a second device with the
    same proof sees their history."""
    async with visitor_of(webchat_server, site) as laptop:
        await laptop.start(user_id="u-42", user_hash=sign("u-42"), name="Ada")
        assert laptop.visitor == {
            "id": "user:u-42",
            "verified": True,
            "name": "Ada",
            "email": None,
        }
        await laptop.write("from the laptop")
    async with visitor_of(webchat_server, site) as phone:
        await phone.start(user_id="u-42", user_hash=sign("u-42"))
        async with phone.socket() as socket:
            (message,) = await socket.messages(1)
            assert message["text"] == "from the laptop"


async def test_a_forged_identity_is_refused(webchat_server, site):
    """A proof made for another user id is refused with 403, and the answer never holds the
    secret."""
    async with visitor_of(webchat_server, site) as visitor:
        refused = await visitor.http.post(
            f"{PREFIX}/session", json={"user_id": "u-42", "user_hash": sign("u-43")}
        )
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        assert IDENTITY_SECRET not in refused.text


async def test_bad_input_gets_a_clear_4xx(webchat_server, site):
    """Bad client ids, too long texts, non-JSON bodies and missing tokens get 4xx JSON naming
    the problem; a bad frame gets an ``error`` frame and the socket stays open."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        bad_id = await visitor.post("message", json={"client_id": "x", "text": "hi"})
        assert bad_id.status_code == 400
        assert "client_id" in bad_id.json()["message"]
        too_long = await visitor.write("x" * 5000)
        assert too_long.status_code == 400
        assert "4000" in too_long.json()["message"]
        not_json = await visitor.post(
            "message", content=b"hi", headers={"Content-Type": "text/plain"}
        )
        assert not_json.status_code in (400, 415)
        no_token = await visitor.http.post(f"{PREFIX}/typing")
        assert no_token.status_code == 401
        async with visitor.socket() as socket:
            await socket.send({"type": "message", "client_id": "short", "text": "x"})
            error = await socket.until("error")
            assert error["error"] == "invalid_input"
            await socket.send({"type": "ping"})
            await socket.until("pong")  # the socket stays open


async def test_a_file_lands_in_the_media_store_and_the_visitor_downloads_it(webchat_server, site):
    """A picture sent with its name in ``X-Filename`` is kept by the media store and downloaded
    back, sandboxed; a type the store does not take is refused with 415."""
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        sent = await visitor.post(
            f"files?client_id={new_client_id()}",
            content=png,
            headers={"Content-Type": "image/png", "X-Filename": "d%C3%B4t.png"},
        )
        assert sent.status_code == 201, sent.text
        message = sent.json()["message"]
        assert message["media"][0]["filename"] == "dôt.png"
        download = await visitor.http.get(
            f"{PREFIX}/media/{message['id']}/0", headers=visitor.headers()
        )
        assert download.status_code == 200
        assert download.content == png
        assert "sandbox" in download.headers["Content-Security-Policy"]
        refused = await visitor.post(
            f"files?client_id={new_client_id()}",
            content=b"MZ\x90\x00 not a picture",
            headers={"Content-Type": "application/x-msdownload", "X-Filename": "x.exe"},
        )
        assert refused.status_code == 415


async def test_visitors_are_rate_limited(tmp_path, site):
    """Past ``WEBCHAT_MESSAGES_PER_MINUTE`` a visitor's messages get 429, and past
    ``WEBCHAT_SESSIONS_PER_MINUTE`` new visitors from one address do, with ``Retry-After``; a
    known visitor's session is not counted."""
    with webchat_serving(
        tmp_path, site.origin, WEBCHAT_MESSAGES_PER_MINUTE="3", WEBCHAT_SESSIONS_PER_MINUTE="2"
    ) as server:
        async with visitor_of(server, site) as visitor:
            await visitor.start()
            codes = [(await visitor.write(f"m{n}")).status_code for n in range(5)]
            assert codes[:3] == [201, 201, 201]
            assert codes[3:] == [429, 429]
            await visitor.start()  # the same visitor: not a new one
        new_visitors = []
        for _ in range(3):
            async with visitor_of(server, site) as fresh:
                answer = await fresh.http.post(f"{PREFIX}/session", json={})
                new_visitors.append(answer.status_code)
        assert new_visitors == [200, 429, 429]  # one more new visitor was the first's
        assert "Retry-After" in answer.headers


async def test_widget_js_is_served_within_its_size_budget(webchat_server):
    """``widget.js`` is served as JavaScript, gzipped under the 30 kB budget, cacheable with an
    ``ETag`` (304 when current), loadable by other origins' pages, and plain when gzip is not
    asked for."""
    async with httpx.AsyncClient(base_url=webchat_server.base_url) as client:
        script = await client.get(f"{PREFIX}/widget.js")  # httpx asks for gzip, and inflates
        assert script.status_code == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert script.headers["Content-Encoding"] == "gzip"
        assert int(script.headers["Content-Length"]) < 30_000  # the bytes sent
        assert "max-age" in script.headers["Cache-Control"]
        assert script.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert len(gzip.compress(script.content, 9)) < 30_000
        again = await client.get(
            f"{PREFIX}/widget.js", headers={"If-None-Match": script.headers["ETag"]}
        )
        assert again.status_code == 304
        plain = await client.get(f"{PREFIX}/widget.js", headers={"Accept-Encoding": "identity"})
        assert plain.content == script.content
        head = await client.head(f"{PREFIX}/widget.js")  # uptime checks and caches ask so
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["ETag"] == script.headers["ETag"]


def test_health_names_the_allowed_sites(webchat_server, site):
    """The channel's health is ok and names the allowed site."""
    with webchat_server.client() as agent:
        health = agent.get("/api/channels/webchat/health").json()
    assert health["ok"] is True
    assert site.origin in health["detail"]


def minted(address: str, issued_days_ago: float, days: int = 30) -> str:
    """A token as the server makes them, issued that long ago."""
    issued = utcnow() - timedelta(days=issued_days_ago)
    token, _ = tokens.issue(address, VISITOR_SECRET.encode(), issued, days)
    return token


async def test_tokens_expire_and_rotate(webchat_server, site):
    """An expired token closes the socket with 4401 and starts a new visitor on ``session``; a
    two-day-old token still works and is replaced by a fresh one for the same visitor."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        address = visitor.visitor["id"]
        # an expired token: the socket closes with 4401, and the session starts anew
        visitor.token = minted(address, 31)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with visitor.socket():
                pass
        assert closed.value.rcvd.code == 4401
        fresh = await visitor.start()
        assert fresh["visitor"]["id"] != address
        # a token two days old still works, and is replaced: on the socket and by session
        old = minted(address, 2)
        visitor.token = old
        async with visitor.socket() as socket:
            assert socket.ready["visitor"]["id"] == address
        again = VisitorClient(webchat_server.base_url, site.origin, old)
        async with again:
            renewed = await again.start()
        assert renewed["token"] != old
        assert renewed["visitor"]["id"] == address


async def test_a_rotated_token_comes_first_on_the_socket(webchat_server, site):
    """A token due for rotation gets a ``token`` frame first thing on the socket."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        visitor.token = minted(visitor.visitor["id"], 2)
        socket = Socket(visitor, None, None)
        async with websockets.connect(socket.url, additional_headers={"Origin": site.origin}) as ws:
            await ws.send(json.dumps({"type": "hello", "token": visitor.token}))
            first = json.loads(await ws.recv())
        assert first["type"] == "token"
        assert first["token"] != visitor.token


async def test_one_visitor_keeps_at_most_ten_sockets(webchat_server, site):
    """A visitor's eleventh socket in one worker is closed with 4429."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(10):
                await stack.enter_async_context(visitor.socket())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with visitor.socket():
                    pass
            assert closed.value.rcvd.code == 4429


async def test_the_prechat_form_fills_the_contact_without_overwriting(webchat_server, site):
    """The pre-chat form's name and email fill the contact; an email an agent set is never
    overwritten; a malformed email is 400."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start(name="Grace", email="grace@example.com")
        assert visitor.visitor["name"] == "Grace"
        await visitor.write("hello")
        await visitor.start()
        with webchat_server.client() as agent:
            conversation = agent.get(f"/api/conversations/{visitor.conversation['id']}").json()
            contact = agent.get(f"/api/contacts/{conversation['contact_id']}").json()
            assert contact["display_name"] == "Grace"
            assert contact["attributes"]["email"] == "grace@example.com"
            declared = {"key": "email", "type": "text", "label": "Email"}  # the CRM's rule
            agent.post("/api/crm/attributes", json=declared).raise_for_status()
            agent.patch(
                f"/api/contacts/{contact['id']}", json={"attributes": {"email": "g@corp.example"}}
            ).raise_for_status()
        await visitor.start(email="other@example.com")
        await visitor.write("again")
        with webchat_server.client() as agent:
            contact = agent.get(f"/api/contacts/{contact['id']}").json()
        assert contact["attributes"]["email"] == "g@corp.example"
        bad = await visitor.http.post(f"{PREFIX}/session", json={"email": "not an email"})
        assert bad.status_code == 400


async def test_odd_frames_and_paths_get_clear_answers_never_a_crash(webchat_server, site):
    """Odd media indexes answer 404, a binary frame closes the socket with 1003, a frame over
    256 KiB with 1009, and the server logs no traceback."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        written = (await visitor.write("mine")).json()["message"]
        for index in ("²", "9" * 5000, "-1", "99"):
            odd = await visitor.http.get(
                f"{PREFIX}/media/{written['id']}/{index}", headers=visitor.headers()
            )
            assert odd.status_code == 404, index
        url = "ws" + webchat_server.base_url.removeprefix("http") + f"{PREFIX}/socket"
        async with websockets.connect(url, additional_headers={"Origin": site.origin}) as ws:
            await ws.send(b"\x00binary")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd.code == 1003
        async with websockets.connect(
            url, additional_headers={"Origin": site.origin}, max_size=None
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.send("x" * (300 * 1024))  # past the server's 256 KiB frames
                await ws.recv()
        assert closed.value.rcvd.code == 1009
    assert "Traceback" not in webchat_server.log()


async def test_a_socket_whose_token_nears_expiry_gets_a_fresh_one_and_stays_open(
    webchat_server, site
):
    """A token two seconds from expiry is replaced on the socket (a ``token`` frame), and
    the socket goes on past the old expiry: it speaks for the fresh token, so a visitor
    kept connected never loses their session."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        issued = utcnow() - timedelta(days=30) + timedelta(seconds=2)
        old, _ = tokens.issue(visitor.visitor["id"], VISITOR_SECRET.encode(), issued, 30)
        visitor.token = old
        async with visitor.socket() as socket:
            assert visitor.token != old
            await asyncio.sleep(3)
            await socket.send({"type": "ping"})
            await socket.until("pong")
        fresh = tokens.read(visitor.token, VISITOR_SECRET.encode(), utcnow())
        assert fresh.address == visitor.visitor["id"]
        assert fresh.expires_at > utcnow() + timedelta(days=29)


async def test_a_chat_for_signed_in_users_refuses_anonymous_visitors(tmp_path, site):
    """With ``WEBCHAT_IDENTITY_REQUIRED`` a session without a proof is refused with 403 saying
    so; a verified visitor gets one."""
    with webchat_serving(tmp_path, site.origin, WEBCHAT_IDENTITY_REQUIRED="true") as server:
        async with visitor_of(server, site) as visitor:
            refused = await visitor.http.post(f"{PREFIX}/session", json={})
            assert refused.status_code == 403
            assert refused.json()["identity_required"] is True
            await visitor.start(user_id="u-7", user_hash=sign("u-7"))
            assert visitor.visitor["verified"] is True


async def test_a_first_poll_answers_the_history_at_once_and_its_cursor_repeats_nothing(
    webchat_server, site
):
    """A poll with ``wait: 0`` still answers what the visitor missed (ready, the history,
    the conversation's state); polling on from its cursor brings nothing twice, and a reply
    sent meanwhile once."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        await visitor.write("one")
        await visitor.write("two")
        first = (await visitor.post("poll", json={"wait": 0})).json()
        kinds = [frame["type"] for frame in first["frames"]]
        assert kinds[0] == "ready"
        assert [f["message"]["text"] for f in first["frames"] if f["type"] == "message"] == [
            "one",
            "two",
        ]
        assert first["cursor"] is not None
        again = (await visitor.post("poll", json={"after": first["cursor"], "wait": 0.5})).json()
        assert [f for f in again["frames"] if f["type"] == "message"] == []
        reply(webchat_server, first["frames"][0]["conversation"]["id"], "answer")
        told: list[tuple[str, str]] = []
        cursor = again["cursor"]
        while ("answer", "sent") not in told:
            answer = (await visitor.post("poll", json={"after": cursor, "wait": 5})).json()
            told += [
                (f["message"]["text"], f["message"]["status"])
                for f in answer["frames"]
                if f["type"] == "message"
            ]
            cursor = answer["cursor"]
        assert len(told) == len(set(told))  # each (message, status) once
        assert {text for text, _ in told} == {"answer"}


async def test_a_reply_scheduled_before_the_last_message_and_sent_after_it_is_not_missed(
    webchat_server, site
):
    """The history after ``since`` is what was made *or changed* after it: an agent's
    reply scheduled before the visitor's last message, and sent after, reaches a widget
    that comes back without a usable cursor."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        await visitor.write("first")
        await visitor.start()
        conversation_id = visitor.conversation["id"]
        send_at = (utcnow() + timedelta(seconds=2)).isoformat()
        with webchat_server.client() as agent:
            scheduled = agent.post(
                f"/api/conversations/{conversation_id}/messages",
                json={"text": "we will call you at 9", "send_at": send_at},
            )
            assert scheduled.status_code in (201, 202), scheduled.text
        last = (await visitor.write("thanks")).json()["message"]
        await sent(webchat_server, [scheduled.json()])
        async with visitor.socket(since=last["id"]) as socket:
            frames = []
            while not frames or frames[-1]["type"] != "conversation":  # the history's end
                frames.append(await socket.receive())
        texts = [frame["message"]["text"] for frame in frames if frame["type"] == "message"]
        assert "we will call you at 9" in texts  # (with what the margin adds, dropped by id)
        assert "thanks" not in texts


async def test_a_file_of_a_type_not_taken_stores_nothing(webchat_server, site):
    """A file whose type the media store does not take is refused (415) before anything is
    stored: the agents get no empty message, and the visitor's conversation is untouched."""
    async with visitor_of(webchat_server, site) as visitor:
        await visitor.start()
        refused = await visitor.post(
            f"files?client_id={new_client_id()}",
            content=b"#!/bin/sh\necho hi\n",
            headers={"Content-Type": "application/x-sh", "X-Filename": "run.sh"},
        )
        assert refused.status_code == 415
        await visitor.start()
        assert visitor.conversation is None  # no message, so no conversation either
