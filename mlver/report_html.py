"""The HTML of ``mlver plots``: one self-contained page (inline CSS and SVG, no script, no
network fetch) — the charts of ``plots show / diff`` and the trend report of metrics
across commits. Pure text building; every value is HTML-escaped.

Charts are SVG with a ``viewBox`` drawn at 100 % of the page's width; axes get "nice"
ticks (1-2-5 steps) and titles; every series has its own colour and marker; marks carry
an SVG ``<title>`` tooltip (value, revision, step). Long series are thinned before they
are drawn: a line keeps the first, last, lowest and highest point of each pixel column
it spans, and at most ``MAX_MARKS`` markers (with tooltips) per chart are drawn, so a
report of tens of thousands of points stays small. Each chart is also available alone
(``chart_svgs``) for ``--svg-dir`` / ``--png-dir``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlver.ops.plots import PlotsReport
    from mlver.ops.plots_diff import PlotsDiff

WIDTH, HEIGHT = 960, 380
PAD_L, PAD_R, PAD_T, PAD_B = 78, 24, 40, 58
LINE_POINTS = 2  # points kept per pixel column of a thinned line (its lowest and highest)
MAX_MARKS = 240  # markers (with tooltips) per chart; the line still goes through every kept point
MAX_SCATTER = 3000  # points of a scatter chart (all its series), after merging points that share a pixel
MAX_X_LABELS = 24  # category labels under an x axis; more are skipped evenly
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "triangle-down")
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;padding:0 24px;color:#222;
max-width:1400px}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}td.absent{color:#999}
figure.chart{margin:12px 0 24px}figure.chart svg{width:100%;height:auto;display:block;background:#fff;
border:1px solid #eee}
svg text{font-size:12px;fill:#555;font-family:system-ui,sans-serif}svg .axis-title{font-size:13px;fill:#222}
svg .chart-title{font-size:15px;font-weight:600;fill:#222}
.axis{stroke:#888}.grid{stroke:#eee}.legend{margin:4px 0;font-size:13px}.legend span.item{margin-right:16px;
white-space:nowrap}
.images{display:flex;flex-wrap:wrap;gap:16px}.images figure{margin:0;max-width:48%}
.images img{max-width:100%;border:1px solid #eee}.images figcaption{font-size:13px;color:#555}
.note{color:#777}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def plain_value(v: Any) -> str:
    """A parameter value as people write it (absent: an empty string, never ``null``)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return fmt(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, (list, dict, set)):
        from mlver.values import jsonable

        return json.dumps(jsonable(v))
    return str(v)


# --- scales ------------------------------------------------------------------------------

def nice_step(span: float, count: int = 5) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``count`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag * 1.0000001:
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, list[float]]:
    """(axis low, axis high, ticks): the range widened to multiples of a 1-2-5 step."""
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, count)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = int(round((end - start) / step))
    ticks = [round(start + i * step, 12) for i in range(n + 1)]
    return start, end, ticks


def tick_label(v: float, step: float) -> str:
    """A tick value with just the decimals its step needs (0.96, not 0.960 or 0.9600001)."""
    if abs(v) < step * 1e-6:
        v = 0.0
    if abs(v) >= 1e6 or (v and abs(v) < 1e-4):
        return f"{v:.3g}"
    decimals = 0
    while decimals < 10 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-6 * 10 ** decimals:
        decimals += 1
    return f"{v:.{decimals}f}"


# --- series and marks --------------------------------------------------------------------

@dataclass
class Line:
    """One series of a line/scatter chart: (x, y, data) points, in x order for lines;
    ``tip(point)`` writes a marker's tooltip (only drawn markers get one), by default the
    third item of the point."""

    name: str
    points: list[tuple[float, float, Any]]
    colour: str = COLOURS[0]
    marker: str = MARKERS[0]
    faint: bool = False  # the raw line under a smoothed one
    tip: Callable[[tuple[float, float, Any]], str] = field(default=lambda p: str(p[2]))


def style(i: int) -> tuple[str, str]:
    """Colour and marker of the i-th series: both change, so series stay apart in grey too."""
    return COLOURS[i % len(COLOURS)], MARKERS[(i // 1) % len(MARKERS)]


def thin_line(points: list[tuple[float, float, Any]], xlo: float, xhi: float, columns: int) -> list[
        tuple[float, float, Any]]:
    """The points a line of ``columns`` pixels can show: per column, its first, lowest,
    highest and last point (in order); shorter lines are kept whole."""
    if len(points) <= columns * LINE_POINTS:
        return points
    scale = (columns - 1) / ((xhi - xlo) or 1.0)
    keep: list[tuple[float, float, Any]] = []
    column = None
    first = lo = hi = last = points[0]
    for p in points:
        c = int((p[0] - xlo) * scale)
        if c != column:
            if column is not None:
                keep.extend(sorted({id(q): q for q in (first, lo, hi, last)}.values(), key=lambda q: q[0]))
            column, first, lo, hi = c, p, p, p
        elif p[1] < lo[1]:
            lo = p
        elif p[1] > hi[1]:
            hi = p
        last = p
    keep.extend(sorted({id(q): q for q in (first, lo, hi, last)}.values(), key=lambda q: q[0]))
    return keep


def _marker(shape: str, x: float, y: float, colour: str, tip: str, r: float = 4.0) -> str:
    t = f"<title>{_e(tip)}</title>"
    if shape == "circle":
        return f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{colour}">{t}</circle>'
    if shape == "square":
        return (f'<rect class="mark" x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:g}" height="{2 * r:g}" '
                f'fill="{colour}">{t}</rect>')
    if shape == "triangle":
        d = f"M{x:.1f} {y - r * 1.2:.1f}L{x + r * 1.1:.1f} {y + r * 0.9:.1f}L{x - r * 1.1:.1f} {y + r * 0.9:.1f}Z"
    elif shape == "triangle-down":
        d = f"M{x:.1f} {y + r * 1.2:.1f}L{x + r * 1.1:.1f} {y - r * 0.9:.1f}L{x - r * 1.1:.1f} {y - r * 0.9:.1f}Z"
    elif shape == "diamond":
        d = f"M{x:.1f} {y - r * 1.3:.1f}L{x + r:.1f} {y:.1f}L{x:.1f} {y + r * 1.3:.1f}L{x - r:.1f} {y:.1f}Z"
    else:  # cross
        d = (f"M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x - r:.1f} {y + r:.1f}L{x + r:.1f} {y - r:.1f}")
        return f'<path class="mark" d="{d}" stroke="{colour}" stroke-width="2.5" fill="none">{t}</path>'
    return f'<path class="mark" d="{d}" fill="{colour}">{t}</path>'


def _legend_svg(lines: Sequence[tuple[str, str, str]], x0: float, y: float) -> str:
    """A one-row legend (name, colour, marker) across the top of a chart."""
    out = []
    x = x0
    for name, colour, shape in lines:
        out.append(_marker(shape, x + 5, y - 4, colour, name, r=4.5).replace(' class="mark"', ""))
        out.append(f'<text x="{x + 14:.1f}" y="{y:.1f}">{_e(name)}</text>')
        x += 28 + 7.2 * len(name)
        if x > WIDTH - 120:
            break
    return "".join(out)


def _svg_open(title: str, height: int = HEIGHT, width: int = WIDTH) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" font-family="system-ui,-apple-system,Segoe UI,sans-serif" '
            f'font-size="12"><title>{_e(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#fff"/>'
            f'<text class="chart-title" x="{PAD_L}" y="22" font-size="15" font-weight="600">{_e(title)}</text>')


def _padded(lo: float, hi: float, pad: bool) -> tuple[float, float]:
    """A scatter's range with room around it, so no point sits on an axis."""
    if not pad or lo == hi:
        return lo, hi
    room = (hi - lo) * 0.04
    return lo - room, hi + room


def line_chart(title: str, lines: list[Line], *, x_title: str, y_title: str,
               x_labels: list[str] | None = None, draw_lines: bool = True, draw_marks: bool = True,
               scatter: bool = False) -> str:
    """An SVG chart of ``lines``; with ``x_labels``, x values are indexes into them."""
    pts = [p for ln in lines for p in ln.points]
    if not pts:
        return _svg_open(title, 120) + '<text x="78" y="70">no numeric values</text></svg>'
    legend_h = 18 if len(lines) > 1 else 0
    rotate = bool(x_labels) and max(len(s) for s in x_labels or [""]) > 8
    pad_b = PAD_B + (70 if rotate else 0)
    top = PAD_T + legend_h
    iw, ih = WIDTH - PAD_L - PAD_R, HEIGHT - top - pad_b
    if x_labels is not None:
        xlo, xhi = -0.5, len(x_labels) - 0.5
        xticks: list[float] = []
    else:
        xlo, xhi, xticks = nice_ticks(*_padded(min(p[0] for p in pts), max(p[0] for p in pts), scatter), 8)
    ylo, yhi, yticks = nice_ticks(*_padded(min(p[1] for p in pts), max(p[1] for p in pts), scatter), 5)

    def sx(x: float) -> float:
        return PAD_L + (x - xlo) / (xhi - xlo) * iw

    def sy(y: float) -> float:
        return top + ih - (y - ylo) / (yhi - ylo) * ih

    out = [_svg_open(title)]
    if legend_h:
        out.append(_legend_svg([(ln.name, ln.colour, ln.marker) for ln in lines if not ln.faint], PAD_L, PAD_T + 6))
    ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    for t in yticks:
        y = sy(t)
        out.append(f'<line class="grid" stroke="#e6e6e6" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{PAD_L - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(tick_label(t, ystep))}</text>')
    base = top + ih
    out.append(f'<line class="axis" stroke="#888" x1="{PAD_L}" x2="{PAD_L}" y1="{top}" y2="{base}"/>'
               f'<line class="axis" stroke="#888" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{base}" y2="{base}"/>')
    if x_labels is not None:
        every = max(1, math.ceil(len(x_labels) / MAX_X_LABELS))
        for i, label in enumerate(x_labels):
            if i % every:
                continue
            x = sx(i)
            shown = label if len(label) <= 22 else label[:21] + "…"
            if rotate:
                out.append(f'<text class="tick" x="{x:.1f}" y="{base + 16}" text-anchor="end" '
                           f'transform="rotate(-30 {x:.1f} {base + 16})">{_e(shown)}<title>{_e(label)}</title></text>')
            else:
                out.append(f'<text class="tick" x="{x:.1f}" y="{base + 18}" text-anchor="middle">{_e(shown)}</text>')
    else:
        xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
        for t in xticks:
            out.append(f'<line class="axis" stroke="#888" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{base}" y2="{base + 4}"/>'
                       f'<text class="tick" x="{sx(t):.1f}" y="{base + 18}" text-anchor="middle">'
                       f'{_e(tick_label(t, xstep))}</text>')
    out.append(f'<text class="axis-title" x="{PAD_L + iw / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
               f'{_e(x_title)}</text>'
               f'<text class="axis-title" x="16" y="{top + ih / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + ih / 2:.1f})">{_e(y_title)}</text>')
    budget = max(MAX_MARKS // max(len(lines), 1), 12)
    for ln in lines:
        out.append(f'<g class="series" data-series="{_e(ln.name)}">' if not ln.faint else '<g class="faint">')
        if scatter:
            cells: dict[tuple[int, int], tuple[float, float, Any]] = {}
            for p in ln.points:  # points that share a 2-pixel cell are drawn once
                cells.setdefault((int(sx(p[0]) / 2), int(sy(p[1]) / 2)), p)
            marks = list(cells.values())
            cap = max(MAX_SCATTER // len(lines), 200)
            if len(marks) > cap:  # still too many: an even sample of them
                marks = [marks[int(i * len(marks) / cap)] for i in range(cap)]
            for p in marks:
                out.append(_marker(ln.marker, sx(p[0]), sy(p[1]), ln.colour, ln.tip(p), r=3.0))
            out.append("</g>")
            continue
        kept = thin_line(ln.points, xlo, xhi, int(iw)) if x_labels is None else ln.points
        if draw_lines and len(kept) > 1:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in kept)
            attrs = 'stroke-width="1.5" stroke-opacity="0.35"' if ln.faint else 'stroke-width="2"'
            out.append(f'<polyline fill="none" stroke="{ln.colour}" {attrs} points="{coords}"/>')
        if draw_marks and not ln.faint:
            step = max(1, math.ceil(len(kept) / budget))
            chosen = kept[::step]
            if kept and chosen[-1] is not kept[-1]:
                chosen.append(kept[-1])
            for p in chosen:
                out.append(_marker(ln.marker, sx(p[0]), sy(p[1]), ln.colour, ln.tip(p)))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def heatmaps(title: str, mats: list[tuple[str, list[str], list[str], dict[tuple[str, str], int]]], *,
             x_title: str, y_title: str, normalized: bool) -> str:
    """Confusion matrices side by side (one per revision): (name, x labels, y labels,
    {(x, y): count}); cells coloured by count (or by the share of their x), count written."""
    n = len(mats)
    cell = max(22.0, min(56.0, 520.0 / max(max(len(m[1]), len(m[2])) for m in mats)))
    widths = [PAD_L + 40 + cell * len(m[1]) for m in mats]
    width = int(max(WIDTH, sum(widths) + 40))
    height = int(PAD_T + 30 + cell * max(len(m[2]) for m in mats) + PAD_B + 30)
    out = [_svg_open(title, height, width)]
    x0 = 0.0
    for i, (name, xs, ys, counts) in enumerate(mats):
        left = x0 + PAD_L + 40
        top = PAD_T + 30
        totals = {x: sum(counts.get((x, y), 0) for y in ys) for x in xs}
        peak = max([counts.get((x, y), 0) / (totals[x] or 1) if normalized else counts.get((x, y), 0)
                    for x in xs for y in ys] or [1]) or 1
        out.append(f'<g class="series" data-series="{_e(name)}">')
        if name:
            out.append(f'<text class="axis-title" x="{left + cell * len(xs) / 2:.1f}" y="{PAD_T + 8}" '
                       f'text-anchor="middle">{_e(name)}</text>')
        for xi, x in enumerate(xs):
            for yi, y in enumerate(ys):
                c = counts.get((x, y), 0)
                v = c / (totals[x] or 1) if normalized else c
                share = v / peak
                fill = f"rgb({int(247 - 200 * share)},{int(251 - 150 * share)},{int(255 - 80 * share)})"
                text = f"{v:.2f}" if normalized else str(c)
                tip = (f"{name}: " if name else "") + f"{x_title} {x}, {y_title} {y}: {c}" + (f" ({v:.1%})" if normalized else "")
                cx, cy = left + xi * cell, top + yi * cell
                out.append(f'<rect class="mark cell" x="{cx:.1f}" y="{cy:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                           f'fill="{fill}" stroke="#fff"><title>{_e(tip)}</title></rect>'
                           f'<text x="{cx + cell / 2:.1f}" y="{cy + cell / 2 + 4:.1f}" text-anchor="middle" '
                           f'style="fill:{"#fff" if share > 0.6 else "#222"}">{_e(text)}</text>')
        for xi, x in enumerate(xs):
            out.append(f'<text class="tick" x="{left + xi * cell + cell / 2:.1f}" y="{top + cell * len(ys) + 16:.1f}" '
                       f'text-anchor="middle">{_e(x)}</text>')
        for yi, y in enumerate(ys):
            out.append(f'<text class="tick" x="{left - 6:.1f}" y="{top + yi * cell + cell / 2 + 4:.1f}" '
                       f'text-anchor="end">{_e(y)}</text>')
        out.append(f'<text class="axis-title" x="{left + cell * len(xs) / 2:.1f}" '
                   f'y="{top + cell * len(ys) + 40:.1f}" text-anchor="middle">{_e(x_title)}</text>')
        mid = top + cell * len(ys) / 2
        out.append(f'<text class="axis-title" x="{left - 56:.1f}" y="{mid:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 {left - 56:.1f} {mid:.1f})">{_e(y_title)}</text>')
        out.append("</g>")
        x0 += widths[i]
    del n
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, categories: list[str], series: list[tuple[str, dict[str, float]]], *,
              x_title: str, y_title: str) -> str:
    """Horizontal bars: a row per category, a bar per series (revision) in it."""
    if not categories:
        return _svg_open(title, 120) + '<text x="78" y="70">no values</text></svg>'
    k = len(series)
    bar = max(4.0, min(18.0, 300.0 / (len(categories) * k)))
    row = bar * k + 6
    pad_l = int(min(260, 30 + 7 * max(len(c) for c in categories)))
    legend_h = 18 if k > 1 else 0
    top = PAD_T + legend_h
    height = int(top + row * len(categories) + PAD_B)
    values = [v for _, vals in series for v in vals.values()] + [0.0]
    lo, hi, ticks = nice_ticks(min(values), max(values), 6)
    iw = WIDTH - pad_l - PAD_R

    def sx(v: float) -> float:
        return pad_l + (v - lo) / (hi - lo) * iw

    out = [_svg_open(title, height)]
    if legend_h:
        out.append(_legend_svg([(n, style(i)[0], "square") for i, (n, _) in enumerate(series)], pad_l, PAD_T + 6))
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    base = top + row * len(categories)
    for t in ticks:
        out.append(f'<line class="grid" stroke="#e6e6e6" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{base}"/>'
                   f'<text class="tick" x="{sx(t):.1f}" y="{base + 16}" text-anchor="middle">'
                   f'{_e(tick_label(t, step))}</text>')
    for ci, c in enumerate(categories):
        out.append(f'<text class="tick" x="{pad_l - 6}" y="{top + ci * row + row / 2 + 4:.1f}" '
                   f'text-anchor="end">{_e(c)}</text>')
    for si, (name, vals) in enumerate(series):
        colour = style(si)[0]
        out.append(f'<g class="series" data-series="{_e(name)}">')
        for ci, c in enumerate(categories):
            if c not in vals:
                continue
            v = vals[c]
            x1, x2 = sorted((sx(0.0 if lo <= 0 <= hi else lo), sx(v)))
            y = top + ci * row + 3 + si * bar
            out.append(f'<rect class="mark" x="{x1:.1f}" y="{y:.1f}" width="{max(x2 - x1, 1):.1f}" height="{bar:.1f}" '
                       f'fill="{colour}"><title>{_e(f"{name}: {c}: {fmt(v)}")}</title></rect>')
        out.append("</g>")
    out.append(f'<line class="axis" stroke="#888" x1="{pad_l}" x2="{pad_l}" y1="{top}" y2="{base}"/>'
               f'<text class="axis-title" x="{pad_l + iw / 2:.1f}" y="{height - 12}" text-anchor="middle">'
               f'{_e(x_title)}</text>'
               f'<text class="axis-title" x="14" y="{top + (base - top) / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + (base - top) / 2:.1f})">{_e(y_title)}</text>')
    out.append("</svg>")
    return "".join(out)


# --- the charts of plot definitions ------------------------------------------------------

@dataclass
class Drawn:
    """One chart, ready for the page and for ``--svg-dir`` / ``--png-dir``."""

    name: str
    template: str
    svg: str | None = None  # None for images
    images: list[tuple[str, str, bytes]] = field(default_factory=list)  # (revision label, mime, bytes)
    notes: list[str] = field(default_factory=list)


def empty(title: str) -> str:
    return _svg_open(title, 120) + '<text x="78" y="70">no data</text></svg>'


def smooth(line: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """A centred moving average over about a twentieth of the points."""
    half = max(1, len(line) // 40)
    ys = [p[1] for p in line]
    out = []
    for i, (x, _, data) in enumerate(line):
        window = ys[max(0, i - half):i + half + 1]
        out.append((x, sum(window) / len(window), data))
    return out


def _figure(d: Drawn) -> str:
    parts = [f'<figure class="chart" data-plot="{_e(d.name)}" data-template="{_e(d.template)}">']
    if d.svg is not None:
        parts.append(d.svg.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1))
    else:
        parts.append(f"<h2>{_e(d.name)}</h2>")
        if not d.images:
            parts.append('<p class="note">no image at these revisions</p>')
        parts.append('<div class="images">' + "".join(
            f'<figure><img alt="{_e(d.name)} at {_e(label)}" src="data:{mime};base64,'
            f'{base64.b64encode(data).decode()}"><figcaption>{_e(label)}</figcaption></figure>'
            for label, mime, data in d.images) + "</div>")
    for n in d.notes:
        parts.append(f'<p class="note">{_e(n)}</p>')
    parts.append("</figure>")
    return "".join(parts)


def page(title: str, body: Iterable[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f"<title>{_e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
                      *body, "</body></html>\n"])


def render_plots(res: PlotsDiff, title: str, drawn: list[Drawn]) -> str:
    body = ['<table class="revisions"><tr><th>series</th><th>revision</th><th>commit</th></tr>' + "".join(
        f"<tr><td>{_e(r.label)}</td><td>{_e(r.rev)}</td><td>{_e(r.sha[:12] if r.sha else '')}</td></tr>"
        for r in res.revisions) + "</table>"]
    body += [f'<p class="note">{_e(e)}</p>' for e in res.errors]
    body += [_figure(d) for d in drawn]
    return page(title, body)


def chart_svgs(drawn: list[Drawn]) -> list[tuple[str, str]]:
    """(plot name, standalone SVG) of every drawn chart (images have none)."""
    return [(d.name, d.svg) for d in drawn if d.svg is not None]


# --- labels and image files ----------------------------------------------------------

LABEL_SUBJECT = 24  # characters of a commit's subject in its label


def commit_label(rev: str, refs: tuple[str, ...] | list[str], subject: str | None) -> str:
    """What a chart calls a commit: its tags or branches, else short id + subject."""
    if refs:
        return ", ".join(refs)
    if rev == "workspace":
        return rev
    subject = subject or ""
    subject = subject if len(subject) <= LABEL_SUBJECT else subject[:LABEL_SUBJECT - 1] + "…"
    return f"{rev[:7]} {subject}".strip()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "plot"


def write_images(drawn: list[Drawn], *, png_dir: str | None = None, svg_dir: str | None = None
                 ) -> list[tuple[str, str]]:
    """One image per chart: ``NAME.svg`` into ``svg_dir``, ``NAME.png`` into ``png_dir``
    (drawn by headless Chromium), images of image plots copied as they are; (plot name,
    path written) in chart order."""
    from mlver.fsutil import atomic_write

    svgs = chart_svgs(drawn)
    names: dict[str, str] = {}
    for name, _ in svgs:  # file names stay apart when two plot names slug alike
        slug = base = _slug(name)
        n = 1
        while slug in names.values():
            n += 1
            slug = f"{base}-{n}"
        names[name] = slug
    written: list[tuple[str, str]] = []
    for folder, ext in ((svg_dir, "svg"), (png_dir, "png")):
        if folder is None:
            continue
        os.makedirs(folder, exist_ok=True)
        if ext == "svg":
            datas = [svg.encode("utf-8") for _, svg in svgs]
        else:
            from mlver import browser

            datas = browser.svg_to_png(svgs) if svgs else []
        for (name, _), data in zip(svgs, datas):
            path = os.path.abspath(os.path.join(folder, f"{names[name]}.{ext}"))
            atomic_write(path, data)
            written.append((name, path))
        for d in drawn:
            for label, mime, data in d.images:
                suffix = {"image/jpeg": "jpg", "image/svg+xml": "svg"}.get(mime, mime.split("/")[-1])
                stem = os.path.splitext(d.name)[0] if d.name.lower().endswith("." + suffix) else d.name
                path = os.path.abspath(os.path.join(folder, f"{_slug(stem)}-{_slug(label)}.{suffix}"))
                atomic_write(path, data)
                written.append((d.name, path))
    return written


# --- the trend report ----------------------------------------------------------------------

def trend_charts(report: PlotsReport) -> list[Drawn]:
    """A chart per metric over the commits that have it (commits without a value take no
    room), and the per-step series of several commits overlaid."""
    out = []
    labels_all = [p.display for p in report.points]
    for s in report.series:
        kept = [(lab, p, v) for lab, p, v in zip(labels_all, report.points, s.values) if v is not None]
        labels = [lab for lab, _, _ in kept]
        line = [(float(i), v, f"{s.name} at {lab}: {fmt(v)}") for i, (lab, _, v) in enumerate(kept)]
        out.append(Drawn(s.name, "trend", line_chart(s.name, [Line(s.name, line)], x_title="commit", y_title=s.name,
                                                     x_labels=labels)))
    for st in report.steps:
        lines = []
        for i, (label, pts) in enumerate(st.lines):
            colour, marker = style(i)

            def tip(p: tuple[float, float, Any], label: str = label, x: str = st.x, key: str = st.key) -> str:
                return f"{label}: {x} {fmt(p[0])}, {key} {fmt(p[1])}"

            lines.append(Line(label, [(x, y, None) for x, y in pts], colour, marker, tip=tip))
        name = f"{st.file}: {st.key}"
        out.append(Drawn(name, "steps", line_chart(name, lines, x_title=st.x, y_title=st.key)))
    return out


def render(report: PlotsReport, drawn: list[Drawn] | None = None) -> str:
    drawn = drawn if drawn is not None else trend_charts(report)
    body = [f"<p>{len(report.points)} point(s), oldest first: "
            + ", ".join(_e(p.label) + (f" ({_e(' '.join(p.refs))})" if p.refs else "") for p in report.points)
            + "</p>"]
    if not report.series:
        body.append("<p>No numeric metrics found in these commits.</p>")
    n = len(report.series)
    for d, s in zip(drawn[:n], report.series):
        body.append(_figure(d))
        body.append("<table><tr><th>commit</th><th>subject</th><th>" + _e(s.name) + "</th></tr>" + "".join(
            f'<tr><td>{_e(p.display)}</td><td>{_e(p.subject)}</td><td class="num">{_e(fmt(v))}</td></tr>'
            for p, v in zip(report.points, s.values) if v is not None) + "</table>")
    body.append("<h2>Parameters that changed</h2>")
    if report.changes:
        body.append("<table><tr><th>at</th><th>file</th><th>parameter</th><th>before</th><th>after</th></tr>")
        for label, diff in report.changes:
            for file, keys in diff.items():
                for key, c in keys.items():
                    cells = []
                    for side in ("old", "new"):
                        absent = c[side] is None
                        cells.append(f'<td class="num absent">(absent)</td>' if absent
                                     else f'<td class="num">{_e(plain_value(c[side]))}</td>')
                    body.append(f"<tr><td>{_e(label)}</td><td>{_e(file)}</td><td>{_e(key)}</td>{''.join(cells)}</tr>")
        body.append("</table>")
    else:
        body.append("<p>None between these commits.</p>")
    if report.steps:
        body.append("<h2>Per-step series</h2>")
    body += [_figure(d) for d in drawn[n:]]
    return page(report.title, body)
