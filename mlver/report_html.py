"""The HTML of ``mlver plots``: one self-contained page (inline CSS and SVG, no script,
no network fetch) with a line chart per metric, a table of parameter changes and the
per-step charts. Pure text building; every value is HTML-escaped."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlver.ops.plots import PlotsReport

WIDTH, HEIGHT = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 56
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg{background:#fff;border:1px solid #eee}.axis{stroke:#999}.grid{stroke:#eee}
svg text{font-size:11px;fill:#555}.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.6g}"


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _chart(lines: list[tuple[str, list[tuple[float, float]]]], *, x_labels: list[str] | None = None,
           title: str = "") -> str:
    """An SVG line chart; with ``x_labels`` the x values are their indexes."""
    pts = [p for _, line in lines for p in line]
    if not pts:
        return "<p>No numeric values.</p>"
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    if x_labels is not None:
        xlo, xhi = 0.0, float(max(len(x_labels) - 1, 1))
    elif xlo == xhi:
        xlo, xhi = xlo - 1, xhi + 1
    ylo, yhi = _scale(min(p[1] for p in pts), max(p[1] for p in pts))
    iw, ih = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (x - xlo) / (xhi - xlo) * iw

    def sy(y: float) -> float:
        return PAD_T + ih - (y - ylo) / (yhi - ylo) * ih

    out = [(f'<svg role="img" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{_e(title)}</title>')]
    for i in range(5):
        y = ylo + (yhi - ylo) * i / 4
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                   f'<text x="{PAD_L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_e(_fmt(y))}</text>')
    out.append(f'<line class="axis" x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{PAD_T + ih}"/>'
               f'<line class="axis" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{PAD_T + ih}" y2="{PAD_T + ih}"/>')
    if x_labels is not None:
        for i, label in enumerate(x_labels):
            x = sx(i)
            out.append(f'<text x="{x:.1f}" y="{PAD_T + ih + 14}" text-anchor="end" '
                       f'transform="rotate(-35 {x:.1f} {PAD_T + ih + 14})">{_e(label)}</text>')
    else:
        for i in range(5):
            x = xlo + (xhi - xlo) * i / 4
            out.append(f'<text x="{sx(x):.1f}" y="{PAD_T + ih + 16}" text-anchor="middle">{_e(_fmt(x))}</text>')
    for n, (name, line) in enumerate(lines):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        if len(line) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        for x, y in line:
            label = x_labels[int(x)] if x_labels is not None else _fmt(x)
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}">'
                       f'<title>{_e(name)} {_e(label)}: {_e(_fmt(y))}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _legend(names: list[str]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="sw" style="background:{COLOURS[i % len(COLOURS)]}"></span>{_e(n)}</span>'
        for i, n in enumerate(names)) + "</div>"


def render(report: PlotsReport) -> str:
    labels = [p.label for p in report.points]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(report.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{_e(report.title)}</h1>",
             f"<p>{len(report.points)} point(s), oldest first: "
             + ", ".join(_e(p.label) + (f" ({_e(' '.join(p.refs))})" if p.refs else "") for p in report.points)
             + "</p>"]
    if not report.series:
        parts.append("<p>No numeric metrics found in these commits.</p>")
    for s in report.series:
        line = [(float(i), v) for i, v in enumerate(s.values) if v is not None]
        parts.append(f"<h2>{_e(s.name)}</h2>")
        parts.append(_chart([(s.name, line)], x_labels=labels, title=s.name))
        parts.append("<table><tr><th>rev</th><th>subject</th><th>" + _e(s.name) + "</th></tr>" + "".join(
            f'<tr><td>{_e(p.label)}</td><td>{_e(p.subject)}</td><td class="num">{_e(_fmt(v))}</td></tr>'
            for p, v in zip(report.points, s.values)) + "</table>")
    parts.append("<h2>Parameters that changed</h2>")
    if report.changes:
        parts.append("<table><tr><th>at</th><th>file</th><th>parameter</th><th>before</th><th>after</th></tr>")
        for label, diff in report.changes:
            for file, keys in diff.items():
                for key, c in keys.items():
                    parts.append(f"<tr><td>{_e(label)}</td><td>{_e(file)}</td><td>{_e(key)}</td>"
                                 f'<td class="num">{_e(json.dumps(c["old"]))}</td>'
                                 f'<td class="num">{_e(json.dumps(c["new"]))}</td></tr>')
        parts.append("</table>")
    else:
        parts.append("<p>None between these points.</p>")
    if report.steps:
        parts.append("<h2>Per-step series</h2>")
    for st in report.steps:
        parts.append(f"<h2>{_e(st.file)}: {_e(st.key)} by {_e(st.x)}</h2>")
        parts.append(_legend([name for name, _ in st.lines]))
        parts.append(_chart([(name, list(pts)) for name, pts in st.lines], title=f"{st.file}: {st.key}"))
    parts.append("</body></html>\n")
    return "\n".join(parts)
