"""Discovery for real: fixture channel distributions pip-installed into a private folder,
seen by the real gunicorn server through ``PYTHONPATH``, with their routes served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from omnichannel_core import hookimpl
from omnichannel_core.app import log_plugin_failures
from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import ServerProcess, other_installed_channels, running_server
from tests.fixtures.distributions import add_local_plugin, install_distributions

ECHO_TOKEN = "echo-shared-token"
WEBHOOK_SECRET = "plugins-webhook-secret"
CLI = Path(sys.executable).with_name("omnichannel")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --target folder holding the echo, broken and health-only fixture distributions."""
    target = tmp_path_factory.mktemp("site") / "packages"
    return install_distributions(target, "echo", "broken", "healthonly")


@pytest.fixture(scope="module")
def plugin_server(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Iterator[ServerProcess]:
    """The real server seeing the installed fixtures and three local plugin modules."""
    workdir = tmp_path_factory.mktemp("plugin-server")
    add_local_plugin(workdir, "stamp")
    add_local_plugin(workdir, "misspelt")
    add_local_plugin(workdir, "takeover")
    env = {"PYTHONPATH": str(site), "ECHO_TOKEN": ECHO_TOKEN, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    with running_server(workdir, env) as server:
        yield server


def _echo_webhook(server: ServerProcess, message_id: str, token: str = ECHO_TOKEN):
    body = {"id": message_id, "from": f"user-{message_id}", "text": f"hello {message_id}"}
    return server.client(None).post(
        "/api/channels/echo/webhook", json=body, headers={"X-Echo-Token": token}
    )


def _messages_from(server: ServerProcess, channel: str, sender: str) -> list[dict]:
    client = server.client()
    conversations = client.get("/api/conversations", params={"channel": channel}).json()["items"]
    (conversation,) = [c for c in conversations if c["address"] == sender]
    return client.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]


def _plugin(report: dict, name: str) -> dict:
    (item,) = [item for item in report["items"] if item["name"] == name]
    return item


def test_api_plugins_lists_installed_channel(plugin_server):
    """GET /api/plugins lists the pip-installed echo channel with its distribution, version
    and the hooks it implements."""
    report = plugin_server.client().get("/api/plugins").json()
    echo = _plugin(report, "echo")
    assert echo["kind"] == "channel"
    assert echo["distribution"] == "omnichannel-echo"
    assert echo["version"] == "0.3.1"
    assert echo["source"] == "omnichannel.channels:echo = omnichannel_echo"
    assert echo["hooks"] == ["channel_routes", "health", "receive", "send"]
    assert _plugin(report, "healthonly")["hooks"] == ["health"]
    assert "echo" in plugin_server.client(None).get("/").json()["channels"]


def test_echo_webhook_post_stores_message(plugin_server):
    """A token-authenticated POST to the echo webhook is stored and shows up in the inbox."""
    response = _echo_webhook(plugin_server, "echo-stored-1")
    assert response.status_code == 200
    (message,) = _messages_from(plugin_server, "echo", "user-echo-stored-1")
    assert message["text"] == "hello echo-stored-1"
    assert message["provider_message_id"] == "echo-stored-1"
    assert message["direction"] == "inbound"


def test_echo_webhook_wrong_token_rejected(plugin_server):
    """The echo channel's receive rejects a wrong token with 403 JSON and stores nothing."""
    response = _echo_webhook(plugin_server, "echo-rejected-1", token="wrong")
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"
    conversations = plugin_server.client().get("/api/conversations").json()["items"]
    assert all(c["address"] != "user-echo-rejected-1" for c in conversations)


def test_echo_contributed_get_on_webhook_is_public(plugin_server):
    """The GET the echo channel adds on its webhook path answers without an API key, echoing
    the challenge when the token matches and 403 otherwise; the core's POST stays in place."""
    client = plugin_server.client(None)
    ok = client.get("/api/channels/echo/webhook", params={"token": ECHO_TOKEN, "challenge": "c-42"})
    assert ok.status_code == 200
    assert ok.text == "c-42"
    refused = client.get("/api/channels/echo/webhook", params={"token": "no", "challenge": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "webhook_rejected"


def test_echo_contributed_ping_needs_api_key(plugin_server):
    """The echo channel's own non-public route is behind the API key like the rest of /api/."""
    assert plugin_server.client(None).get("/api/channels/echo/ping").status_code == 401
    response = plugin_server.client().get("/api/channels/echo/ping")
    assert response.status_code == 200
    assert response.json() == {"channel": "echo", "pong": True}


def test_echo_send_records_provider_id(plugin_server):
    """POST /api/channels/echo/messages runs echo's async send; its derived id is recorded."""
    response = plugin_server.client().post(
        "/api/channels/echo/messages",
        json={"to": "user-out-1", "text": "hi"},
        headers={"Prefer": "wait=10"},  # answered once the outbox's runner sent it
    )
    assert response.status_code == 201
    message = response.json()
    assert message["status"] == "sent"
    assert message["provider_message_id"] == f"echo-{message['id']}"


def test_broken_plugin_reported_and_server_serves(plugin_server):
    """A channel whose module raises ImportError is reported by distribution and entry point,
    in /api/plugins, in the plugin_load_failed log line and in /health; the rest serves."""
    report = plugin_server.client().get("/api/plugins").json()
    (failure,) = [f for f in report["failed"] if f["name"] == "broken"]
    assert failure["distribution"] == "omnichannel-broken"
    assert failure["source"] == "omnichannel.channels:broken = omnichannel_broken"
    assert failure["error"].startswith("ImportError: omnichannel_broken needs a library")
    assert all(item["name"] != "broken" for item in report["items"])

    lines = [json.loads(line) for line in plugin_server.log().splitlines() if '"event"' in line]
    logged = [line for line in lines if line.get("event") == "plugin_load_failed"]
    assert any(
        line["plugin"] == "broken"
        and line["distribution"] == "omnichannel-broken"
        and line["entry_point"] == failure["source"]
        for line in logged
    )
    health = plugin_server.client(None).get("/health").json()
    assert health["status"] == "degraded"
    assert "broken" in health["failed_plugins"]
    missing = plugin_server.client(None).get("/api/channels/broken/health")
    assert missing.status_code == 404
    assert missing.json()["message"].startswith("channel 'broken' failed to load")


def test_misspelt_hook_reported_as_failed(plugin_server):
    """A local plugin implementing ``recieve`` (no such hook) is reported as failed by
    pluggy's check_pending, not silently ignored."""
    report = plugin_server.client().get("/api/plugins").json()
    (failure,) = [f for f in report["failed"] if f["source"].endswith("plugins/misspelt.py")]
    assert failure["name"] == "misspelt"
    assert failure["kind"] == "local"
    assert "recieve" in failure["error"]
    assert all(item["name"] != "misspelt" for item in report["items"])


class ExtraArgument:
    """A module whose hook asks for an argument the hook's spec does not pass."""

    @hookimpl
    def register_routes(self, context, router):
        return []


def test_hook_with_an_argument_its_spec_lacks_is_reported_as_failed(tmp_path):
    """A module whose ``@hookimpl`` takes an argument its hook does not have is not
    registered, and is reported naming the hook and the argument; the server starts with
    the others (it used to stop start-up with pluggy's traceback)."""

    async def scenario(conductor) -> None:
        report = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        (failure,) = report["failed"]
        assert (failure["name"], failure["kind"]) == ("extra", "module")
        assert "register_routes" in failure["error"] and "{'router'}" in failure["error"]
        assert all(item["name"] != "extra" for item in report["items"])
        assert (await conductor.simulate_get("/api/contacts", headers=AUTH)).status_code == 200

    run_app(tmp_path, {}, scenario, modules={"extra": ExtraArgument()})


def test_local_wrapper_wraps_every_channel(plugin_server):
    """The local ``stamp`` plugin's receive wrapper runs around the async http channel and
    the sync echo channel alike, each time with the right channel name."""
    assert _echo_webhook(plugin_server, "echo-stamped-1").status_code == 200
    body = json.dumps({"id": "http-stamped-1", "from": "http-user-1", "text": "hi"}).encode()
    signed = plugin_server.client(None).post(
        "/api/channels/http/webhook",
        content=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body)},
    )
    assert signed.status_code == 200
    (echo_message,) = _messages_from(plugin_server, "echo", "user-echo-stamped-1")
    (http_message,) = _messages_from(plugin_server, "http", "http-user-1")
    assert echo_message["metadata"] == {"stamped_by": "stamp", "stamped_channel": "echo"}
    assert http_message["metadata"] == {"stamped_by": "stamp", "stamped_channel": "http"}
    stamp = _plugin(plugin_server.client().get("/api/plugins").json(), "stamp")
    assert stamp["kind"] == "local"
    assert stamp["hooks"] == ["receive"]


def test_unknown_channel_answers_404_json(plugin_server):
    """Any route under an unknown channel answers 404 with a JSON body naming it."""
    for method, path in [("POST", "webhook"), ("GET", "health"), ("GET", "anything/else")]:
        response = plugin_server.client().request(method, f"/api/channels/nosuch/{path}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert response.json()["channel"] == "nosuch"


def test_missing_hook_answers_501_naming_channel_and_hook(plugin_server):
    """A channel with only ``health`` answers its webhook, status and messages routes with
    501 JSON naming channel and hook, and stores nothing for the send."""
    client = plugin_server.client()
    surfaces = [("webhook", "receive"), ("status", "status"), ("messages", "send")]
    for path, hook in surfaces:
        response = client.post(f"/api/channels/healthonly/{path}", json={"to": "x", "text": "t"})
        assert response.status_code == 501, path
        assert response.json()["error"] == "not_implemented"
        assert response.json()["channel"] == "healthonly"
        assert response.json()["hook"] == hook
    assert client.get("/api/conversations", params={"channel": "healthonly"}).json()["items"] == []
    assert client.get("/api/channels/healthonly/health").json()["detail"] == "nothing to check"


def _run_cli(site: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "OMNICHANNEL_PLUGINS_DIR": str(workdir),
        "OMNICHANNEL_DISABLE_PLUGINS": other_installed_channels(),  # as the servers do
    }
    return subprocess.run(
        [str(CLI), "plugins", *args], cwd=workdir, env=env, capture_output=True, text=True
    )


def test_cli_plugins_matches_api_and_fails_on_broken(plugin_server, site):
    """``omnichannel plugins --json`` prints what /api/plugins serves, and the text form names
    each plugin and failure; both exit 1 because a plugin failed to load."""
    plugins_dir = plugin_server.workdir / "plugins"
    as_json = _run_cli(site, plugins_dir, "--json")
    assert as_json.returncode == 1, as_json.stderr
    assert json.loads(as_json.stdout) == plugin_server.client().get("/api/plugins").json()

    as_text = _run_cli(site, plugins_dir)
    assert as_text.returncode == 1
    assert any(
        line.split()[:3] == ["echo", "channel", "omnichannel-echo"]
        for line in as_text.stdout.splitlines()
    )
    assert "FAILED broken (omnichannel.channels:broken = omnichannel_broken)" in as_text.stdout
    assert "FAILED misspelt" in as_text.stdout


def test_cli_plugins_exits_0_when_all_load(tmp_path, site):
    """Without failing plugins ``omnichannel plugins`` exits 0."""
    clean_site = install_distributions(tmp_path / "clean", "echo")
    result = _run_cli(clean_site, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "echo" in result.stdout


def test_disable_plugins_removes_channel(tmp_path, site):
    """OMNICHANNEL_DISABLE_PLUGINS=echo,broken keeps both out: echo's routes answer 404
    saying it is disabled, both are listed as disabled, and nothing failed."""
    env = {
        "PYTHONPATH": str(site),
        "ECHO_TOKEN": ECHO_TOKEN,
        "OMNICHANNEL_DISABLE_PLUGINS": "echo,broken",
    }
    with running_server(tmp_path / uuid.uuid4().hex, env) as server:
        client = server.client()
        report = client.get("/api/plugins").json()
        assert sorted(report["disabled"]) == ["broken", "echo"]
        assert report["failed"] == []
        assert all(item["name"] != "echo" for item in report["items"])
        assert client.get("/api/channels/echo/ping").status_code == 404
        refused = _echo_webhook(server, "disabled-1")
        assert refused.status_code == 404
        assert refused.json()["message"] == (
            "channel 'echo' is disabled: OMNICHANNEL_DISABLE_PLUGINS names it"
        )
        assert "echo" not in client.get("/").json()["channels"]
        assert client.get("/health").json()["failed_plugins"] == []


@pytest.fixture(scope="module")
def faulty_routes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server seeing three channels: ``clash`` (its channel_routes redefines the
    core's POST on ``webhook``), ``raising`` (its channel_routes raises) and ``echo``."""
    root = tmp_path_factory.mktemp("faulty-routes")
    faulty_site = install_distributions(root / "packages", "clash", "raising", "echo")
    env = {"PYTHONPATH": str(faulty_site), "ECHO_TOKEN": ECHO_TOKEN}
    with running_server(root / "server", env) as server:
        yield server


def _failure(server: ServerProcess, name: str) -> dict:
    (failure,) = [
        f for f in server.client().get("/api/plugins").json()["failed"] if f["name"] == name
    ]
    return failure


def _logged_failure(server: ServerProcess, name: str) -> dict:
    """The plugin_load_failed line for ``name`` (the single worker logs it once)."""
    lines = [json.loads(line) for line in server.log().splitlines() if '"event"' in line]
    (logged,) = [
        line
        for line in lines
        if line.get("event") == "plugin_load_failed" and line.get("plugin") == name
    ]
    return logged


def _assert_unloaded(server: ServerProcess, name: str) -> None:
    """Every route of the channel answers 404 saying it failed to load; it is neither listed
    nor reported on as a channel; /health is degraded and names it."""
    client = server.client()
    for method, path in [("POST", "webhook"), ("GET", "webhook"), ("GET", "health")]:
        response = client.request(method, f"/api/channels/{name}/{path}")
        assert response.status_code == 404, (method, path)
        assert response.json()["channel"] == name
        assert response.json()["message"].startswith(f"channel {name!r} failed to load")
    assert all(item["name"] != name for item in client.get("/api/plugins").json()["items"])
    assert name not in client.get("/").json()["channels"]
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert name in health["failed_plugins"]
    assert name not in health["channels"]


def test_clashing_channel_route_unloads_only_that_channel(faulty_routes_server):
    """A channel whose channel_routes redefines the core's POST on ``webhook`` does not stop
    start-up: it is recorded as a failed plugin naming the channel, the route and the method,
    logged as plugin_load_failed, and not mounted at all (its hijacking POST never runs);
    the other channels serve."""
    failure = _failure(faulty_routes_server, "clash")
    assert failure["kind"] == "channel"
    assert failure["distribution"] == "omnichannel-clash"
    assert failure["source"] == "omnichannel.channels:clash = omnichannel_clash"
    assert failure["error"] == (
        "channel 'clash' route 'webhook' redefines POST, which the core serves"
    )
    logged = _logged_failure(faulty_routes_server, "clash")
    assert (logged["distribution"], logged["entry_point"]) == (
        "omnichannel-clash",
        failure["source"],
    )
    _assert_unloaded(faulty_routes_server, "clash")
    assert _echo_webhook(faulty_routes_server, "beside-clash-1").status_code == 200


def test_raising_channel_routes_unloads_only_that_channel(faulty_routes_server):
    """A channel whose channel_routes raises does not stop start-up: it is recorded with its
    distribution, entry point and the exception, logged as plugin_load_failed, and not
    mounted (its health hook is never asked); echo and the core's http channel serve."""
    failure = _failure(faulty_routes_server, "raising")
    assert failure["distribution"] == "omnichannel-raising"
    assert failure["source"] == "omnichannel.channels:raising = omnichannel_raising"
    assert failure["error"] == "channel_routes raised KeyError: 'RAISING_VERIFY_TOKEN'"
    assert _logged_failure(faulty_routes_server, "raising")["error"] == failure["error"]
    _assert_unloaded(faulty_routes_server, "raising")

    assert _echo_webhook(faulty_routes_server, "beside-raising-1").status_code == 200
    (message,) = _messages_from(faulty_routes_server, "echo", "user-beside-raising-1")
    assert message["text"] == "hello beside-raising-1"
    client = faulty_routes_server.client()
    assert client.get("/api/channels/echo/ping").json() == {"channel": "echo", "pong": True}
    assert set(client.get("/").json()["channels"]) == {"echo", "http"}


def test_plain_hook_in_cross_cutting_plugin_is_rejected(plugin_server):
    """A local plugin with a plain (not wrapper=True) ``send`` would answer send for every
    channel; it is a load failure instead, and each channel's own send still answers."""
    report = plugin_server.client().get("/api/plugins").json()
    (failure,) = [f for f in report["failed"] if f["name"] == "takeover"]
    assert failure["kind"] == "local"
    assert failure["source"].endswith("plugins/takeover.py")
    assert failure["error"] == (
        "only a channel implements channel hooks; other plugins may only wrap them:"
        " send is not wrapper=True"
    )
    assert all(item["name"] != "takeover" for item in report["items"])
    assert "takeover" in plugin_server.client(None).get("/health").json()["failed_plugins"]

    sent = plugin_server.client().post(
        "/api/channels/echo/messages",
        json={"to": "user-takeover-1", "text": "hi"},
        headers={"Prefer": "wait=10"},
    )
    assert sent.status_code == 201
    assert sent.json()["provider_message_id"] == f"echo-{sent.json()['id']}"
    missing = plugin_server.client().post(
        "/api/channels/healthonly/messages", json={"to": "x", "text": "t"}
    )
    assert missing.status_code == 501


def test_a_name_to_disable_that_no_plugin_has_is_warned_about():
    """OMNICHANNEL_DISABLE_PLUGINS naming no plugin (a typo) is not silently taken: the
    load notes it, and the server logs a warning naming it and the variable."""
    plugins = load_plugins(None, disabled=["http", "nosuch"])
    assert plugins.disabled == ["http"]
    assert plugins.disabled_unknown == ["nosuch"]
    with capture_logs() as logs:
        log_plugin_failures(plugins)
    [warning] = [entry for entry in logs if entry["event"] == "plugin_to_disable_not_found"]
    assert (warning["plugin"], warning["log_level"]) == ("nosuch", "warning")
    assert warning["variable"] == "OMNICHANNEL_DISABLE_PLUGINS"
