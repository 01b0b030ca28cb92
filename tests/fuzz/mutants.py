"""Mutated suites and datasets, made from the repository's example suites (and a seed that uses
most of the format), each in a project folder of its own: `make_mutant(root, seed, i)`.

A mutant applies one to three operators to the suite (as a YAML tree or as bytes) or to one of
its data files. The operators are what a careless or hostile pull request brings: deleted keys,
swapped types, Unicode (RTL, zero-width, NUL), huge numbers, alias bombs, duplicate keys, a BOM
or CRLF, invalid UTF-8, bad or costly Jinja, and paths to special files."""

from __future__ import annotations

import io
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SEEDS: dict[str, Path] = {
    "demo": REPO / "suites" / "demo.yaml",
    "rag": REPO / "suites" / "rag.yaml",
    "example": REPO / "llmeval" / "cli" / "scaffold_templates" / "example.yaml",
    "kitchen": Path(__file__).resolve().parent / "seeds" / "kitchen.yaml",
}
DATA = [REPO / "suites" / "data" / p for p in ("demo_qa.jsonl", "demo_release_1_0.jsonl")] + [
    Path(__file__).resolve().parent / "seeds" / "data" / p for p in ("kitchen.jsonl", "kitchen_outputs.jsonl")]

VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 10**30, -(10**30), 1e308, float("inf"), float("nan"), "", " ",
                     "x" * 5000, [], {}, [1, "two", None], {"a": {"b": [1]}}, "${FUZZ_UNSET_VAR}", "${A:-}",
                     "{{ undefined_name }}", "null", "~", "yes", "0x1F", "1e400", "-.inf", "[", "{a: 1", "*alias"]
TEXT = ["\u202e", "\u202d\u2066", "\u200b", "\u200d\ufeff", "\x00", "\x1b[31m", "\u0085", "\u2028", "\U0001f600",
        "e\u0301", "\ufffd", "ﷺ", "\U000e0041", "%", "&<>'\"", "\\", "@here", "`rm`", "|", "\t"]
NUMBERS: list[Any] = [10**400, -(10**400), 1e308, -1e308, float("inf"), float("-inf"), float("nan"), 2**63, -1, 0,
                      10**4300]
TEMPLATES = [
    "{{ unclosed", "{% for x in %}", "{% endfor %}", "{{ input.__class__.__mro__ }}", "{{ ''.__class__ }}",
    '{{ "a" * 10**9 }}', "{{ input * 1000000000 }}", "{{ input|center(10**9) }}", "{{ input|indent(10**9) }}",
    '{{ input|wordwrap(1, wrapstring="-" * 100000) }}', "{{ range(10**9)|list }}", "{{ lipsum(10**6) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif "
    "%}{% endmacro %}{{ f(40) }}", "{% include '/etc/passwd' %}", "{% extends 'x' %}", "{{ 1/0 }}",
    "{{ self._TemplateReference__context }}", "{{ cycler.__init__.__globals__ }}", "{{ input|tojson|tojson }}",
    '{{ "%999999999d"|format(1) }}', '{{ "{:>999999999}".format(1) }}', "{{ 10**10**10 }}", "{{ vars.nope.deeper }}",
    '{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
    "{{ input.ljust(10**9) }}", '{{ range(100000)|map("center", 100000)|join }}', "{{ contexts[99] }}",
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "{% if 1 %}" * 2000 + "{% endif %}" * 2000,
    "{{ " + "-" * 5000 + "1 }}",
]
ALIAS_BOMB = "\n".join(['lol_a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"lol_{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)])
TEMPLATE_KEYS = {"prompt", "system", "content", "url", "question", "X-Case", "lang", "tags"}
PATH_KEYS = {"path", "outputs", "judge"}


@dataclass
class Mutant:
    """One mutated project: the suite to check, how it was made, and the command to run on it."""

    index: int
    dir: Path
    suite: Path
    seed_name: str
    ops: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def make_mutant(root: Path, seed: int, index: int) -> Mutant:
    """Mutant `index` of the fixed-seed series `seed`, written under `root` (same arguments, same files)."""
    rng = random.Random(f"{seed}:{index}")
    name = rng.choice(sorted(SEEDS))
    folder = root / f"m{index:05d}"
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "suites" / "data").mkdir(parents=True)
    for data in DATA:
        shutil.copy(data, folder / "suites" / "data" / data.name)
    shutil.copytree(REPO / "metrics", folder / "metrics", ignore=shutil.ignore_patterns("token_f1"))
    shutil.copy(REPO / "metrics" / "helpfulness.yaml", folder / "metrics" / "example-rubric.yaml")
    mutant = Mutant(index, folder, folder / "suites" / f"{name}.yaml", name)
    text = SEEDS[name].read_text(encoding="utf-8")
    tree_ops = [op for op in TREE_OPS if rng.random() < 0.5] or [rng.choice(TREE_OPS)]
    tree_ops = rng.sample(tree_ops, min(len(tree_ops), rng.randint(1, 2)))
    data = b""
    try:
        tree = _load(text)
        for op in tree_ops:
            op(tree, rng, folder)
            mutant.ops.append(op.__name__)
        data = _dump(tree)
    except Exception:  # a mutation that the dumper cannot write: keep the seed's text for byte operators
        data = text.encode("utf-8")
        mutant.ops.append("undumpable")
    if rng.random() < 0.45:
        op = rng.choice(BYTE_OPS)
        data = op(data, rng)
        mutant.ops.append(op.__name__)
    if rng.random() < 0.2:
        target = rng.choice(sorted((folder / "suites" / "data").iterdir()))
        op = rng.choice(DATA_OPS)
        target.write_bytes(op(target.read_bytes(), rng))
        mutant.ops.append(f"{op.__name__}({target.name})")
    mutant.suite.write_bytes(data)
    mutant.command = ["validate", str(mutant.suite)] if rng.random() < 0.65 else [
        "run", "--dry-run", str(mutant.suite), "-o", str(folder / "runs")]
    return mutant


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    yaml.width = 120
    return yaml


def _load(text: str) -> Any:
    return _yaml().load(text)


def _dump(tree: Any) -> bytes:
    buf = io.StringIO()
    _yaml().dump(tree, buf)
    return buf.getvalue().replace("x-bomb: placeholder", ALIAS_BOMB).encode("utf-8", "surrogatepass")


def _nodes(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, Any, tuple[Any, ...]]]:
    """(container, key or index, path) of every value in the tree."""
    out: list[tuple[Any, Any, tuple[Any, ...]]] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for k, v in list(items):
        out.append((tree, k, path + (k,)))
        out += _nodes(v, path + (k,))
    return out


def _pick(tree: Any, rng: random.Random, test: Callable[[Any, Any], bool] = lambda c, k: True) -> Any:
    found = [(c, k) for c, k, _ in _nodes(tree) if test(c, k)]
    return rng.choice(found) if found else (None, None)


def delete_key(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng, lambda c, k: isinstance(c, dict))
    if c is not None:
        del c[k]


def swap_type(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng)
    if c is not None:
        c[k] = rng.choice(VALUES)


def unicode_text(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng, lambda c, k: isinstance(c[k], str) or isinstance(k, str) and isinstance(c, dict))
    if c is None:
        return
    junk = "".join(rng.choice(TEXT) for _ in range(rng.randint(1, 3)))
    if isinstance(c[k], str):
        s = c[k]
        at = rng.randint(0, len(s))
        c[k] = s[:at] + junk + s[at:]
    elif isinstance(c, dict):  # the key itself
        value = c.pop(k)
        c[f"{k}{junk}"] = value


def huge_number(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng, lambda c, k: isinstance(c[k], (int, float)) and not isinstance(c[k], bool))
    if c is None:
        c, k = _pick(tree, rng)
    if c is not None:
        c[k] = rng.choice(NUMBERS)


def bad_template(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng, lambda c, k: isinstance(c, dict) and k in TEMPLATE_KEYS)
    if c is None:
        c, k = _pick(tree, rng, lambda c, k: isinstance(c[k], str))
    if c is not None:
        c[k] = rng.choice(TEMPLATES)


def special_path(tree: Any, rng: random.Random, folder: Path) -> None:
    c, k = _pick(tree, rng, lambda c, k: isinstance(c, dict) and k in PATH_KEYS and isinstance(c[k], str))
    if c is None:
        return
    kind = rng.choice(["/dev/zero", "/dev/null", "/dev/urandom", "/dev/stdin", "fifo", "dir", "/proc/self/status",
                       "/proc/self/environ", "/etc/passwd", "/etc/shadow", "nul", "../../../../etc/hosts", "",
                       "missing.jsonl", "loop", "big"])
    suffix = ".yaml" if k == "judge" else ".jsonl"
    if kind == "fifo":
        os.mkfifo(folder / f"pipe{suffix}")
        value = str(folder / f"pipe{suffix}")
    elif kind == "dir":
        (folder / f"folder{suffix}").mkdir(exist_ok=True)
        value = str(folder / f"folder{suffix}")
    elif kind == "loop":
        os.symlink(f"loop{suffix}", folder / f"loop{suffix}")
        value = str(folder / f"loop{suffix}")
    elif kind == "big":  # sparse: 200 MB on paper, nothing on disk
        with open(folder / f"big{suffix}", "wb") as f:
            f.truncate(200_000_000)
        value = str(folder / f"big{suffix}")
    elif kind == "nul":
        value = f"data/nul\x00{suffix}"
    else:
        value = kind
    c[k] = value


def alias_bomb(tree: Any, rng: random.Random, folder: Path) -> None:
    if hasattr(tree, "insert"):
        tree.insert(rng.randint(0, len(tree)), "x-bomb", "placeholder")  # _dump's text replaces it


TREE_OPS = [delete_key, swap_type, unicode_text, huge_number, bad_template, special_path, alias_bomb]


def bom_crlf(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randint(0, 2)
    if choice != 1:
        data = data.replace(b"\n", b"\r\n")
    return b"\xef\xbb\xbf" + data if choice != 0 else data


def invalid_utf8(data: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]) + data[at:]


def control_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.choice([b"\x00", b"\x01", b"\x1b", b"\x7f", b"\x0c", b"\x08"]) + data[at:]


def yaml_directive(data: bytes, rng: random.Random) -> bytes:
    junk = rng.choice([b"%YAML 9.9\n---\n", b"%YAML 1.1\n%YAML 1.2\n---\n", b"%TAG ! tag:x,2000:\n---\n",
                       b"--- !!python/object:os.system\n", b"---\n...\n---\n", b"!!binary |\n  AAAA\n"])
    lines = data.split(b"\n")
    at = rng.randint(0, len(lines))
    return b"\n".join(lines[:at] + [junk.rstrip(b"\n")] + lines[at:])


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randint(0, len(data))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.choice(b"{}[]:,&*!|>'\"#%@`-?\t \n")
    return bytes(buf)


def duplicate_key(data: bytes, rng: random.Random) -> bytes:
    import re

    lines = data.split(b"\n")
    keyed = [i for i, ln in enumerate(lines) if re.match(rb"^\s*(- )?[\w-]+:", ln)]
    if not keyed:
        return data
    i = rng.choice(keyed)
    copy = re.sub(rb"^(\s*)- ", rb"\1  ", lines[i])  # the same key again in the same mapping
    return b"\n".join(lines[: i + 1] + [copy] + lines[i + 1:])


BYTE_OPS = [bom_crlf, invalid_utf8, control_bytes, yaml_directive, truncate, flip_bytes, duplicate_key]


def jsonl_row(data: bytes, rng: random.Random) -> bytes:
    import json

    lines = [ln for ln in data.decode("utf-8").splitlines() if ln.strip()]
    i = rng.randrange(len(lines))
    row = json.loads(lines[i])
    key = rng.choice(sorted(row)) if row else "input"
    if rng.random() < 0.3:
        row.pop(key, None)
    else:
        row[key] = rng.choice([None, 1e308, 10**30, [], {}, [None], "", {"nested": [1]}, True, "x" * 10000,
                               "\x00\u202e"])
    lines[i] = json.dumps(row, ensure_ascii=rng.random() < 0.5)
    return ("\n".join(lines) + "\n").encode("utf-8")


def jsonl_text(data: bytes, rng: random.Random) -> bytes:
    junk = rng.choice([b"{", b"[1, 2]", b"\"str\"", b"null", b"{\"id\": 1e400, \"input\": 1}", b"\xff\xfe",
                       b"{\"id\": " + b"9" * 5000 + b"}", b"\x00", b"", b"{\"id\": \"dup\"}\n{\"id\": \"dup\"}",
                       b"{\"input\": " + b"[" * 100000 + b"]" * 100000 + b"}"])
    lines = data.split(b"\n")
    lines.insert(rng.randint(0, len(lines)), junk)
    return b"\n".join(lines)


def jsonl_whole(data: bytes, rng: random.Random) -> bytes:
    return rng.choice([b"", b"\xef\xbb\xbf" + data, data.replace(b"\n", b"\r\n"), data[: len(data) // 2],
                       data * 2])


DATA_OPS = [jsonl_row, jsonl_text, jsonl_whole]
