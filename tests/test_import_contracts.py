"""The import contracts: plugins import only the declared plugin APIs, and the kernel's
layers import only downwards.

- A channel (the built-in HTTP channel, the Twilio and Facebook distributions, the channel
  template, the local plugins of ``plugins/``) imports from the core only
  ``omnichannel_core`` (``hookimpl``) and ``omnichannel_core.channel``; its tests may add
  ``omnichannel_core.testing``, and never import the core's own tests (``tests.support``...),
  which no installed core ships: what they need is the kit's.
- The email distribution is a channel with a module's features (the IMAP job and the store
  where it keeps its place): only the files that bring those (``channel.py``, which
  registers them, ``imap.py``, ``imap_client.py`` and the store of ``imap_store/``) may
  import the module API; the rest of ``omnichannel_email`` is channel code, held to the
  channel API. Its tests may use the module API and the test kit, and, a channel's tests,
  not the core's own tests either.
- A module of ``omnichannel_core/modules/`` imports from the core only ``omnichannel_core``,
  ``omnichannel_core.module`` (and ``.sqlite``, ``.firestore``), ``omnichannel_core.channel``
  and its own package: never another module's, nor a private part of the core. A module
  distribution (the greeter of ``tests/fixtures/``) imports only those; its tests may add
  ``omnichannel_core.testing``.
- The kernel's layers, top down: web, plugins, jobs, bus, store, then the vocabulary every
  layer uses. A layer imports only its own and those below it; the vocabulary imports no
  layer. The programs (app, cli, worker, supervisor...), the core's plugin (``system``), the
  facades (``channel``, ``module``) and the test kit sit above them all.

Every import counts, those made only for type checking included: a layer that names a
higher one's types depends on it.
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "omnichannel_core"

LAYERS = ("web", "plugins", "jobs", "bus", "store")
"""The kernel's layers, top down."""
LAYER_OF_PACKAGE = {**{name: name for name in LAYERS}, "hookspecs": "plugins"}
ABOVE_THE_LAYERS = frozenset(
    {
        "app",
        "channel",
        "channels",
        "cli",
        "gunicorn_conf",
        "gunicorn_worker",
        "module",
        "modules",
        "supervisor",
        "system",
        "testing",
        "worker",
    }
)
"""What may use every layer: the programs, the facades, the test kit and the plugins the
core ships (whose own contracts are below)."""
RANK = {"vocabulary": 0, **{name: len(LAYERS) - index for index, name in enumerate(LAYERS)}}

CHANNEL_API = frozenset({"omnichannel_core", "omnichannel_core.channel"})
MODULE_API = frozenset(
    {
        "omnichannel_core",
        "omnichannel_core.module",
        "omnichannel_core.module.sqlite",
        "omnichannel_core.module.firestore",
        "omnichannel_core.channel",
    }
)
TEST_KIT = "omnichannel_core.testing"

CHANNEL_SOURCES = [
    CORE / "channels",
    ROOT / "omnichannel-twilio" / "omnichannel_twilio",
    ROOT / "omnichannel-facebook" / "omnichannel_facebook",
    ROOT / "omnichannel-webchat" / "omnichannel_webchat",
    ROOT / "templates" / "channel" / "omnichannel-example" / "omnichannel_example",
    ROOT / "plugins",
]
CHANNEL_TESTS = [
    ROOT / "omnichannel-twilio" / "tests",
    ROOT / "omnichannel-facebook" / "tests",
    ROOT / "omnichannel-webchat" / "tests",
    ROOT / "templates" / "channel" / "omnichannel-example" / "tests",
]

GREETER = ROOT / "tests" / "fixtures" / "omnichannel-greeter"
EMAIL = ROOT / "omnichannel-email"
EMAIL_PACKAGE = EMAIL / "omnichannel_email"
EMAIL_MODULE_PARTS = [
    EMAIL_PACKAGE / "channel.py",  # register_stores and register_jobs: StoreSpec, Job
    EMAIL_PACKAGE / "imap.py",  # the IMAP polling job, its context and its store
    EMAIL_PACKAGE / "imap_client.py",  # stops when the job's JobControl says so
    # where the job keeps its place, a module-owned store: its spec and backends (not
    # records.py, plain data)
    EMAIL_PACKAGE / "imap_store" / "__init__.py",
    EMAIL_PACKAGE / "imap_store" / "sqlite.py",
    EMAIL_PACKAGE / "imap_store" / "firestore.py",
]
"""The email channel's files that bring a module's features (the IMAP job and the store
where it keeps its place) and so need the module API; allowed per file so that the rest
of the channel (parsing, composing, SMTP, the webhook) stays held to the channel API."""
MODULE_DISTRIBUTION_SOURCES = [GREETER / "omnichannel_greeter", *EMAIL_MODULE_PARTS]
"""Code of distributions that bring module features: it imports the module API, which
includes the channel API."""
MODULE_DISTRIBUTION_TESTS = [GREETER / "tests", EMAIL / "tests"]


def module_name(path: Path) -> str:
    """``omnichannel_core.web.body`` for ``omnichannel_core/web/body.py``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved; a name imported
    from a package counts as its submodule too (``from omnichannel_core import module``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{source}.{alias.name}"


def core_imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, source in imported(path):
        if source == "omnichannel_core" or source.startswith("omnichannel_core."):
            yield line, source


def is_module(source: str) -> bool:
    """Whether ``source`` names a module or package of the core (not a name in one)."""
    relative = Path(*source.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative).is_dir()


def layer_of(source: str) -> str | None:
    """The layer of a core module; None for what sits above the layers."""
    parts = source.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ABOVE_THE_LAYERS:
        return None
    return LAYER_OF_PACKAGE.get(top, "vocabulary")


def python_files(*places: Path) -> list[Path]:
    """The Python files of each place: a folder's (recursively), or the file itself."""
    return sorted(
        path for place in places for path in ([place] if place.is_file() else place.rglob("*.py"))
    )


def email_channel_code() -> list[Path]:
    """The email package's files outside :data:`EMAIL_MODULE_PARTS`: channel code."""
    module_files = set(python_files(*EMAIL_MODULE_PARTS))
    return [path for path in python_files(EMAIL_PACKAGE) if path not in module_files]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", python_files(CORE), ids=relative)
def test_kernel_layers_import_only_downwards(path):
    """A file of a layer imports nothing from a higher layer, nor from above the layers; the
    vocabulary imports no layer at all."""
    own = layer_of(module_name(path))
    if own is None:
        return
    upward = [
        f"line {line}: {source} ({layer_of(source) or 'above the layers'})"
        for line, source in core_imports(path)
        if is_module(source) and ((above := layer_of(source)) is None or RANK[above] > RANK[own])
    ]
    assert upward == [], f"{relative(path)} is in {own} and imports upwards"


@pytest.mark.parametrize("path", python_files(CORE / "modules"), ids=relative)
def test_modules_import_only_the_module_api_and_their_own_package(path):
    """A built-in module uses the core through ``omnichannel_core.module`` as any third
    party's does, and never another module's code."""
    own = "omnichannel_core.modules." + path.relative_to(CORE / "modules").parts[0]
    private = [
        f"line {line}: {source}"
        for line, source in core_imports(path)
        if is_module(source)
        and source not in MODULE_API
        and source != own
        and not source.startswith(own + ".")
    ]
    assert private == [], f"{relative(path)} imports what a module may not"


@pytest.mark.parametrize("path", python_files(*MODULE_DISTRIBUTION_SOURCES), ids=relative)
def test_module_distributions_import_only_the_module_api(path):
    """A module distributed on its own uses the core only through the module API."""
    private = [
        f"line {line}: {source}"
        for line, source in core_imports(path)
        if is_module(source) and source not in MODULE_API
    ]
    assert private == [], f"{relative(path)} imports what a module may not"


@pytest.mark.parametrize("path", python_files(*MODULE_DISTRIBUTION_TESTS), ids=relative)
def test_module_distribution_tests_import_only_the_module_api_and_the_test_kit(path):
    """A module's tests may add the test kit, and nothing else of the core."""
    private = [
        f"line {line}: {source}"
        for line, source in core_imports(path)
        if is_module(source)
        and source not in MODULE_API
        and source != TEST_KIT
        and not source.startswith(TEST_KIT + ".")
    ]
    assert private == [], f"{relative(path)} imports what a module's tests may not"


@pytest.mark.parametrize(
    "path", python_files(*CHANNEL_SOURCES) + email_channel_code(), ids=relative
)
def test_channels_import_only_the_channel_api(path):
    """A channel's code imports from the core only ``hookimpl`` and the channel API."""
    private = [
        f"line {line}: {source}"
        for line, source in core_imports(path)
        if is_module(source) and source not in CHANNEL_API
    ]
    assert private == [], f"{relative(path)} imports what a channel may not"


@pytest.mark.parametrize("path", python_files(*CHANNEL_TESTS), ids=relative)
def test_channel_tests_import_only_the_channel_api_and_the_test_kit(path):
    """A channel's tests may add the test kit, and nothing else of the core."""
    private = [
        f"line {line}: {source}"
        for line, source in core_imports(path)
        if is_module(source)
        and source not in CHANNEL_API
        and source != TEST_KIT
        and not source.startswith(TEST_KIT + ".")
    ]
    assert private == [], f"{relative(path)} imports what a channel's tests may not"


CORE_TESTS = "tests"
"""The core's own test package (``tests/``: ``tests.support``, ``tests.fixtures``)."""


@pytest.mark.parametrize("path", python_files(*CHANNEL_TESTS, EMAIL / "tests"), ids=relative)
def test_channel_tests_never_import_the_cores_tests(path):
    """A channel's tests import nothing of the core's test package: a channel's repository
    has the installed core, whose kit (``omnichannel_core.testing``) is all it gets."""
    private = [
        f"line {line}: {source}"
        for line, source in imported(path)
        if source == CORE_TESTS or source.startswith(CORE_TESTS + ".")
    ]
    assert private == [], f"{relative(path)} imports the core's tests"


@pytest.mark.parametrize("facade", ["omnichannel_core.channel", "omnichannel_core.module"])
def test_the_plugin_apis_declare_everything_they_offer(facade):
    """Each plugin API lists in ``__all__`` every public name it holds, and each name it
    lists is there: what a plugin may import is written in one place."""
    module = importlib.import_module(facade)
    public = {
        name
        for name, value in vars(module).items()
        if name[0] not in "_@"  # "@py_builtins": pytest's assertion rewriting
        and name != "annotations"  # from __future__
        and not isinstance(value, types.ModuleType)  # its submodules (module.sqlite)
    }
    assert sorted(module.__all__) == sorted(public)


def test_the_contracts_see_every_layer_and_plugin():
    """The contracts above read real code: every layer and every plugin folder has files."""
    for name in LAYERS:
        assert python_files(CORE / name), name
    for folder in [
        *CHANNEL_SOURCES,
        *CHANNEL_TESTS,
        CORE / "modules",
        *MODULE_DISTRIBUTION_SOURCES,
        *MODULE_DISTRIBUTION_TESTS,
    ]:
        assert python_files(folder), folder
    assert email_channel_code(), EMAIL_PACKAGE


def test_the_email_module_parts_are_the_files_that_need_the_module_api():
    """Each file allowed the module API in the email package uses it (an allowance left
    behind by a change would let channel code in unchecked), and no other file does."""
    needs = {
        relative(path)
        for path in python_files(EMAIL_PACKAGE)
        if any(
            source == "omnichannel_core.module" or source.startswith("omnichannel_core.module.")
            for _, source in core_imports(path)
        )
    }
    allowed = {relative(path) for path in python_files(*EMAIL_MODULE_PARTS)}
    assert needs == allowed
