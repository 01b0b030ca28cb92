"""The run directory: run.json (manifest + summary) and results.jsonl (one line per result)."""

from __future__ import annotations

import json
import os
import secrets
import time
import warnings
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.errors import DamagedRunError, LlmevalWarning, UsageError
from llmeval.results.records import Result
from llmeval.scrub import scrub, scrubbed_json

SCHEMA_VERSION = 1
MANIFEST, RESULTS = "run.json", "results.jsonl"
DAMAGED = "results.damaged.jsonl"
"""Where --resume keeps the damaged lines it takes out of results.jsonl."""


def new_run_id(suite_name: str) -> str:
    """A sortable, unique run id: UTC time, suite name, random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in suite_name)[:40]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file (known secrets
    scrubbed, like every line of results.jsonl)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(scrub(data), f, ensure_ascii=False, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunWriter:
    """Appends results as they finish (flushed per line) and rewrites the manifest."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._f = (run_dir / RESULTS).open("a", encoding="utf-8")

    def append(self, result: Result) -> None:
        self._f.write(_line(result))
        self._f.flush()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.dir / MANIFEST, manifest)

    def rewrite_results(self, results: list[Result]) -> None:
        """Replace results.jsonl atomically (after scoring adds scores to every line)."""
        with self.rewriting() as write:
            write(results)

    @contextmanager
    def rewriting(self) -> Iterator[Callable[[list[Result]], None]]:
        """Replace results.jsonl atomically with the lines handed to the yielded `write`, in the
        order given; when the block raises, the file stays as it was (its results can be resumed)."""
        tmp = self.dir / f".{RESULTS}.tmp"
        f = tmp.open("w", encoding="utf-8")
        try:
            yield lambda results: f.writelines(_line(r) for r in results)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        f.close()
        self._f.close()
        os.replace(tmp, self.dir / RESULTS)
        self._f = (self.dir / RESULTS).open("a", encoding="utf-8")

    def close(self) -> None:
        self._f.close()


def _line(result: Result) -> str:
    """One results.jsonl line; known secrets scrubbed (an input may be `${OPENAI_API_KEY}`, a
    metric's reason may quote anything)."""
    return scrubbed_json(result.to_dict()) + "\n"


@dataclass(frozen=True)
class DamagedLine:
    """A line of results.jsonl that holds no readable result."""

    line: int
    """1-based line number in the file."""
    reason: str
    raw: bytes

    def to_dict(self) -> dict[str, Any]:
        """The line as results.damaged.jsonl keeps it: `text` gives back the exact bytes with
        `.encode("utf-8", "surrogateescape")`."""
        return {"line": self.line, "reason": self.reason, "text": self.raw.decode("utf-8", "surrogateescape")}


@dataclass(frozen=True)
class ResultsFile:
    """results.jsonl as read: the results, the damaged lines skipped, and an incomplete last line.

    A last line without its newline that does not parse is what a kill in the middle of a write
    leaves (`torn`): that result never finished, so it is not damage. Any other line that does
    not parse is `damaged`: a result was there and cannot be read."""

    path: Path
    results: list[Result]
    damaged: tuple[DamagedLine, ...] = ()
    torn: DamagedLine | None = None


def read_results(run_dir: Path, details: Container[str] | None = None) -> ResultsFile:
    """Read every line of results.jsonl: readable results are kept whatever comes before or after
    them; readers never change the file (`read_for_resume` does, for --resume). With `details`, the
    scores keep only those detail keys (a report of a large run needs few of them)."""
    path = run_dir / RESULTS
    if not path.exists():
        return ResultsFile(path, [])
    results: list[Result] = []
    damaged: list[DamagedLine] = []
    torn = None
    number = 0
    with path.open("rb") as f:  # line by line: the file is never held whole next to its results
        for line in f:
            # bytes.splitlines also ends a line at a bare \r: damaged lines keep that numbering
            parts = line.splitlines(keepends=True) if b"\r" in line else [line]
            for k, raw in enumerate(parts):
                number += 1
                if not raw.strip():
                    continue
                result, reason = _parse_line(raw, details)
                if result is not None:
                    results.append(result)
                elif not raw.endswith(b"\n") and k == len(parts) - 1 and not f.peek(1):
                    torn = DamagedLine(number, reason, raw)  # the last line, cut before its newline
                else:
                    damaged.append(DamagedLine(number, reason, raw.rstrip(b"\r\n")))
    return ResultsFile(path, results, tuple(damaged), torn)


def _parse_line(raw: bytes, details: Container[str] | None = None) -> tuple[Result | None, str]:
    """The result on one line, or None and why not."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})"
    except json.JSONDecodeError as e:
        return None, f"not JSON: {_at(e.msg)} column {e.colno}"
    if not isinstance(doc, dict):
        return None, f"not a result (a JSON {type(doc).__name__}, not an object)"
    missing = [k for k in ("case_id", "target") if not isinstance(doc.get(k), str)]
    if missing:
        return None, f"not a result (no string '{missing[0]}')"
    try:
        return Result.from_dict(doc, details), ""
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return None, f"not a result ({type(e).__name__}: {e})"


def _at(msg: str) -> str:
    """A json error message ready for a position: 'Expecting value at', 'Invalid control character at'."""
    return msg if msg.endswith(" at") else f"{msg} at"


def damaged_lines(damaged: tuple[DamagedLine, ...], shown: int = 5) -> str:
    """`1 damaged line (line 3)`, `2 damaged lines (lines 3, 7)`, `25 damaged lines (lines 3, 7, 9, 12, 15, ...)`."""
    numbers = [d.line for d in damaged]
    if len(numbers) == 1:
        return f"1 damaged line (line {numbers[0]})"
    head = ", ".join(str(n) for n in numbers[:shown])
    return f"{len(numbers)} damaged lines (lines {head}{', ...' if len(numbers) > shown else ''})"


def damage_error(file: ResultsFile) -> DamagedRunError:
    """The error readers raise for a damaged results.jsonl (exit 2): file, line numbers, the flag."""
    numbers = [d.line for d in file.damaged]
    first = file.damaged[0]
    what = (f"line {first.line} holds no readable result ({first.reason})" if len(numbers) == 1 else
            f"{damaged_lines(file.damaged)} hold no readable result (line {first.line}: {first.reason})")
    return DamagedRunError(
        f"{file.path}: {what}; {len(file.results)} results are readable",
        hint=f"pass --allow-damaged (Python: allow_damaged=True) to go on with the {len(file.results)} readable "
             f"results, or repair the run: llmeval run --resume {file.path.parent} moves the damaged lines to "
             f"{DAMAGED} and runs their cases again",
        path=str(file.path), lines=tuple(numbers),
    )


def read_for_resume(run_dir: Path) -> list[Result]:
    """The readable results of a run that --resume continues. Damaged lines are first appended to
    results.damaged.jsonl (fsynced: the caller then rewrites results.jsonl without them), so no byte
    of them is lost, and a warning says so; their cases, and that of a torn last line, run again."""
    file = read_results(run_dir)
    if file.damaged:
        kept = file.path.with_name(DAMAGED)
        with kept.open("a", encoding="utf-8") as f:
            for d in file.damaged:
                f.write(json.dumps(d.to_dict()) + "\n")  # ascii escapes keep undecodable bytes
            f.flush()
            os.fsync(f.fileno())
        warnings.warn(LlmevalWarning(
            f"{file.path}: {damaged_lines(file.damaged)} moved to {kept}; the cases "
            f"{'they' if len(file.damaged) > 1 else 'it'} held run again"), stacklevel=2)
    if file.torn is not None:
        warnings.warn(LlmevalWarning(
            f"{file.path}: cut its incomplete last line {file.torn.line} (a result being written when the run was "
            "stopped); that case runs again"), stacklevel=2)
    return file.results


@dataclass(repr=False)
class Run:
    """A run directory loaded for reports, compare, rescore, merge and notebooks (what
    `llmeval.evaluate` returns): `summary`, `gates`, `passed`, `results`, `to_dataframe()`, `path`."""

    dir: Path
    manifest: dict[str, Any]
    results: list[Result]
    damaged: tuple[DamagedLine, ...] = ()
    """Lines of results.jsonl that hold no readable result (only with `allow_damaged=True`)."""
    torn: DamagedLine | None = None
    """An incomplete last line left by a kill mid-write: a result that never finished."""

    def __repr__(self) -> str:
        suite = (self.manifest.get("suite") or {}).get("name")
        return (f"Run(run_id={self.run_id!r}, suite={suite!r}, status={self.status!r}, passed={self.passed}, "
                f"results={len(self.results)}, path={str(self.dir)!r})")

    @property
    def path(self) -> Path:
        """The run directory (run.json, results.jsonl, report.html, ...)."""
        return self.dir

    @property
    def gates(self) -> list[dict[str, Any]]:
        """The gate verdicts: `{name, target, metric, value, threshold, passed, ...}` each."""
        return list(self.manifest.get("gates") or [])

    @property
    def passed(self) -> bool:
        """True when the run completed and every gate passed (the CLI's exit code 0)."""
        return self.status == "complete" and all(g.get("passed") for g in self.gates)

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.dir.name))

    @property
    def summary(self) -> dict[str, Any]:
        return self.manifest.get("summary") or {}

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "partial"))

    @property
    def targets(self) -> list[str]:
        return [t["id"] for t in self.manifest.get("targets", [])]

    def to_dataframe(self) -> Any:
        """One row per result, one column per metric value (pandas)."""
        import pandas as pd

        rows = []
        for r in self.results:
            row = {k: v for k, v in r.to_dict().items() if k not in ("scores", "usage", "error")}
            row["error"] = r.error.message if r.error else None
            row["error_type"] = r.error.type if r.error else None
            row["prompt_tokens"], row["completion_tokens"] = r.usage.prompt, r.usage.completion
            for name, s in r.scores.items():
                row[name] = s.value
            rows.append(row)
        return pd.DataFrame(rows)


def load_run(path: str | Path, allow_damaged: bool = False, details: Container[str] | None = None) -> Run:
    """Load a run directory (or its run.json); raises UsageError when it isn't one.

    A damaged results.jsonl (a line in the middle that holds no readable result) raises
    DamagedRunError unless `allow_damaged=True`: then the readable results are loaded, the damaged
    lines are listed in `Run.damaged` and an LlmevalWarning says so. The default refuses, as the
    CLI does without --allow-damaged, so that a damaged run cannot feed a decision unnoticed.
    `details`: keep only these keys of each score's details (what a report reads), to load less."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    manifest = read_manifest(p, str(path))
    file = read_results(p, details)
    if file.damaged:
        if not allow_damaged:
            raise damage_error(file)
        warnings.warn(LlmevalWarning(
            f"{file.path}: skipped {damaged_lines(file.damaged)}; going on with {len(file.results)} results "
            "(--allow-damaged)"), stacklevel=2)
    if file.torn is not None:
        warnings.warn(LlmevalWarning(
            f"{file.path}: ignored its incomplete last line {file.torn.line} (a result being written when the "
            "run was stopped)"), stacklevel=2)
    return Run(p, manifest, file.results, file.damaged, file.torn)


def read_manifest(run_dir: Path, given: str | None = None) -> dict[str, Any]:
    """run.json of `run_dir`, checked to be a manifest this llmeval wrote; UsageError (exit 2) when it
    is missing, truncated, not JSON or not a manifest."""
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"not a run directory: {given or run_dir} (no {MANIFEST})", hint="pass a folder under runs/")
    where = f"{manifest_path} is not a readable run manifest"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read {manifest_path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{where}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    except json.JSONDecodeError as e:
        ends_early = e.pos >= len(e.doc.rstrip()) or e.msg.startswith("Unterminated string")
        cut = " (the file ends early: truncated?)" if ends_early else ""
        raise UsageError(f"{where}: not valid JSON: {_at(e.msg)} line {e.lineno} column {e.colno}{cut}") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"{where}: a JSON {type(manifest).__name__}, not an object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"{manifest_path} has schema_version {version}; this llmeval reads {SCHEMA_VERSION}")
    suite, targets = manifest.get("suite"), manifest.get("targets", [])
    problems = [k for k in ("run_id", "status") if not isinstance(manifest.get(k), str)]
    if not (isinstance(suite, dict) and all(isinstance(suite.get(k), str) for k in ("name", "path", "sha256"))):
        problems.append("suite (name, path, sha256)")
    if not (isinstance(targets, list) and all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in targets)):
        problems.append("targets (a list of objects with an id)")
    if problems:
        raise UsageError(f"{where}: it lacks {', '.join(problems)}")
    return manifest
