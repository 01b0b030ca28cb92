"""Where a suite's project files are looked for: next to the suite, one level up, then the cwd."""

from __future__ import annotations

from pathlib import Path


def candidates(name: str | Path, base_dir: Path | None) -> list[Path]:
    """The places `name` may be, in search order (just itself when absolute)."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return [p]
    bases = [base_dir, base_dir.parent] if base_dir is not None else []
    out: list[Path] = []
    for b in [*bases, Path.cwd()]:
        c = (b / p).resolve()
        if c not in out:
            out.append(c)
    return out


def find(name: str | Path, base_dir: Path | None, kind: str = "any") -> Path | None:
    """The first existing `name` (kind: "file", "dir" or "any"), or None."""
    test = {"file": Path.is_file, "dir": Path.is_dir, "any": Path.exists}[kind]
    return next((c for c in candidates(name, base_dir) if test(c)), None)


def metrics_dirs(base_dir: Path | None) -> list[Path]:
    """Where a project's `metrics/` folder may be: next to the suite, one level up, or in the cwd."""
    return [d for d in candidates("metrics", base_dir) if d.is_dir()]
