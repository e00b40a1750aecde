"""``omnichannel users create-admin``: an admin made on the server's machine (the first one
can be made no other way)."""

from __future__ import annotations

import argparse
import asyncio
import getpass

from omnichannel_core.module import Command, ConfigError, Role
from omnichannel_core.modules.access.passwords import MAX_LENGTH, MIN_LENGTH, check_strength
from omnichannel_core.modules.access.service import Access, command_line


def _ask_password() -> str:
    try:
        password = getpass.getpass("Password for the new admin: ")
        check_strength(password)  # refused now, not after it was typed twice
        again = getpass.getpass("Again: ")
    except EOFError:  # no terminal, and nothing (or too little) on standard input
        raise ConfigError(
            "no password was typed (standard input ended): run it on a terminal, or give"
            " --password; nothing was created"
        ) from None
    if again != password:
        raise ConfigError("the two passwords differ; nothing was created")
    return password


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the admin's email, to log in with")
    parser.add_argument("--name", required=True, help="the admin's display name")
    parser.add_argument(
        "--password", help="the password (visible in the process list: prefer the prompt)"
    )


def create_admin(access: Access) -> Command:
    async def run(args: argparse.Namespace) -> int:
        password = args.password
        if password is None:
            password = await asyncio.to_thread(_ask_password)
        actor = command_line(access.policy)
        user = await access.create_user(actor, args.email, args.name, Role.ADMIN, password, None)
        print(f"created admin {user.email} (id {user.id}); log in with POST /api/auth/login")
        return 0

    return Command(
        "users",
        "create-admin",
        "create an admin user (asks for the password when not given)",
        run,
        _arguments,
        description="Create an admin user: the first one, who then logs in and creates the"
        " others through the API, or another one. Asks for the password twice when --password"
        f" is not given; a password has {MIN_LENGTH} to {MAX_LENGTH} characters.",
        group_help="manage users from the server's machine",
        group_description="Manage users in the server's store, from the server's machine: run"
        " it with the server's environment.",
    )
