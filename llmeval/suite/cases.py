"""Cases from the suite and its dataset, selection (tags, limit, shard), and work items."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llmeval.config.spec import SuiteSpec
from llmeval.config.validation import Problems
from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError, install_hint
from llmeval.results.records import Case, WorkItem, case_id_for

MAX_ROW_ERRORS = 20
"""Dataset rows with errors reported one by one; the rest are counted in one line."""


def load_cases(spec: SuiteSpec, suite_path: Path, where: str, tree: Any, problems: Problems) -> list[Case]:
    """Inline cases then dataset rows, with stable unique ids; every problem goes to `problems`."""
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for i, c in enumerate(spec.cases):
        line, col = position(tree, ("cases", i))
        cid = str(c.id) if c.id is not None else case_id_for(c.input)
        if cid in seen:
            problems.add(ConfigError(
                f"duplicate case id '{cid}' (also {seen[cid]})",
                where,
                line,
                col,
                hint="case ids must be unique; give the case its own `id:`",
            ))
            continue
        seen[cid] = f"at line {line}"
        cases.append(
            Case(
                cid,
                c.input,
                c.expected,
                c.contexts,
                tuple(c.tags),
                dict(c.vars),
                {**c.metadata, "_source": f" (line {line})"},
            )
        )
    if spec.dataset is not None:
        with problems.collect():
            cases += _dataset_cases(spec.dataset, suite_path, where, tree, seen, problems)
    return cases


def _dataset_cases(dataset: Any, suite_path: Path, where: str, tree: Any, seen: dict[str, str],
                   problems: Problems) -> list[Case]:
    loc = ("dataset", "path")
    try:
        rows = read_dataset(dataset.path, suite_path.parent)
    except ConfigError as e:
        raise ConfigError(e.message, where, *position(tree, loc), hint=e.hint) from None
    fields = {
        "id": "id",
        "input": "input",
        "expected": "expected",
        "contexts": "contexts",
        "tags": "tags",
        "vars": "vars",
        **dataset.fields,
    }
    rows = rows[: dataset.limit] if dataset.limit else rows
    no_input = [n for n, row in enumerate(rows) if fields["input"] not in row]
    if no_input:
        n = no_input[0]
        more = f" (and {len(no_input) - 1} more rows)" if len(no_input) > 1 else ""
        raise ConfigError(
            f"dataset row {n + 1}{more} has no column '{fields['input']}' (columns: {', '.join(map(str, rows[n]))})",
            where,
            *position(tree, ("dataset",)),
            hint="map the input column with dataset.fields.input",
        )
    cases: list[Case] = []
    reported = 0
    for n, row in enumerate(rows):
        try:
            case = _row_case(row, fields, n, dataset.tags)
        except ConfigError as e:
            error = ConfigError(f"{dataset.path}: {e.message}", where, *position(tree, loc))
        else:
            if case.id not in seen:
                seen[case.id] = f"dataset row {n + 1}"
                cases.append(case)
                continue
            error = ConfigError(
                f"duplicate case id '{case.id}' in dataset row {n + 1} (also {seen[case.id]})",
                where,
                *position(tree, loc),
            )
        reported += 1
        if reported <= MAX_ROW_ERRORS:
            problems.add(error)
    if reported > MAX_ROW_ERRORS:
        problems.add(ConfigError(f"{dataset.path}: {reported - MAX_ROW_ERRORS} more rows with errors",
                                 where, *position(tree, loc)))
    return cases


def _row_case(row: dict[str, Any], fields: dict[str, str], n: int, extra_tags: list[str]) -> Case:
    def get(name: str) -> Any:
        v = row.get(fields[name])
        return None if _is_missing(v) else v

    raw_id = get("id")
    expected = get("expected")
    if expected is not None and not isinstance(expected, str):
        expected = [str(x) for x in expected] if _is_listlike(expected) else str(expected)
    contexts = get("contexts")
    if contexts is not None:
        contexts = [str(x) for x in contexts] if _is_listlike(contexts) else [str(contexts)]
    tags = get("tags")
    tags = [str(t) for t in tags] if _is_listlike(tags) else ([str(tags)] if tags else [])
    variables = get("vars") or {}
    if not isinstance(variables, dict):
        raise ConfigError(
            f"dataset row {n + 1}: '{fields['vars']}' must be a mapping of template variables, "
            f"got {type(variables).__name__}"
        )
    used = {fields[k] for k in fields}
    meta = {k: _plain(v) for k, v in row.items() if k not in used}
    return Case(
        id=str(raw_id) if raw_id is not None else case_id_for(get("input")),
        input=_plain(get("input")),
        expected=expected,
        contexts=contexts,
        tags=tuple(tags + list(extra_tags)),
        vars=dict(variables),
        metadata={**meta, "_source": f" (dataset row {n + 1})"},
    )


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN from pandas
    except (TypeError, ValueError):
        return False


def _is_listlike(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or type(v).__name__ == "ndarray"


def _plain(v: Any) -> Any:
    if type(v).__name__ == "ndarray":
        return v.tolist()
    if hasattr(v, "item") and not isinstance(v, (str, bytes, list, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    return v


def read_dataset(path: str, base: Path) -> list[dict[str, Any]]:
    """Rows of a dataset file (.jsonl .json .csv .parquet) or `hf:NAME[:CONFIG]@SPLIT`."""
    if path.startswith("hf:"):
        return _read_hf(path[3:], base)
    p, split = base / path, ""  # an absolute path stays itself
    folder, at, named = path.rpartition("@")
    if not p.exists() and at and (base / folder).is_dir():  # a save_to_disk() folder @ a split
        p, split = base / folder, named
    if not p.exists():
        raise ConfigError(f"dataset file not found: {path} (looked in {p.parent.resolve()})")
    if p.is_dir():
        if not _saved_dataset(p):
            raise ConfigError(f"{path} is a folder, not a dataset", hint="give a .jsonl .json .csv or .parquet "
                              "file, or a folder written by Dataset/DatasetDict.save_to_disk()")
        return [dict(r) for r in _read_saved(p, split, path)]
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(_text(p, path).splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path} line {n}: invalid JSON: {e.msg}") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(_text(p, path))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of objects")
        bad = next((i for i, row in enumerate(data) if not isinstance(row, dict)), None)
        if bad is not None:
            raise ConfigError(f"{path}: item {bad + 1} is a {type(data[bad]).__name__}, expected a JSON object")
        return data
    if suffix in (".csv", ".parquet"):
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError(
                "reading .csv/.parquet datasets needs pandas", hint=install_hint("data")
            ) from None
        try:
            frame = pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
        except ImportError as e:  # parquet without pyarrow: a missing dependency, said as such
            raise ConfigError(f"cannot read {path}: {e}", hint=install_hint("data")) from None
        except Exception as e:  # pandas raises many types for a bad file (ParserError, ArrowInvalid, ...)
            first = (str(e).splitlines() or [""])[0][:200]
            raise ConfigError(f"cannot read {path}: {type(e).__name__}: {first}") from None
        return frame.to_dict(orient="records")
    raise ConfigError(
        f"unsupported dataset format '{suffix}' for {path}", hint="use .jsonl, .json, .csv, .parquet or hf:NAME@SPLIT"
    )


def _text(p: Path, path: str) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("hf: datasets and save_to_disk() folders need the `datasets` library",
                          hint=install_hint("data")) from None
    datasets.disable_progress_bars()  # llmeval draws its own progress; keep stderr for errors
    return datasets


def _saved_dataset(folder: Path) -> bool:
    """A folder written by save_to_disk(): a DatasetDict (dataset_dict.json) or a Dataset (state.json)."""
    return (folder / "dataset_dict.json").exists() or (folder / "state.json").exists()


def _read_saved(folder: Path, split: str, ref: str) -> Any:
    """The Dataset in a save_to_disk() folder: a DatasetDict's `split`, or its only split."""
    datasets = _datasets()
    try:
        saved = datasets.load_from_disk(str(folder))
    except Exception as e:  # a damaged folder: datasets raises many types
        raise ConfigError(f"could not load the saved dataset {ref}: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]}") from None
    if not isinstance(saved, datasets.DatasetDict):
        if split:
            raise ConfigError(f"{ref}: the folder holds one Dataset, without splits", hint=f"remove @{split}")
        return saved
    splits = list(saved)
    if split in saved or (not split and len(splits) == 1):
        return saved[split or splits[0]]
    base_ref = ref.rpartition("@")[0] if split else ref
    what = f"has no split '{split}'" if split else "is a DatasetDict: name one of its splits"
    raise ConfigError(f"{ref} {what}; its splits: {', '.join(splits)}", hint=f"e.g. {base_ref}@{splits[0]}")


def _read_hf(ref: str, base: Path) -> list[dict[str, Any]]:
    name, _, split = ref.partition("@")
    name, _, config = name.partition(":")
    local = base / name
    if name.startswith((".", "/")) or local.exists():
        name = str(local.resolve())  # a local dataset folder, relative to the suite like other paths
    if _saved_dataset(Path(name)):
        return [dict(r) for r in _read_saved(Path(name), split, f"hf:{ref}")]
    datasets = _datasets()
    try:
        ds = datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as e:  # datasets raises many types offline; all mean "not available here"
        raise ConfigError(
            f"could not load Hugging Face dataset '{ref}': {type(e).__name__}: {str(e).splitlines()[0][:200]}",
            hint="offline, use a local dataset directory or a dataset already in the HF cache",
        ) from None
    return [dict(r) for r in ds]


def select_cases(
    cases: list[Case], tags: list[str] | None = None, limit: int | None = None, shard: tuple[int, int] | None = None
) -> list[Case]:
    """Cases with any of `tags`, in a stable shard `(i, n)` (1-based), at most `limit` of them."""
    out = [c for c in cases if not tags or set(tags) & set(c.tags)]
    if shard is not None:
        i, n = shard
        out = [c for c in out if shard_of(c.id, n) == i - 1]
    return out[:limit] if limit else out


def shard_of(case_id: str, n: int) -> int:
    """The 0-based shard of a case: stable across runs and machines (not Python's hash)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % n


def expand(cases: list[Case], target_ids: list[str], epochs: int) -> list[WorkItem]:
    """Every (case, target, epoch), epoch-major so early results cover every case."""
    return [WorkItem(c, t, e) for e in range(epochs) for c in cases for t in target_ids]
