"""Omnichannel core: hookspecs, plugin loading, the inbox store and its HTTP API.

Plugin authors import only what this module exports::

    from omnichannel_core import hookimpl
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pluggy

PROJECT_NAME = "omnichannel"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

try:
    __version__ = version("omnichannel-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
