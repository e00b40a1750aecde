"""The ``omnichannel`` command: ``serve`` runs the server, ``plugins`` lists the plugins,
``users create-admin`` creates an admin (the first one, or more) on the server's machine."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import attrs

from omnichannel_core import __version__
from omnichannel_core.access.records import Role, User
from omnichannel_core.access.service import COMMAND_LINE, Access
from omnichannel_core.access.tokens import TokenSigner
from omnichannel_core.app import create_app
from omnichannel_core.auth import ApiKeys
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError, OmnichannelError
from omnichannel_core.plugins import load_plugins
from omnichannel_core.store import open_store
from omnichannel_core.web.system_routes import plugins_report

GUNICORN_SETTINGS = "python:omnichannel_core.gunicorn_conf"
APP_FACTORY = "omnichannel_core.app:get_app()"


def gunicorn_command(app: str = APP_FACTORY, *, control_socket: bool = True) -> list[str]:
    """The command line that runs ``app`` under gunicorn with the project's settings; the one
    place it is spelled, for ``omnichannel serve``, the tests and the benchmarks."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        GUNICORN_SETTINGS,
        *([] if control_socket else ["--no-control-socket"]),
        app,
    ]


def _serve(args: argparse.Namespace, config: Config) -> int:
    env = dict(os.environ)
    if args.port is not None:
        env["PORT"] = str(args.port)
    if args.workers is not None:
        env["OMNICHANNEL_WORKERS"] = str(args.workers)
    if args.host is not None:
        env["OMNICHANNEL_HOST"] = args.host
    Config.from_environ(env)  # fail here, with one line, on a bad value
    argv = gunicorn_command(control_socket=not args.no_control_socket)
    os.execve(sys.executable, argv, env)  # noqa: S606 - replaces this process with gunicorn
    return 0  # not reached


def _plugins(args: argparse.Namespace, config: Config) -> int:
    plugins = load_plugins(config.plugins_dir, config.disabled_plugins)
    # Build the app as the server would, so a channel whose routes fail is reported too;
    # placeholder secrets keep this from generating the server's secret files.
    placeholders = attrs.evolve(config, api_keys=("listing-only",), jwt_secret="listing-only" * 4)
    create_app(placeholders, plugins)
    report = plugins_report(plugins)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for item in report["items"]:
            dist = f"{item['distribution']} {item['version']}" if item["distribution"] else "-"
            print(f"{item['name']:<24} {item['kind']:<8} {dist:<32} {', '.join(item['hooks'])}")
        for failure in report["failed"]:
            print(f"FAILED {failure['name']} ({failure['source']}): {failure['error']}")
        for name in report["disabled"]:
            print(f"disabled {name}")
    return 1 if report["failed"] else 0


def _ask_password() -> str:
    password = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("Again: ") != password:
        raise ConfigError("the two passwords differ; nothing was created")
    return password


async def _store_admin(config: Config, email: str, name: str, password: str) -> User:
    store = open_store(config.store_url)
    await store.open()
    try:
        # Creating a user needs neither the token secret nor the bootstrap key: none is read,
        # so the server still generates (and shows) its own on first start.
        signer = TokenSigner("not-used-by-the-command-line" * 2, timedelta(minutes=1))
        access = Access(store, config, signer, ApiKeys.of(()))
        return await access.create_user(COMMAND_LINE, email, name, Role.ADMIN, password, None)
    finally:
        await store.close()


def _create_admin(args: argparse.Namespace, config: Config) -> int:
    password = args.password if args.password is not None else _ask_password()
    try:
        user = asyncio.run(_store_admin(config, args.email, args.name, password))
    except OmnichannelError as error:
        print(f"omnichannel: {error.message}", file=sys.stderr)
        return 2
    print(f"created admin {user.email} (id {user.id}); log in with POST /api/auth/login")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnichannel", description=__doc__)
    parser.add_argument("--version", action="version", version=f"omnichannel {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (gunicorn with uvicorn workers)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.add_argument("--host", help="address to bind (default: $OMNICHANNEL_HOST or 127.0.0.1)")
    serve.add_argument("--workers", type=int, help="worker processes (default: 2)")
    serve.add_argument(
        "--no-control-socket",
        action="store_true",
        help="do not create gunicorn's control socket (tests, CI)",
    )
    serve.set_defaults(run=_serve)
    plugins = commands.add_parser("plugins", help="list plugins, their hooks and failures")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=_plugins)
    users = commands.add_parser("users", help="manage users from the server's machine")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    create_admin = user_commands.add_parser(
        "create-admin", help="create an admin user (asks for the password when not given)"
    )
    create_admin.add_argument("--email", required=True)
    create_admin.add_argument("--name", required=True, help="display name")
    create_admin.add_argument(
        "--password", help="the password (visible in the process list: prefer the prompt)"
    )
    create_admin.set_defaults(run=_create_admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = Config.from_environ()
        return args.run(args, config)
    except ConfigError as error:
        print(f"omnichannel: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
