"""docs/writing-a-module.md stays true: every file it shows is the greeter's
(tests/fixtures/omnichannel-greeter), whole or as an excerpt, word for word; it explains each
hook the greeter implements and lists each of its files; the kit's names it uses exist; and
what it quotes of the core (a start-up failure, a failing migration, /health) is what the
core says."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from falcon import testing

from omnichannel_core import PROJECT_NAME
from omnichannel_core import testing as kit
from omnichannel_core.errors import ConfigError
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.system.routes import JobHealth, SubscriberHealth
from omnichannel_core.testing import plugin as kit_fixtures
from omnichannel_core.testing.in_process import AUTH, run_app

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-module.md"
GREETER = ROOT / "tests" / "fixtures" / "omnichannel-greeter"
SHOWN = re.compile(
    r"^(?P<kind>The whole of|From) `(?P<path>[^`]+)`:\n\n```(?:python|toml)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
JSON_BLOCK = re.compile(r"^```json\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
KIT_NAMES = ("run_store", "run_app", "running_server", "running_worker", "AUTH", "API_KEY")
KIT_FIXTURES = ("sqlite_database", "firestore_database")


def _text() -> str:
    return GUIDE.read_text()


def _shown(kind: str) -> list[tuple[str, str]]:
    return [(m["path"], m["code"]) for m in SHOWN.finditer(_text()) if m["kind"] == kind]


def _greeter_module(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """A module of the greeter's package, imported from its folder (it is a fixture, not
    installed)."""
    monkeypatch.syspath_prepend(str(GREETER))
    return importlib.import_module(f"omnichannel_greeter.{name}")


def test_the_guide_shows_the_main_file_the_store_and_the_packaging_whole():
    """The main file, the store's protocol and pyproject.toml are shown in full."""
    shown = {path for path, _ in _shown("The whole of")}
    assert {"omnichannel_greeter/plugin.py", "omnichannel_greeter/store.py"} <= shown
    assert "pyproject.toml" in shown


@pytest.mark.parametrize(("path", "code"), _shown("The whole of"), ids=lambda v: v[:40])
def test_a_file_shown_whole_is_the_greeters_file(path, code):
    """A block introduced by "The whole of `path`:" is that file of the greeter, exactly."""
    assert code == (GREETER / path).read_text()


@pytest.mark.parametrize(("path", "code"), _shown("From"), ids=lambda v: v[:40])
def test_an_excerpt_is_in_the_greeters_file(path, code):
    """A block introduced by "From `path`:" is whole lines of that file, as they are."""
    lines = (GREETER / path).read_text().splitlines(keepends=True)
    excerpt = code.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line == excerpt[0]]
    assert any(lines[n : n + len(excerpt)] == excerpt for n in starts), path


def test_the_layout_lists_every_file_of_the_greeter():
    """Every source file of the distribution has its row in the layout table."""
    files = [
        path.relative_to(GREETER).as_posix()
        for path in sorted(GREETER.rglob("*"))
        if path.suffix in (".py", ".toml")
        and path.name != "__init__.py"
        and "__pycache__" not in path.parts
    ]
    assert files
    missing = [path for path in files if f"| `{path}` |" not in _text()]
    assert missing == []


def test_each_hook_the_greeter_implements_is_explained(monkeypatch):
    """Each hook implementation of the greeter's plugin has its paragraph, opening with the
    hook's name in bold."""
    module = _greeter_module(monkeypatch, "plugin").GreeterModule
    hooks = [
        name for name, member in vars(module).items() if hasattr(member, f"{PROJECT_NAME}_impl")
    ]
    assert len(hooks) == 5
    assert [hook for hook in hooks if f"**`{hook}`**" not in _text()] == []


def test_the_kit_names_the_guide_uses_exist():
    """The kit's functions and fixtures the guide names are the kit's."""
    for name in KIT_NAMES:
        assert f"`{name}" in _text()
        assert name in kit.__all__
    for fixture in KIT_FIXTURES:
        assert f"`{fixture}`" in _text()
        assert callable(getattr(kit_fixtures, fixture))


def test_the_quoted_start_up_failure_is_the_cores(tmp_path, monkeypatch):
    """The failure the guide quotes for a bad GREETER_TALLY_SECONDS is what /api/plugins
    reports when the greeter runs in the app with that setting."""
    quoted = re.search(r"`(register_jobs raised ConfigError: [^`]+)`", _text(), re.DOTALL)
    assert quoted is not None
    greeter = _greeter_module(monkeypatch, "plugin").GreeterModule()
    reported = []

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        reported.extend(failure["error"] for failure in plugins["failed"])

    run_app(tmp_path, {}, scenario, {"GREETER_TALLY_SECONDS": "soon"}, modules={"g": greeter})
    assert reported == [" ".join(quoted[1].split())]


def test_the_quoted_migration_failure_is_the_cores(tmp_path, monkeypatch):
    """A second step of the greeter's store that SQLite refuses stops the migration with
    the message the guide shows, placeholders filled."""
    quoted = re.search(r"`(OMNICHANNEL_STORE: cannot use <file>: [^`]+)`", _text())
    assert quoted is not None
    store = _greeter_module(monkeypatch, "plugin").STORE
    broken = attrs.evolve(store, sqlite_migrations=(*store.sqlite_migrations, "CREATE TABLE ("))
    path = tmp_path / "store.db"
    with pytest.raises(ConfigError) as refused:
        asyncio.run(SqliteDatabase(path).migrate([broken]))
    pattern = re.escape(quoted[1]).replace("<file>", re.escape(str(path)))
    pattern = pattern.replace(re.escape("<SQLite's reason>"), ".+")
    assert re.fullmatch(pattern, refused.value.message), refused.value.message


def test_the_health_excerpt_has_the_real_fields():
    """The /health excerpt's job and subscriber entries have exactly the fields /health
    answers with."""
    (block,) = JSON_BLOCK.findall(_text())
    health = json.loads(block)
    (job,) = health["jobs"].values()
    (subscriber,) = health["subscribers"].values()
    assert set(job) == {field.name for field in attrs.fields(JobHealth)}
    assert set(subscriber) == {field.name for field in attrs.fields(SubscriberHealth)}
