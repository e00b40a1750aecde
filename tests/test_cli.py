"""The ``omnichannel`` command's help, as a user reads it in a terminal."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.app import build_registry
from omnichannel_core.cli import build_parser
from omnichannel_core.config import Config

OMNICHANNEL = str(Path(sys.executable).parent / "omnichannel")


def command_parsers(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and every subcommand's parser, each with the words that select it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from command_parsers(subparser, (*words, name))


def full_parser() -> argparse.ArgumentParser:
    """The parser with the core's commands and those the installed modules add."""
    return build_parser(build_registry(Config(api_keys=("k",), jwt_secret="s" * 32)))


COMMANDS = [words for words, _ in command_parsers(full_parser())]


def test_help_is_plain_text():
    """``omnichannel --help`` exits 0 and shows plain text: no reStructuredText markup
    (the module docstring, with its ``double backticks``, was the description)."""
    result = subprocess.run(
        [OMNICHANNEL, "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "``" not in result.stdout
    assert "environment variables" in result.stdout
    for command in ("serve", "worker", "plugins", "users"):
        assert command in result.stdout


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(words) or "omnichannel")
def test_every_command_has_plain_help_that_says_what_it_does(words):
    """Every command and subcommand has a description of its own, in plain text, and every
    option it takes has a help line."""
    parser = dict(command_parsers(full_parser()))[words]
    assert parser.description, f"omnichannel {' '.join(words)} has no description"
    help_text = parser.format_help()
    assert "``" not in help_text and ":class:" not in help_text
    for action in parser._actions:
        if action.option_strings:
            assert action.help, f"{action.option_strings} has no help"


def test_a_command_says_which_store_it_runs_on(tmp_path):
    """A module's command names the store it opened, whole: run from another folder, a
    relative OMNICHANNEL_DATA_DIR is another store, and the operator sees which."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "OMNICHANNEL_DATA_DIR": "omnichannel-data",
        "OMNICHANNEL_PLUGINS_DIR": str(tmp_path / "no-plugins"),
    }
    env.pop("OMNICHANNEL_STORE", None)
    created = subprocess.run(
        [
            OMNICHANNEL,
            "users",
            "create-admin",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--password",
            "a-long-enough-password",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    database = elsewhere / "omnichannel-data" / "omnichannel.db"
    assert f"omnichannel: on the SQLite file {database}" in created.stderr
    assert "created admin ops@example.com" in created.stdout
