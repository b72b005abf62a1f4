"""The pipeline file ``mlver.yaml``, parsed at the edge into frozen dataclasses.

Parsing is pure (text in, ``Pipeline`` out) so a pipeline read from Git history goes
through the same checks. Every path is stored relative to the repository root (the
folder of ``mlver.yaml``): ``deps``/``outs``/``metrics`` and params files are written
relative to the stage's ``wdir`` and resolved here. Errors name the file, the line and
the stage.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from mlver.errors import FormatError, MlverError
from mlver.pipeline.yamlio import LinedList, LinedMap, load_lined, plain

PIPELINE_FILE = "mlver.yaml"
LOCK_FILE = "mlver.lock"
DEFAULT_PARAMS = "params.yaml"
TOP_KEYS = ("vars", "stages", "params", "metrics", "plots", "artifacts", "checks")
STAGE_KEYS = ("cmd", "deps", "params", "outs", "metrics", "plots", "wdir", "desc", "frozen", "always_changed",
              "meta", "vars", "foreach", "matrix", "do")
OUT_KEYS = ("cache", "persist", "desc", "push", "remote")
OUT_ANNOTATIONS = ("type", "labels", "meta")  # DVC 3 accepts them on outputs (for its model registry)
PLOT_KEYS = ("template", "x", "y", "x_label", "y_label", "title", "header")  # a plot's drawing options (DVC's)
PLOT_TEMPLATES = ("linear", "simple", "scatter", "smooth", "confusion", "confusion_normalized", "bar_horizontal",
                  "bar_horizontal_sorted")
ARTIFACT_KEYS = ("path", "type", "desc", "labels", "meta")
RESERVED_OUTS = {PIPELINE_FILE, LOCK_FILE, ".gitignore", ".mlverignore"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Dep:
    path: str  # repo-relative POSIX
    line: int | None = None


@dataclass(frozen=True)
class Out:
    path: str  # repo-relative POSIX
    cache: bool = True  # False: the file stays in Git (metrics default to False)
    persist: bool = False  # True: not removed before the command runs
    metric: bool = False
    line: int | None = None
    desc: str | None = None
    push: bool = True  # False: never pushed or fetched
    remote: str | None = None  # this output's objects go to that remote
    plot: bool = False
    props: tuple[tuple[str, Any], ...] = field(default=(), compare=False)  # a plot's PLOT_KEYS options


@dataclass(frozen=True)
class ParamRef:
    file: str  # repo-relative POSIX path of the params file
    keys: tuple[str, ...] | None  # dotted keys or sections; None: the whole file
    line: int | None = None
    interpolated: bool = False  # not listed: keys that ``${}`` read (dependencies all the same)


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    wdir: str = "."  # repo-relative
    deps: tuple[Dep, ...] = ()
    params: tuple[ParamRef, ...] = ()
    outs: tuple[Out, ...] = ()
    metrics: tuple[Out, ...] = ()
    desc: str | None = None
    line: int | None = None
    commands: tuple[str, ...] = ()  # ``cmd`` given as a list: run in order (``cmd`` joins them with newlines)
    frozen: bool = False  # never run by repro
    always_changed: bool = False  # runs every time
    inner_metrics: tuple[str, ...] = ()  # metrics files inside one of its cached folder outputs (read, not recorded)
    inner_plots: tuple[Out, ...] = ()  # plots files inside one of its cached folder outputs (drawn, not recorded)

    @property
    def products(self) -> tuple[Out, ...]:
        """Outputs and metrics: everything the command writes (plots files are outputs)."""
        return self.outs + self.metrics

    @property
    def plots(self) -> tuple[Out, ...]:
        """The stage's ``plots:`` files (recorded with its outputs; kept in Git by default)."""
        return tuple(o for o in self.outs if o.plot)

    @property
    def file(self) -> str:
        """The pipeline file that defines the stage (repo-relative): ``mlver.yaml`` at the
        top, ``sub/mlver.yaml`` for a stage named ``sub/mlver.yaml:NAME``."""
        return split_stage_name(self.name)[0]

    @property
    def short_name(self) -> str:
        """The name inside its pipeline file (the key of its lock entry)."""
        return split_stage_name(self.name)[1]

    def is_named(self, target: str) -> bool:
        """``target`` names this stage: its name, or the name of the ``foreach``/``matrix``
        definition that generated it (``train`` names ``train@a`` and ``train@b``), with or
        without its pipeline file (``sub/mlver.yaml:train``), or its pipeline file alone
        (every stage of ``sub/mlver.yaml``)."""
        if target == self.name or target == self.file:
            return True
        file, name = split_stage_name(target)
        if (file != PIPELINE_FILE or _names_top_file(target)) and posixpath.normpath(file) != self.file:
            return False
        short = self.short_name
        return name == short or ("@" in short and short.split("@", 1)[0] == name)

    @property
    def argv(self) -> tuple[str, ...]:
        """The shell commands to run, in order."""
        return self.commands or (self.cmd,)


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str  # repo-relative
    type: str | None = None
    desc: str | None = None
    labels: tuple[str, ...] = ()
    meta: Any = None


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    shown: str = PIPELINE_FILE
    params_files: tuple[str, ...] = ()  # top-level ``params``: shown even when no stage lists them
    metrics_files: tuple[str, ...] = ()  # top-level ``metrics``: anywhere in the project
    plots: tuple[Any, ...] = ()  # top-level ``plots`` entries (paths or {name: definition}), plain values
    artifacts: tuple[Artifact, ...] = ()
    checks: tuple["Check", ...] = ()  # top-level ``checks``

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def named(self, target: str) -> list[Stage]:
        """The stages ``target`` names (see ``Stage.is_named``). A bare name that stages of
        several pipeline files carry is ambiguous: an error listing the full names."""
        exact = self.get(target)
        if exact is not None:
            return [exact]
        found = [s for s in self.stages if s.is_named(target)]
        files = sorted({s.file for s in found})
        if (len(files) > 1 and split_stage_name(target)[0] == PIPELINE_FILE and not _names_top_file(target)
                and target not in files):
            raise MlverError(f"stage name '{target}' is ambiguous: it is in {', '.join(files)}",
                             hint="name it with its file: " + ", ".join(f"{f}:{target}" for f in files))
        return found

    def get(self, name: str) -> Stage | None:
        for s in self.stages:
            if s.name == name:
                return s
        return None


def split_stage_name(name: str) -> tuple[str, str]:
    """(pipeline file, name in it) of a full stage name: ``sub/mlver.yaml:train`` ->
    (``sub/mlver.yaml``, ``train``); a name without a file part is the top file's (a
    generated name may hold ':' itself: ``sweep@a:b``)."""
    head, sep, tail = name.partition(":")
    if sep and (head == PIPELINE_FILE or head.endswith("/" + PIPELINE_FILE)):
        return head, tail
    return PIPELINE_FILE, name


def _names_top_file(target: str) -> bool:
    """``mlver.yaml:NAME``: the top pipeline file's stage, named with its file."""
    return target.startswith(PIPELINE_FILE + ":")


def resolve_path(wdir: str, written: str) -> str | None:
    """``written`` (relative to ``wdir``) as a repo-relative POSIX path; None when it is
    absolute or leaves the repository."""
    if not written or written.startswith(("/", "\\")) or (len(written) > 1 and written[1] == ":"):
        return None
    joined = posixpath.normpath(posixpath.join(wdir, written.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def parse_pipeline(text: str, shown: str = PIPELINE_FILE, load: Callable[[str], Any] | None = None,
                   base: str = ".") -> Pipeline:
    """Parse and validate the text of ``mlver.yaml`` (graph checks live in graph.py).
    ``load(path)`` reads a params/vars file (repo-relative) as a document, None when it
    is absent; it is needed only by files that use ``vars``, ``${}``, ``foreach`` or
    ``matrix``. ``base`` is the file's folder (repo-relative): its paths are relative to
    it, and the stages of a file below the top are named ``BASE/mlver.yaml:NAME``."""
    from mlver.pipeline import template

    doc = load_lined(text, shown, kind="pipeline")
    if doc is None:
        return Pipeline((), shown)
    if not isinstance(doc, LinedMap):
        raise FormatError(shown, "expected a mapping with a 'stages' key", line=1)
    for key in doc:
        if key not in TOP_KEYS:
            raise FormatError(shown, f"unknown field '{key}' (known: {', '.join(TOP_KEYS)})", line=doc.line_of(key))
    used: dict[str, set[tuple[str, str]]] = {}
    generated: set[str] = set()
    if template.uses_templating(doc):
        for name in doc.get("stages") or {}:
            if isinstance(name, str) and not _NAME.match(name):
                raise FormatError(shown, f"invalid stage name {name!r} (letters, digits, '_', '.', '-')",
                                  line=doc["stages"].line_of(name))
        templater = template.Templater(shown, load or (lambda path: None), "" if base == "." else base)
        doc, used = templater.expand(doc)
        generated = templater.generated
    stages_doc = doc.get("stages")
    stages = []
    if stages_doc is not None:
        if not isinstance(stages_doc, LinedMap):
            raise FormatError(shown, "'stages' must be a mapping of stage names to stages", line=doc.line_of("stages"))
        for name, body in stages_doc.items():
            line = stages_doc.line_of(name)
            if not isinstance(name, str) or not (_NAME.match(name) or name in generated):
                raise FormatError(shown, f"invalid stage name {name!r} (letters, digits, '_', '.', '-')", line=line)
            stage = _parse_stage(shown, name, body, line, used.get(name, set()), base)
            stages.append(stage if base == "." else replace(stage, name=f"{base}/{PIPELINE_FILE}:{name}"))
    return Pipeline(tuple(stages), shown, params_files=_top_files(shown, doc, "params", base),
                    metrics_files=_top_files(shown, doc, "metrics", base), plots=_top_plots(shown, doc, base),
                    artifacts=_top_artifacts(shown, doc, base), checks=_top_checks(shown, doc, base))


def merge_pipelines(pipelines: list[Pipeline]) -> Pipeline:
    """Several pipeline files (the top one first) as one pipeline: their stages in file
    order, their top-level lists joined."""
    if len(pipelines) == 1:
        return pipelines[0]
    first = pipelines[0]

    def joined(attr: str) -> tuple[Any, ...]:
        out: list[Any] = []
        for p in pipelines:
            out.extend(x for x in getattr(p, attr) if x not in out)
        return tuple(out)

    return Pipeline(joined("stages"), first.shown, params_files=joined("params_files"),
                    metrics_files=joined("metrics_files"), plots=joined("plots"), artifacts=joined("artifacts"),
                    checks=joined("checks"))


def _top_list(shown: str, doc: LinedMap, key: str) -> list[tuple[Any, int | None]]:
    value = doc.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, doc.line_of(key))]
    if not isinstance(value, LinedList):
        raise FormatError(shown, f"'{key}' must be a list", line=doc.line_of(key))
    return [(v, value.line_at(i)) for i, v in enumerate(value)]


def _top_path(shown: str, written: Any, what: str, line: int | None, base: str = ".") -> str:
    if not isinstance(written, (str, int, float)) or isinstance(written, bool) or not str(written).strip():
        raise FormatError(shown, f"each {what} entry must be a path", line=line)
    rel = resolve_path(base, str(written))
    if rel is None or rel == "." or rel.split("/")[0] in (".git", ".mlver"):
        raise FormatError(shown, f"{what} '{written}' leaves the repository (paths must be relative and stay inside it)",
                          line=line)
    return rel


def _top_files(shown: str, doc: LinedMap, key: str, base: str = ".") -> tuple[str, ...]:
    what = "params file" if key == "params" else "metrics file"
    out: list[str] = []
    for value, line in _top_list(shown, doc, key):
        rel = _top_path(shown, value, what, line, base)
        if rel in out:
            raise FormatError(shown, f"{what} '{rel}' is listed twice", line=line)
        out.append(rel)
    return tuple(out)


def _top_plots(shown: str, doc: LinedMap, base: str = ".") -> tuple[Any, ...]:
    out: list[Any] = []
    for value, line in _top_list(shown, doc, "plots"):
        if isinstance(value, LinedMap):
            if len(value) != 1:
                raise FormatError(shown, "each 'plots' entry is a path, or one name with its definition", line=line)
            (name, definition), = value.items()
            if definition is not None and not isinstance(definition, LinedMap):
                raise FormatError(shown, f"plot '{name}': the definition must be a mapping (template, x, y, ...)",
                                  line=line)
            check_plot_props(shown, str(name), definition or {}, line)
            out.append({str(name): plain(definition) if definition is not None else None})
        else:
            out.append(_top_path(shown, value, "plot", line, base))
    return tuple(out)


def check_plot_props(shown: str, name: str, props: Any, line: int | None = None, *, also: tuple[str, ...] = ()) -> None:
    """A plot's drawing options as DVC's schema takes them, else a FormatError naming the
    line: known fields only, a known template, ``x`` a field name (or ``{FILE: FIELD}``),
    ``y`` a field name, a list of them, or ``{FILE: FIELD | [FIELDS]}``, texts as strings."""
    def at(key: str) -> int | None:
        return props.line_of(key) if isinstance(props, LinedMap) else line

    def bad(key: str, problem: str) -> FormatError:
        return FormatError(shown, f"plot '{name}': {problem}", line=at(key) or line)

    def fields(v: Any) -> bool:
        return isinstance(v, str) and bool(v) or isinstance(v, list) and bool(v) and all(
            isinstance(f, str) and f for f in v)

    for key, value in props.items():
        if key in also:  # an output's own options, checked by the caller
            continue
        if key not in PLOT_KEYS:
            raise bad(key, f"unknown field '{key}' (known: {', '.join(also + PLOT_KEYS)})")
        if key == "header" and value is not True:
            raise bad(key, "'header: false' is not supported: mlver reads a CSV or TSV file's first row as "
                           "its header (write one, or remove the field)")
        if key == "template" and value not in PLOT_TEMPLATES:
            raise bad(key, f"unknown template {value!r} (known: {', '.join(PLOT_TEMPLATES)})")
        if key in ("title", "x_label", "y_label") and value is not None and not isinstance(value, str):
            raise bad(key, f"'{key}' must be a string")
        if key == "x" and not (isinstance(value, str) and value or isinstance(value, dict) and all(
                isinstance(f, str) and f for f in value.values())):
            raise bad(key, "'x' must be a field name, or a mapping of files to field names")
        if key == "y" and not (fields(value) or isinstance(value, dict) and value and all(
                fields(f) for f in value.values())):
            raise bad(key, "'y' must be a field name, a list of them, or a mapping of files to them")


def _top_artifacts(shown: str, doc: LinedMap, base: str = ".") -> tuple[Artifact, ...]:
    value = doc.get("artifacts")
    if value is None:
        return ()
    if not isinstance(value, LinedMap):
        raise FormatError(shown, "'artifacts' must be a mapping of names to {path, type, desc, labels, meta}",
                          line=doc.line_of("artifacts"))
    out = []
    for name, body in value.items():
        line = value.line_of(name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise FormatError(shown, f"invalid artifact name {name!r} (letters, digits, '_', '.', '-')", line=line)
        if not isinstance(body, LinedMap) or "path" not in body:
            raise FormatError(shown, f"artifact '{name}' needs a 'path'", line=line)
        for key in body:
            if key not in ARTIFACT_KEYS:
                raise FormatError(shown, f"artifact '{name}': unknown field '{key}' (known: {', '.join(ARTIFACT_KEYS)})",
                                  line=body.line_of(key))
        labels = body.get("labels") or []
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise FormatError(shown, f"artifact '{name}': 'labels' must be a list of strings", line=body.line_of("labels"))
        out.append(Artifact(name, _top_path(shown, body["path"], f"artifact '{name}' path", body.line_of("path"), base),
                            type=None if body.get("type") is None else str(body["type"]),
                            desc=None if body.get("desc") is None else str(body["desc"]),
                            labels=tuple(labels), meta=plain(body.get("meta"))))
    return tuple(out)


@dataclass(frozen=True)
class Limit:
    """A drop/rise limit: an amount, or a percentage of the base value."""

    amount: float
    percent: bool = False

    def of(self, base: float) -> float:
        return abs(base) * self.amount / 100 if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{self.amount:g}"


@dataclass(frozen=True)
class Check:
    """One ``checks:`` entry: a metric (``FILE:KEY``) and its limits."""

    metric: str
    file: str
    key: str
    min: float | None = None
    max: float | None = None
    max_drop: Limit | None = None
    max_rise: Limit | None = None
    desc: str | None = None
    line: int | None = None

    @property
    def limits(self) -> dict[str, Any]:
        def shown(v: Any) -> Any:
            if isinstance(v, Limit):
                return str(v) if v.percent else (int(v.amount) if v.amount.is_integer() else v.amount)
            return v

        return {k: shown(v) for k, v in
                (("min", self.min), ("max", self.max), ("max_drop", self.max_drop), ("max_rise", self.max_rise))
                if v is not None}


CHECK_KEYS = ("metric", "min", "max", "max_drop", "max_rise", "desc")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _top_checks(shown: str, doc: LinedMap, base: str = ".") -> tuple[Check, ...]:
    out = []
    for value, line in _top_list(shown, doc, "checks"):
        if not isinstance(value, LinedMap) or "metric" not in value:
            raise FormatError(shown, "each 'checks' entry is a mapping with 'metric: FILE:KEY' and limits", line=line)
        for key in value:
            if key not in CHECK_KEYS:
                raise FormatError(shown, f"check: unknown field '{key}' (known: {', '.join(CHECK_KEYS)})",
                                  line=value.line_of(key))
        metric = value["metric"]
        if not isinstance(metric, str) or ":" not in metric or not metric.rsplit(":", 1)[1]:
            raise FormatError(shown, f"check: 'metric' must be FILE:KEY (e.g. eval/metrics.json:acc), not {metric!r}",
                              line=value.line_of("metric"))
        written, key = metric.rsplit(":", 1)
        file = _top_path(shown, written, "check metrics file", value.line_of("metric"), base)
        if base != ".":
            metric = f"{file}:{key}"  # named from the top, as every other command names files
        limits: dict[str, Any] = {}
        for name in ("min", "max"):
            if name in value:
                if not _number(value[name]):
                    raise FormatError(shown, f"check '{metric}': '{name}' must be a number", line=value.line_of(name))
                limits[name] = value[name]
        for name in ("max_drop", "max_rise"):
            if name in value:
                v = value[name]
                if isinstance(v, str) and v.strip().endswith("%"):
                    try:
                        limits[name] = Limit(float(v.strip()[:-1]), percent=True)
                    except ValueError:
                        limits[name] = None
                elif _number(v):
                    limits[name] = Limit(float(v))
                if limits.get(name) is None or limits[name].amount < 0:
                    raise FormatError(shown, f"check '{metric}': '{name}' must be a number or a percentage like '5%',"
                                             " not negative", line=value.line_of(name))
        if not limits:
            raise FormatError(shown, f"check '{metric}': give at least one of min, max, max_drop, max_rise", line=line)
        desc = value.get("desc")
        out.append(Check(metric, file, key, desc=None if desc is None else str(desc), line=line, **limits))
    return tuple(out)


class _StageParser:
    def __init__(self, shown: str, name: str, line: int | None) -> None:
        self.shown = shown
        self.name = name
        self.line = line

    def error(self, problem: str, line: int | None = None, *, hint: str | None = None) -> FormatError:
        return FormatError(self.shown, f"stage '{self.name}': {problem}", line=line or self.line, hint=hint)

    def string(self, value: Any, what: str, line: int | None) -> str:
        if not isinstance(value, str):  # as DVC's schema: `cmd: 5`, `deps: [5]` are refused
            raise self.error(f"'{what}' must be a string", line)
        if "\0" in str(value):  # no command or path can hold one
            raise self.error(f"'{what}' must not contain a NUL byte", line)
        return str(value)

    def path(self, wdir: str, value: Any, what: str, line: int | None) -> str:
        if not isinstance(value, str):
            kind = ("empty" if value is None else "true or false" if isinstance(value, bool) else
                    "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else f"{value}")
            raise self.error(f"each {what} must be a path (a string), not {kind}", line)
        written = self.string(value, what, line)
        if not written.strip():
            raise self.error(f"an empty {what} path", line)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", written):  # DVC's external dependencies and outputs
            raise self.error(f"{what} '{written}' is a URL: mlver reads and writes data inside the repository only "
                             "(DVC's external dependencies are not carried)", line,
                             hint="fetch it in a stage of its own (its command downloads it into the repository) "
                                  "and depend on that stage's output, or `mlver add` a copy")
        rel = resolve_path(wdir, written)
        if rel is None:
            raise self.error(f"{what} '{written}' leaves the repository (paths must be relative and stay inside it)",
                             line, hint="DVC's external dependencies are not carried: copy the data into the "
                                        "repository and `mlver add` it, or fetch it in a stage of its own")
        if rel == "." or rel.split("/")[0] in (".git", ".mlver"):
            raise self.error(f"{what} '{written}' is the repository itself or mlver's or Git's own folder", line)
        return rel

    def items(self, body: LinedMap, key: str) -> list[tuple[Any, int | None]]:
        if key not in body:
            return []
        value = body[key]
        if value is None:  # `deps:` with nothing after it: DVC refuses it too
            raise self.error(f"'{key}' is empty: give a list, or remove the field", body.line_of(key))
        if isinstance(value, str):
            return [(value, body.line_of(key))]
        if not isinstance(value, LinedList):
            raise self.error(f"'{key}' must be a list", body.line_of(key))
        return [(v, value.line_at(i)) for i, v in enumerate(value)]

    def outs(self, body: LinedMap, key: str, wdir: str) -> tuple[Out, ...]:
        metric = key == "metrics"
        plot = key == "plots"
        result = []
        pairs: list[tuple[Any, Any, int | None]] = []  # (path, options or None, line)
        for value, line in self.items(body, key):
            if isinstance(value, LinedMap):  # `- path: {options}`; DVC takes several paths in one entry
                pairs += [(written, options, line) for written, options in value.items()]
            else:
                pairs.append((value, None, line))
        for written, options, line in pairs:
            opts: dict[str, Any] = {}
            props: dict[str, Any] = {}
            if options is not None and not isinstance(options, LinedMap):
                raise self.error(f"options of '{written}' must be a mapping (cache, persist, desc)", line)
            if plot and options:
                check_plot_props(self.shown, str(written), options, line, also=OUT_KEYS + OUT_ANNOTATIONS)
            for opt, v in (options or {}).items():
                assert options is not None  # only a mapping has items
                if plot and opt in PLOT_KEYS:
                    props[opt] = plain(v)
                    continue
                if opt in OUT_ANNOTATIONS:  # DVC's model-registry annotations: kept in the file, not used
                    continue
                if opt not in OUT_KEYS:
                    raise self.error(f"unknown field '{opt}' for {key[:-1] if not metric else 'metric'} '{written}'"
                                     f" (known: {', '.join(OUT_KEYS + OUT_ANNOTATIONS + (PLOT_KEYS if plot else ()))})",
                                     options.line_of(opt))
                if opt in ("cache", "persist", "push") and not isinstance(v, bool):
                    raise self.error(f"'{opt}' of '{written}' must be true or false", options.line_of(opt))
                if opt in ("remote", "desc") and (not isinstance(v, str) or not v):
                    raise self.error(f"'{opt}' of '{written}' must be a non-empty string", options.line_of(opt))
                opts[opt] = v
            value = written
            rel = self.path(wdir, value, "metrics file" if metric else "plot" if plot else "output", line)
            if rel in RESERVED_OUTS:
                raise self.error(f"'{rel}' is one of mlver's own files and cannot be an output", line)
            result.append(Out(rel, cache=opts.get("cache", not (metric or plot)), persist=opts.get("persist", False),
                              metric=metric, line=line, desc=opts.get("desc"), push=opts.get("push", True),
                              remote=opts.get("remote"), plot=plot, props=tuple(props.items())))
        return tuple(result)

    def params(self, body: LinedMap, wdir: str) -> tuple[ParamRef, ...]:
        default_keys: list[str] = []
        default_line = None
        named: list[ParamRef] = []
        for value, line in self.items(body, "params"):
            if isinstance(value, LinedMap):
                for written, keys in value.items():
                    kline = value.line_of(written)
                    file = self.path(wdir, written, "params file", kline)
                    if keys is None or keys == []:
                        named.append(ParamRef(file, None, kline))
                        continue
                    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
                        raise self.error(f"keys of params file '{written}' must be a list of names "
                                         f"(`- {written}: [KEY, ...]`)", kline)
                    named.append(ParamRef(file, tuple(keys), kline))
                continue
            key = self.string(value, "params", line)
            if not key:
                raise self.error("empty params key", line)
            default_keys.append(key)
            default_line = default_line or line
        if default_keys:
            named.insert(0, ParamRef(self.path(wdir, "params.yaml", "params file", default_line),
                                     tuple(default_keys), default_line))
        return tuple(named)


def _parse_stage(shown: str, name: str, body: Any, line: int | None,
                 used: set[tuple[str, str]] = frozenset(), base: str = ".") -> Stage:  # type: ignore[assignment]
    p = _StageParser(shown, name, line)
    if not isinstance(body, LinedMap):
        raise p.error("must be a mapping with at least 'cmd'")
    for key in body:
        if key not in STAGE_KEYS:
            raise p.error(f"unknown field '{key}' (known: {', '.join(STAGE_KEYS[:12])})", body.line_of(key))
        if key in ("do", "foreach", "matrix"):
            raise p.error(f"'{key}' needs {'foreach' if key == 'do' else 'do'}", body.line_of(key))
    if "cmd" not in body:
        raise p.error("missing 'cmd'")
    cmd_line = body.line_of("cmd")
    commands: tuple[str, ...] = ()
    if isinstance(body["cmd"], list):
        if not all(isinstance(c, str) for c in body["cmd"]):
            raise p.error("each command of a 'cmd' list must be a string", cmd_line)
        commands = tuple(body["cmd"])
        if not commands or not all(c.strip() for c in commands):
            raise p.error("'cmd' is an empty list or holds an empty command", cmd_line)
        cmd = "\n".join(commands) if len(commands) > 1 else commands[0]
        if len(commands) == 1:
            commands = ()
    else:
        cmd = p.string(body["cmd"], "cmd", cmd_line)
    if not cmd.strip():
        raise p.error("'cmd' is empty", cmd_line)
    flags = {}
    for flag in ("frozen", "always_changed"):
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise p.error(f"'{flag}' must be true or false", body.line_of(flag))
        flags[flag] = value
    wdir = base
    if "wdir" in body:
        written = p.string(body["wdir"], "wdir", body.line_of("wdir"))
        resolved = resolve_path(base, written)
        if resolved is None:
            raise p.error(f"wdir '{written}' leaves the repository", body.line_of("wdir"))
        wdir = resolved
    deps = tuple(Dep(p.path(wdir, v, "dependency", ln), ln) for v, ln in p.items(body, "deps"))
    outs = p.outs(body, "outs", wdir) + p.outs(body, "plots", wdir)
    metrics = p.outs(body, "metrics", wdir)
    folders = [o.path for o in outs if o.cache]
    inner = tuple(m.path for m in metrics if any(m.path.startswith(f + "/") for f in folders))
    metrics = tuple(m for m in metrics if m.path not in inner)  # part of the folder's data already
    inner_plots = tuple(o for o in outs if o.plot and any(o.path.startswith(f + "/") for f in folders))
    outs = tuple(o for o in outs if o not in inner_plots)
    desc = p.string(body["desc"], "desc", body.line_of("desc")) if "desc" in body else None
    params = _with_used_params(p.params(body, wdir), used, line)
    stage = Stage(name=name, cmd=cmd, wdir=wdir, deps=deps, params=params, outs=outs,
                  metrics=metrics, desc=desc, line=line, commands=commands,
                  frozen=flags["frozen"], always_changed=flags["always_changed"], inner_metrics=inner,
                  inner_plots=inner_plots)
    deps_seen: set[str] = set()
    for d in stage.deps:
        if d.path in deps_seen:
            raise p.error(f"'{d.path}' is listed twice as a dependency", d.line)
        deps_seen.add(d.path)
    seen: dict[str, int | None] = {}
    for o in stage.products:
        if o.path in seen:
            raise p.error(f"'{o.path}' is listed twice as an output", o.line)
        seen[o.path] = o.line
    return stage


def _with_used_params(refs: tuple[ParamRef, ...], used: set[tuple[str, str]], line: int | None
                      ) -> tuple[ParamRef, ...]:
    """``refs`` plus a reference for every params-file key that ``${}`` read, unless a
    listed key or section already covers it: interpolated values are dependencies."""
    extra: dict[str, list[str]] = {}
    for file, key in sorted(used):
        covered = False
        for ref in refs:
            if ref.file == file and (ref.keys is None or not key
                                     or any(key == k or key.startswith(k + ".") for k in ref.keys)):
                covered = True
                break
        if not covered and key:
            extra.setdefault(file, []).append(key)
    if not extra:
        return refs
    return refs + tuple(ParamRef(file, tuple(keys), line, interpolated=True) for file, keys in extra.items())
