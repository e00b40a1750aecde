"""The gunicorn worker class of ``omnichannel serve``: uvicorn's, with a clean stop.

gunicorn hands each worker its listening sockets wrapped in its own ``BaseSocket``. uvicorn
serves them on uvloop, which takes over the file descriptor and, when the server stops,
closes it itself and then calls ``close()`` on the object it was given. A plain
``socket.socket`` is detached instead, but gunicorn's wrapper closes its socket again, gets
``EBADF``, and logs "Error while closing socket [Errno 9] Bad file descriptor" on every stop
of every worker. Handing uvicorn the wrapped sockets themselves makes the stop quiet, and
the descriptor is closed once, by the loop that owns it.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn_worker


def unwrapped(listener: Any) -> socket.socket:
    """The ``socket.socket`` inside gunicorn's listener wrapper (or the socket itself)."""
    inner = getattr(listener, "sock", None)
    return inner if isinstance(inner, socket.socket) else listener


WS_MAX_FRAME_BYTES = 256 * 1024
"""The largest WebSocket frame a client may send (uvicorn's default is 16 MiB, taken whole
into memory before any route sees it, even from a client that never authenticates). No
socket of ours takes more: a chat visitor's frames are at most 64 K characters."""
WS_MAX_QUEUE = 8
"""Frames received and not yet read, per socket."""
WS_DEFLATE = False
"""No per-message compression: browsers ask for it, and it holds some 40 KiB of zlib state
per open socket (about half of an idle chat visitor's memory, measured with
``make bench-webchat``) to shrink frames of a few hundred bytes."""


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """``uvicorn_worker.UvicornWorker`` serving the unwrapped listening sockets, with
    WebSocket frames limited (:data:`WS_MAX_FRAME_BYTES`)."""

    CONFIG_KWARGS = {
        **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
        "ws_max_size": WS_MAX_FRAME_BYTES,
        "ws_max_queue": WS_MAX_QUEUE,
        "ws_per_message_deflate": WS_DEFLATE,
    }

    def run(self) -> None:
        self.sockets: list[socket.socket] = [unwrapped(listener) for listener in self.sockets]
        super().run()
