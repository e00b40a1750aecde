"""The plugin documentation stays true: every hook documented, tested and exemplified."""

from __future__ import annotations

import ast
import inspect
import re
import types
from pathlib import Path

import pytest

from omnichannel_core import PROJECT_NAME, hookspecs
from omnichannel_core.plugins.loading import new_manager

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DOC = ROOT / "docs" / "hooks.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
HEADING = re.compile(r"^## `(?P<name>\w+)\((?P<params>[^)]*)\)(?: -> [^`]+)?`$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


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


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def _examples(path: Path) -> list[str]:
    return [match["code"] for match in PYTHON_BLOCK.finditer(path.read_text())]


def test_hookspecs_are_found():
    """The meta-tests below see the five hooks the core specifies."""
    assert _hook_names() == ["channel_routes", "health", "receive", "send", "status"]


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


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_examples_register_as_valid_plugins(hook):
    """Each hook's example runs as a module and registers cleanly: its hook names and
    arguments match the specs (pluggy's check_pending and argument validation)."""
    module = types.ModuleType(f"hooks_doc_example_{hook}")
    exec(compile(_section_example(hook), module.__name__, "exec"), module.__dict__)
    manager = new_manager()
    manager.register(module)
    manager.check_pending()
    assert [caller.name for caller in manager.get_hookcallers(module)] == [hook]
