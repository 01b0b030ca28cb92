"""Parts a suite reuses, applied to the YAML before it is validated: top-level `x-` blocks (ignored,
so YAML anchors can live there, as in docker-compose files), `providers:` entries a target takes
with `extends: NAME`, and prompts kept in files (`prompt: file://prompts/answer.j2`)."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

from llmeval.config.files import read_bytes
from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError

FILE_PREFIX = "file://"
FILE_FIELDS = ("system", "prompt")
"""Target (and provider) fields that may name a file instead of holding the text."""


def without_x_blocks(doc: Any) -> Any:
    """The suite mapping without its top-level `x-...` keys."""
    if not isinstance(doc, dict):
        return doc
    return {k: v for k, v in doc.items() if not str(k).startswith("x-")}


def apply_reuse(raw: Any, resolved: Any, where: str, tree: Any) -> tuple[Any, Any, dict[str, str]]:
    """(raw, resolved, files): both mappings with `x-` blocks dropped and providers merged into the
    targets that extend them; `resolved` also has file prompts read. `files` maps each prompt file
    (as written) to its sha256, for run.json. `raw` keeps the `file://` references as written."""
    raw, resolved = without_x_blocks(raw), without_x_blocks(resolved)
    if not isinstance(resolved, dict):
        return raw, resolved, {}
    files: dict[str, str] = {}
    base = Path(where).parent
    providers = resolved.get("providers")
    if isinstance(providers, dict):
        for name, entry in providers.items():
            _read_prompts(entry, ("providers", name), base, where, tree, files)
    targets = resolved.get("targets")
    if isinstance(targets, list):
        for i, entry in enumerate(targets):
            _read_prompts(entry, ("targets", i), base, where, tree, files)
    return _extend(raw, where, tree), _extend(resolved, where, tree), files


def _read_prompts(entry: Any, loc: tuple[Any, ...], base: Path, where: str, tree: Any,
                  files: dict[str, str]) -> None:
    if not isinstance(entry, dict):
        return
    for key in FILE_FIELDS:
        value = entry.get(key)
        if not (isinstance(value, str) and value.startswith(FILE_PREFIX)):
            continue
        ref = value[len(FILE_PREFIX):]
        p = Path(ref).expanduser()
        path = p if p.is_absolute() else base / p
        if not path.exists():
            raise ConfigError(f"prompt file not found: {ref} (looked in {path.parent.resolve()})", where,
                              *position(tree, loc + (key,)), hint="file:// paths are relative to the suite's folder")
        try:
            data = read_bytes(path, "prompt file")
            entry[key] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"prompt file {ref} is not UTF-8 text", where, *position(tree, loc + (key,))) from None
        except ConfigError as e:  # not a regular file, too big: at the key that names it
            raise ConfigError(e.message, where, *position(tree, loc + (key,)), hint=e.hint) from None
        files[ref] = hashlib.sha256(data).hexdigest()


def _extend(doc: dict[str, Any], where: str, tree: Any) -> dict[str, Any]:
    """Targets with `extends: NAME` get the provider's settings under their own (params merged)."""
    providers = doc.get("providers") if isinstance(doc.get("providers"), dict) else {}
    targets = doc.get("targets")
    if not isinstance(targets, list):
        return doc
    merged = []
    for i, t in enumerate(targets):
        name = t.get("extends") if isinstance(t, dict) else None
        if name is None:
            merged.append(t)
            continue
        base = providers.get(name) if isinstance(name, str) else None
        if not isinstance(base, dict):
            close = difflib.get_close_matches(str(name), [str(k) for k in providers], n=1)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"providers: {', '.join(map(str, providers))}" if providers else
                    "define it under a top-level `providers:` mapping")
            raise ConfigError(f"target extends unknown provider '{name}'", where,
                              *position(tree, ("targets", i, "extends")), hint=hint)
        out = {**base, **t}
        if isinstance(base.get("params"), dict) and isinstance(t.get("params"), dict):
            out["params"] = {**base["params"], **t["params"]}
        merged.append(out)
    return {**doc, "targets": merged}
