"""The channel template (templates/channel/omnichannel-example) and the guide that walks
through it (docs/writing-a-channel.md) stay true: the template, copied and renamed with the
guide's own commands and pip-installed like any distribution, passes its tests, the
conformance suite among them, and the real server loads it from its entry point and serves
its routes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.testing import (
    ChannelConformance,
    FakeProvider,
    InboxReader,
    RecordedRequest,
    ScriptedResponse,
    running_server,
)
from omnichannel_core.testing.server import other_installed_channels
from tests.fixtures.distributions import pip_install

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "channel" / "omnichannel-example"
GUIDE = ROOT / "docs" / "writing-a-channel.md"
RENAME_SECTION = "## 1. Copy and rename"
NAME = "acme"  # what the guide renames the template to
SKIPPED_WHEN_EVERY_HOOK_IS_IMPLEMENTED = "test_missing_hooks_answer_501"

API_TOKEN = "template-api-token"
WEBHOOK_SECRET = "template-webhook-secret"
VERIFY_TOKEN = "template-verify-token"

FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<code>.*?)^(?P=indent)```$", re.M | re.S)
EXCERPT = re.compile(
    r"^[ ]*<!-- excerpt: (?P<path>\S+) -->\n(?P<indent>[ ]*)```\w*\n(?P<code>.*?)^(?P=indent)```$",
    re.M | re.S,
)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _copy_tree(source: Path, destination: Path) -> None:
    """Copy a source tree without what builds and test runs leave in it."""
    ignored = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".pytest_cache", ".ruff_cache"
    )
    shutil.copytree(source, destination, ignore=ignored)


def _rename_commands() -> str:
    """The shell block of the guide's rename section: what a reader runs."""
    text = GUIDE.read_text()
    start = text.index(RENAME_SECTION)
    section = text[start : text.index("\n## ", start + 1)]
    blocks = [match["code"] for match in FENCE.finditer(section) if match["lang"] == "sh"]
    assert blocks, f"{GUIDE.name} has no sh block under {RENAME_SECTION!r}"
    return blocks[0]


@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template copied into a checkout-like folder and renamed to ``acme`` by running
    the guide's commands there, as a reader would: the copy lands beside the checkout."""
    workspace = tmp_path_factory.mktemp("projects")
    checkout = workspace / "omnichannel"
    _copy_tree(TEMPLATE, checkout / TEMPLATE.relative_to(ROOT))
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _rename_commands()],
        cwd=checkout,
        check=True,
        capture_output=True,
    )
    return workspace / f"omnichannel-{NAME}"


@pytest.fixture(scope="module")
def site(renamed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --target folder with the renamed distribution pip-installed in it (never the
    shared virtualenv); a process sees it through PYTHONPATH, entry point included."""
    return pip_install(tmp_path_factory.mktemp("site") / "packages", renamed)


def test_guide_rename_leaves_no_trace_of_the_template_name(renamed: Path) -> None:
    """The guide's rename commands rename every name the template has: no file name and no
    line mentions the template's name any more, and the entry point is the new one."""
    leftovers = [
        f"{path.relative_to(renamed)}:{number}"
        for path in sorted(renamed.rglob("*"))
        if path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "example" in line.lower()
    ]
    leftovers += [str(p) for p in renamed.rglob("*") if "example" in p.name.lower()]
    assert not leftovers, f"the rename missed: {leftovers}"
    pyproject = (renamed / "pyproject.toml").read_text()
    assert f'{NAME} = "omnichannel_{NAME}.channel:AcmeChannel"' in pyproject
    assert (renamed / f"omnichannel_{NAME}" / "channel.py").is_file()


def _junit_cases(report: Path) -> dict[str, tuple[str, str]]:
    """Each test of a junit report: ``class::name`` -> (outcome, message)."""
    cases = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message", "")
        cases[f"{case.get('classname')}::{case.get('name')}"] = (outcome, message)
    return cases


def test_renamed_template_passes_its_tests_and_the_conformance_suite(
    renamed: Path, site: Path, tmp_path: Path
) -> None:
    """``pytest`` on the installed copy's tests/ (in a process that finds the channel only
    through the installed dist-info on PYTHONPATH) passes: every test of the conformance
    suite is collected for the channel and passes, but the 501 test, skipped because the
    template implements every hook; the template's own tests pass too."""
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            str(renamed / "tests"),
        ],
        cwd=tmp_path,  # not the copy: its sources must not shadow what was installed
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    cases = _junit_cases(report)
    suite = {name for name in dir(ChannelConformance) if name.startswith("test_")}
    conformance = {
        key.rpartition("::")[2]: outcome
        for key, outcome in cases.items()
        if key.split("::")[0].endswith(f"Test{NAME.capitalize()}Conformance")
    }
    assert set(conformance) == suite, f"collected {sorted(conformance)}, not {sorted(suite)}"
    assert len(conformance) == 9
    skipped, reason = conformance.pop(SKIPPED_WHEN_EVERY_HOOK_IS_IMPLEMENTED)
    assert skipped == "skipped" and "implements every hook" in reason
    assert {outcome for outcome, _ in conformance.values()} == {"passed"}, conformance
    own = {key: outcome for key, (outcome, _) in cases.items() if "Conformance" not in key}
    assert own and set(own.values()) == {"passed"}, own


def _provider_answer(request: RecordedRequest) -> ScriptedResponse:
    """The provider's API as the template's README documents it."""
    if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
        return ScriptedResponse.json(401, {"error": {"code": "unauthorized"}})
    if (request.method, request.path) == ("GET", "/v1/me"):
        return ScriptedResponse.json(200, {"id": "account-1"})
    if (request.method, request.path) == ("POST", "/v1/messages"):
        return ScriptedResponse.json(201, {"id": f"p-{uuid.uuid4().hex}"})
    return ScriptedResponse.json(404, {"error": {"code": "not_found"}})


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(answer=_provider_answer) as fake:
        yield fake


def test_server_serves_the_installed_channel(
    site: Path, provider: FakeProvider, tmp_path: Path
) -> None:
    """The real server, with the installed copy on its PYTHONPATH, loads the channel from
    its entry point and serves its routes: listed in /api/plugins with its distribution
    and every hook, its health ok, its handshake answered, a signed webhook stored, and a
    send reaching the provider's API with the token, once."""
    env = {
        "PYTHONPATH": str(site),
        # what this environment installs (twilio, facebook) stays off; acme, installed only
        # in the --target folder, is not among them and loads
        "OMNICHANNEL_DISABLE_PLUGINS": other_installed_channels(),
        "ACME_API_TOKEN": API_TOKEN,
        "ACME_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ACME_VERIFY_TOKEN": VERIFY_TOKEN,
        "ACME_API_BASE_URL": provider.url,
    }
    with (
        running_server(tmp_path, env) as server,
        server.client() as api,
        server.client(api_key=None) as public,
    ):
        plugins = api.get("/api/plugins").json()
        assert plugins["failed"] == [], plugins["failed"]
        (item,) = [item for item in plugins["items"] if item["name"] == NAME]
        assert (item["kind"], item["distribution"], item["version"]) == (
            "channel",
            f"omnichannel-{NAME}",
            "0.1.0",
        )
        assert item["hooks"] == [
            "channel_routes",
            "health",
            "receive",
            "send",
            "send_policy",
            "settings",
            "status",
        ]

        health = api.get(f"/api/channels/{NAME}/health")
        assert health.status_code == 200, health.text
        assert health.json()["ok"] is True

        handshake = public.get(
            f"/api/channels/{NAME}/webhook",
            params={"verify_token": VERIFY_TOKEN, "challenge": "c-7"},
        )
        assert (handshake.status_code, handshake.text) == (200, "c-7")

        body = json.dumps({"messages": [{"id": "m-1", "from": "user-1", "text": "hi"}]}).encode()
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        webhook = public.post(
            f"/api/channels/{NAME}/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-Acme-Signature": f"sha256={digest}"},
        )
        assert webhook.status_code == 200, webhook.text
        (stored,) = InboxReader(api).messages_with_provider_id(NAME, "m-1")
        assert stored["text"] == "hi"

        sent = api.post(
            f"/api/channels/{NAME}/messages",
            json={"to": "user-1", "text": "hello"},
            headers={"Prefer": "wait=10"},  # answered once the outbox sent it
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["provider_message_id"].startswith("p-")
        (send,) = [r for r in provider.requests if r.method == "POST"]
        assert send.path == "/v1/messages"
        assert send.json() == {"to": "user-1", "text": "hello", "attachments": []}


def _unindented(code: str, indent: str) -> str:
    """A block's code without the indent of its fence (a block nested in a list item)."""
    return "".join(line.removeprefix(indent) for line in code.splitlines(keepends=True))


def test_guide_excerpts_are_the_template_code() -> None:
    """Every code block the guide marks as an excerpt of a template file is that file's
    code, verbatim: the guide cannot drift from the template it walks through."""
    excerpts = list(EXCERPT.finditer(GUIDE.read_text()))
    assert len(excerpts) >= 8
    stale = []
    for match in excerpts:
        source = (TEMPLATE / match["path"]).read_text()
        if _unindented(match["code"], match["indent"]) not in source:
            stale.append(match["path"])
    assert not stale, f"excerpts that are not the template's code: {stale}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_guide_links_resolve() -> None:
    """Every relative link of the guide names a file or folder that exists, and every
    anchor a heading of that file."""
    broken = []
    for match in LINK.finditer(GUIDE.read_text()):
        target = match["target"]
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (GUIDE.parent / path).resolve() if path else GUIDE
        if not resolved.exists():
            broken.append(target)
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert not broken, f"links to nothing: {broken}"
