"""An aiohttp app served on 127.0.0.1 from its own thread and event loop.

The base of the fake servers: start/stop, request recording, and hangs that a test can release.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

from aiohttp import web

# A hang waits at most this long, so a forgotten hang cannot keep a process alive forever.
MAX_HANG_S = 600.0

BROKEN_CONNECTIONS = ("reset", "cut", "close")
"""How `break_connection` can fail a request: see there."""


async def break_connection(request: web.Request, how: str, partial: bytes = b'{"id": "partial-body", "cho') -> Any:
    """Fail the request at the connection level, as a crashing server or a proxy does:
    `close` closes the connection before any response; `cut` sends the headers (announcing a longer
    body) and the first bytes of the body, then closes; `reset` does the same and ends with a TCP
    RST (SO_LINGER 0), so the client sees ECONNRESET."""
    if how not in BROKEN_CONNECTIONS:
        raise ValueError(f"break_connection: unknown way {how!r}; one of {BROKEN_CONNECTIONS}")
    transport = request.transport
    assert transport is not None
    if how == "close":
        transport.close()
        return web.Response()  # never sent: the connection is gone
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(partial) + 100)})
    await resp.prepare(request)
    await resp.write(partial)
    if how == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return resp


class BackgroundServer:
    """An aiohttp app served from its own thread and event loop; `start()`/`stop()` or `with`.

    Subclasses implement `routes()`. Every handled request is recorded (body and headers).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._wanted_port, self._port = host, port, 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._calls = 0
        self._requests: list[Any] = []
        self._headers: list[dict[str, str]] = []
        self._urls: list[str] = []

    def routes(self) -> list[web.RouteDef]:
        """The routes this server answers."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The bound port (chosen by the OS when constructed with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, without a trailing slash."""
        return f"http://{self.host}:{self._port}"

    @property
    def calls(self) -> int:
        """How many requests reached the main endpoint since the last reset."""
        with self._lock:
            return self._calls

    @property
    def requests(self) -> list[Any]:
        """A copy of the JSON bodies received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """A copy of the request headers received (names lower-cased), in arrival order."""
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def urls(self) -> list[str]:
        """A copy of the request paths with their query strings (`/v1/chat/completions?key=...`)."""
        with self._lock:
            return list(self._urls)

    def start(self) -> BackgroundServer:
        """Bind and serve in a daemon thread; returns once the port is open."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Release any hung requests, close the socket and join the thread."""
        if self._thread is None or self._loop is None:
            return
        self.release_hangs()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread, self._loop = None, None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget recorded requests and counters, and release hung requests."""
        with self._lock:
            self._calls = 0
            self._requests.clear()
            self._headers.clear()
            self._urls.clear()
        self.release_hangs()

    def release_hangs(self) -> None:
        """Wake every request that is hanging now (thread-safe)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._swap_release)

    async def hang(self, seconds: float) -> None:
        """Sleep up to `seconds`, or until `release_hangs()`, `reset()` or `stop()`."""
        assert self._release is not None
        try:
            await asyncio.wait_for(self._release.wait(), seconds)
        except TimeoutError:
            pass

    def _record(self, request: web.Request, body: Any) -> int:
        """Count one request and keep its body and headers; returns its 1-based number."""
        with self._lock:
            self._calls += 1
            self._requests.append(body)
            self._headers.append({k.lower(): v for k, v in request.headers.items()})
            self._urls.append(request.path_qs)
            return self._calls

    def _swap_release(self) -> None:
        if self._release is not None:
            self._release.set()
        self._release = asyncio.Event()

    async def _open(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.add_routes(self.routes())
        # access_log=None: logging every call would cost more than serving it.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._wanted_port, backlog=1024)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
