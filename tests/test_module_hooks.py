"""One test per module hook in ``omnichannel_core.hookspecs``, named ``test_hook_<name>``.

Each registers a small module in-process (no packaging) and drives the real app
(``create_app`` on a real SQLite store, through ``falcon.testing.ASGIConductor``), with the
job runner beside it where the hook is about background work.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.module import (
    Event,
    EventTypeSpec,
    InboxReader,
    Job,
    JobControl,
    ModuleContext,
    Operation,
    PageOf,
    PermissionSpec,
    Principal,
    Response,
    Role,
    Route,
    StoreSpec,
    Subscriber,
    field,
    to_json,
)
from omnichannel_core.module.sqlite import SqliteDatabase, append_event
from omnichannel_core.testing.in_process import AUTH, run_app
from tests.support.signing import (
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    encode,
    inbound_message,
    signature,
    unique,
)
from tests.support.sse import SimulatedStream

ENVIRON = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
Scenario = Callable[[testing.ASGIConductor], Awaitable[None]]


def _run(tmp_path: Path, modules: dict[str, object], scenario: Scenario, **options: Any) -> None:
    run_app(tmp_path, {}, scenario, ENVIRON, modules=modules, **options)


async def _webhook(conductor: testing.ASGIConductor, text: str) -> None:
    body = encode(inbound_message(unique("+1555"), text))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
    response = await conductor.simulate_post(WEBHOOK_PATH, body=body, headers=headers)
    assert response.status_code == 200, response.text


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.05)


# A store of notes, with the routes that use it ----------------------------------------


@attrs.frozen
class Note:
    """A note."""

    id: int
    text: str


@attrs.frozen
class NewNote:
    text: str = field(min_length=1, max_length=100)


class NotesStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def add(self, text: str) -> Note:
        def write(connection: sqlite3.Connection) -> Note:
            row = connection.execute(
                "INSERT INTO test_notes (text) VALUES (?) RETURNING id", (text,)
            ).fetchone()
            append_event(connection, "note.created", str(row[0]), data={"length": len(text)})
            return Note(row[0], text)

        return await self.database.write(write)

    async def get(self, note_id: str) -> Note | None:
        def read(connection: sqlite3.Connection) -> Note | None:
            row = connection.execute(
                "SELECT id, text FROM test_notes WHERE id = ?", (note_id,)
            ).fetchone()
            return None if row is None else Note(row[0], row[1])

        return await self.database.read(read)

    async def count(self) -> int:
        return await self.database.read(
            lambda c: c.execute("SELECT count(*) FROM test_notes").fetchone()[0]
        )


NOTES_STORE = StoreSpec(
    "test_notes",
    NotesStore,
    sqlite=NotesStore,
    sqlite_migrations=("CREATE TABLE test_notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",),
)


class NotesResource:
    operations = {
        "GET": Operation(
            "Count the notes", permission="notes:read", responses={200: Response(PageOf(Note))}
        ),
        "POST": Operation(
            "Add a note",
            permission="notes:write",
            body=NewNote,
            responses={201: Response(Note, "Added.")},
        ),
    }

    def __init__(self, store: NotesStore) -> None:
        self.store = store

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"items": [], "next_cursor": None, "count": await self.store.count()}

    async def on_post(self, req: Any, resp: Any) -> None:
        resp.status = 201
        resp.media = to_json(await self.store.add(req.context.body.text))


class NotesModule:
    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return [
            PermissionSpec("notes:read", "read notes", (Role.AGENT,), scopes=("read",)),
            PermissionSpec("notes:write", "add notes"),
        ]

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [NOTES_STORE]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return [Route("/api/test-notes", NotesResource(context.store(NotesStore)))]

    @hookimpl
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        store = context.store(NotesStore)

        async def load(record_id: str) -> Any:
            note = await store.get(record_id)
            return None if note is None else to_json(note)

        return [EventTypeSpec("note.created", "note", "notes:read", load)]


# the tests ----------------------------------------------------------------------------


def test_hook_register_permissions(tmp_path):
    """Contributed permissions join the matrix: the roles they name hold them (an agent
    user may read but not write notes, an admin key both), a key may be given one by name,
    and the preset ``read`` includes what says so."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        me = (await conductor.simulate_get("/api/auth/me", headers=AUTH)).json
        assert {"notes:read", "notes:write"} <= set(me["permissions"])
        reader = await conductor.simulate_post(
            "/api/api-keys", json={"name": "r", "scopes": ["read"]}, headers=AUTH
        )
        headers = {"Authorization": f"Bearer {reader.json['key']}"}
        assert (await conductor.simulate_get("/api/test-notes", headers=headers)).status_code == 200
        refused = await conductor.simulate_post(
            "/api/test-notes", json={"text": "x"}, headers=headers
        )
        assert (refused.status_code, refused.json["permission"]) == (403, "notes:write")
        unknown = await conductor.simulate_post(
            "/api/api-keys", json={"name": "w", "scopes": ["notes:delete"]}, headers=AUTH
        )
        assert unknown.status_code == 400

    _run(tmp_path, {"notes": NotesModule()}, scenario)


def test_hook_register_stores(tmp_path):
    """A module's store is migrated with the core's (its version recorded under its name),
    built on the configured database, reached through ``context.store``, and kept across a
    restart."""

    async def add(conductor: testing.ASGIConductor) -> None:
        added = await conductor.simulate_post(
            "/api/test-notes", json={"text": "kept"}, headers=AUTH
        )
        assert added.status_code == 201
        health = (await conductor.simulate_get("/health")).json
        assert health["store"]["schema"]["test_notes"] == 1

    async def read(conductor: testing.ASGIConductor) -> None:
        counted = await conductor.simulate_get("/api/test-notes", headers=AUTH)
        assert counted.json["count"] == 1

    _run(tmp_path, {"notes": NotesModule()}, add)
    _run(tmp_path, {"notes": NotesModule()}, read)


class Greeter:
    """Offers a service other modules use."""

    @hookimpl
    def register_services(self) -> dict[type, Any]:
        return {Greeting: Greeting("hello")}


@attrs.frozen
class Greeting:
    word: str


class GreetingUser:
    """Uses another module's service, and the inbox's."""

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        class Greet:
            operations = {"GET": Operation("Greet", permission="conversations:read")}

            async def on_get(self, req: Any, resp: Any) -> None:
                page = await context.service(InboxReader).list_conversations(limit=5)
                word = context.service(Greeting).word
                resp.media = {"greeting": word, "conversations": len(page.items)}

        return [Route("/api/test-greet", Greet())]


def test_hook_register_services(tmp_path):
    """A service one module offers is found by another through ``context.service``, like
    the inbox's reader; offering an interface twice unloads the second plugin."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await _webhook(conductor, "hi")
        greeted = (await conductor.simulate_get("/api/test-greet", headers=AUTH)).json
        assert greeted == {"greeting": "hello", "conversations": 1}
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        (failed,) = plugins["failed"]
        assert failed["name"] == "greeter_again"
        assert "Greeting is offered already" in failed["error"]

    modules = {"greeter": Greeter(), "greeting_user": GreetingUser(), "greeter_again": Greeter()}
    _run(tmp_path, modules, scenario)


def test_hook_register_event_types(tmp_path):
    """A module's own events stream to readers holding its type's permission, with the
    record its loader reads; readers without the permission are not told of them."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        async with conductor.simulate_get_stream("/api/events", headers=AUTH) as result:
            stream = SimulatedStream(result)
            await stream.until("ready")
            await conductor.simulate_post("/api/test-notes", json={"text": "hey"}, headers=AUTH)
            await stream.until("note.created")
        body = stream.body.split(b"event: note.created\n")[1].split(b"data: ", 1)[1]
        assert json.loads(body.split(b"\n")[0])["note"] == {"id": 1, "text": "hey"}

    _run(tmp_path, {"notes": NotesModule()}, scenario)


class Doorman:
    """Lets in the token ``letmein`` as a supervisor named Door."""

    @hookimpl
    def register_authenticators(self, context: ModuleContext) -> list[Any]:
        async def authenticate(token: str) -> Principal | None:
            if token != "letmein":
                return None
            permissions = context.policy.of_role(Role.SUPERVISOR)
            return Principal("user", "usr_door", "Door", permissions, Role.SUPERVISOR)

        return [authenticate]


def test_hook_register_authenticators(tmp_path):
    """An authenticator's principal is who calls: its permissions decide, as a user's would;
    a token no authenticator knows is refused 401."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        headers = {"Authorization": "Bearer letmein"}
        me = (await conductor.simulate_get("/api/auth/me", headers=headers)).json
        assert (me["id"], me["role"]) == ("usr_door", "supervisor")
        assert (await conductor.simulate_get("/api/users", headers=headers)).status_code == 200
        assert (await conductor.simulate_get("/api/audit", headers=headers)).status_code == 403
        nobody = {"Authorization": "Bearer let-me-out"}
        assert (await conductor.simulate_get("/api/users", headers=nobody)).status_code == 401

    _run(tmp_path, {"doorman": Doorman()}, scenario)


class BrokenRoutes:
    @hookimpl
    def register_routes(self) -> list[Route]:
        class NoOperation:
            async def on_get(self, req: Any, resp: Any) -> None:
                resp.media = {}

        return [Route("/api/test-broken", NoOperation())]


def test_hook_register_routes(tmp_path):
    """A module's routes are served with what their operations declare: the body checked
    (400 naming the field), the permission required, the answer documented in the OpenAPI
    document; a route serving a method it does not declare unloads its module, saying why,
    and the others serve."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        bad = await conductor.simulate_post("/api/test-notes", json={"text": ""}, headers=AUTH)
        assert (bad.status_code, bad.json["field"]) == (400, "text")
        assert (
            await conductor.simulate_post("/api/test-notes", json={"text": "x"})
        ).status_code == 401
        document = (await conductor.simulate_get("/api/openapi.json")).json
        operation = document["paths"]["/api/test-notes"]["post"]
        assert operation["x-permission"] == "notes:write"
        assert operation["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/NewNote"
        }
        assert "/api/test-broken" not in document["paths"]
        assert (await conductor.simulate_get("/api/test-broken", headers=AUTH)).status_code == 404
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        (failed,) = plugins["failed"]
        assert failed["name"] == "broken"
        assert "declares no Operation for it" in failed["error"]

    _run(tmp_path, {"notes": NotesModule(), "broken": BrokenRoutes()}, scenario)


class Counter:
    """Counts inbound messages, by channel, from the event log; fails once on purpose."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.failed = False

    @hookimpl
    def register_subscribers(self) -> list[Subscriber]:
        async def handle(event: Event) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("first try fails")
            self.seen.append(event)

        return [Subscriber("counter.messages", handle, types={"message.created"})]


def test_hook_register_subscribers(tmp_path, monkeypatch):
    """A subscriber gets each event of its types, in log order, with its data, from a
    cursor kept in the store; a handler that raises gets the same event again; its state is
    in /health."""
    monkeypatch.setattr("omnichannel_core.jobs.subscribers.FIRST_RETRY_SECONDS", 0.05)
    counter = Counter()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for text in ("one", "two", "three"):
            await _webhook(conductor, text)

        async def three() -> bool:
            return len(counter.seen) == 3

        await _eventually(three)
        assert [event.data["channel"] for event in counter.seen] == ["http"] * 3
        assert [event.type for event in counter.seen] == ["message.created"] * 3
        health = (await conductor.simulate_get("/health")).json
        assert health["subscribers"]["counter.messages"] == {
            "ok": True,
            "started": True,
            "lag_seconds": 0.0,
            "failures": 0,
            "behind": False,
            "resyncing": False,
        }

    _run(tmp_path, {"counter": counter}, scenario, jobs=True)


class Ticker:
    def __init__(self) -> None:
        self.ticks = 0

    @hookimpl
    def register_jobs(self) -> list[Job]:
        async def tick(control: JobControl) -> None:
            self.ticks += 1

        return [Job("ticker.tick", tick, every=timedelta(milliseconds=50))]


def test_hook_register_jobs(tmp_path):
    """A periodic singleton job runs in the job runner, again and again at its period, under
    a lease /health shows held."""
    ticker = Ticker()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        async def twice() -> bool:
            return ticker.ticks >= 2

        await _eventually(twice)
        jobs = (await conductor.simulate_get("/health")).json["jobs"]
        assert jobs["ticker.tick"]["running"] is True
        assert jobs["ticker.tick"]["last_run_at"] is not None

    _run(tmp_path, {"ticker": ticker}, scenario, jobs=True)


COMMAND_PLUGIN = """
from omnichannel_core import hookimpl
from omnichannel_core.module import Command


async def shout(args):
    print(args.word.upper())
    return 7


def words(parser):
    parser.add_argument("word")


@hookimpl
def register_commands():
    return [Command("test", "shout", "say it louder", shout, words, group_help="test commands")]
"""


def test_hook_register_commands(tmp_path):
    """A plugin's command runs as ``omnichannel <group> <name>``, with its arguments, and its
    return is the exit status; ``--help`` lists it (the real program, in its own process)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "shouting.py").write_text(COMMAND_PLUGIN)
    env = {
        **os.environ,
        "OMNICHANNEL_PLUGINS_DIR": str(plugins),
        "OMNICHANNEL_DATA_DIR": str(tmp_path / "data"),
    }

    def omnichannel(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "omnichannel_core.cli", *arguments],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    shouted = omnichannel("test", "shout", "hey")
    assert (shouted.returncode, shouted.stdout.strip()) == (7, "HEY"), shouted.stderr
    helped = omnichannel("--help")
    assert helped.returncode == 0
    assert "test commands" in helped.stdout
