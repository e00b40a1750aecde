"""A channel's own routes declare their operations as a module's routes do: the core checks
a declared body, query and headers before the responder runs, documents the route under the
channel's own path, and takes who may call from the ChannelRoute; an undeclared method keeps
the generic behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import falcon.asgi
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.channel import ChannelRoute, Operation, PageOf, Response, field
from omnichannel_core.testing.in_process import AUTH, run_app

PREFIX = "/api/channels/probe"


@attrs.frozen
class ProbeNote:
    """A note for the probe's provider."""

    to: str = field(pattern=r"^\+[0-9]{4,15}$", description="a phone number")
    text: str = field(max_length=10)
    urgent: bool = field(default=False)


@attrs.frozen
class ProbeNoteQuery:
    dry_run: bool = field(default=False, description="check, send nothing")


@attrs.frozen
class ProbeEcho:
    """What the probe's responder received."""

    body_class: str
    to: str
    text: str
    urgent: bool
    dry_run: bool


class Notes:
    """``POST notes``: declared, with a body and a query; ``GET notes``: not declared."""

    operations = {
        "POST": Operation(
            "Send a note",
            body=ProbeNote,
            query=ProbeNoteQuery,
            responses={200: Response(ProbeEcho, "What the responder received.")},
            operation_id="sendNote",
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        note = req.context.body
        echo = ProbeEcho(
            type(note).__name__, note.to, note.text, note.urgent, req.context.query.dry_run
        )
        resp.media = attrs.asdict(echo)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"undeclared": True, "body": getattr(req.context, "body", None)}


class Callback:
    """``POST callback``, public: a provider's JSON callback, declared."""

    operations = {"POST": Operation("Take a callback", body=ProbeNote)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"to": req.context.body.to}


class Hidden:
    operations = {
        "GET": Operation(
            "Checked, not documented",
            responses={200: Response(PageOf(ProbeEcho), "A page.")},
            documented=False,
        )
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"items": [], "next_cursor": None}


class Verification:
    """``GET webhook``: added to the core's webhook path, declared."""

    operations = {"GET": Operation("Verify", query=ProbeNoteQuery)}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"dry_run": req.context.query.dry_run}


def channel_of(*routes: ChannelRoute) -> object:
    class Channel:
        @hookimpl
        def channel_routes(self) -> list[ChannelRoute]:
            return list(routes)

    return Channel()


PROBE = channel_of(
    ChannelRoute("notes", Notes(), permission="messages:send"),
    ChannelRoute("callback", Callback(), public=True),
    ChannelRoute("hidden", Hidden(), permission="channels:read"),
    ChannelRoute("webhook", Verification(), public=True),
)


def run_probe(tmp_path: Path, scenario: Any, channel: object = PROBE) -> None:
    run_app(tmp_path, {"probe": channel}, scenario)


def test_a_declared_body_is_checked_before_the_responder(tmp_path):
    """A bad body on a declared channel route answers 400 naming the field (the responder
    never runs); a good one reaches the responder as its attrs class, with the query."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for body, field_name in [
            ({"to": "12", "text": "hi"}, "to"),
            ({"to": "+15551234", "text": "far too long"}, "text"),
            ({"to": "+15551234", "text": "hi", "colour": "red"}, "colour"),
            ({"text": "hi"}, "to"),
        ]:
            refused = await conductor.simulate_post(f"{PREFIX}/notes", json=body, headers=AUTH)
            assert refused.status_code == 400, refused.text
            assert refused.json["error"] == "invalid_input"
            assert refused.json["field"] == field_name
        bad_query = await conductor.simulate_post(
            f"{PREFIX}/notes",
            params={"dry_run": "maybe"},
            json={"to": "+15551234", "text": "hi"},
            headers=AUTH,
        )
        assert (bad_query.status_code, bad_query.json["field"]) == (400, "dry_run")
        accepted = await conductor.simulate_post(
            f"{PREFIX}/notes",
            params={"dry_run": "true"},
            json={"to": "+15551234", "text": "hi", "urgent": True},
            headers=AUTH,
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json == {
            "body_class": "ProbeNote",
            "to": "+15551234",
            "text": "hi",
            "urgent": True,
            "dry_run": True,
        }
        not_json = await conductor.simulate_post(
            f"{PREFIX}/notes", body="to=x", headers={**AUTH, "Content-Type": "text/plain"}
        )
        assert not_json.status_code == 415

    run_probe(tmp_path, scenario)


def test_who_may_call_a_declared_operation_is_the_channel_routes_say(tmp_path):
    """A declared operation takes who may call from its ChannelRoute: the private route
    needs credentials (401 before the body is looked at), the public one none."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        anonymous = await conductor.simulate_post(f"{PREFIX}/notes", json={})
        assert anonymous.status_code == 401
        public = await conductor.simulate_post(
            f"{PREFIX}/callback", json={"to": "+15551234", "text": "hi"}
        )
        assert (public.status_code, public.json) == (200, {"to": "+15551234"})
        refused = await conductor.simulate_post(f"{PREFIX}/callback", json={"text": "hi"})
        assert (refused.status_code, refused.json["field"]) == (400, "to")

    run_probe(tmp_path, scenario)


def test_declared_operations_are_documented_under_the_channels_path(tmp_path):
    """/api/openapi.json lists a declared channel operation under the channel's own path,
    with its body's schema, query, permission and an operationId prefixed with the
    channel's name; a public one has no security; undeclared methods, ``documented=False``
    ones and methods added to the core's webhook path are left out."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        document = (await conductor.simulate_get("/api/openapi.json")).json
        paths = document["paths"]
        notes = paths[f"{PREFIX}/notes"]
        assert set(notes) == {"post"}  # the undeclared GET is not documented
        post = notes["post"]
        assert post["operationId"] == "probeSendNote"
        assert post["x-permission"] == "messages:send"
        assert "`messages:send`" in post["description"]
        assert post["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ProbeNote"
        }
        assert [p["name"] for p in post["parameters"]] == ["dry_run"]
        assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ProbeEcho"
        }
        assert {"400", "401", "403", "429"} <= set(post["responses"])
        schema = document["components"]["schemas"]["ProbeNote"]
        assert schema["required"] == ["to", "text"]
        assert schema["properties"]["text"]["maxLength"] == 10
        callback = paths[f"{PREFIX}/callback"]["post"]
        assert callback["security"] == []
        assert "x-permission" not in callback
        assert callback["operationId"] == "probePostCallback"
        assert "429" not in callback["responses"]  # a provider's call: not rate limited
        assert f"{PREFIX}/hidden" not in paths
        assert f"{PREFIX}/webhook" not in paths
        assert set(paths["/api/channels/{channel}/webhook"]) == {"parameters", "post"}

    run_probe(tmp_path, scenario)


def test_an_undeclared_channel_route_works_as_before(tmp_path):
    """A method the resource does not declare is served as before: behind the route's
    permission, its body left unread, and not documented."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert (await conductor.simulate_get(f"{PREFIX}/notes")).status_code == 401
        served = await conductor.simulate_get(f"{PREFIX}/notes", headers=AUTH)
        assert (served.status_code, served.json) == (200, {"undeclared": True, "body": None})

    run_probe(tmp_path, scenario)


def test_declared_operations_not_documented_and_on_core_paths_are_still_checked(tmp_path):
    """``documented=False`` and a method added to the core's webhook path keep the checks
    their declaration asks for."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        hidden = await conductor.simulate_get(f"{PREFIX}/hidden", headers=AUTH)
        assert hidden.status_code == 200
        assert (await conductor.simulate_get(f"{PREFIX}/hidden")).status_code == 401
        verified = await conductor.simulate_get(f"{PREFIX}/webhook", params={"dry_run": "true"})
        assert (verified.status_code, verified.json) == (200, {"dry_run": True})
        refused = await conductor.simulate_get(f"{PREFIX}/webhook", params={"dry_run": "x"})
        assert (refused.status_code, refused.json["field"]) == (400, "dry_run")

    run_probe(tmp_path, scenario)


def failure_of(tmp_path: Path, channel: object) -> str:
    """The load error ``/api/plugins`` reports for ``channel`` (as ``probe``), whose routes
    are then not served."""
    found: list[str] = []

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        found.extend(failure["error"] for failure in plugins["failed"])
        missing = await conductor.simulate_get(f"{PREFIX}/health", headers=AUTH)
        assert missing.status_code == 404

    run_app(tmp_path, {"probe": channel}, scenario)
    [error] = found
    return error


def sending(operations: Any) -> object:
    """A resource serving POST, declaring ``operations``."""

    class Sending:
        async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            resp.media = {}

    resource = Sending()
    resource.operations = operations  # type: ignore[attr-defined]
    return resource


def test_an_operation_may_restate_who_may_call_only_as_its_route_says(tmp_path):
    """An operation that restates its ChannelRoute's permission loads; one that names
    another permission, or says public on a private route (or the reverse), unloads the
    channel with a message naming the route, the method and both sides."""

    async def loads(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        assert plugins["failed"] == []
        document = (await conductor.simulate_get("/api/openapi.json")).json
        assert document["paths"][f"{PREFIX}/send"]["post"]["x-permission"] == "messages:send"

    def route(operation: Operation, **who: Any) -> object:
        return channel_of(ChannelRoute("send", sending({"POST": operation}), **who))

    agreeing = Operation("Send", permission="messages:send", body=ProbeNote)
    run_probe(tmp_path / "agreeing", loads, route(agreeing, permission="messages:send"))

    other = Operation("Send", permission="channels:read")
    error = failure_of(tmp_path / "other", route(other, permission="messages:send"))
    assert error == (
        "channel 'probe' route 'send' POST: the operation says permission 'channels:read'"
        " but the ChannelRoute says permission 'messages:send'; say who may call once, on"
        " the ChannelRoute"
    )
    opened = Operation("Send", public=True)
    error = failure_of(tmp_path / "opened", route(opened, permission="messages:send"))
    assert "the operation says public but the ChannelRoute says permission" in error
    closed = Operation("Send", permission="messages:send")
    error = failure_of(tmp_path / "closed", route(closed, public=True))
    assert "but the ChannelRoute says public" in error


def test_operations_that_cannot_be_served_unload_the_channel(tmp_path):
    """Operations for a method the resource does not serve, operations that are not
    Operation objects, or a body class the core cannot describe: the channel is unloaded,
    saying which route and why."""
    cases = [
        ({"PUT": Operation("Put")}, "route 'send' declares PUT but has no on_put"),
        ([Operation("Send")], "route 'send': operations must map methods to Operation"),
        (
            {"POST": {"summary": "Send"}},
            "route 'send' POST: operations must be Operation objects, not dict",
        ),
        ({"POST": Operation("Send", body=Path)}, "POST /api/channels/probe/send: "),
    ]
    for index, (operations, expected) in enumerate(cases):
        channel = channel_of(ChannelRoute("send", sending(operations), permission="messages:send"))
        error = failure_of(tmp_path / str(index), channel)
        assert expected in error, error


def test_two_operations_of_a_channel_may_not_share_an_operation_id(tmp_path):
    """Two documented operations of one channel declaring the same operation_id would make
    the document ambiguous: the channel is unloaded, naming both. Without one, each gets
    an id of its own, from its method and path."""
    same = Operation("Send", operation_id="send")
    channel = channel_of(
        ChannelRoute("a", sending({"POST": same}), permission="messages:send"),
        ChannelRoute("b", sending({"POST": same}), permission="messages:send"),
    )
    error = failure_of(tmp_path / "same", channel)
    assert "POST a and POST b are both documented as operationId 'probeSend'" in error

    async def distinct(conductor: testing.ASGIConductor) -> None:
        paths = (await conductor.simulate_get("/api/openapi.json")).json["paths"]
        ids = {path: item["post"]["operationId"] for path, item in paths.items() if "probe" in path}
        assert ids == {f"{PREFIX}/a/one": "probePostAOne", f"{PREFIX}/b/one": "probePostBOne"}

    unnamed = Operation("Send")
    channel = channel_of(
        ChannelRoute("a/one", sending({"POST": unnamed}), permission="messages:send"),
        ChannelRoute("b/one", sending({"POST": unnamed}), permission="messages:send"),
    )
    run_probe(tmp_path / "distinct", distinct, channel)
