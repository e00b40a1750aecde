"""Commands of the ``omnichannel`` program that plugins add (``register_commands``): run on
the server's machine, with the stores open, as ``omnichannel <group> <name> [arguments]``
(``omnichannel users create-admin``)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable

import attrs

COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
CORE_COMMANDS = ("serve", "worker", "plugins")
"""The program's own commands: no plugin's command group may take their names."""


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not COMMAND_NAME.match(value):
        raise ValueError(f"command {attribute.name}s look like 'create-admin', not {value!r}")


@attrs.frozen
class Command:
    """``omnichannel <group> <name>``.

    :param arguments: adds the command's arguments to its ``argparse`` parser.
    :param run: ``async def run(args) -> int``: the exit status. It runs with every store
        open; an OmnichannelError it raises is printed as one line, exit status 2.
    :param description: the command's ``--help`` text, when more than ``help`` (plain
        text: what it does, what it asks, what it refuses).
    :param group_help: what the group is for, in one line (the first command of a group
        says it), and ``group_description`` at more length.
    """

    group: str = attrs.field(validator=_name)
    name: str = attrs.field(validator=_name)
    help: str
    run: Callable[[argparse.Namespace], Awaitable[int]]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    description: str = ""
    group_help: str = ""
    group_description: str = ""
