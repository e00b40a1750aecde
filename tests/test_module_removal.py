"""A module taken away (uninstalled, disabled, or failing to load) leaves the server working:
API keys given its permissions keep the rest of their scopes and can be revoked, and the
events it logged are told to nobody."""

from __future__ import annotations

from falcon import testing

from omnichannel_core.modules.events import stream as stream_module
from omnichannel_core.testing import AUTH, run_app
from tests.support.sse import SimulatedStream
from tests.test_module_hooks import ENVIRON, NotesModule, _webhook


def test_a_key_with_a_removed_modules_permission_keeps_working_and_can_be_revoked(
    tmp_path, monkeypatch
):
    """A key made with the notes module's permission (and the read preset) still reads
    contacts once the module is gone, no longer holds the permission, and is revoked; the
    same scope given to a new key is refused, naming it. The note's event, still in the
    log, is told to no stream, and the events after it are."""
    monkeypatch.setattr(stream_module, "KEEPALIVE_SECONDS", 0.2)
    made: dict[str, str] = {}

    async def with_notes(conductor: testing.ASGIConductor) -> None:
        created = await conductor.simulate_post(
            "/api/api-keys",
            json={"name": "notes-reader", "scopes": ["read", "notes:read"]},
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        made.update(id=created.json["id"], key=created.json["key"])
        added = await conductor.simulate_post(
            "/api/test-notes", json={"text": "kept in the log"}, headers=AUTH
        )
        assert added.status_code == 201, added.text

    async def without_notes(conductor: testing.ASGIConductor) -> None:
        key = {"Authorization": f"Bearer {made['key']}"}
        contacts = await conductor.simulate_get("/api/contacts", headers=key)
        assert contacts.status_code == 200, contacts.text
        me = (await conductor.simulate_get("/api/auth/me", headers=key)).json
        assert "notes:read" not in me["permissions"]
        assert "contacts:read" in me["permissions"]
        refused = await conductor.simulate_post(
            "/api/api-keys", json={"name": "again", "scopes": ["notes:read"]}, headers=AUTH
        )
        assert refused.status_code == 400
        assert "unknown scope 'notes:read'" in refused.json["message"]
        revoked = await conductor.simulate_delete(f"/api/api-keys/{made['id']}", headers=AUTH)
        assert revoked.status_code in (200, 204), revoked.text
        gone = await conductor.simulate_get("/api/contacts", headers=key)
        assert gone.status_code == 401

        async with conductor.simulate_get_stream(
            "/api/events", params={"after": "0"}, headers=AUTH
        ) as replay:
            stream = SimulatedStream(replay)
            await _webhook(conductor, "after the module left")
            sent = await stream.until("message.created")
        assert "note.created" not in sent

    run_app(tmp_path, {}, with_notes, ENVIRON, modules={"notes": NotesModule()})
    run_app(tmp_path, {}, without_notes, ENVIRON)
