"""`llmeval view`: a local web server (stdlib http.server, 127.0.0.1 only) listing the runs under a
folder and serving each run's reports, plus the comparison of any two runs, computed on demand
into a scratch folder (the run directories are never written)."""

from __future__ import annotations

import hashlib
import mimetypes
import shutil
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from llmeval.errors import LlmevalError, UsageError
from llmeval.report.browse import index_html
from llmeval.results.runindex import RunInfo, find_runs

HOST = "127.0.0.1"


class RunsServer(ThreadingHTTPServer):
    """Serves `root`'s runs on 127.0.0.1. `url` is where to point a browser."""

    daemon_threads = True

    def __init__(self, root: str | Path, port: int = 0) -> None:
        self.root = Path(root).resolve()
        find_runs(self.root)  # UsageError now, not on the first request, when root is not a folder
        self.scratch = Path(tempfile.mkdtemp(prefix="llmeval-view-"))
        self._compare_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def runs(self) -> list[RunInfo]:
        """The runs now on disk (read per request: a run that finishes while the page is open shows up)."""
        return find_runs(self.root)

    def link(self, info: RunInfo, name: str) -> str:
        """The URL path of file `name` of a run."""
        rel = info.dir.resolve().relative_to(self.root).as_posix()
        return "/runs/" + "/".join(quote(p) for p in [*filter(None, rel.split("/")), name])

    def compare_page(self, base_id: str, cand_id: str) -> Path:
        """compare.html of two runs (by run id), written once per pair into the scratch folder."""
        from llmeval.pipeline.compare import compare_dirs

        by_id = {r.run_id: r for r in self.runs()}
        missing = [i for i in (base_id, cand_id) if i not in by_id]
        if missing:
            raise UsageError(f"no run '{missing[0]}' under {self.root}")
        base, cand = by_id[base_id], by_id[cand_id]
        key = hashlib.sha256(f"{base.dir}\0{cand.dir}".encode()).hexdigest()[:16]
        out = self.scratch / key
        with self._compare_lock:
            if not (out / "compare.html").is_file():
                compare_dirs(base.dir, cand.dir, out)
        return out / "compare.html"

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _Handler(BaseHTTPRequestHandler):
    server: RunsServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        port = self.server.server_address[1]
        # A page on another site cannot read these through a DNS name that points at 127.0.0.1.
        if self.headers.get("Host") not in (f"{HOST}:{port}", f"localhost:{port}"):
            return self._send_text(HTTPStatus.FORBIDDEN, "llmeval view answers requests to 127.0.0.1 only\n")
        url = urlsplit(self.path)
        try:
            if url.path == "/":
                page = index_html(self.server.runs(), str(self.server.root), self.server.link)
                return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            if url.path == "/compare":
                query = parse_qs(url.query)
                base, cand = (query.get(k, [""])[0] for k in ("base", "cand"))
                return self._send_file(self.server.compare_page(base, cand))
            if url.path.startswith("/runs/"):
                return self._send_file(self._run_file(unquote(url.path.removeprefix("/runs/"))))
        except LlmevalError as e:
            return self._send_text(HTTPStatus.BAD_REQUEST, e.render() + "\n")
        self._send_text(HTTPStatus.NOT_FOUND, "not found\n")

    def _run_file(self, rel: str) -> Path | None:
        """A file inside a run directory under the root, else None (no path leaves the root)."""
        path = (self.server.root / rel).resolve()
        if not path.is_file() or not path.is_relative_to(self.server.root):
            return None
        if not any(p == path.parent for p in (r.dir.resolve() for r in self.server.runs())):
            return None
        return path

    def _send_file(self, path: Path | None) -> None:
        if path is None:
            return self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".md", ".jsonl"):
            kind = "text/plain"
        if kind.startswith("text/") or kind == "application/json":
            kind += "; charset=utf-8"
        self._send(HTTPStatus.OK, path.read_bytes(), kind)

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
