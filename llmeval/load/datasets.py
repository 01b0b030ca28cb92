"""Dataset files a suite names: .jsonl .json .csv .parquet, a folder written by save_to_disk(),
local data files and globs through `hf:`, and Hugging Face datasets (`hf:NAME[:CONFIG]@SPLIT`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmeval.config.files import named_file, read_text
from llmeval.errors import ConfigError, install_hint


def read_dataset(path: str, base: Path) -> list[dict[str, Any]]:
    """Rows of a dataset file (.jsonl .json .csv .parquet), a save_to_disk() folder, or
    `hf:NAME[:CONFIG]@SPLIT`."""
    if not path.strip():
        raise ConfigError("the dataset path is empty", hint="give a .jsonl .json .csv or .parquet file, a "
                          "save_to_disk() folder, or hf:NAME@SPLIT")
    if path.startswith("hf:"):
        files = _local_data_files(path[3:], base)
        if files is None:
            return _read_hf(path[3:], base)
        return [row for f in files for row in read_dataset(str(f), base)]
    folder = _saved_folder(path, base)
    if folder is not None:  # a save_to_disk() folder (`folder` or `folder@split`) as a plain path
        return [dict(r) for r in _read_saved(folder[0], folder[1], path)]
    suffix = Path(path).suffix.lower()
    if suffix not in DATA_FILES:
        raise ConfigError(f"unsupported dataset format '{suffix}' for {path}",
                          hint="use .jsonl, .json, .csv, .parquet or hf:NAME@SPLIT")
    p = named_file(path, base, "dataset file")
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(read_text(p, "dataset file").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as e:  # bad JSON, a 5,000-digit integer, [[[[...]]]]
                    raise ConfigError(f"{path} line {n}: invalid JSON: {getattr(e, 'msg', e)}") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(read_text(p, "dataset file"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        except (ValueError, RecursionError) as e:  # a 5,000-digit integer, [[[[...]]]] nested too deeply
            raise ConfigError(f"{path}: invalid JSON: {e}") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of objects")
        bad = next((i for i, row in enumerate(data) if not isinstance(row, dict)), None)
        if bad is not None:
            raise ConfigError(f"{path}: item {bad + 1} is a {type(data[bad]).__name__}, expected a JSON object")
        return data
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


DATA_FILES = (".jsonl", ".json", ".csv", ".parquet")


def _local_data_files(ref: str, base: Path) -> list[Path] | None:
    """The local data files `hf:data/qa.parquet` (or a glob such as `hf:data/*.parquet`) names, read
    like `path:` (a data file has one split, `train`); None when `ref` is a dataset name or folder."""
    name, _, split = ref.partition("@")
    if not name.lower().endswith(DATA_FILES):
        return None
    if any(ch in name for ch in "*?[") and not Path(name).is_absolute():
        files = sorted(base.glob(name))
    else:
        files = [base / name] if (base / name).is_file() else []
    if not files:
        return None
    if split not in ("", "train"):
        raise ConfigError(f"hf:{ref}: a local data file has one split, 'train' (not '{split}')",
                          hint=f"write hf:{name} or path: {name}")
    return files


def _saved_folder(path: str, base: Path) -> tuple[Path, str] | None:
    """(folder, split) when `path` names a folder (or `folder@split`); None for a file. A folder that
    save_to_disk() did not write is an error."""
    p, split = base / path, ""  # an absolute path stays itself
    folder, at, named = path.rpartition("@")
    if not p.exists() and at and (base / folder).is_dir():
        p, split = base / folder, named
    if not p.is_dir():
        return None
    if not _saved_dataset(p):
        raise ConfigError(f"{path} is a folder, not a dataset", hint="give a .jsonl .json .csv or .parquet "
                          "file, or a folder written by Dataset/DatasetDict.save_to_disk()")
    return p, split


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
