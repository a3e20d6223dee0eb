"""Small inline-SVG charts for the HTML report (no JavaScript, no CDN, no matplotlib).

Two kinds: `line_chart` (series of points, optionally as steps, optional log x axis) and
`bar_chart` (one bar per label with a confidence interval whisker). Ticks are "nice"
numbers (1, 2, 5 × 10^k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf")
W, H = 560, 320
ML, MR, MT, MB = 64, 16, 34, 48  # margins: left, right, top, bottom


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    notes: Sequence[str] = ()  # per-point text drawn next to markers (e.g. "c=8")


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    low: float | None = None
    high: float | None = None
    mark: str = ""  # e.g. "*" for a significant difference


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _frame(title: str, xlabel: str, ylabel: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}" class="chart">'
        f'<rect width="{W}" height="{H}" fill="#fff"/>'
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">'
        f"{escape(title)}</text>"
        + "".join(body)
        + f'<text x="{ML + (W - ML - MR) / 2}" y="{H - 8}" text-anchor="middle" '
        f'font-size="12">{escape(xlabel)}</text>'
        f'<text transform="translate(14 {MT + (H - MT - MB) / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">{escape(ylabel)}</text></svg>'
    )


def _legend(labels: Sequence[str]) -> list[str]:
    out = []
    x = ML + 8
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{MT + 4}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14}" y="{MT + 13}" font-size="11">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return out


def line_chart(series: Sequence[Series], title: str, xlabel: str, ylabel: str, *,
               steps: bool = False, log_x: bool = False, y_from_zero: bool = True) -> str:
    """Lines with point markers (or post-steps for CDFs); one color per series."""
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=False)
           if math.isfinite(x) and math.isfinite(y) and (not log_x or x > 0)]
    if not pts:
        return _frame(title, xlabel, ylabel, [
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="12" '
            f'fill="#666">no data</text>'])

    def tx(v: float) -> float:
        return math.log10(v) if log_x else v

    xs = [tx(x) for x, _ in pts]
    ys = [y for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0 = 0.0 if y_from_zero else min(ys)
    y1 = max(ys)
    if log_x:
        xt = [10.0 ** k for k in range(math.floor(x0), math.ceil(x1) + 1)]
        x0, x1 = math.floor(x0), max(math.ceil(x1), math.floor(x0) + 1)
    else:
        xt = nice_ticks(x0, x1)
        x0, x1 = min(x0, xt[0]), max(x1, xt[-1])
    yt = nice_ticks(y0, y1)
    y0, y1 = min(y0, yt[0]), max(y1, yt[-1])
    pw, ph = W - ML - MR, H - MT - MB

    def px(v: float) -> float:
        return ML + (tx(v) - x0) / ((x1 - x0) or 1) * pw

    def py(v: float) -> float:
        return MT + ph - (v - y0) / ((y1 - y0) or 1) * ph

    body = [f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in yt:
        body.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                    f'stroke="#eee"/><text x="{ML - 6}" y="{py(t) + 4:.1f}" text-anchor="end" '
                    f'font-size="11">{fmt(t)}</text>')
    for t in xt:
        body.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{MT}" y2="{MT + ph}" '
                    f'stroke="#eee"/><text x="{px(t):.1f}" y="{MT + ph + 16}" '
                    f'text-anchor="middle" font-size="11">{fmt(t)}</text>')
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        good = [(x, y, n) for x, y, n in zip(s.xs, s.ys, list(s.notes) or [""] * len(s.xs), strict=False)
                if math.isfinite(x) and math.isfinite(y) and (not log_x or x > 0)]
        if not good:
            continue
        coords: list[str] = []
        for j, (x, y, _) in enumerate(good):
            if steps and j:
                coords.append(f"{px(x):.1f},{py(good[j - 1][1]):.1f}")
            coords.append(f"{px(x):.1f},{py(y):.1f}")
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(coords)}"><title>{escape(s.label)}</title></polyline>')
        if not steps:
            for x, y, note in good:
                body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}">'
                            f"<title>{escape(s.label)}: {fmt(x)}, {fmt(y)}</title></circle>")
                if note:
                    body.append(f'<text x="{px(x) + 5:.1f}" y="{py(y) - 6:.1f}" font-size="10" '
                                f'fill="{color}">{escape(note)}</text>')
    body.extend(_legend([s.label for s in series]))
    return _frame(title, xlabel, ylabel, body)


def bar_chart(bars: Sequence[Bar], title: str, ylabel: str) -> str:
    """One bar per label, with a 95 % interval whisker when low/high are given."""
    if not bars:
        return _frame(title, "", ylabel, [])
    top = max(max(b.value, b.high if b.high is not None else b.value) for b in bars)
    yt = nice_ticks(0.0, top if top > 0 else 1.0)
    y1 = yt[-1]
    pw, ph = W - ML - MR, H - MT - MB

    def py(v: float) -> float:
        return MT + ph - max(v, 0.0) / (y1 or 1) * ph

    body = [f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in yt:
        body.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                    f'stroke="#eee"/><text x="{ML - 6}" y="{py(t) + 4:.1f}" text-anchor="end" '
                    f'font-size="11">{fmt(t)}</text>')
    slot = pw / len(bars)
    bw = min(80.0, slot * 0.6)
    for i, b in enumerate(bars):
        color = PALETTE[i % len(PALETTE)]
        cx = ML + slot * (i + 0.5)
        body.append(f'<rect x="{cx - bw / 2:.1f}" y="{py(b.value):.1f}" width="{bw:.1f}" '
                    f'height="{MT + ph - py(b.value):.1f}" fill="{color}" opacity="0.85">'
                    f"<title>{escape(b.label)}: {fmt(b.value)}</title></rect>")
        if b.low is not None and b.high is not None:
            lo, hi = py(b.low), py(b.high)
            body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" '
                        f'stroke="#000" stroke-width="1.5"/>'
                        f'<line x1="{cx - 8:.1f}" x2="{cx + 8:.1f}" y1="{lo:.1f}" y2="{lo:.1f}" '
                        f'stroke="#000"/><line x1="{cx - 8:.1f}" x2="{cx + 8:.1f}" '
                        f'y1="{hi:.1f}" y2="{hi:.1f}" stroke="#000"/>')
        body.append(f'<text x="{cx:.1f}" y="{MT + ph + 16}" text-anchor="middle" '
                    f'font-size="11">{escape(b.label)}</text>'
                    f'<text x="{cx:.1f}" y="{py(b.high if b.high is not None else b.value) - 6:.1f}" '
                    f'text-anchor="middle" font-size="11">{fmt(b.value)}{escape(b.mark)}</text>')
    return _frame(title, "", ylabel, body)
