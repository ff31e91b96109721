"""Charts as inline SVG, written here rather than with a chart library.

Why no library: a report must be one file that opens offline (no CDN script, no JavaScript runtime
to fetch or trust), render byte-identically from the same run directory (chart libraries embed
random element ids, build timestamps or platform-dependent float noise), print cleanly, and stay
small. Four kinds of chart are needed — bars with intervals, line curves, a heat map and a
calibration plot — and each is a few dozen lines of SVG.

Every chart is an ``<svg role="img">`` with a ``<title>`` and ``<desc>`` (read by screen readers,
shown as a tooltip), values are written as text next to the marks (colour is never the only
carrier of meaning), series differ by dash pattern and marker as well as colour, and every
string from the data is escaped. Coordinates are rounded to one decimal so output is stable.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe-Ito); series also differ by dash and marker.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")
FONT = 12
MAX_LABEL_W = 260.0


def _f(v: float) -> str:
    """A coordinate: one decimal, no trailing zeros, never "-0"."""
    s = f"{v:.1f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def fmt_value(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    # A count is written whole; a measured share keeps its digits ("1.000" beside "0.987", not "1").
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def _char_width(c: str) -> float:
    # No font metrics offline: each character's advance in em, rounded up over DejaVu Sans (Chromium's
    # sans-serif on Linux), Arial and Helvetica. A flat 0.6 em under-measured capitals (0.6-1.0 em), so
    # "STREET_ADDRESS" ran past a bar chart's left edge.
    return 1.0 if c in _WIDE or unicodedata.east_asian_width(c) in "WF" else 0.8 if c.isupper() else 0.65


def _text_width(text: str, size: int = FONT) -> float:
    return size * sum(_char_width(c) for c in text)


_WIDE = frozenset("MWmw@%…")


def _fit(text: str, width: float) -> str:
    """``text``, cut with "…" where it would be wider than ``width`` px: the longest head that fits with
    the "…", found in one pass over the characters."""
    if _text_width(text) <= width:
        return text
    kept, used, ellipsis = 0, 0.0, _char_width("…")
    for c in text:
        if FONT * (used + _char_width(c) + ellipsis) > width:
            break
        used += _char_width(c)
        kept += 1
    return text[:kept] + "…"


def _shorten_middle(text: str, n: int) -> str:
    """Both ends of a long label: class names share their beginnings ("balance_not_updated_after_…")."""
    if len(text) <= n:
        return text
    head = (n - 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head):]


# The widest a bar label may be: the widest label area, its 12 px margin left aside.
LABEL_FIT = MAX_LABEL_W - 12


def _svg(chart_id: str, width: float, height: float, title: str, desc: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
            f'width="{_f(width)}" height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" role="img" '
            f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
            f'font-family="system-ui, sans-serif" font-size="{FONT}">')
    parts = [head, f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
             f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>', *body, "</svg>"]
    return Markup("".join(parts))


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (the usual 1-2-5 steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


def _tick_label(v: float, step: float) -> str:
    # As many decimals as the step needs (0.025 -> 3), so neighbouring ticks never print alike.
    decimals = next((d for d in range(7) if abs(round(step, d) - step) < step * 1e-6), 6)
    if decimals == 0:
        return f"{int(round(v)):,}"
    return f"{v:.{decimals}f}"


def _marker(kind: str, x: float, y: float, colour: str, r: float = 3.5) -> str:
    if kind == "square":
        return (f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" height="{_f(2 * r)}" '
                f'fill="{colour}"/>')
    if kind == "triangle":
        pts = f"{_f(x)},{_f(y - r - 1)} {_f(x - r - 0.5)},{_f(y + r)} {_f(x + r + 0.5)},{_f(y + r)}"
        return f'<polygon points="{pts}" fill="{colour}"/>'
    if kind == "diamond":
        pts = f"{_f(x)},{_f(y - r - 1)} {_f(x + r + 1)},{_f(y)} {_f(x)},{_f(y + r + 1)} {_f(x - r - 1)},{_f(y)}"
        return f'<polygon points="{pts}" fill="{colour}"/>'
    return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" fill="{colour}"/>'


# --------------------------------------------------------------------------------------------
# bars


@dataclass
class Bar:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""


@dataclass
class BarGroup:
    label: str
    bars: list[Bar] = field(default_factory=list)


def bar_chart(chart_id: str, title: str, groups: Sequence[BarGroup], *, series: Sequence[str] = (),
              max_value: float | None = None, digits: int = 3, desc: str = "", percent: bool = False) -> Markup:
    """Horizontal bars, one row per group and one bar per series, each with its value written at
    the end and an optional interval whisker."""
    values = [b.value for g in groups for b in g.bars if b.value is not None]
    highs = [b.high for g in groups for b in g.bars if b.high is not None]
    top = max_value if max_value is not None else max([*values, *highs, 0.0]) or 1.0
    # Labels are cut to what the widest label area holds, so none runs past the chart's left edge.
    shown = [_fit(g.label, LABEL_FIT) for g in groups]
    label_w = min(MAX_LABEL_W, max([_text_width(s) for s in shown] + [40.0]) + 12)
    plot_w, value_w = 360.0, 120.0
    bar_h, gap = 14.0, 8.0
    n_series = max((len(g.bars) for g in groups), default=1)
    legend_h = 22.0 if len(series) > 1 else 0.0
    row_h = n_series * bar_h + gap
    height = legend_h + len(groups) * row_h + 28
    width = label_w + plot_w + value_w
    x0 = label_w
    body: list[str] = []
    if len(series) > 1:
        lx = x0
        for i, name in enumerate(series):
            colour = PALETTE[i % len(PALETTE)]
            body.append(f'<rect x="{_f(lx)}" y="4" width="12" height="12" fill="{colour}" '
                        f'{_hatch_attr(i)}/><text x="{_f(lx + 16)}" y="14">{escape(name)}</text>')
            lx += 28 + _text_width(name)
    y = legend_h + 4
    for g, label in zip(groups, shown, strict=True):
        body.append(f'<text x="{_f(x0 - 6)}" y="{_f(y + n_series * bar_h / 2 + 4)}" text-anchor="end">'
                    f'<title>{escape(g.label)}</title>{escape(label)}</text>')
        for i, b in enumerate(g.bars):
            colour = PALETTE[i % len(PALETTE)]
            by = y + i * bar_h
            if b.value is None:
                body.append(f'<text x="{_f(x0 + 4)}" y="{_f(by + bar_h - 3)}" fill="#555">'
                            f'{escape(b.label + ": " if len(series) > 1 else "")}not available</text>')
                continue
            w = max(0.0, min(1.0, b.value / top)) * plot_w if top else 0.0
            shown = _pct(b.value) if percent else fmt_value(b.value, digits)
            tip = f"{g.label} {b.label}: {shown}".strip()
            if b.low is not None and b.high is not None:
                lo_s = _pct(b.low) if percent else fmt_value(b.low, digits)
                hi_s = _pct(b.high) if percent else fmt_value(b.high, digits)
                tip += f" (interval {lo_s} to {hi_s})"
            body.append(f'<rect x="{_f(x0)}" y="{_f(by + 1)}" width="{_f(w)}" height="{_f(bar_h - 2)}" '
                        f'fill="{colour}" {_hatch_attr(i)}><title>{escape(tip)}</title></rect>')
            end = x0 + w
            if b.low is not None and b.high is not None and top:
                lx = x0 + max(0.0, min(1.0, b.low / top)) * plot_w
                hx = x0 + max(0.0, min(1.0, b.high / top)) * plot_w
                cy = by + bar_h / 2
                body.append(f'<path d="M{_f(lx)} {_f(cy)}H{_f(hx)}M{_f(lx)} {_f(cy - 4)}V{_f(cy + 4)}'
                            f'M{_f(hx)} {_f(cy - 4)}V{_f(cy + 4)}" stroke="#222" stroke-width="1.2" fill="none"/>')
                end = max(end, hx)
            tag = f"{b.label} " if len(series) > 1 else ""
            body.append(f'<text x="{_f(end + 5)}" y="{_f(by + bar_h - 3)}">{escape(tag + shown + b.note)}</text>')
        y += row_h
    axis_y = y
    body.append(f'<path d="M{_f(x0)} {_f(legend_h)}V{_f(axis_y)}H{_f(x0 + plot_w)}" stroke="#444" fill="none"/>')
    for t in nice_ticks(0.0, top, 4):
        if t > top + 1e-12:
            continue
        tx = x0 + t / top * plot_w
        label = _pct(t) if percent else _tick_label(t, nice_ticks(0.0, top, 4)[1] or 1.0)
        body.append(f'<path d="M{_f(tx)} {_f(axis_y)}v4" stroke="#444"/>'
                    f'<text x="{_f(tx)}" y="{_f(axis_y + 16)}" text-anchor="middle" fill="#333">{label}</text>')
    return _svg(chart_id, width, height, title, desc or title, body)


def _hatch_attr(i: int) -> str:
    # A second series is drawn with a dashed outline so print in grey still tells them apart.
    return 'stroke="#222" stroke-dasharray="3 2" stroke-width="1"' if i % 2 else ""


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


# --------------------------------------------------------------------------------------------
# lines


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]


def line_chart(chart_id: str, title: str, series: Sequence[Series], *, x_label: str, y_label: str,
               desc: str = "", y_min: float | None = None, y_max: float | None = None) -> Markup:
    """Line curves over a shared x axis, e.g. training loss and validation metrics by step."""
    width, height = 560.0, 280.0
    left, right, top, bottom = 58.0, 16.0, 14.0 + 18.0 * math.ceil(len(series) / 3), 44.0
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if not xs:
        return _svg(chart_id, width, 60, title, "no data points", ['<text x="8" y="30">no data points</text>'])
    x_ticks = nice_ticks(min(xs), max(xs), 6)
    lo, hi = min(ys) if y_min is None else y_min, max(ys) if y_max is None else y_max
    if hi <= lo and y_max is not None:  # flat at a fixed top (accuracy 1.0 throughout): widen downwards
        lo = hi - (abs(hi) or 1.0)
    y_ticks = nice_ticks(lo, hi, 5)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    y_step0 = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    # Room for the widest tick label plus the rotated axis title.
    left = max(left, 30.0 + max(_text_width(_tick_label(t, y_step0)) for t in y_ticks))
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_lo) / ((x_hi - x_lo) or 1) * pw

    def py(y: float) -> float:
        return top + ph - (y - y_lo) / ((y_hi - y_lo) or 1) * ph

    body: list[str] = []
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for t in y_ticks:
        body.append(f'<path d="M{_f(left)} {_f(py(t))}H{_f(left + pw)}" stroke="#ddd"/>'
                    f'<text x="{_f(left - 6)}" y="{_f(py(t) + 4)}" text-anchor="end" fill="#333">'
                    f'{_tick_label(t, y_step)}</text>')
    for t in x_ticks:
        body.append(f'<path d="M{_f(px(t))} {_f(top + ph)}v4" stroke="#444"/>'
                    f'<text x="{_f(px(t))}" y="{_f(top + ph + 16)}" text-anchor="middle" fill="#333">'
                    f'{_tick_label(t, x_step)}</text>')
    body.append(f'<path d="M{_f(left)} {_f(top)}V{_f(top + ph)}H{_f(left + pw)}" stroke="#444" fill="none"/>')
    body.append(f'<text x="{_f(left + pw / 2)}" y="{_f(height - 6)}" text-anchor="middle">{escape(x_label)}</text>')
    body.append(f'<text transform="translate(14 {_f(top + ph / 2)}) rotate(-90)" text-anchor="middle">'
                f'{escape(y_label)}</text>')
    lx, ly = left, 14.0
    for i, s in enumerate(series):
        colour, dash, marker = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if i and i % 3 == 0:
            lx, ly = left, ly + 18
        body.append(f'<path d="M{_f(lx)} {_f(ly - 4)}h22" stroke="{colour}" stroke-width="2"{dash_attr}/>'
                    + _marker(marker, lx + 11, ly - 4, colour)
                    + f'<text x="{_f(lx + 28)}" y="{_f(ly)}">{escape(s.name)}</text>')
        lx += 40 + _text_width(s.name)
        pts = sorted(s.points)
        if not pts:
            continue
        path = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}>'
                    f'<title>{escape(s.name)}: {len(pts)} points, last {fmt_value(pts[-1][1], 4)} at '
                    f'{escape(x_label)} {fmt_value(pts[-1][0])}</title></polyline>')
        # Markers only when they stay readable.
        if len(pts) <= 40:
            body.extend(_marker(marker, px(x), py(y), colour) for x, y in pts)
    return _svg(chart_id, width, height, title, desc or title, body)


# --------------------------------------------------------------------------------------------
# heat map


def heatmap(chart_id: str, title: str, labels: Sequence[str], matrix: Sequence[Sequence[float]], *,
            desc: str = "", row_title: str = "true label", col_title: str = "predicted label",
            row_totals: Sequence[float] | None = None) -> Markup:
    """Confusion matrix: rows are true labels, columns predictions; shade is the row share.

    ``row_totals``: each row's total over every class; a matrix cut down to some classes must pass
    them, or a share would be of the classes drawn only.

    Zero cells are not drawn (the background is the zero colour), which keeps a 150-class matrix small.
    Counts are written in the cells when they fit.
    """
    n = len(labels)
    short = [_shorten_middle(str(lab), 24) for lab in labels]
    label_w = max([_text_width(s, 11) for s in short] + [30.0]) + 10
    cell = max(8.0, min(34.0, 520.0 / max(n, 1)))
    show_counts = cell >= 22
    left, top = label_w + 20, label_w + 20
    size = cell * n
    width, height = left + size + 10, top + size + 10
    body = [f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(size)}" height="{_f(size)}" fill="#f7fbff" '
            f'stroke="#999"/>',
            f'<text x="{_f(left + size / 2)}" y="12" text-anchor="middle">{escape(col_title)}</text>',
            f'<text transform="translate(12 {_f(top + size / 2)}) rotate(-90)" text-anchor="middle">'
            f'{escape(row_title)}</text>']
    for i, lab in enumerate(short):
        cy = top + i * cell + cell / 2 + 4
        cx = left + i * cell + cell / 2
        body.append(f'<text x="{_f(left - 4)}" y="{_f(cy)}" text-anchor="end" font-size="11">{escape(lab)}</text>')
        body.append(f'<text transform="translate({_f(cx + 4)} {_f(top - 4)}) rotate(-90)" font-size="11">'
                    f'{escape(lab)}</text>')
    if row_totals is not None and len(row_totals) != len(matrix):
        raise ValueError(f"heatmap: {len(row_totals)} row totals for {len(matrix)} rows")
    for i, row in enumerate(matrix):
        total = float(sum(row) if row_totals is None else row_totals[i]) or 1.0
        for j, v in enumerate(row):
            if not v:
                continue
            share = float(v) / total
            fill = _blue(share)
            x, y = left + j * cell, top + i * cell
            tip = f"true {labels[i]}, predicted {labels[j]}: {fmt_value(v)} ({share * 100:.1f}% of row)"
            body.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(cell)}" height="{_f(cell)}" fill="{fill}">'
                        f'<title>{escape(tip)}</title></rect>')
            if show_counts:
                ink = "#fff" if share > 0.55 else "#111"
                body.append(f'<text x="{_f(x + cell / 2)}" y="{_f(y + cell / 2 + 4)}" text-anchor="middle" '
                            f'font-size="10" fill="{ink}">{fmt_value(v)}</text>')
    # The diagonal outlined, so correct predictions are findable without colour.
    for i in range(n):
        body.append(f'<rect x="{_f(left + i * cell)}" y="{_f(top + i * cell)}" width="{_f(cell)}" '
                    f'height="{_f(cell)}" fill="none" stroke="#333" stroke-width="1"/>')
    return _svg(chart_id, width, height, title, desc or title, body)


def _blue(share: float) -> str:
    # From #f7fbff (0) to #08306b (1), linear in RGB.
    a, b = (0xF7, 0xFB, 0xFF), (0x08, 0x30, 0x6B)
    s = max(0.0, min(1.0, share))
    return "#" + "".join(f"{round(x + (y - x) * s):02x}" for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------------
# calibration


def calibration_plot(chart_id: str, title: str, bins: Sequence[tuple[float, float, int]], *,
                     desc: str = "") -> Markup:
    """Reliability diagram: mean confidence (x) against accuracy (y) per bin, point area by count,
    with the diagonal of perfect calibration."""
    size, left, bottom, top, right = 300.0, 52.0, 44.0, 30.0, 16.0
    width, height = left + size + right, top + size + bottom
    counts = [c for _, _, c in bins] or [1]
    biggest = max(counts) or 1

    def px(v: float) -> float:
        return left + v * size

    def py(v: float) -> float:
        return top + size - v * size

    body = []
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        body.append(f'<path d="M{_f(left)} {_f(py(t))}H{_f(left + size)}" stroke="#eee"/>'
                    f'<text x="{_f(left - 6)}" y="{_f(py(t) + 4)}" text-anchor="end" fill="#333">{t:.1f}</text>'
                    f'<text x="{_f(px(t))}" y="{_f(top + size + 16)}" text-anchor="middle" fill="#333">{t:.1f}</text>')
    body.append(f'<path d="M{_f(left)} {_f(top)}V{_f(top + size)}H{_f(left + size)}" stroke="#444" fill="none"/>')
    body.append(f'<path d="M{_f(px(0))} {_f(py(0))}L{_f(px(1))} {_f(py(1))}" stroke="#777" stroke-dasharray="5 4"/>')
    body.append(f'<path d="M{_f(left + 4)} 12h22" stroke="#777" stroke-dasharray="5 4"/>'
                f'<text x="{_f(left + 30)}" y="16">perfect calibration</text>'
                f'<path d="M{_f(left + 170)} 12h22" stroke="{PALETTE[0]}" stroke-width="2"/>'
                + _marker("circle", left + 181, 12, PALETTE[0])
                + f'<text x="{_f(left + 198)}" y="16">model</text>')
    pts = sorted((c, a, n) for c, a, n in bins if n)
    if pts:
        body.append('<polyline points="' + " ".join(f"{_f(px(c))},{_f(py(a))}" for c, a, _ in pts)
                    + f'" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    for c, a, n in pts:
        r = 2.5 + 6.0 * math.sqrt(n / biggest)
        tip = f"mean confidence {c:.3f}, accuracy {a:.3f}, {n:,} predictions"
        body.append(f'<circle cx="{_f(px(c))}" cy="{_f(py(a))}" r="{_f(r)}" fill="{PALETTE[0]}" '
                    f'fill-opacity="0.75"><title>{escape(tip)}</title></circle>')
    body.append(f'<text x="{_f(left + size / 2)}" y="{_f(height - 6)}" text-anchor="middle">mean confidence</text>')
    body.append(f'<text transform="translate(14 {_f(top + size / 2)}) rotate(-90)" text-anchor="middle">'
                f'accuracy</text>')
    return _svg(chart_id, width, height, title, desc or title, body)
