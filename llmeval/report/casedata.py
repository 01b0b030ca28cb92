"""The per-case table of report.html as compact JSON: one row per (case, epoch), the targets side by
side, repeated strings (contexts, reasons, tags) interned, long texts capped to fit a size budget.
The page embeds it packed (gzip, then base64) and the browser unpacks it with DecompressionStream:
prose packs 2.5-3x smaller, repetitive eval texts more. Texts that only a row's details and
tooltips show (contexts, reasons, claims, baseline outputs: about half the bytes of a RAG run) are
a second table, X, packed apart, so the browser draws the table first and unpacks them after."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any

from llmeval.report.view import by_case, metric_keys, run_targets, text_of, thresholds, unsupported_claims
from llmeval.results.messages import call_text, message_text
from llmeval.results.records import Result
from llmeval.results.runlog import Run

BUDGET_BYTES = 28_000_000
"""Default limit of the packed payload, in the bytes it takes in the file (gzip + base64), since the
limit that matters is the size of report.html; the page passes what is left of its own budget."""
RAW_BUDGET = 160_000_000
"""Limit of the JSON once unpacked (both parts): the browser parses it whole, so very compressible
texts (a 60,000-character repeated output) are capped too, bounding parse time and memory."""
MARKER = 18
"""Characters a truncation adds ("… [+12,345 chars]"; the full text is in results.jsonl)."""
MIN_CAP = 60


class _Builder:
    """Collects rows; texts of tier 0 (input, expected, output) and tier 1 (contexts, baseline
    outputs, reasons, claims, errors, tags) are cut at their tier's cap."""

    def __init__(self, caps: list[int | None]) -> None:
        self.caps = caps
        self.strings: tuple[list[str], list[str]] = ([], [])
        """T, texts the table shows (tags, roles, errors), and X, texts only details and tooltips show."""
        self.index: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self.truncated = 0
        self.lengths: list[list[int]] = [[], []]
        """Length of every text that may be cut, per tier (interned ones once), to fit the next cap."""

    def cut(self, s: Any, tier: int = 0) -> str:
        s = "" if s is None else str(s)
        self.lengths[tier].append(len(s))
        cap = self.caps[tier]
        if cap is not None and len(s) > cap:
            self.truncated += 1
            return s[:cap] + f"… [+{len(s) - cap:,} chars]"
        return s

    def intern(self, s: Any, table: int = 0) -> int:
        """The text's index in T (table 0) or X (table 1), each text stored once."""
        key = "" if s is None else str(s)
        i = self.index[table].get(key)
        if i is None:
            i = self.index[table][key] = len(self.strings[table])
            self.strings[table].append(self.cut(key, 1))
        return i

    def detail(self, s: Any) -> int:
        return self.intern(s, 1)


@dataclass(frozen=True)
class CaseData:
    """The case table for the page: its two packed parts (the table, then X), how many texts were
    cut, the size of the JSON of both parts, and the baseline's run id (compare views)."""

    payload: str
    details: str
    truncated: int
    raw_bytes: int
    baseline: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The table data unpacked, X included (the rows are never held as objects while writing)."""
        data = json.loads(gzip.decompress(base64.b64decode(self.payload)))
        data["X"] = json.loads(gzip.decompress(base64.b64decode(self.details)))
        return data


def case_data(run: Run, comparison: Any = None, budget: int = BUDGET_BYTES,
              raw_budget: int = RAW_BUDGET) -> CaseData:
    """The table data, packed; when the payload would pass `budget` bytes (or the JSON `raw_budget`),
    the longest secondary texts (contexts, baseline outputs, reasons) are cut to one common length,
    then, if that is not enough, the longest inputs, references and outputs. Each row is packed as
    it is made, so a large run's table is never held as JSON text or row objects."""
    caps: list[int | None] = [None, None]
    last: tuple[int, int] | None = None  # (JSON, packed) sizes before the last cut
    for _ in range(10):
        b = _Builder(caps)
        table, details = _Packer(), _Packer()
        _build(run, comparison, b, table)
        details.write(to_json(b.strings[1]))
        packed = [table.packed(), details.packed()]
        n_raw, n_packed = table.raw + details.raw, sum(map(len, packed))
        # Cuts are sized in JSON characters: a packed excess counts at the rate the last cut saved
        # (long texts often pack better than the rest), else at this payload's ratio.
        rate = ratio = n_raw / n_packed
        if last is not None and last[0] > n_raw and last[1] > n_packed:
            rate = min(max((last[0] - n_raw) / (last[1] - n_packed), ratio / 4), ratio * 4)
        excess = max(n_raw - raw_budget, (n_packed - budget) * rate)
        if excess <= 0 or caps[0] == MIN_CAP:
            break
        tier = 1 if caps[1] != MIN_CAP else 0
        caps[tier] = fit_cap(b.lengths[tier], int(excess) + 1, caps[tier])
        last = (n_raw, n_packed)
    baseline = comparison.base_run_id if comparison is not None else None
    return CaseData(packed[0], packed[1], b.truncated, n_raw, baseline)


class _Packer:
    """JSON text packed as it is written: gzip (no name, no timestamp, so a re-render is
    byte-identical), then base64: ASCII that no text in the data can turn into markup, safe inside
    a <script> element as it is."""

    FLUSH = 1 << 16

    def __init__(self) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
        self._packed: list[bytes] = []
        self._pending: list[str] = []
        self._size = 0
        self.raw = 0
        """Bytes of JSON written so far."""

    def write(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self.raw += len(data)
        self._packed.append(self._z.compress(data))
        self._pending, self._size = [], 0

    def packed(self) -> str:
        self._flush()
        self._packed.append(self._z.flush())
        return base64.b64encode(b"".join(self._packed)).decode("ascii")


def fit_cap(lengths: list[int], excess: int, current: int | None) -> int:
    """The largest cap below the current one whose cuts (each adding MARKER characters) save at least
    `excess` characters (plus 3% for multi-byte text) more than the current cap's; MIN_CAP when none does."""
    need = excess * 1.03 + (_saved(lengths, current) if current else 0)  # `lengths` are of the uncut texts
    lo, hi = MIN_CAP, (current - 1) if current else max(lengths, default=MIN_CAP)
    while lo < hi:  # largest cap with savings >= need
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _saved(lengths, mid) >= need else (lo, mid - 1)
    return max(MIN_CAP, lo)


def _saved(lengths: list[int], cap: int) -> int:
    return sum(n - cap - MARKER for n in lengths if n > cap + MARKER)


def _build(run: Run, cmp: Any, b: _Builder, out: _Packer) -> None:
    """Write the table's JSON to `out`: its rows as they are made, then the strings they point to."""
    targets = run_targets(run)
    keys = metric_keys(run.manifest)
    thr = thresholds(run.manifest)
    changes = {(c.case_id, c.target): c for c in cmp.cases} if cmp is not None else {}
    out.write('{"rows":[')
    epochs = set()
    for n, ((case_id, epoch), per_target) in enumerate(by_case(run.results).items()):
        first = next(iter(per_target.values()))
        row: dict[str, Any] = {"i": case_id, "in": b.cut(text_of(first.input)), "ex": b.cut(text_of(first.expected))}
        epochs.add(epoch)
        if epoch:
            row["ep"] = epoch
        if first.tags:
            row["tg"] = [b.intern(t) for t in first.tags]
        if first.messages:
            row["ms"] = [[b.intern(m.get("role")), b.cut(message_text(m))] for m in first.messages]
        row["c"] = [_cell(per_target.get(t), keys, b, changes.get((case_id, t))) for t in targets]
        out.write(("," if n else "") + to_json(row))
    rest = {
        "targets": targets, "keys": keys, "thr": [thr.get(k) for k in keys], "T": b.strings[0],
        "baseline": cmp.base_run_id if cmp is not None else None,
        "epochs": len(epochs) > 1, "truncated": b.truncated,
    }
    out.write("]," + to_json(rest)[1:])


def _cell(r: Result | None, keys: list[str], b: _Builder, change: Any) -> dict[str, Any] | None:
    if r is None:
        return None
    cell: dict[str, Any] = {"o": None if r.output is None else b.cut(r.output), "p": 1 if r.passed else 0}
    if r.latency_ms is not None:
        cell["l"] = round(r.latency_ms, 1)
    if r.tool_calls:
        cell["tc"] = [b.cut(call_text(c)) for c in r.tool_calls]
    if r.error is not None:
        cell["er"] = b.intern(f"{r.error.type}: {r.error.message}")
    scores = []
    for k in keys:
        s = r.scores.get(k)
        if s is None:
            scores.append(None)
            continue
        passed = None if s.passed is None else (1 if s.passed else 0)
        v = None if s.value is None else round(s.value, 4)
        if s.error is not None:  # [value, passed, reason, 1]: the score could not be computed
            scores.append([v, passed, b.detail(s.reason or f"metric error ({s.error})"), 1])
        else:
            scores.append([v, passed] + ([b.detail(s.reason)] if s.reason else []))
    if any(s is not None for s in scores):
        cell["s"] = scores
    n_errors = sum(1 for s in r.scores.values() if s.error is not None)
    if n_errors:
        cell["me"] = n_errors
    if r.contexts:
        cell["cx"] = [b.detail(c) for c in r.contexts]
    claims = unsupported_claims(r)
    if claims:
        cell["u"] = [b.detail(c) for c in claims]
    if change is not None:
        ch = change.change
        if ch != "unchanged":
            cell["ch"] = "r" if ch == "regressed" else "i"
        if change.delta is not None:
            cell["dv"] = round(change.delta, 4)
        if change.base_passed is not None:
            cell["bp"] = 1 if change.base_passed else 0
        if change.base_output != r.output:
            cell["bo"] = b.detail(change.base_output)
    return cell


def to_json(data: Any) -> str:
    """Compact JSON (it is packed before it reaches the page, so nothing in it needs escaping)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
