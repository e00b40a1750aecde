"""The ``omnichannel`` command: ``serve`` runs the server, ``plugins`` lists the plugins."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import attrs

from omnichannel_core import __version__
from omnichannel_core.app import create_app
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.plugins import load_plugins
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
    # Build the app as the server would, so a channel whose routes fail is reported too; a
    # placeholder key keeps this from generating the server's key file.
    create_app(attrs.evolve(config, api_keys=("listing-only",)), plugins)
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
