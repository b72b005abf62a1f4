"""Templating of ``mlver.yaml`` as DVC 3 does it: ``vars``, ``${...}`` interpolation,
``foreach``/``matrix`` stage generation.

It works on the parsed YAML (LinedMap/LinedList, so errors keep their lines) and returns
the same kind of document with every stage expanded and every string interpolated; the
stage parser in model.py then sees plain stages. Values read from params files through
``${}`` are recorded per stage, so change detection treats them as listed ``params``.
Files are read through a callable given by the caller (workspace or a Git revision), so
this module stays pure.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from mlver.errors import FormatError
from mlver.pipeline.params import lookup
from mlver.pipeline.yamlio import LinedList, LinedMap

LoadDoc = Callable[[str], "dict[str, Any] | None"]  # repo-relative path -> document (None: absent)

DEFAULT_PARAMS = "params.yaml"
MAX_GENERATED = 10_000  # stages one foreach/matrix may generate (a 10-axis matrix is a typo, not a plan)
# ``\${`` is a literal ``${`` (DVC's escape); ``${ name }`` an expression
_TOKEN = re.compile(r"\\\$\{|\$\{([^{}]*)\}")
_PART = re.compile(r"\s*([^.\[\]\s]+)|\[\s*(-?\d+)\s*\]|\.\s*([^.\[\]\s]+)")
# fields whose strings are interpolated (``do:`` bodies are stages, so the same list)
INTERPOLATED = ("cmd", "wdir", "deps", "outs", "params", "metrics", "plots", "vars", "desc")
PATH_FIELDS = ("wdir", "deps", "outs", "params", "metrics", "plots")  # a list or mapping inside a string: refused


def uses_templating(doc: LinedMap) -> bool:
    """Whether the document needs this module at all (a plain file skips it)."""
    if "vars" in doc:
        return True
    stages = doc.get("stages")
    if isinstance(stages, dict):
        for body in stages.values():
            if isinstance(body, dict) and ("foreach" in body or "matrix" in body or "vars" in body):
                return True
    return _has_expr(doc)


def _has_expr(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_expr(k) or _has_expr(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_expr(v) for v in value)
    return False


@dataclass
class Context:
    """Names visible to ``${}``: a nested mapping, and for each top-level name the params
    file it came from (None: an inline ``vars`` mapping or a generated ``item``/``key``)."""

    values: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str | None] = field(default_factory=dict)
    used: set[tuple[str, str]] = field(default_factory=set)  # (params file, dotted key)

    def copy(self) -> "Context":
        return Context(dict(self.values), dict(self.source), set())

    def merge(self, values: dict[str, Any], source: str | None, shown: str, line: int | None,
              *, override: bool = False) -> None:
        for key, value in values.items():
            if key in self.values and not override:
                if isinstance(self.values[key], dict) and isinstance(value, dict):
                    self.values[key] = _merged(self.values[key], value, key, shown, line)
                    continue
                if self.values[key] == value:
                    continue
                raise FormatError(shown, f"vars: cannot redefine '{key}' (already defined"
                                         f"{' in ' + src if (src := self.source.get(key)) else ''})", line=line)
            self.values[key] = value
            self.source[key] = source


def _merged(old: dict[str, Any], new: dict[str, Any], prefix: str, shown: str, line: int | None) -> dict[str, Any]:
    out = dict(old)
    for k, v in new.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merged(out[k], v, f"{prefix}.{k}", shown, line)
        elif k in out and out[k] != v:
            raise FormatError(shown, f"vars: cannot redefine '{prefix}.{k}'", line=line)
        else:
            out[k] = v
    return out


class Templater:
    def __init__(self, shown: str, load: LoadDoc, base: str = "") -> None:
        self.shown = shown
        self.load = load
        self.base = base  # folder of the pipeline file, repo-relative ("" at the root)
        self.generated: set[str] = set()  # names made by foreach/matrix (``NAME@KEY``)

    def error(self, problem: str, line: int | None) -> FormatError:
        return FormatError(self.shown, problem, line=line)

    # --- vars ---------------------------------------------------------------------

    def _file(self, written: str) -> str:
        return f"{self.base}/{written}" if self.base else written

    def load_vars(self, ctx: Context, entries: Any, line: int | None, *, interpolate: bool = False) -> None:
        if entries is None:
            return
        if isinstance(entries, (dict, str)):
            entries = [entries]
        if not isinstance(entries, list):
            raise self.error("'vars' must be a list of mappings and file names", line)
        for i, entry in enumerate(entries):
            eline = entries.line_at(i) if isinstance(entries, LinedList) else line
            if isinstance(entry, dict):
                values = self.interpolate(entry, ctx, eline) if interpolate else entry
                ctx.merge(_plain(values), None, self.shown, eline)
            elif isinstance(entry, str) and entry.strip():
                written = self.interpolate(entry, ctx, eline) if interpolate else entry
                self._load_file(ctx, str(written), eline)
            else:
                raise self.error(f"vars entry must be a mapping or a file name, not {entry!r}", eline)

    def _load_file(self, ctx: Context, written: str, line: int | None) -> None:
        name, _, keys = written.partition(":")
        if name.startswith("/") or ".." in name.split("/"):
            raise self.error(f"vars file '{name}' leaves the repository", line)
        path = self._file(name)
        doc = self.load(path)
        if doc is None:
            raise self.error(f"vars file '{name}' does not exist", line)
        if keys:
            picked = {}
            for key in (k.strip() for k in keys.split(",")):
                found, value = lookup(doc, key)
                if not found:
                    raise self.error(f"vars: '{key}' not found in {name}", line)
                picked[key] = value
            doc = picked
        ctx.merge(doc, path, self.shown, line)

    def context(self, doc: LinedMap) -> Context:
        ctx = Context()
        default = self.load(self._file(DEFAULT_PARAMS))
        if default:
            ctx.merge(default, self._file(DEFAULT_PARAMS), self.shown, None)
        self.load_vars(ctx, doc.get("vars"), doc.line_of("vars"))
        return ctx

    # --- interpolation ----------------------------------------------------------------

    def resolve(self, expr: str, ctx: Context, line: int | None) -> Any:
        parts: list[str | int] = []
        pos = 0
        text = expr.strip()
        while pos < len(text):
            m = _PART.match(text, pos)
            if m is None or (not parts and m.group(1) is None):
                raise self.error(f"invalid expression '${{{expr}}}'", line)
            parts.append(int(m.group(2)) if m.group(2) is not None else (m.group(1) or m.group(3)))
            pos = m.end()
        if not parts:
            raise self.error("empty expression '${}'", line)
        node: Any = ctx.values
        for i, part in enumerate(parts):
            if isinstance(part, int):
                if not isinstance(node, list) or not -len(node) <= part < len(node):
                    raise self.error(f"unknown variable '{_shown(parts[:i + 1])}' in '${{{expr}}}'", line)
                node = node[part]
            else:
                if not isinstance(node, dict) or part not in node:
                    raise self.error(f"unknown variable '{_shown(parts[:i + 1])}' in '${{{expr}}}'", line)
                node = node[part]
        source = ctx.source.get(str(parts[0]))
        if source is not None:
            keys: list[str] = []
            for part in parts:
                if isinstance(part, int):
                    break
                keys.append(part)
            ctx.used.add((source, ".".join(keys)))
        return node

    def interpolate(self, value: Any, ctx: Context, line: int | None, *, in_path: bool = False) -> Any:
        """``value`` with every ``${}`` replaced: a whole-value expression keeps its type,
        one inside a string is formatted (booleans true/false, lists space-separated,
        mappings as ``--key value``). ``in_path`` (paths and names: deps, outs, wdir, ...):
        a list or mapping inside a string is refused, as DVC refuses it (only ``cmd`` takes
        them)."""
        if isinstance(value, str):
            whole = _TOKEN.fullmatch(value)
            if whole is not None and whole.group(1) is not None:
                return self.resolve(whole.group(1), ctx, line)
            if "${" not in value:
                return value
            self._check_nesting(value, line)

            def one(m: re.Match[str]) -> str:
                if m.group(1) is None:
                    return "${"
                got = self.resolve(m.group(1), ctx, line)
                if in_path and isinstance(got, (dict, list, tuple)):
                    kind = "mapping" if isinstance(got, dict) else "list"
                    raise self.error(f"cannot interpolate a {kind} into {value!r}: only a command takes lists and "
                                     "mappings inside a string", line)
                return _format(got, m.group(0), self, line)

            return _TOKEN.sub(one, value)
        if isinstance(value, LinedMap):
            out = LinedMap()
            out.line = value.line
            for k, v in value.items():
                kline = value.line_of(k)
                key = self.interpolate(k, ctx, kline, in_path=in_path) if isinstance(k, str) else k
                if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    raise self.error(f"'{k}' must interpolate to a name, not {type(key).__name__}", kline)
                out[key] = self.interpolate(v, ctx, kline, in_path=in_path)
                out.lines[key] = kline if kline is not None else 0
            return out
        if isinstance(value, LinedList):
            out_list = LinedList()
            out_list.line = value.line
            for i, v in enumerate(value):
                out_list.append(self.interpolate(v, ctx, value.line_at(i), in_path=in_path))
                out_list.lines.append(value.line_at(i) or 0)
            return out_list
        if isinstance(value, dict):
            return {k: self.interpolate(v, ctx, line, in_path=in_path) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v, ctx, line, in_path=in_path) for v in value]
        return value

    def _check_nesting(self, value: str, line: int | None) -> None:
        """Every unescaped ``${`` opens one expression closed before the next ``${`` (DVC
        refuses ``${${x}}`` and an unclosed ``${`` too)."""
        for m in re.finditer(r"\\?\$\{", value):
            if m.group(0).startswith("\\"):
                continue
            if _TOKEN.match(value, m.start()) is None:
                raise self.error(f"invalid expression in {value!r}: '${{' without its closing '}}', or nested", line)

    # --- stages -------------------------------------------------------------------------

    def expand(self, doc: LinedMap) -> tuple[LinedMap, dict[str, set[tuple[str, str]]]]:
        """The document with generated stages and interpolated fields, and for each stage
        the params-file keys its fields used."""
        ctx = self.context(doc)
        used: dict[str, set[tuple[str, str]]] = {}
        out = LinedMap()
        out.line = doc.line
        for key, value in doc.items():
            if key == "stages" and isinstance(value, LinedMap):
                stages = LinedMap()
                stages.line = value.line
                for name, body in value.items():
                    line = value.line_of(name)
                    for gen_name, gen_body, gen_used in self._stage(ctx, name, body, line):
                        if gen_name in stages:
                            raise self.error(f"stage '{gen_name}' is defined twice (generated names collide)", line)
                        stages[gen_name] = gen_body
                        stages.lines[gen_name] = line or 0
                        used[gen_name] = gen_used
                out[key] = stages
            elif key in ("metrics", "plots", "params", "artifacts", "checks"):
                out[key] = self.interpolate(value, ctx.copy(), doc.line_of(key), in_path=key != "checks")
            else:
                out[key] = value
            out.lines[key] = doc.lines.get(key, 0)
        return out, used

    def _stage(self, ctx: Context, name: Any, body: Any, line: int | None
               ) -> list[tuple[str, Any, set[tuple[str, str]]]]:
        if not isinstance(body, LinedMap) or not ({"foreach", "matrix"} & set(body)):
            return [(name, *self._body(ctx.copy(), name, body, line, {}))]
        if "foreach" in body and "matrix" in body:
            raise self.error(f"stage '{name}': 'foreach' and 'matrix' cannot be combined", line)
        extra = set(body) - {"foreach", "do", "matrix"}
        generated = []
        if "foreach" in body:
            if extra:
                key = sorted(extra)[0]
                raise self.error(f"stage '{name}': '{key}' belongs inside 'do:'", body.line_of(key))
            if "do" not in body:
                raise self.error(f"stage '{name}': 'foreach' needs a 'do' stage", line)
            fline = body.line_of("foreach")
            probe = ctx.copy()
            items = self.interpolate(body["foreach"], probe, fline)
            sources = probe.used
            if isinstance(items, (dict, list)) and len(items) > MAX_GENERATED:
                raise self.error(f"stage '{name}': 'foreach' would generate {len(items)} stages (at most "
                                 f"{MAX_GENERATED})", fline)
            if isinstance(items, dict):
                pairs = [(str(k), {"key": k, "item": v}, k) for k, v in items.items()]
            elif isinstance(items, list):
                pairs = []
                for i, v in enumerate(items):
                    label = str(_scalar_name(v)) if _is_scalar(v) else str(i)
                    pairs.append((label, {"key": i, "item": v}, None))
            else:
                raise self.error(f"stage '{name}': 'foreach' must be a list or a mapping, not "
                                 f"{type(items).__name__}", fline)
            for label, names, key in pairs:
                # over a mapping from a params file, a stage depends on its own entry; over a
                # list, on nothing of the list: its item reaches it through what it interpolates
                # (its command, paths), so adding or editing one item runs only that item's
                # stage, as in DVC (depending on the whole list re-ran every stage)
                deps = {(f, f"{k}.{key}" if k else k) for f, k in sources} if key is not None else set()
                generated.append((f"{name}@{label}", names, deps, fline))
            do = body["do"]
        else:
            mline = body.line_of("matrix")
            matrix = body["matrix"]
            if not isinstance(matrix, LinedMap) or not matrix:
                raise self.error(f"stage '{name}': 'matrix' must be a mapping of names to lists", mline)
            axes = []
            probe = ctx.copy()
            for axis, values in matrix.items():
                values = self.interpolate(values, probe, matrix.line_of(axis))
                if not isinstance(values, list) or not values:
                    raise self.error(f"stage '{name}': matrix '{axis}' must be a non-empty list", matrix.line_of(axis))
                axes.append((axis, values))
            total = 1
            for _, values in axes:
                total *= len(values)
            if total > MAX_GENERATED:
                raise self.error(f"stage '{name}': the matrix would generate {total} stages (at most "
                                 f"{MAX_GENERATED})", mline)
            for combo in itertools.product(*[range(len(v)) for _, v in axes]):
                item = {axis: values[i] for (axis, values), i in zip(axes, combo)}
                label = "-".join(str(_scalar_name(values[i])) if _is_scalar(values[i]) else f"{axis}{i}"
                                 for (axis, values), i in zip(axes, combo))
                generated.append((f"{name}@{label}", {"item": item}, set(), mline))  # as a foreach list: see above
            do = LinedMap()
            do.line = body.line
            for k, v in body.items():
                if k != "matrix":
                    do[k] = v
                    do.lines[k] = body.lines.get(k, 0)
        out = []
        for gen_name, names, deps, gline in generated:
            if any(not c.isprintable() for c in gen_name):  # DVC takes '/', ':' and spaces too
                raise self.error(f"stage '{name}': generated name {gen_name!r} holds a control character "
                                 "(use a list of mappings to name items by index)", gline)
            self.generated.add(gen_name)
            local = ctx.copy()
            for k, v in names.items():
                local.values[k] = v
                local.source[k] = None
            gen_body, gen_used = self._body(local, gen_name, do, gline, {})
            out.append((gen_name, gen_body, gen_used | deps))
        return out

    def _body(self, ctx: Context, name: str, body: Any, line: int | None, _: dict[str, Any]
              ) -> tuple[Any, set[tuple[str, str]]]:
        if not isinstance(body, LinedMap):
            return body, set()
        if "vars" in body:
            self.load_vars(ctx, body["vars"], body.line_of("vars"), interpolate=True)
        out = LinedMap()
        out.line = body.line
        for key, value in body.items():
            if key == "vars":  # consumed above
                continue
            kline = body.line_of(key)
            out[key] = self.interpolate(value, ctx, kline, in_path=key in PATH_FIELDS) if key in INTERPOLATED else value
            out.lines[key] = kline or 0
        return out, set(ctx.used)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _scalar_name(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _shown(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _format(value: Any, expr: str, t: Templater, line: int | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return " ".join(_format(v, expr, t, line) for v in value)
    if isinstance(value, dict):
        return " ".join(_flags(value, ""))
    return str(value)


def _flags(mapping: dict[str, Any], prefix: str) -> list[str]:
    """A mapping inside a string, as DVC 3 writes it: ``--key value`` per leaf (nested
    keys dotted, strings shell-quoted, lists as several words), ``--flag`` for true and
    nothing for false."""
    import shlex

    out: list[str] = []
    for k, v in mapping.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flags(v, name + ".")
        elif isinstance(v, bool):
            if v:
                out.append(f"--{name}")
        elif isinstance(v, (list, tuple)):
            out.append(f"--{name} " + " ".join(shlex.quote(str(x)) for x in v))
        elif isinstance(v, str):
            out.append(f"--{name} {shlex.quote(v)}")
        else:
            out.append(f"--{name} {v}")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
