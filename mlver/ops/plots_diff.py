"""``mlver plots show`` and ``mlver plots diff``: the plots that ``mlver.yaml`` defines,
drawn from the workspace's files or overlaid for several revisions.

Each revision's own ``mlver.yaml`` says what it plots (a definition added later is empty
at older revisions); files are read from Git objects, or from the cache (then the
default remote) when they are, or lie inside, a cached output that revision's lock
records. ``show`` is ``diff`` of the workspace alone.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from mlver import git, report_html
from mlver.errors import FormatError, MlverError
from mlver.pipeline.model import Pipeline
from mlver.pipeline.plots import (STEP, PlotDef, Record, definitions, is_image, is_plot_file, last_field, number,
                                  parse_records, select)
from mlver.pipeline.revision import WORKSPACE, History
from mlver.repo import Repo


@dataclass(frozen=True)
class Revision:
    rev: str  # as the user gave it, or "workspace"
    sha: str | None  # the commit, None for the workspace
    label: str  # for people: tag or branch names, else short hash + subject


@dataclass
class RevisionData:
    """What one revision holds for one plot."""

    revision: Revision
    records: dict[str, list[Record]] = field(default_factory=dict)  # file -> its records
    image: bytes | None = None
    missing: list[str] = field(default_factory=list)  # files absent at this revision
    errors: list[str] = field(default_factory=list)

    def points(self, plot: PlotDef) -> list[Record]:
        """The records each mark of the chart stands for (its own fields, plus ``step``
        when x is the index, ``filename`` and ``field`` naming the line it belongs to)."""
        out = []
        for source in plot.sources:
            recs = self.records.get(source.file)
            if not recs:
                continue
            y = source.y or _default_y(plot, recs)
            for i, r in enumerate(recs):
                if y not in r:
                    continue
                point = dict(r)
                if (source.x or plot.x) is None and plot.template not in ("confusion", "confusion_normalized"):
                    point.setdefault(STEP, i)
                point["filename"] = source.file
                point["field"] = y
                out.append(point)
        return out


def _default_y(plot: PlotDef, records: list[Record]) -> str:
    fields = list(dict.fromkeys(k for r in records for k in r))
    if plot.template in ("confusion", "confusion_normalized"):
        return "predicted" if "predicted" in fields else (fields[-1] if fields else "")
    if plot.template in ("bar_horizontal", "bar_horizontal_sorted"):
        text = [f for f in fields if any(number(r.get(f)) is None and r.get(f) is not None for r in records)]
        return text[0] if text else (fields[0] if fields else "")
    return last_field(records) or ""


def x_field(plot: PlotDef, source_x: str | None, records: list[Record]) -> str:
    """The x field of a source: its own, the plot's, or the default of the template."""
    x = source_x or plot.x
    if x:
        return x
    fields = list(dict.fromkeys(k for r in records for k in r))
    if plot.template in ("confusion", "confusion_normalized"):
        return "actual" if "actual" in fields else (fields[0] if fields else "")
    if plot.template in ("bar_horizontal", "bar_horizontal_sorted"):
        nums = [f for f in fields if all(number(r.get(f)) is not None for r in records if f in r)]
        return nums[-1] if nums else STEP
    return STEP


@dataclass
class Chart:
    plot: PlotDef
    revisions: list[RevisionData]

    def to_json(self) -> dict[str, Any]:
        revs = []
        for d in self.revisions:
            entry: dict[str, Any] = {"rev": d.revision.rev, "points": d.points(self.plot)}
            if self.plot.image:
                entry["image"] = ({"path": self.plot.files[0], "size": len(d.image), "type": _mime(self.plot.files[0])}
                                  if d.image is not None else None)
            if d.missing:
                entry["missing"] = d.missing
            if d.errors:
                entry["errors"] = d.errors
            revs.append(entry)
        return {"name": self.plot.name, "template": self.plot.template, "revisions": revs}


@dataclass
class PlotsDiff:
    charts: list[Chart]
    revisions: list[Revision]
    errors: list[str] = field(default_factory=list)  # revisions whose mlver.yaml could not be read

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "plots": [c.to_json() for c in self.charts]}


def _mime(path: str) -> str:
    ext = path.lower().rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}.get(ext, f"image/{ext}")


# --- drawing -----------------------------------------------------------------------------

def _label(v: Any) -> str:
    return v if type(v) is str else report_html.plain_value(v)


def _xy(xf: str, yf: str, recs: list[Record]) -> list[tuple[Any, Any, int]]:
    """(x value, y value, index) of the records that have the y field (x: the step
    when the plot names no x field)."""
    if xf == STEP:
        return [(r.get(STEP, i), r[yf], i) for i, r in enumerate(recs) if yf in r]
    return [(r.get(xf), r[yf], i) for i, r in enumerate(recs) if yf in r]


def _num(v: Any) -> float | None:
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None
    if t is int:
        return float(v)
    return number(v)


def draw_chart(chart: Chart, *, several: bool) -> report_html.Drawn:
    """The chart of one plot definition across its revisions (``several``: more than one
    revision, so series are named after them)."""
    plot = chart.plot
    title = plot.title or plot.name
    drawn = report_html.Drawn(plot.name, plot.template)
    for d in chart.revisions:
        for f in d.missing:
            drawn.notes.append(f"{f} is absent at {d.revision.label}")
        drawn.notes += d.errors
    if plot.image:
        drawn.images = [(d.revision.label, _mime(plot.files[0]), d.image) for d in chart.revisions
                        if d.image is not None]
        return drawn
    multi_source = len(plot.sources) > 1
    groups: list[tuple[str, str, str, list[tuple[Any, Any, int]]]] = []  # (series name, x field, y field, rows)
    for d in chart.revisions:
        for s in plot.sources:
            recs = d.records.get(s.file)
            if not recs:
                continue
            yf = s.y or _default_y(plot, recs)
            xf = x_field(plot, s.x, recs)
            rows = _xy(xf, yf, recs)
            if not rows:
                continue
            parts = [d.revision.label] if several else []
            if multi_source:
                parts.append(f"{s.file}:{yf}" if len(plot.files) > 1 else yf)
            groups.append((" ".join(parts), xf, yf, rows))
    x_title = plot.x_label or " / ".join(dict.fromkeys(g[1] for g in groups)) or STEP
    y_title = plot.y_label or " / ".join(dict.fromkeys(g[2] for g in groups)) or "value"
    if plot.template in ("confusion", "confusion_normalized"):
        mats = []
        for name, _, _, rows in groups:
            counts: dict[tuple[str, str], int] = {}
            for xv, yv, _ in rows:
                key = (_label(xv), _label(yv))
                counts[key] = counts.get(key, 0) + 1
            labels = sorted({k for pair in counts for k in pair}, key=_sort_key)
            mats.append((name, labels, labels, counts))
        drawn.svg = (report_html.heatmaps(title, mats, x_title=x_title, y_title=y_title,
                                          normalized=plot.template == "confusion_normalized")
                     if mats else report_html.empty(title))
        return drawn
    if plot.template in ("bar_horizontal", "bar_horizontal_sorted"):
        series = []
        for name, _, yf, rows in groups:
            vals: dict[str, float] = {}
            for xv, yv, _ in rows:
                v = _num(xv)
                if v is not None:
                    vals[_label(yv)] = v
            series.append((name or yf, vals))
        cats = list(dict.fromkeys(c for _, vals in series for c in vals))
        if plot.template == "bar_horizontal_sorted" and series:
            last = series[-1][1]
            cats.sort(key=lambda c: -last.get(c, -math.inf))
        drawn.svg = report_html.bar_chart(title, cats, series, x_title=x_title, y_title=y_title)
        return drawn
    lines: list[report_html.Line] = []
    categorical: list[str] | None = None
    if any(_num(xv) is None for _, _, _, rows in groups for xv, _, _ in rows):
        categorical = list(dict.fromkeys(_label(xv) for _, _, _, rows in groups for xv, _, _ in rows))
    for i, (name, xf, yf, rows) in enumerate(groups):
        name = name or yf
        colour, marker = report_html.style(i)
        line: list[tuple[float, float, Any]] = []
        index = {c: float(k) for k, c in enumerate(categorical)} if categorical is not None else None
        for xv, yv, step in rows:
            y = _num(yv)
            if y is None:
                continue
            x = index[_label(xv)] if index is not None else _num(xv)
            if x is None:
                continue
            line.append((x, y, (xv, step)))
        if plot.template != "scatter" and categorical is None:
            line.sort(key=lambda t: t[0])

        def tip(p: tuple[float, float, Any], name: str = name, xf: str = xf, yf: str = yf) -> str:
            xv, step = p[2]
            text = f"{name}: {xf} {_label(xv)}, {yf} {report_html.fmt(p[1])}"
            return text + (f" (step {step})" if xf != STEP else "")

        if plot.template == "smooth" and len(line) > 2:
            def smoothed(p: tuple[float, float, Any], tip: Any = tip) -> str:
                return str(tip(p)) + " (smoothed)"

            lines.append(report_html.Line(name, line, colour, marker, faint=True, tip=tip))
            lines.append(report_html.Line(name, report_html.smooth(line), colour, marker, tip=smoothed))
        else:
            lines.append(report_html.Line(name, line, colour, marker, tip=tip))
    drawn.svg = report_html.line_chart(title, lines, x_title=x_title, y_title=y_title, x_labels=categorical,
                                       draw_marks=plot.template in ("linear", "scatter", "smooth"),
                                       scatter=plot.template == "scatter")
    return drawn


def _sort_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def draw_all(res: PlotsDiff) -> list[report_html.Drawn]:
    several = len(res.revisions) > 1
    return [draw_chart(c, several=several) for c in res.charts]



# --- reading a revision --------------------------------------------------------------------

class _Reader:
    """Lists and reads files of one revision (the workspace, or a commit)."""

    def __init__(self, repo: Repo, history: History | None, sha: str | None) -> None:
        self.repo, self.history, self.sha = repo, history, sha

    def pipeline(self) -> Pipeline | None:
        if self.sha is None:
            from mlver.pipeline.plan import load_pipeline

            from mlver.workspace import has_pipeline

            return load_pipeline(self.repo) if has_pipeline(self.repo) else None
        assert self.history is not None
        return self.history.pipeline_at(self.sha)

    def listing(self, path: str) -> list[str]:
        if self.sha is not None:
            assert self.history is not None
            return self.history.list_at(self.sha, path)
        full = self.repo.abs(path)
        if os.path.isfile(full):
            return [path]
        if not os.path.isdir(full):
            return []
        from mlver.fsutil import walk_files

        return sorted(f"{path}/{e.rel}" for e in walk_files(full, ignore=self.repo.ignore, top_rel=path)
                      if is_plot_file(e.rel))

    def read(self, paths: list[str]) -> dict[str, bytes]:
        if self.sha is not None:
            assert self.history is not None
            return self.history.read_many([(self.sha, p) for p in paths]).get(self.sha, {})
        found = {}
        for p in paths:
            try:
                with open(self.repo.abs(p), "rb") as f:
                    found[p] = f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
        return found


def _labels(repo: Repo, revs: list[str]) -> list[Revision]:
    root = repo.scm_root
    named = [r for r in revs if r != WORKSPACE]
    resolved: dict[str, tuple[str, str]] = {}
    refs: dict[str, list[str]] = {}
    if named:
        assert root is not None  # plots_diff required Git for revisions
        resolved = dict(zip(named, git.resolve_commits(root, named)))
        refs = git.refs_by_commit(root)
    out = []
    for rev in revs:
        if rev == WORKSPACE:
            out.append(Revision(WORKSPACE, None, WORKSPACE))
            continue
        sha, subject = resolved[rev]
        out.append(Revision(rev, sha, report_html.commit_label(sha, refs.get(sha, []), subject)))
    seen: dict[str, int] = {}
    unique = []
    for r in out:  # two revisions with one label (HEAD and its branch, say) stay apart
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        unique.append(r if n == 0 else Revision(r.rev, r.sha, f"{r.label} ({r.rev})"))
    return unique


def plots_diff(repo: Repo, revs: list[str] | None = None, targets: list[str] | None = None) -> PlotsDiff:
    """The plots of each revision in ``revs`` (default HEAD and the workspace; the name
    ``workspace`` is the working tree), in that order."""
    revs = list(revs or [])
    if not revs:
        revs = ["HEAD", WORKSPACE] if repo.scm_root is not None and git.has_head(repo.scm_root) else [WORKSPACE]
    need_git = any(r != WORKSPACE for r in revs)
    if need_git:
        repo.require_scm("plots of other revisions")
    with contextlib.closing(History(repo, None)) if need_git else contextlib.nullcontext() as history:
        revisions = _labels(repo, revs)
        if history is not None:
            history.prefetch([r.sha for r in revisions if r.sha])
        return _collect(repo, history, revisions, targets or [])


def plots_show(repo: Repo, targets: list[str] | None = None) -> PlotsDiff:
    return plots_diff(repo, [WORKSPACE], targets)


def _collect(repo: Repo, history: History | None, revisions: list[Revision], targets: list[str]) -> PlotsDiff:
    errors: list[str] = []
    per_rev: list[tuple[Revision, _Reader, list[PlotDef]]] = []
    for r in revisions:
        reader = _Reader(repo, history, r.sha)
        try:
            pipeline = reader.pipeline()
        except FormatError as e:
            if r.sha is None:
                raise
            errors.append(e.message)
            pipeline = None
        defs = definitions(pipeline, reader.listing) if pipeline is not None else []
        per_rev.append((r, reader, defs))
    order: dict[str, PlotDef] = {}
    for _, _, defs in per_rev:  # the newest definition of a name wins; names in order of first sight
        for d in defs:
            order[d.name] = d
    if not order:
        raise MlverError("no plots are defined in mlver.yaml",
                         hint="add a top-level `plots:` list (a file or folder of .json/.yaml/.csv/.tsv records or "
                              "images, or `NAME: {template, x, y}`), or `plots:` outputs to a stage; "
                              "`mlver plots trend` charts metrics across commits")
    chosen = select(list(order.values()), targets)
    charts = [Chart(d, []) for d in chosen]
    wanted = {r.sha: sorted({f for c in charts for d in defs if d.name == c.plot.name for f in d.files})
              for r, _, defs in per_rev if r.sha}
    unreadable: dict[str, list[str]] = {}  # commit -> files whose data is nowhere
    batch = (history.read_many([(c, f) for c, files in wanted.items() for f in files], unreadable)
             if history and wanted else {})
    for r, reader, defs in per_rev:
        here = {d.name: d for d in defs}
        if r.sha is None:
            data = reader.read(sorted({f for c in charts for f in here.get(c.plot.name, c.plot).files}))
        else:
            data = batch.get(r.sha, {})
        for c in charts:
            own = here.get(c.plot.name)
            c.revisions.append(_revision_data(r, own, data))
    errors += [m for msgs in unreadable.values() for m in msgs]
    return PlotsDiff(charts, revisions, errors)


def _revision_data(r: Revision, plot: PlotDef | None, data: dict[str, bytes]) -> RevisionData:
    out = RevisionData(r)
    if plot is None:
        return out
    where = "" if r.sha is None else f"{r.sha[:7]}:"
    for f in plot.files:
        if f not in data:
            out.missing.append(f)
            continue
        if is_image(f):
            out.image = data[f]
            continue
        try:
            out.records[f] = parse_records(data[f], f, where + f)
        except FormatError as e:
            out.errors.append(e.message)
    return out


@dataclass
class PlotsWritten:
    doc: PlotsDiff
    out: str | None  # the HTML file, None when none was asked for
    images: list[tuple[str, str]] = field(default_factory=list)  # (plot name, image file)


def write_plots(repo: Repo, revs: list[str] | None, targets: list[str] | None, *, out: str | None,
                png_dir: str | None = None, svg_dir: str | None = None) -> PlotsWritten:
    """The plots of ``revs`` (see ``plots_diff``) as one HTML file ``out`` (when given)
    and one image per chart into ``png_dir`` / ``svg_dir``."""
    from mlver.fsutil import atomic_write_text

    doc = plots_diff(repo, revs, targets)
    drawn = draw_all(doc)
    dest = None
    if out is not None:
        dest = os.path.abspath(out)
        title = f"mlver plots: {os.path.basename(repo.root)}"
        atomic_write_text(dest, report_html.render_plots(doc, title, drawn))
    return PlotsWritten(doc, dest, report_html.write_images(drawn, png_dir=png_dir, svg_dir=svg_dir))
