"""structlog set-up: JSON when not on a terminal, readable console otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

from omnichannel_core.config import Config


def configure_logging(config: Config, stream=None) -> None:
    """Configure structlog and the standard library (gunicorn, uvicorn) alike."""
    stream = stream or sys.stderr
    level = getattr(logging, config.log_level.upper())
    use_json = config.log_format == "json" or (config.log_format == "auto" and not stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json
        # plain tracebacks: rich's would print local variables, secrets among them
        else structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    exceptions = structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info
    structlog.configure(
        processors=[*shared, exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.format_exc_info] if use_json else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would repeat our one summary line per request
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request's whole URL at info: channels' URLs may hold credentials
    # (user:password@, ?token=, a bot token in the path). Their warnings still show.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
