"""Warming a target's first call before the clock starts, without calling the system under test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refusing_url(path: str = "") -> Iterator[str]:
    """An `http://127.0.0.1:PORT` URL that refuses connections at once: the port is bound (so
    nothing else takes it) but not listening. A call to it runs a client's whole request path,
    imports and connection pool included, and fails fast, without leaving the machine."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    finally:
        sock.close()
