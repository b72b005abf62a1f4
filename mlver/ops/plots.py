"""``mlver plots``: a self-contained HTML report of metrics across commits (a line chart
per metric, the parameters that changed between points) and, when stages write them,
per-step series (loss per epoch...) of several commits overlaid. Values come from
``mlver exp show``'s table; step files are read from Git objects in the same batches.

A per-step file is a stage output that stays in Git (``cache: false``) or a metrics file,
named ``*.csv`` / ``*.tsv`` (a header row, then numbers) or ``*.json`` holding a list of
records (``[{"epoch": 1, "loss": 0.9}, ...]``). Its first column is the x axis.
"""

from __future__ import annotations

import contextlib

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from mlver import report_html
from mlver.errors import UsageError
from mlver.fsutil import atomic_write_text
from mlver.ops.exp import DEFAULT_COUNT, ExpRow, ExpTable, exp_show
from mlver.pipeline.model import Pipeline
from mlver.pipeline.revision import WORKSPACE, History, compare_values
from mlver.repo import Repo

STEP_SUFFIXES = (".csv", ".tsv", ".json")
MAX_STEP_COMMITS = 8  # overlaid lines per step chart; more would be unreadable


@dataclass(frozen=True)
class Point:
    rev: str  # full commit id or "workspace"
    label: str  # short id or "workspace"
    subject: str
    refs: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return report_html.commit_label(self.rev, self.refs, self.subject)


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # one per point


@dataclass(frozen=True)
class StepSeries:
    file: str
    key: str  # the y column
    x: str  # the x column
    lines: tuple[tuple[str, tuple[tuple[float, float], ...]], ...]  # (point label, [(x, y)])
    revs: tuple[str, ...] = ()  # the revision of each line (a commit's full hash or "workspace")


@dataclass
class PlotsReport:
    title: str
    points: list[Point]
    series: list[Series]
    changes: list[tuple[str, dict[str, dict[str, dict[str, Any]]]]] = field(default_factory=list)  # (label, diff)
    steps: list[StepSeries] = field(default_factory=list)


@dataclass(frozen=True)
class PlotsResult:
    out: str | None  # the HTML written (None: none asked for)
    metrics: list[str]
    points: int
    steps: int
    png: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # --png-dir / --svg-dir
    report: PlotsReport | None = None

    def to_json(self) -> dict:
        doc: dict[str, Any] = {"version": 1, "out": self.out, "metrics": self.metrics, "points": self.points,
                               "steps": self.steps, "png": self.png, "images": self.images}
        if self.report is not None:  # the data drawn: each metric's value at each revision, oldest first
            r = self.report
            doc["revisions"] = [{"rev": p.rev, "label": p.label, "subject": p.subject, "refs": list(p.refs),
                                 "metrics": {s.name: s.values[i] for s in r.series}}
                                for i, p in enumerate(r.points)]
            doc["step_series"] = [{"file": st.file, "x": st.x, "y": st.key,
                                   "lines": [{"label": label, "points": [list(xy) for xy in pts]}
                                             for label, pts in st.lines]} for st in r.steps]
            doc["plots"] = _spec_plots(r)
        return doc


def _spec_plots(r: PlotsReport) -> list[dict[str, Any]]:
    """The report in SPEC's plots shape, as ``plots show --json`` gives it: one linear
    chart per metric (one point per revision, the value under the metric's name; a
    revision without the metric has no point) and one per per-step series (the x and y
    columns of each revision's file)."""
    charts = [{"name": s.name, "template": "linear",
               "revisions": [{"rev": p.rev, "points": [] if v is None else [{s.name: v}]}
                             for p, v in zip(r.points, s.values)]} for s in r.series]
    for st in r.steps:
        charts.append({"name": f"{st.file}:{st.key}", "template": "linear",
                       "revisions": [{"rev": rev, "points": [{st.x: x, st.key: y} for x, y in pts]}
                                     for rev, (_, pts) in zip(st.revs, st.lines)]})
    return charts


def _number(v: Any) -> float | None:
    """A metric value a chart can draw: a finite number (not a bool, NaN or infinity)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _points(table: ExpTable) -> list[ExpRow]:
    """Commits oldest first, then the workspace when it differs from HEAD."""
    rows = list(reversed(table.rows[1:]))
    ws = table.rows[0]
    head = table.rows[1] if len(table.rows) > 1 else None
    if head is None or (ws.params, ws.metrics) != (head.params, head.metrics):
        rows.append(ws)
    return rows


PLOTS_COMMANDS = ("show", "diff", "trend")


def _metric_column(table: ExpTable, name: str) -> Any:
    """The column ``name`` names; a name that is not one but looks like a mistyped
    ``plots`` subcommand (`mlver plots shwo`) says so."""
    import difflib

    try:
        return table.find_column(name)
    except UsageError as e:
        close = difflib.get_close_matches(name, PLOTS_COMMANDS, n=1, cutoff=0.6)
        if close:
            raise UsageError(e.message, hint=f"did you mean `mlver plots {close[0]}`? (`mlver plots METRIC...` "
                                             "is `mlver plots trend METRIC...`)") from None
        raise


def build_report(repo: Repo, names: list[str], *, count: int) -> PlotsReport:
    table = exp_show(repo, count=count)
    rows = _points(table)
    ordered = ExpTable(rows)
    metric_cols = [c for c in ordered.columns if c.kind == "metrics"]
    if names:
        chosen = [_metric_column(ordered, n) for n in names]
        bad = [n for n, c in zip(names, chosen) if c.kind != "metrics"]
        if bad:
            raise UsageError(f"'{bad[0]}' is a parameter, not a metric")
    else:
        chosen = [c for c in metric_cols if any(_number(r.get(c)[1]) is not None for r in rows)]
    points = [Point(r.rev, r.rev if r.rev == WORKSPACE else r.rev[:7], r.subject or "", r.refs) for r in rows]
    series = [Series(c.label, tuple(_number(r.get(c)[1]) for r in rows)) for c in chosen]
    changes = []
    for prev, cur, pt in zip(rows, rows[1:], points[1:]):
        diff = compare_values(prev.params, cur.params)
        if diff:
            changes.append((pt.display, diff))
    steps = _step_series(repo, [r for r in rows if r.rev != WORKSPACE][-MAX_STEP_COMMITS:], rows[-1])
    return PlotsReport(f"mlver plots: {os.path.basename(repo.root)}", points, series, changes, steps)


def plots(repo: Repo, names: list[str] | None = None, *, count: int = DEFAULT_COUNT, out: str | None = "plots.html",
          png: bool = False, png_dir: str | None = None, svg_dir: str | None = None) -> PlotsResult:
    """The trend report of ``names`` (every metric) over the last ``count`` commits,
    written as HTML to ``out`` (None: no page, the data only)."""
    report = build_report(repo, names or [], count=count)
    dest = os.path.abspath(out) if out is not None else None
    drawn = report_html.trend_charts(report)
    if dest is not None:
        atomic_write_text(dest, report_html.render(report, drawn))
    images = _write_png(report, dest) if png and dest is not None else []
    written = [path for _, path in report_html.write_images(drawn, png_dir=png_dir, svg_dir=svg_dir)]
    return PlotsResult(dest, [s.name for s in report.series], len(report.points), len(report.steps), images, written,
                       report)


# --- per-step series -------------------------------------------------------------------

def _step_files(pipeline: Pipeline) -> list[str]:
    return [o.path for s in pipeline.stages for o in s.products
            if (o.metric or not o.cache) and o.path.lower().endswith(STEP_SUFFIXES)]


def parse_steps(data: bytes, path: str) -> tuple[str, dict[str, list[tuple[float, float]]]] | None:
    """(x column, {y column: [(x, y)]}) of a per-step file; None when it is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    records: list[dict[str, Any]]
    if path.lower().endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, list) or not doc or not all(isinstance(r, dict) for r in doc):
            return None
        records = doc
        columns = list(dict.fromkeys(k for r in records for k in r))
    else:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.lower().endswith(".tsv") else ",")
        records = list(reader)
        columns = list(reader.fieldnames or [])
    if len(columns) < 2 or not records:
        return None
    x = columns[0]
    out: dict[str, list[tuple[float, float]]] = {}
    for i, r in enumerate(records):
        xv = _float(r.get(x))
        xv = float(i) if xv is None else xv
        for k in columns[1:]:
            yv = _float(r.get(k))
            if yv is not None:
                out.setdefault(k, []).append((xv, yv))
    return (x, out) if out else None


def _float(v: Any) -> float | None:
    """Like ``_number``, also reading numbers written as text (step files)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _step_series(repo: Repo, commits: list[ExpRow], last: ExpRow) -> list[StepSeries]:
    if repo.scm_root is None:
        return []
    files: list[dict[str, bytes]] = []
    if commits:
        with contextlib.closing(History(repo, None)) as history:
            files = history.files_many([r.rev for r in commits], _step_files)
    labelled = [(r.rev, Point(r.rev, r.rev[:7], r.subject or "", r.refs).display, f) for r, f in zip(commits, files)]
    if last.rev == WORKSPACE:
        ws: dict[str, bytes] = {}
        for path in {p for _, _, f in labelled for p in f}:
            try:
                with open(repo.abs(path), "rb") as fh:
                    ws[path] = fh.read()
            except OSError:
                continue
        labelled.append((WORKSPACE, WORKSPACE, ws))
    found: dict[tuple[str, str], tuple[str, list[tuple[str, str, tuple[tuple[float, float], ...]]]]] = {}
    for rev, label, by_path in labelled:
        for path, data in sorted(by_path.items()):
            parsed = parse_steps(data, path)
            if parsed is None:
                continue
            x, cols = parsed
            for key, pts in cols.items():
                found.setdefault((path, key), (x, []))[1].append((rev, label, tuple(pts)))
    return [StepSeries(path, key, x, tuple((label, pts) for _, label, pts in lines), tuple(rev for rev, _, _ in lines))
            for (path, key), (x, lines) in found.items()]


def _write_png(report: PlotsReport, dest: str) -> list[str]:
    """One PNG per metric beside the HTML file, through matplotlib when it is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--png needs matplotlib", hint="pip install matplotlib") from None
    base = os.path.splitext(dest)[0]
    written = []
    labels = [p.label for p in report.points]
    for s in report.series:
        fig, ax = plt.subplots(figsize=(8, 4))
        xs = [i for i, v in enumerate(s.values) if v is not None]
        ax.plot(xs, [s.values[i] for i in xs], marker="o")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_title(s.name)
        fig.tight_layout()
        path = f"{base}-{''.join(c if c.isalnum() or c in '._-' else '_' for c in s.name)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
