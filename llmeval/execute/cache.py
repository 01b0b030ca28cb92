"""Content-addressed response cache in SQLite (targets and judges share it)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from llmeval.config.files import ensure_dir


def cache_dir() -> Path:
    """`$LLMEVAL_CACHE_DIR`, else `$XDG_CACHE_HOME/llmeval`, else `~/.cache/llmeval`."""
    if os.environ.get("LLMEVAL_CACHE_DIR"):
        return Path(os.environ["LLMEVAL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmeval"


def cache_key(identity: dict[str, Any], epoch: int) -> str:
    """sha256 of the canonical JSON of what can change an answer, plus the epoch."""
    blob = json.dumps({"v": 1, "id": identity, "epoch": epoch}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """get/put JSON values by key. Each put commits on its own (~40 us in WAL mode): holding a
    write transaction open between puts would lock out a second llmeval run on the same cache."""

    def __init__(self, path: Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = path or cache_dir() / "cache.sqlite"
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            ensure_dir(self.path.parent, "the cache folder (LLMEVAL_CACHE_DIR)")
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, kind TEXT, created REAL, value TEXT)"
            )
            self._db = db
        return self._db

    def get(self, key: str) -> Any | None:
        if not self.enabled:
            return None
        row = self._conn().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, kind: str, value: Any) -> None:
        if not self.enabled:
            return
        self._conn().execute(
            "INSERT OR REPLACE INTO responses (key, kind, created, value) VALUES (?, ?, ?, ?)",
            (key, kind, time.time(), json.dumps(value, ensure_ascii=False)),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def cache_info(path: Path | None = None) -> dict[str, Any]:
    """Entries by kind, size on disk and location."""
    p = path or cache_dir() / "cache.sqlite"
    if not p.exists():
        return {"path": str(p), "entries": 0, "by_kind": {}, "bytes": 0}
    db = sqlite3.connect(p)
    try:
        rows = db.execute("SELECT kind, COUNT(*) FROM responses GROUP BY kind").fetchall()
    except sqlite3.OperationalError:
        rows = []
    db.close()
    size = sum(f.stat().st_size for f in p.parent.glob(p.name + "*"))
    by_kind = {k: n for k, n in rows}
    return {"path": str(p), "entries": sum(by_kind.values()), "by_kind": by_kind, "bytes": size}


def cache_clear(path: Path | None = None) -> int:
    """Delete every cached response; returns how many there were."""
    info = cache_info(path)
    p = Path(info["path"])
    for f in p.parent.glob(p.name + "*"):
        f.unlink()
    return int(info["entries"])
