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
from dataclasses import dataclass
from typing import Any

from mlver.errors import FormatError
from mlver.pipeline.yamlio import LinedList, LinedMap, load_lined

PIPELINE_FILE = "mlver.yaml"
LOCK_FILE = "mlver.lock"
DEFAULT_PARAMS = "params.yaml"
STAGE_KEYS = ("cmd", "deps", "params", "outs", "metrics", "wdir", "desc")
OUT_KEYS = ("cache", "persist", "desc")
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


@dataclass(frozen=True)
class ParamRef:
    file: str  # repo-relative POSIX path of the params file
    keys: tuple[str, ...] | None  # dotted keys or sections; None: the whole file
    line: int | None = None


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

    @property
    def products(self) -> tuple[Out, ...]:
        """Outputs and metrics: everything the command writes."""
        return self.outs + self.metrics


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    shown: str = PIPELINE_FILE

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def get(self, name: str) -> Stage | None:
        for s in self.stages:
            if s.name == name:
                return s
        return None


def resolve_path(wdir: str, written: str) -> str | None:
    """``written`` (relative to ``wdir``) as a repo-relative POSIX path; None when it is
    absolute or leaves the repository."""
    if not written or written.startswith(("/", "\\")) or (len(written) > 1 and written[1] == ":"):
        return None
    joined = posixpath.normpath(posixpath.join(wdir, written.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def parse_pipeline(text: str, shown: str = PIPELINE_FILE) -> Pipeline:
    """Parse and validate the text of ``mlver.yaml`` (graph checks live in graph.py)."""
    doc = load_lined(text, shown, kind="pipeline")
    if doc is None:
        return Pipeline((), shown)
    if not isinstance(doc, LinedMap):
        raise FormatError(shown, "expected a mapping with a 'stages' key", line=1)
    for key in doc:
        if key != "stages":
            raise FormatError(shown, f"unknown field '{key}' (expected 'stages')", line=doc.line_of(key))
    stages_doc = doc.get("stages")
    if stages_doc is None:
        return Pipeline((), shown)
    if not isinstance(stages_doc, LinedMap):
        raise FormatError(shown, "'stages' must be a mapping of stage names to stages", line=doc.line_of("stages"))
    stages = []
    for name, body in stages_doc.items():
        line = stages_doc.line_of(name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise FormatError(shown, f"invalid stage name {name!r} (letters, digits, '_', '.', '-')", line=line)
        stages.append(_parse_stage(shown, name, body, line))
    return Pipeline(tuple(stages), shown)


class _StageParser:
    def __init__(self, shown: str, name: str, line: int | None) -> None:
        self.shown = shown
        self.name = name
        self.line = line

    def error(self, problem: str, line: int | None = None) -> FormatError:
        return FormatError(self.shown, f"stage '{self.name}': {problem}", line=line or self.line)

    def string(self, value: Any, what: str, line: int | None) -> str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise self.error(f"'{what}' must be a string", line)
        if "\0" in str(value):  # no command or path can hold one
            raise self.error(f"'{what}' must not contain a NUL byte", line)
        return str(value)

    def path(self, wdir: str, value: Any, what: str, line: int | None) -> str:
        written = self.string(value, what, line)
        if not written.strip():
            raise self.error(f"an empty {what} path", line)
        rel = resolve_path(wdir, written)
        if rel is None:
            raise self.error(f"{what} '{written}' leaves the repository (paths must be relative and stay inside it)", line)
        if rel == "." or rel.split("/")[0] in (".git", ".mlver"):
            raise self.error(f"{what} '{written}' is the repository itself or mlver's or Git's own folder", line)
        return rel

    def items(self, body: LinedMap, key: str) -> list[tuple[Any, int | None]]:
        value = body.get(key)
        if value is None:
            return []
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [(value, body.line_of(key))]
        if not isinstance(value, LinedList):
            raise self.error(f"'{key}' must be a list", body.line_of(key))
        return [(v, value.line_at(i)) for i, v in enumerate(value)]

    def outs(self, body: LinedMap, key: str, wdir: str) -> tuple[Out, ...]:
        metric = key == "metrics"
        result = []
        for value, line in self.items(body, key):
            opts: dict[str, Any] = {}
            if isinstance(value, LinedMap):
                if len(value) != 1:
                    raise self.error(f"each '{key}' entry is a path, or one path with options", line)
                (written, options), = value.items()
                if options is not None and not isinstance(options, LinedMap):
                    raise self.error(f"options of '{written}' must be a mapping (cache, persist, desc)", line)
                for opt, v in (options or {}).items():
                    if opt not in OUT_KEYS:
                        raise self.error(f"unknown field '{opt}' for {key[:-1] if not metric else 'metric'} '{written}'"
                                         f" (known: {', '.join(OUT_KEYS)})", options.line_of(opt))
                    if opt in ("cache", "persist") and not isinstance(v, bool):
                        raise self.error(f"'{opt}' of '{written}' must be true or false", options.line_of(opt))
                    opts[opt] = v
                value = written
            rel = self.path(wdir, value, "metrics file" if metric else "output", line)
            if rel in RESERVED_OUTS:
                raise self.error(f"'{rel}' is one of mlver's own files and cannot be an output", line)
            result.append(Out(rel, cache=opts.get("cache", not metric), persist=opts.get("persist", False),
                              metric=metric, line=line))
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
                    if isinstance(keys, str):
                        keys = [keys]
                    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
                        raise self.error(f"keys of params file '{written}' must be a list of names", kline)
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


def _parse_stage(shown: str, name: str, body: Any, line: int | None) -> Stage:
    p = _StageParser(shown, name, line)
    if not isinstance(body, LinedMap):
        raise p.error("must be a mapping with at least 'cmd'")
    for key in body:
        if key not in STAGE_KEYS:
            raise p.error(f"unknown field '{key}' (known: {', '.join(STAGE_KEYS)})", body.line_of(key))
    if "cmd" not in body:
        raise p.error("missing 'cmd'")
    cmd = p.string(body["cmd"], "cmd", body.line_of("cmd"))
    if not cmd.strip():
        raise p.error("'cmd' is empty", body.line_of("cmd"))
    wdir = "."
    if body.get("wdir") is not None:
        written = p.string(body["wdir"], "wdir", body.line_of("wdir"))
        resolved = resolve_path(".", written)
        if resolved is None:
            raise p.error(f"wdir '{written}' leaves the repository", body.line_of("wdir"))
        wdir = resolved
    deps = tuple(Dep(p.path(wdir, v, "dependency", ln), ln) for v, ln in p.items(body, "deps"))
    outs = p.outs(body, "outs", wdir)
    metrics = p.outs(body, "metrics", wdir)
    desc = body.get("desc")
    stage = Stage(name=name, cmd=cmd, wdir=wdir, deps=deps, params=p.params(body, wdir), outs=outs,
                  metrics=metrics, desc=None if desc is None else str(desc), line=line)
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
