"""Inline SVG charts for the HTML report: score histograms per metric and target, pass/fail bars,
and a small CI bar for deltas. Every label is escaped; nothing is fetched."""

from __future__ import annotations

from html import escape

PALETTE = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def histogram(title: str, values: dict[str, list[float]], threshold: float | None = None, bins: int = 10,
              width: int = 300, height: int = 150) -> str:
    """Share of cases per score bin, one bar per target in each bin; a dashed line at the threshold."""
    left, right, top, bottom = 30, 8, 20, 22
    pw, ph = width - left - right, height - top - bottom
    targets = list(values)
    shares: dict[str, list[float]] = {}
    for t, vs in values.items():
        counts = [0] * bins
        for v in vs:
            counts[min(bins - 1, max(0, int(v * bins)))] += 1
        shares[t] = [c / len(vs) if vs else 0.0 for c in counts]
    peak = max([s for row in shares.values() for s in row] + [0.01])
    bw = pw / bins
    inner = bw * 0.8 / max(1, len(targets))
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'><title>{escape(title)}: share of cases per score bin</title>',
             f'<text x="{left}" y="13" class="ct">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 4}" class="tick" text-anchor="end">{peak:.0%}</text>',
             f'<text x="{left - 4}" y="{top + ph}" class="tick" text-anchor="end">0</text>']
    for x in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{left + x * pw:.1f}" y="{height - 6}" class="tick" text-anchor="middle">{x:g}</text>')
    for ti, t in enumerate(targets):
        for b, share in enumerate(shares[t]):
            if share <= 0:
                continue
            h = share / peak * ph
            x = left + b * bw + bw * 0.1 + ti * inner
            n = round(share * len(values[t]))
            close = "]" if b == bins - 1 else ")"
            tip = f"{t}: {n} of {len(values[t])} cases in [{b / bins:.1f}, {(b + 1) / bins:.1f}{close}"
            parts.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{inner:.1f}" height="{h:.1f}" '
                         f'fill="{color(ti)}"><title>{escape(tip)}</title></rect>')
    if threshold is not None:
        x = left + min(1.0, max(0.0, threshold)) * pw
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" class="thr">'
                     f'<title>threshold {threshold:g}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def pass_fail(rows: list[tuple[str, int, int, int]], width: int = 620) -> str:
    """One stacked bar per target: passed, failed, errored."""
    label_w, bar_h, gap = 150, 18, 8
    height = len(rows) * (bar_h + gap) + 24
    pw = width - label_w - 120
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             '><title>pass / fail / error per target</title>']
    for i, (target, passed, failed, errored) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        total = max(1, passed + failed + errored)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" class="lbl" text-anchor="end">{escape(_short(target))}'
                     f'<title>{escape(target)}</title></text>')
        x = float(label_w)
        for n, cls, word in ((passed, "pass", "passed"), (failed, "fail", "failed"), (errored, "err", "errored")):
            w = n / total * pw
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" class="{cls}">'
                             f'<title>{escape(target)}: {n} {word}</title></rect>')
            x += w
        parts.append(f'<text x="{label_w + pw + 6}" y="{y + 13}" class="lbl">{passed}/{total} passed'
                     f'{f", {errored} err" if errored else ""}</text>')
    legend_y = height - 8
    for j, (cls, word) in enumerate((("pass", "passed"), ("fail", "failed"), ("err", "errored"))):
        x = label_w + j * 80
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" class="{cls}"/>'
                     f'<text x="{x + 14}" y="{legend_y}" class="tick">{word}</text>')
    parts.append("</svg>")
    return "".join(parts)


def ci_bar(delta: float | None, ci: tuple[float, float] | None, scale: float, width: int = 120) -> str:
    """A forest-plot cell: the delta as a dot, its CI as a line, a vertical line at zero."""
    if delta is None or ci is None:
        return ""
    scale = max(scale, 1e-9)

    def x(v: float) -> float:
        return width / 2 + max(-1.0, min(1.0, v / scale)) * (width / 2 - 4)

    cls = "up" if ci[0] > 0 else ("down" if ci[1] < 0 else "flat")
    return (f'<svg class="cibar {cls}" width="{width}" height="14" viewBox="0 0 {width} 14" '
            f'><title>{delta:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]</title>'
            f'<line x1="{width / 2}" y1="1" x2="{width / 2}" y2="13" class="zero"/>'
            f'<line x1="{x(ci[0]):.1f}" y1="7" x2="{x(ci[1]):.1f}" y2="7" class="ci"/>'
            f'<circle cx="{x(delta):.1f}" cy="7" r="3.5" class="pt"/></svg>')


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
