"""A module's event type whose loader fails for one record does not stop the realtime
stream: that event goes out with no record, as for a record that is gone, and the events
after it go out as usual, to a live stream and to one replaying the log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from falcon import testing

from omnichannel_core.module import EventTypeSpec, ModuleContext, hookimpl, to_json
from omnichannel_core.modules.events import stream as stream_module
from omnichannel_core.testing import AUTH, run_app
from tests.support.sse import SimulatedStream
from tests.test_module_hooks import NotesModule, NotesStore


class BrittleNotes(NotesModule):
    """The notes module, whose loader raises for a note saying "bad" (a bug in a module)."""

    @hookimpl
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        store = context.store(NotesStore)

        async def load(record_id: str) -> Any:
            note = await store.get(record_id)
            if note is not None and note.text == "bad":
                raise RuntimeError("the loader has a bug")
            return None if note is None else to_json(note)

        return [EventTypeSpec("note.created", "note", "notes:read", load)]


def sent_notes(body: bytes) -> list[Any]:
    """The ``note`` of each ``note.created`` event a stream sent, in order."""
    notes = []
    for block in body.decode().split("\n\n"):
        lines = block.splitlines()
        if "event: note.created" in lines:
            (data,) = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
            notes.append(json.loads(data)["note"])
    return notes


def test_a_failing_loader_sends_its_event_without_a_record_and_the_stream_goes_on(
    tmp_path, monkeypatch
):
    # a stream closed by the test is noticed at its next keepalive: make that soon
    monkeypatch.setattr(stream_module, "KEEPALIVE_SECONDS", 0.2)

    async def scenario(conductor: testing.ASGIConductor) -> None:
        async with conductor.simulate_get_stream("/api/events", headers=AUTH) as live:
            stream = SimulatedStream(live)
            await stream.until("ready")
            for text in ("good1", "bad", "good2"):
                added = await conductor.simulate_post(
                    "/api/test-notes", json={"text": text}, headers=AUTH
                )
                assert added.status_code == 201, added.text
            async with asyncio.timeout(10):
                while len(sent_notes(stream.body)) < 3:
                    await stream.until("note.created")
                    await asyncio.sleep(0.05)
            notes = sent_notes(stream.body)
        assert [note and note["text"] for note in notes] == ["good1", None, "good2"]

        async with conductor.simulate_get_stream(
            "/api/events", params={"after": "0"}, headers=AUTH
        ) as replay:
            replayed = SimulatedStream(replay)
            await replayed.until("note.created")
            async with asyncio.timeout(10):
                while len(sent_notes(replayed.body)) < 3:
                    await replayed.until("note.created")
                    await asyncio.sleep(0.05)
        assert [note and note["text"] for note in sent_notes(replayed.body)] == [
            "good1",
            None,
            "good2",
        ]

    run_app(tmp_path, {}, scenario, modules={"notes": BrittleNotes()})
