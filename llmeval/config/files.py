"""The one checked reader for every file a suite names (the suite itself, datasets, recorded
outputs, rubrics, prompt files): regular files only (never a device, fifo, socket, directory or a
file under /proc, /sys or /dev, which could block or never end), at most `max_file_mb()` MB
(`--max-file-mb` raises it), and UTF-8 text with the position of a bad byte. Also the one place
that creates the output folders a command is given (`-o`)."""

from __future__ import annotations

import os
import stat
from contextvars import ContextVar
from pathlib import Path

from llmeval.errors import ConfigError, UsageError

DEFAULT_MAX_FILE_MB = 100
_max_mb: ContextVar[float] = ContextVar("llmeval_max_file_mb", default=DEFAULT_MAX_FILE_MB)
_SYSTEM = ("/proc", "/sys", "/dev")
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (fifo)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def max_file_mb() -> float:
    """The size limit for files a suite names, in MB (decimal)."""
    return _max_mb.get()


def set_max_file_mb(mb: float | None) -> None:
    """Set the size limit for the current context (`--max-file-mb`; each CLI command runs in a
    context of its own); None keeps it."""
    if mb is not None:
        _max_mb.set(mb)


def check_file(path: str | Path, what: str = "file") -> os.stat_result:
    """Refuse what cannot be read as a file of the project (missing, special, a system file, too
    big); a ConfigError without position, which the caller puts at the suite key naming it."""
    shown = str(path)
    if "\x00" in shown:
        raise ConfigError(f"{what} path contains a NUL character: {shown!r}")
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {shown}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {shown}: {e.strerror or e}") from None
    kind = next((name for test, name in _KINDS if test(st.st_mode)), None)
    if kind is not None:
        raise ConfigError(f"{what} {shown} is {kind}, not a regular file")
    real = os.path.realpath(p)
    if any(real == d or real.startswith(d + "/") for d in _SYSTEM):
        raise ConfigError(f"{what} {shown} is a system file ({real}), not a file of the project")
    _check_size(st.st_size, shown, what)
    return st


def named_file(ref: str, suite_dir: Path, what: str) -> Path:
    """The file a suite names (relative to the suite's folder unless absolute), checked: it exists,
    it is a regular file of the project, under the size limit."""
    path = Path(ref) if Path(ref).is_absolute() else suite_dir / ref
    if "\x00" not in ref and not path.exists():
        raise ConfigError(f"{what} not found: {ref} (looked in {path.parent.resolve()})")
    check_file(path, what)
    return path


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a checked file, reading at most the size limit (a file may grow meanwhile)."""
    check_file(path, what)
    limit = int(max_file_mb() * 1e6)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since the check
            raise ConfigError(f"{what} {path} is not a regular file")
        data = f.read(limit + 1)
    _check_size(len(data), str(path), what)
    return data


def read_text(path: str | Path, what: str = "file") -> str:
    """A checked file as UTF-8 text (a leading BOM dropped); a bad byte is an error at its line
    and column in that file."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        offset = e.start
        before = data[:offset]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise ConfigError(f"not UTF-8 text (byte {data[offset]:#04x} at offset {offset})",
                          str(path), line, col, hint="save the file as UTF-8") from None


def _check_size(size: int, shown: str, what: str) -> None:
    mb = max_file_mb()
    if size > mb * 1e6:
        raise ConfigError(f"{what} {shown} is over the {mb:g} MB limit for files a suite names",
                          hint=f"raise it with --max-file-mb (now {mb:g})")


def check_out_dir(path: str | Path, flag: str = "-o/--out") -> None:
    """Refuse an output folder that cannot be created, without creating it: something on the way
    that is not a folder, a NUL in the name."""
    if "\x00" in str(path):
        raise UsageError(f"{flag} {str(path)!r} contains a NUL character")
    p = Path(path).absolute()
    for part in [p, *p.parents]:
        if part.exists():
            if not part.is_dir():
                raise UsageError(f"{flag} {path}: {part} exists and is not a folder",
                                 hint="give a folder for the output")
            return


def ensure_dir(path: str | Path, flag: str = "-o/--out") -> Path:
    """Create an output folder (and its parents); a file, a device or an unwritable place in the
    way is a UsageError naming the flag."""
    check_out_dir(path, flag)
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot create the folder ({e.strerror or e})",
                         hint="give a folder you can write to") from None
    return p
