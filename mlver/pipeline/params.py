"""Params and metrics files: YAML, JSON or TOML, read into flat ``{dotted.key: value}``
maps. Shared by change detection, ``params diff``, ``metrics show/diff`` and anything
else that compares values across revisions.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Callable, Iterable

from mlver.errors import FormatError, check_merge_conflict
from mlver.pipeline.model import ParamRef, Stage
from mlver.pointer import MAX_DEPTH, check_size, load_yaml

def _tomllib() -> Any:
    """The TOML parser, imported only when a TOML params file is read."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


Flat = dict[str, Any]  # dotted key -> leaf value (scalars and lists)


def file_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".toml"):
        return "toml"
    return "yaml"


def _check_depth(doc: Any, shown: str) -> None:
    """JSON and TOML documents nest no deeper than YAML ones may (iteratively: a deep
    document must not exhaust the stack of whatever walks it next)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise FormatError(shown, f"nested deeper than the limit of {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def parse_values(data: bytes, shown: str) -> dict[str, Any]:
    """The document in a params or metrics file (a mapping; an empty file is empty),
    within the limits of a params file (size, depth, aliases: mlver.pointer.LIMITS)."""
    check_size(len(data), shown, "params")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(shown, "not UTF-8 text", line=data.count(b"\n", 0, e.start) + 1) from None
    fmt = file_format(shown)
    if fmt != "yaml":  # (load_yaml checks its own)
        check_merge_conflict(text, shown)
    if fmt == "json":
        try:
            doc = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise FormatError(shown, f"invalid JSON: {e.msg}", line=e.lineno) from None
        except RecursionError:
            raise FormatError(shown, f"nested deeper than the limit of {MAX_DEPTH} levels") from None
        _check_depth(doc, shown)
    elif fmt == "toml":
        try:
            doc = _tomllib().loads(text)
        except _tomllib().TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+)", str(e))
            raise FormatError(shown, f"invalid TOML: {str(e).split(' (at line')[0]}",
                              line=int(m.group(1)) if m else None) from None
        except RecursionError:
            raise FormatError(shown, f"nested deeper than the limit of {MAX_DEPTH} levels") from None
        _check_depth(doc, shown)
    else:
        doc = load_yaml(text, shown, kind="params")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise FormatError(shown, f"expected a mapping of names to values, not a {type(doc).__name__}")
    return doc


def flatten(doc: dict[str, Any], prefix: str = "") -> Flat:
    """Nested mappings become dotted keys; lists and scalars are leaves."""
    out: Flat = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def lookup(doc: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) for a dotted key; a literal key containing dots wins."""
    if key in doc:
        return True, doc[key]
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def select(doc: dict[str, Any], keys: Iterable[str] | None) -> tuple[Flat, list[str]]:
    """The leaves named by ``keys`` (keys or whole sections; None: everything) and the
    keys that were not found."""
    if keys is None:
        return flatten(doc), []
    out: Flat = {}
    missing = []
    for key in keys:
        found, value = lookup(doc, key)
        if not found:
            missing.append(key)
        elif isinstance(value, dict) and value:
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out, missing


Parsed = dict[tuple[str, bytes], dict[str, Any]]  # (file, its bytes) -> its document


class ParamsReader:
    """Reads each params file once (from the workspace, or from given bytes).
    ``parsed`` (optional) is shared by readers made at different moments of one run
    (each reads the files again): a file whose bytes are the same is not parsed again.
    The documents are read-only to callers."""

    def __init__(self, read: Callable[[str], bytes | None], parsed: Parsed | None = None) -> None:
        self._read = read
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._parsed = parsed

    def doc(self, file: str) -> dict[str, Any] | None:
        if file not in self._docs:
            data = self._read(file)
            if data is None:
                self._docs[file] = None
            elif self._parsed is None:
                self._docs[file] = parse_values(data, file)
            else:
                key = (file, data)
                if key not in self._parsed:
                    self._parsed[key] = parse_values(data, file)
                self._docs[file] = self._parsed[key]
        return self._docs[file]

    def stage_params(self, stage: Stage, shown: str, *, strict: bool = True) -> dict[str, Flat]:
        """{params file: {key: value}} for one stage; with ``strict`` a missing file or key
        is a FormatError naming the pipeline file, the line and the stage."""
        out: dict[str, Flat] = {}
        for ref in stage.params:
            values = self.ref_values(stage, ref, shown, strict)
            if values is not None:
                out.setdefault(ref.file, {}).update(values)
        return {f: dict(sorted(v.items())) for f, v in sorted(out.items())}

    def ref_values(self, stage: Stage, ref: ParamRef, shown: str, strict: bool) -> Flat | None:
        """The values one params reference names (None: its file is absent and not ``strict``)."""
        doc = self.doc(ref.file)
        if doc is None:
            if not strict:
                return None
            raise FormatError(shown, f"stage '{stage.name}': params file '{ref.file}' does not exist", line=ref.line)
        values, missing = select(doc, ref.keys)
        if missing and strict:
            raise FormatError(shown, f"stage '{stage.name}': params key '{missing[0]}' not found in {ref.file}",
                              line=ref.line)
        return values


def workspace_reader(root: str, parsed: Parsed | None = None) -> ParamsReader:
    def read(rel: str) -> bytes | None:
        try:
            with open(os.path.join(root, *rel.split("/")), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    return ParamsReader(read, parsed)
