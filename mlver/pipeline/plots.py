"""Plot definitions of ``mlver.yaml`` and the plot files they draw, parsed at the edge.

Definitions follow DVC 3's ``dvc.yaml`` so existing files mean the same here:

- a top-level ``plots:`` entry is a path (a file, or a folder: every plot file below it)
  or ``NAME: {template, x, y, title, x_label, y_label}``; when ``y`` is a mapping
  ``{FILE: FIELD | [FIELDS]}`` the plot overlays those files, otherwise NAME is the file
  (or folder) and ``y`` a field or a list of fields;
- a stage's ``plots:`` output is a file or folder, optionally with the same options;
- ``x`` defaults to the record's index (named ``step``), ``y`` to the last field of the
  records, ``template`` to ``linear``.

Data files: JSON (a list of records, or a mapping whose one list value holds the
records, as dvclive writes ``{"roc": [...]}``), YAML (the same shapes), CSV and TSV (a
header row). Images (``.png .jpg .jpeg .svg .gif``) are shown as they are. Pure code:
bytes in, records out; listing folders and reading files is the caller's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlver.errors import FormatError
from mlver.pipeline.model import PIPELINE_FILE, Pipeline, check_plot_props, resolve_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif")
DATA_SUFFIXES = (".json", ".yaml", ".yml", ".csv", ".tsv")
STEP = "step"  # the x field when a definition names none: the record's index

Record = dict[str, Any]


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def is_plot_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES + DATA_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """One drawn line (or matrix, or bar set): a file and the field for y (None: the
    last field of its records) and for x (None: the definition's ``x``)."""

    file: str
    y: str | None = None
    x: str | None = None


@dataclass(frozen=True)
class PlotDef:
    name: str
    template: str = "linear"
    sources: tuple[Source, ...] = ()
    x: str | None = None  # None: the index of each record, named ``step``
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    image: bool = False

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(s.file for s in self.sources))


def _fields(value: Any, what: str, name: str) -> list[str | None]:
    if value is None:
        return [None]
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                 for v in value):
        return [str(v) for v in value]
    raise FormatError(PIPELINE_FILE, f"plot '{name}': '{what}' must be a field name or a list of field names")


def _props(name: str, props: dict[str, Any] | None) -> dict[str, Any]:
    props = dict(props or {})
    check_plot_props(PIPELINE_FILE, name, props)
    return props


def _file_defs(path: str, props: dict[str, Any], listing: Callable[[str], list[str]], *,
               name: str | None = None) -> list[PlotDef]:
    """The definitions of a plot file, or of every plot file of a folder."""
    files = listing(path)
    if files and files != [path]:
        return [d for f in files if is_plot_file(f) for d in _file_defs(f, props, lambda p: [p])]
    shown = name or path
    x = props.get("x")
    if isinstance(x, dict):
        raise FormatError(PIPELINE_FILE, f"plot '{shown}': 'x' as a mapping needs 'y' as a mapping too")
    title, x_label, y_label = _texts(props)
    if is_image(path):
        return [PlotDef(shown, "image", (Source(path),), title=title, x_label=x_label, y_label=y_label, image=True)]
    ys = _fields(props.get("y"), "y", shown)
    return [PlotDef(shown, props.get("template", "linear"), tuple(Source(path, y) for y in ys),
                    None if x is None else str(x), title, x_label, y_label)]


def _texts(props: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    title, x_label, y_label = (None if props.get(k) is None else str(props[k]) for k in ("title", "x_label", "y_label"))
    return title, x_label, y_label


def _named_def(name: str, props: dict[str, Any], listing: Callable[[str], list[str]]) -> list[PlotDef]:
    y = props.get("y")
    if not isinstance(y, dict):
        rel = resolve_path(".", name)
        if rel is None:
            raise FormatError(PIPELINE_FILE, f"plot '{name}': give 'y' as {{FILE: FIELD}}, or name the plot after "
                                             "its data file")
        return _file_defs(rel, props, listing, name=name)
    x = props.get("x")
    xs: dict[str, str] = {}
    if isinstance(x, dict):
        xs = {str(k): str(v) for k, v in x.items()}
        x = None
    sources = []
    for written, fields in y.items():
        rel = resolve_path(".", str(written))
        if rel is None:
            raise FormatError(PIPELINE_FILE, f"plot '{name}': file '{written}' leaves the repository")
        for f in _fields(fields, "y", name):
            sources.append(Source(rel, f, xs.get(str(written))))
    if not sources:
        raise FormatError(PIPELINE_FILE, f"plot '{name}': 'y' names no file")
    return [PlotDef(name, props.get("template", "linear"), tuple(sources), None if x is None else str(x),
                    *_texts(props))]


def definitions(pipeline: Pipeline, listing: Callable[[str], list[str]]) -> list[PlotDef]:
    """Every plot of ``pipeline``: top-level entries first, then the stages' plots files
    that no top-level definition draws already. ``listing(path)`` gives the files at or
    below ``path`` at the revision being drawn ([path] for a file, [] when absent)."""
    found: list[PlotDef] = []
    for entry in pipeline.plots:
        if isinstance(entry, str):
            found += _file_defs(entry, {}, listing)
            continue
        (name, props), = entry.items()
        found += _named_def(name, _props(name, props), listing)
    drawn = {s.file for d in found for s in d.sources}
    for stage in pipeline.stages:
        for out in stage.plots + stage.inner_plots:
            props = _props(out.path, dict(out.props))
            found += [d for d in _file_defs(out.path, props, listing)
                      if not (d.name in drawn and not props)]
    names: dict[str, int] = {}
    unique: list[PlotDef] = []
    for d in found:  # a name drawn twice (a file listed at the top and by its stage) is kept once
        if d.name in names:
            continue
        names[d.name] = len(unique)
        unique.append(d)
    return unique


def select(defs: list[PlotDef], targets: list[str]) -> list[PlotDef]:
    """The definitions ``targets`` name (a plot name, a file it draws, or a folder holding
    one); all when there are no targets; an unknown target is a usage error."""
    if not targets:
        return defs
    from mlver.errors import UsageError

    chosen: list[PlotDef] = []
    for t in targets:
        t = posixpath.normpath(t.replace("\\", "/")).rstrip("/")
        hits = [d for d in defs if d.name == t or t in d.files or any(f.startswith(t + "/") for f in d.files)]
        if not hits:
            raise UsageError(f"no plot named '{t}'",
                             hint="known plots: " + ", ".join(d.name for d in defs) if defs else None)
        chosen += [d for d in hits if d not in chosen]
    return chosen


# --- data files --------------------------------------------------------------------------

def _value(text: Any) -> Any:
    """A CSV/TSV cell as a number when it reads as one, else the text."""
    if not isinstance(text, str):
        return text
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    if f.is_integer() and text.strip().lstrip("+-").isdigit():
        return int(text)
    return f


def _column(cells: list[str]) -> list[Any]:
    """A CSV column's cells as numbers when every cell reads as one (ints when all are
    integers), else each cell as a number or text."""
    try:
        if all(c.strip().lstrip("+-").isdigit() for c in cells):
            return [int(c) for c in cells]
        values = [float(c) for c in cells]
        if all(math.isfinite(v) for v in values):
            return values
    except ValueError:
        pass
    return [_value(c) for c in cells]


def _table_records(rows: list[list[str]]) -> list[Record]:
    """Records of a CSV/TSV table (a header row; short rows lack the missing fields, as
    with ``csv.DictReader``; blank lines are skipped)."""
    rows = [r for r in rows if r]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    width = len(header)
    if all(len(r) == width for r in body):
        columns = [_column([r[i] for r in body]) for i in range(width)]
        return [dict(zip(header, values)) for values in zip(*columns)] if body else []
    return [{k: _value(v) for k, v in zip(header, r)} for r in body]


def _records_of(doc: Any, shown: str) -> list[Record]:
    if isinstance(doc, list):
        if all(isinstance(r, dict) for r in doc):
            return [{str(k): v for k, v in r.items()} for r in doc]
        raise FormatError(shown, "a plot file's list must hold records (mappings of field to value)")
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list) and all(isinstance(r, dict) for r in v)]
        if len(lists) == 1:
            return _records_of(lists[0], shown)
        raise FormatError(shown, "expected a list of records, or a mapping with one list of records "
                                 f"(found {len(lists)} lists)")
    raise FormatError(shown, "expected a list of records, or a mapping with one list of records")


def parse_records(data: bytes, path: str, shown: str | None = None) -> list[Record]:
    """The records of a plot data file (``shown`` names it in errors, e.g. ``abc1234:f.csv``)."""
    shown = shown or path
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(shown, "not UTF-8 text") from None
    low = path.lower()
    if low.endswith((".csv", ".tsv")):
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter="\t" if low.endswith(".tsv") else ","))
        except csv.Error as e:
            raise FormatError(shown, f"not valid CSV: {e}") from None
        return _table_records(rows)
    if low.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise FormatError(shown, f"not valid JSON: {e}") from None
        return _records_of(doc, shown)
    if low.endswith((".yaml", ".yml")):
        from mlver.pointer import load_yaml

        return _records_of(load_yaml(text, shown, kind="params"), shown)
    raise FormatError(shown, "not a plot data file (.json, .yaml, .csv, .tsv)")


def number(v: Any) -> float | None:
    """A value a chart can place on a numeric axis (not a bool, NaN or infinity)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        v = _value(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def last_field(records: list[Record]) -> str | None:
    fields = list(dict.fromkeys(k for r in records for k in r))
    return fields[-1] if fields else None
