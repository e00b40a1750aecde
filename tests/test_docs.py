"""The plugin documentation stays true: every hook documented, tested and exemplified, and
every example loads in the real app."""

from __future__ import annotations

import ast
import functools
import inspect
import re
import types
from pathlib import Path

import pytest
from falcon import testing

from omnichannel_core import PROJECT_NAME, hookspecs
from omnichannel_core.plugins.loading import new_manager
from omnichannel_core.testing.in_process import AUTH, run_app

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DOC = ROOT / "docs" / "hooks.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
HEADING = re.compile(r"^## `(?P<name>\w+)\((?P<params>[^)]*)\)(?: -> [^`]+)?`$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
SHELL_BLOCK = re.compile(r"^ *```sh\n(?P<code>.*?)^ *```$", re.MULTILINE | re.DOTALL)
INSTALL_GUIDES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "templates").rglob("README.md")),
    ROOT / "omnichannel-twilio" / "README.md",
    ROOT / "omnichannel-facebook" / "README.md",
    ROOT / "omnichannel-email" / "README.md",
    ROOT / "omnichannel-webchat" / "README.md",
]


def _hook_names() -> list[str]:
    return sorted(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, f"{PROJECT_NAME}_spec")
    )


def _documented_signatures() -> dict[str, list[str]]:
    return {
        match["name"]: [p.strip() for p in match["params"].split(",") if p.strip()]
        for match in HEADING.finditer(HOOKS_DOC.read_text())
    }


@functools.cache  # every hook's test asks: the tests are parsed once per process
def _test_function_names() -> frozenset[str]:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return frozenset(names)


def _examples(path: Path) -> list[str]:
    return [match["code"] for match in PYTHON_BLOCK.finditer(path.read_text())]


CHANNEL_HOOKS = [
    "channel_routes",
    "health",
    "media_fetch",
    "normalize_address",
    "receive",
    "send",
    "send_policy",
    "settings",
    "status",
    "webhook_body_limit",
]
MODULE_HOOKS = [
    "register_authenticators",
    "register_commands",
    "register_event_types",
    "register_jobs",
    "register_permissions",
    "register_routes",
    "register_services",
    "register_stores",
    "register_subscribers",
]
DECLARED_APIS = {
    "omnichannel_core",
    "omnichannel_core.channel",
    "omnichannel_core.module",
    "omnichannel_core.module.sqlite",
    "omnichannel_core.module.firestore",
    "omnichannel_core.testing",
}
"""What a plugin imports from the core: the examples show nothing else."""


def test_hookspecs_are_found():
    """The meta-tests below see the five channel hooks and the nine module hooks."""
    assert _hook_names() == sorted(CHANNEL_HOOKS + MODULE_HOOKS)


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_section_with_its_signature(hook):
    """docs/hooks.md has a section per hook whose heading is the hook's signature, with the
    spec's parameters in order."""
    documented = _documented_signatures()
    assert hook in documented, f"docs/hooks.md has no '## `{hook}(...)`' section"
    spec_params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert documented[hook] == spec_params


def test_no_section_for_a_hook_that_does_not_exist():
    """Every hook section in docs/hooks.md names a real hook."""
    assert sorted(_documented_signatures()) == _hook_names()


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_test(hook):
    """Each hook has a test named ``test_hook_<name>`` somewhere under tests/."""
    assert f"test_hook_{hook}" in _test_function_names()


def _section_example(hook: str) -> str:
    """The one python example in the hook's section of docs/hooks.md."""
    text = HOOKS_DOC.read_text()
    start = text.index(f"## `{hook}(")
    following = text.find("\n## ", start + 1)
    section = text[start : following if following != -1 else len(text)]
    (example,) = [match["code"] for match in PYTHON_BLOCK.finditer(section)]
    return example


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_section_has_a_python_example(hook):
    """Each hook's section holds one python example that implements that very hook."""
    assert re.search(rf"^(async )?def {hook}\(", _section_example(hook), re.MULTILINE)


@pytest.mark.parametrize(
    ("doc", "index"),
    [(doc, index) for doc in (HOOKS_DOC, PLUGINS_DOC) for index in range(len(_examples(doc)))],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_python_examples_compile(doc, index):
    """Every python example in the plugin docs compiles."""
    compile(_examples(doc)[index], f"{doc.name}[{index}]", "exec")


def _example_module(hook: str) -> types.ModuleType:
    """The hook's example of docs/hooks.md, run as a module."""
    module = types.ModuleType(f"hooks_doc_example_{hook}")
    exec(compile(_section_example(hook), module.__name__, "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_examples_register_as_valid_plugins(hook):
    """Each hook's example runs as a module and registers cleanly: its hook names and
    arguments match the specs (pluggy's check_pending and argument validation)."""
    module = _example_module(hook)
    manager = new_manager()
    manager.register(module)
    manager.check_pending()
    assert [caller.name for caller in manager.get_hookcallers(module)] == [hook]


EXAMPLE_CHANNEL = "docs-example"
EXAMPLE_TOKEN = "docs-example-token"


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_examples_load_in_the_real_app(tmp_path, hook):
    """Each hook's example loads in the app the server builds (which checks and mounts
    what the hooks return): a channel hook's as a channel, a module hook's as a module. It
    is listed with its hook and nothing failed, so an example the server would refuse
    fails here."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        assert plugins["failed"] == []
        [listed] = [item for item in plugins["items"] if item["name"] == EXAMPLE_CHANNEL]
        assert listed["hooks"] == [hook]

    plugin = {EXAMPLE_CHANNEL: _example_module(hook)}
    if hook in MODULE_HOOKS:
        run_app(tmp_path, {}, scenario, modules=plugin)
    else:
        run_app(tmp_path, plugin, scenario)


@pytest.mark.parametrize(
    ("doc", "index"),
    [(doc, index) for doc in (HOOKS_DOC, PLUGINS_DOC) for index in range(len(_examples(doc)))],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_examples_import_only_the_declared_plugin_apis(doc, index):
    """The examples import from the core only what plugins may: ``hookimpl``, the channel
    API, the module API (and its store backends) and the test kit."""
    tree = ast.parse(_examples(doc)[index])
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] == "omnichannel_core"
    }
    assert imported <= DECLARED_APIS


def test_the_channel_routes_example_is_served(tmp_path):
    """The channel_routes example's routes answer as its section says: the public webhook
    verification echoes the challenge for the right token only; ping needs a caller with
    the permission its route names, has its declared body checked (400 naming the field)
    and is documented under the channel's path, where the undeclared verification is
    not."""
    prefix = f"/api/channels/{EXAMPLE_CHANNEL}"

    async def scenario(conductor: testing.ASGIConductor) -> None:
        verified = await conductor.simulate_get(
            f"{prefix}/webhook", params={"token": EXAMPLE_TOKEN, "challenge": "c-1"}
        )
        assert (verified.status_code, verified.text) == (200, "c-1")
        refused = await conductor.simulate_get(f"{prefix}/webhook", params={"token": "x"})
        assert refused.status_code == 403
        ping = f"{prefix}/ping"
        assert (await conductor.simulate_post(ping, json={"text": "hi"})).status_code == 401
        pong = await conductor.simulate_post(ping, json={"text": "hi"}, headers=AUTH)
        assert (pong.status_code, pong.json) == (200, {"pong": "hi"})
        bad = await conductor.simulate_post(ping, json={"text": ""}, headers=AUTH)
        assert (bad.status_code, bad.json["field"]) == (400, "text")
        paths = (await conductor.simulate_get("/api/openapi.json")).json["paths"]
        documented = paths[ping]["post"]
        assert (documented["operationId"], documented["x-permission"]) == (
            "docsExamplePing",
            "channels:read",
        )
        assert f"{prefix}/webhook" not in paths

    channels = {EXAMPLE_CHANNEL: _example_module("channel_routes")}
    run_app(tmp_path, channels, scenario, environ={"ECHO_TOKEN": EXAMPLE_TOKEN})


@pytest.mark.parametrize("guide", INSTALL_GUIDES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_command_installs_the_core_from_the_package_index(guide):
    """omnichannel-core is not on the package index: no shell command of the docs (in a
    shell block or inline) installs it by name alone; one that names it installs it from a
    git URL (a checkout is installed by its path)."""
    text = guide.read_text()
    commands = [
        line.split(" # ")[0].strip()  # without its comment
        for block in SHELL_BLOCK.finditer(text)
        for line in block["code"].splitlines()
    ] + INLINE_CODE.findall(text)
    by_name = [
        command
        for command in commands
        if "pip install" in command and "omnichannel-core" in command and "git+" not in command
    ]
    assert by_name == []


LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")
LINKING_DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])


@pytest.mark.parametrize("doc", LINKING_DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_to_files_that_exist(doc):
    """Every relative link of the README, the changelog and the docs (pages, the
    architecture picture, folders) leads to something in the repository."""
    broken = [
        match["target"]
        for match in LINK.finditer(doc.read_text())
        if "://" not in match["target"]
        and not match["target"].startswith("mailto:")
        and not (doc.parent / match["target"]).exists()
    ]
    assert broken == []
