"""Word-level diff of two outputs (baseline vs candidate), for the report's "changed most" view."""

from __future__ import annotations

import difflib
import html
import re

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
REWRITE_RATIO = 0.4
"""Below this similarity the diff shows the old text deleted and the new one inserted, whole."""
MAX_TOKENS = 3000
"""Longer texts are diffed on their first MAX_TOKENS tokens (difflib is quadratic in the worst case)."""


def tokens(text: str) -> list[str]:
    """Words, punctuation and whitespace runs; joining them gives the text back."""
    return _TOKEN.findall(text)


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """[(op, text)] with op in "=", "-", "+": what to keep, delete from `old`, insert from `new`."""
    a, b = tokens(old or ""), tokens(new or "")
    tail_a, tail_b = a[MAX_TOKENS:], b[MAX_TOKENS:]
    a, b = a[:MAX_TOKENS], b[:MAX_TOKENS]
    ops: list[tuple[str, str]] = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if sm.ratio() < REWRITE_RATIO:  # mostly rewritten: word fragments would only confuse
        _push(ops, "-", old or "")
        _push(ops, "+", new or "")
        return ops
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            _push(ops, "=", "".join(a[i1:i2]))
        else:
            _push(ops, "-", "".join(a[i1:i2]))
            _push(ops, "+", "".join(b[j1:j2]))
    if tail_a or tail_b:
        _push(ops, "-", "".join(tail_a))
        _push(ops, "+", "".join(tail_b))
    return ops


def _push(ops: list[tuple[str, str]], op: str, text: str) -> None:
    if not text:
        return
    if ops and ops[-1][0] == op:
        ops[-1] = (op, ops[-1][1] + text)
    else:
        ops.append((op, text))


def diff_html(old: str | None, new: str | None) -> str:
    """The diff as escaped HTML: deletions in <del>, insertions in <ins>."""
    ops = word_diff(old, new)
    # Nothing in common: the two texts on their own lines rather than run together.
    cls = "" if any(op == "=" for op, _ in ops) else ' class="whole"'
    parts = []
    for op, text in ops:
        t = html.escape(text)
        parts.append(t if op == "=" else (f"<del{cls}>{t}</del>" if op == "-" else f"<ins{cls}>{t}</ins>"))
    return "".join(parts)
