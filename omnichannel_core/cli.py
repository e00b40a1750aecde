"""The omnichannel program: run the server, run background jobs, list the plugins, and the
commands plugins add (users create-admin...)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence

import attrs

from omnichannel_core import __version__
from omnichannel_core.app import build_registry
from omnichannel_core.commands import CORE_COMMANDS, Command
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError, OmnichannelError
from omnichannel_core.logs import configure_logging
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.serialization import to_json
from omnichannel_core.supervisor import Supervisor, worker_command
from omnichannel_core.system.routes import plugins_report

GUNICORN_SETTINGS = "python:omnichannel_core.gunicorn_conf"
APP_FACTORY = "omnichannel_core.app:get_app()"
DESCRIPTION = (
    "omnichannel: one inbox for the messages of WhatsApp, SMS, Messenger and your own"
    " systems. 'serve' runs the server and its job runner, 'worker' runs the jobs alone,"
    " 'plugins' lists what is installed; installed modules add their own commands. Every"
    " command reads its settings from environment variables, or from a .env file in the"
    " working folder (the README's Configuration lists them)."
)


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


def serve_command(*, control_socket: bool = True, worker: bool = True) -> list[str]:
    """The command line of ``omnichannel serve`` (the tests' servers run it too)."""
    return [
        sys.executable,
        "-m",
        "omnichannel_core.cli",
        "serve",
        *([] if control_socket else ["--no-control-socket"]),
        *([] if worker else ["--no-worker"]),
    ]


def _serve(args: argparse.Namespace, config: Config) -> int:
    env = dict(os.environ)
    if args.port is not None:
        env["PORT"] = str(args.port)
    if args.workers is not None:
        env["OMNICHANNEL_WORKERS"] = str(args.workers)
    if args.host is not None:
        env["OMNICHANNEL_HOST"] = args.host
    if args.no_worker:
        env["OMNICHANNEL_RUN_WORKER"] = "false"
    checked = Config.from_environ(env)  # fail here, with one line, on a bad value
    web = gunicorn_command(control_socket=not args.no_control_socket)
    worker = worker_command() if checked.run_worker else None
    return Supervisor(web, worker, env).run()


def _worker(args: argparse.Namespace, config: Config) -> int:
    from omnichannel_core import worker

    return worker.main(config)


def _listing_config(config: Config) -> Config:
    """Placeholder secrets, so listing plugins never generates the server's secret files."""
    return attrs.evolve(config, api_keys=("listing-only",), jwt_secret="listing-only" * 4)


def _plugins(args: argparse.Namespace, config: Config) -> int:
    # Collect everything as the server would, so a plugin whose hooks fail is reported too.
    report = to_json(plugins_report(build_registry(_listing_config(config))))
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


def _core_parser(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser.add_argument("--version", action="version", version=f"omnichannel {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    _add_serve(commands)
    _add_worker(commands)
    _add_plugins(commands)
    return commands


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the server (gunicorn with uvicorn workers) and its job runner",
        description="Run the server: gunicorn with uvicorn workers, on the store"
        " OMNICHANNEL_STORE names (SQLite in OMNICHANNEL_DATA_DIR by default), and one job"
        " runner beside it, restarted if it crashes. The options win over the environment.",
    )
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.add_argument("--host", help="address to bind (default: $OMNICHANNEL_HOST or 127.0.0.1)")
    serve.add_argument(
        "--workers", type=int, help="web worker processes (default: $OMNICHANNEL_WORKERS or 2)"
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no job runner beside the server (run 'omnichannel worker' elsewhere);"
        " the same as OMNICHANNEL_RUN_WORKER=false",
    )
    serve.add_argument(
        "--no-control-socket",
        action="store_true",
        help="do not create gunicorn's control socket, <data dir>/gunicorn.ctl (tests, CI)",
    )
    serve.set_defaults(run=_serve)


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker",
        help="run the background jobs and event subscribers",
        description="Run the modules' background jobs and event subscribers, without a web"
        " server: beside 'omnichannel serve --no-worker', on this machine or another one on"
        " the same store. Several may run: a job that must run once at a time is held by one"
        " of them (a lease in the store). Stops cleanly on SIGTERM.",
    )
    worker.set_defaults(run=_worker)


def _add_plugins(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plugins = commands.add_parser(
        "plugins",
        help="list plugins, their hooks and failures",
        description="List the plugins the server would load, each with its distribution,"
        " version and hooks, then those that failed to load and those disabled. Exits 1"
        " when one failed.",
    )
    plugins.add_argument(
        "--json", action="store_true", help="print the JSON that GET /api/plugins answers"
    )
    plugins.set_defaults(run=_plugins)


def _plugin_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], registry: Registry
) -> None:
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for command in registry.commands:
        if command.group not in groups:
            group = commands.add_parser(
                command.group,
                help=command.group_help,
                description=command.group_description or command.group_help,
            )
            groups[command.group] = group.add_subparsers(
                dest=f"{command.group}_command", required=True, title="commands"
            )
        parser = groups[command.group].add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        command.arguments(parser)
        parser.set_defaults(run=_plugin_command(command, registry))


def _plugin_command(
    command: Command, registry: Registry
) -> Callable[[argparse.Namespace, Config], int]:
    def run(args: argparse.Namespace, config: Config) -> int:
        async def with_stores() -> int:
            # Run from another folder, a relative store path names another store: say which.
            print(f"omnichannel: on {registry.database.location}", file=sys.stderr)
            await registry.open_stores()
            try:
                return await command.run(args)
            finally:
                await registry.close_stores()

        try:
            return asyncio.run(with_stores())
        except OmnichannelError as error:
            print(f"omnichannel: {error.message}", file=sys.stderr)
            return 2

    return run


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The program's parser: the core's commands, and those of ``registry``'s plugins."""
    parser = argparse.ArgumentParser(prog="omnichannel", description=DESCRIPTION)
    commands = _core_parser(parser)
    if registry is not None:
        _plugin_commands(commands, registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        config = Config.from_environ()
        configure_logging(config)  # on stderr: a command's own output stays on stdout
        registry = None
        if not arguments or arguments[0] not in (*CORE_COMMANDS, "--version"):
            # A plugin's command (or help): load the plugins to know them.
            registry = build_registry(config)
        args = build_parser(registry).parse_args(arguments)
        return int(args.run(args, config))
    except ConfigError as error:
        print(f"omnichannel: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
