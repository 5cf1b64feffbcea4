"""A TCP proxy on 127.0.0.1 that adds a fixed delay to every request it forwards.

Each time a client starts sending after the server has answered (a new request on a
kept-alive connection, or the first one), the proxy waits ``delay`` seconds before passing
the bytes on: one round trip of latency per request, per connection, as on a distant
server. That is what makes concurrency matter on real S3; on a local server every request
is nearly free. Threads, one pair per connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

__all__ = ["latency_proxy"]

_PIECE: Final = 1 << 16


@contextlib.contextmanager
def latency_proxy(endpoint: str, delay: float) -> Iterator[str]:
    """An endpoint URL whose requests reach ``endpoint`` ``delay`` seconds late."""
    target = urlsplit(endpoint)
    address = (target.hostname or "127.0.0.1", target.port or 80)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(address)
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connections.extend((client, server))
            state = {"answered": True}
            threading.Thread(target=_pump, args=(client, server, state, delay), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client, state, None), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
        for end in connections:
            with contextlib.suppress(OSError):
                end.close()


def _pump(
    source: socket.socket, sink: socket.socket, state: dict[str, bool], delay: float | None
) -> None:
    """Copy ``source`` to ``sink``; requests (``delay`` given) wait once per request."""
    try:
        while piece := source.recv(_PIECE):
            if delay is not None:
                if state["answered"]:
                    state["answered"] = False
                    time.sleep(delay)
            else:
                state["answered"] = True
            sink.sendall(piece)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
