"""``exp run -S [FILE:]KEY=VALUE``: parse overrides and write them into params files
(YAML, JSON, TOML) by editing only the text of the value they set, so the comments and
layout of the file survive. Every edit is checked by parsing the result again.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from mlver.errors import FormatError, UsageError
from mlver.fsutil import atomic_write_text
from mlver.pointer import load_yaml
from mlver.pipeline.params import file_format, lookup, parse_values
from mlver.pipeline.plan import same_value
from mlver.pipeline.yamlio import dump_value

DEFAULT_PARAMS = "params.yaml"
_MISSING = object()


@dataclass(frozen=True)
class Override:
    file: str  # repo-relative params file
    key: str  # dotted key
    values: tuple[Any, ...]  # one value, or several (a sweep: ``k=a,b,c``)
    text: str  # as given

    def one(self, value: Any) -> "Override":
        return Override(self.file, self.key, (value,), self.text)


def split_top_level(text: str) -> list[str]:
    """``a,[1,2],{x: 1}`` -> ``["a", "[1,2]", "{x: 1}"]``: commas inside brackets or
    quotes do not split."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_yaml_value(text: str, shown: str) -> Any:
    """A -S value, typed as the params files are read (YAML 1.2: ``1e-3`` a float,
    ``yes`` a string, ``010`` ten)."""
    if not text.strip():
        return None
    try:
        return load_yaml(text, f"-S {shown}", kind="params")
    except FormatError as e:
        raise UsageError(f"-S {shown}: the value is not valid YAML ({e.problem})",
                         hint="quote strings that contain YAML syntax, e.g. -S 'name=\"a: b\"'") from None


def parse_override(text: str) -> Override:
    """``[FILE:]KEY=VALUE``; VALUE is a YAML scalar, list or mapping, or several of them
    separated by top-level commas."""
    left, eq, right = text.partition("=")
    if not eq or not left.strip():
        raise UsageError(f"-S {text!r}: expected [FILE:]KEY=VALUE", hint="e.g. -S train.lr=0.01 or "
                         "-S params.json:model.depth=5")
    file, colon, key = left.rpartition(":")
    if not colon:
        file = DEFAULT_PARAMS
    key = key.strip()
    file = file.strip()
    if not key or not file or key.startswith(".") or key.endswith(".") or ".." in key:
        raise UsageError(f"-S {text!r}: expected [FILE:]KEY=VALUE with a dotted KEY", hint="e.g. -S train.lr=0.01")
    values = tuple(parse_yaml_value(part, text) for part in split_top_level(right))
    return Override(file.replace(os.sep, "/"), key, values, text)


def grid(overrides: list[Override]) -> list[list[Override]]:
    """One list of single-valued overrides per combination (the cartesian product)."""
    if not overrides:
        return [[]]
    return [[o.one(v) for o, v in zip(overrides, combo)]
            for combo in itertools.product(*(o.values for o in overrides))]


# --- writing values -------------------------------------------------------------------

def apply_overrides(root: str, overrides: list[Override], *, set_new: bool,
                    confine: Callable[[str], str]) -> list[str]:
    """Write single-valued ``overrides`` into the files below ``root``; returns the
    files changed (repo-relative). Nothing is written unless every override can be
    applied."""
    texts = render_overrides(root, overrides, set_new=set_new, confine=confine)
    for rel, text in texts.items():
        atomic_write_text(os.path.join(root, *rel.split("/")), text, inside=root)
    return list(texts)


def render_overrides(root: str, overrides: list[Override], *, set_new: bool,
                     confine: Callable[[str], str]) -> dict[str, str]:
    """The new text of each params file (repo-relative) that single-valued
    ``overrides`` change, read from below ``root``; nothing is written. ``confine``
    turns a file name into a checked repo-relative path (it raises for one outside the
    repository)."""
    texts: dict[str, str] = {}
    for o in overrides:
        if len(o.values) != 1:
            raise UsageError(f"-S {o.text}: several values are a sweep, which needs --queue",
                             hint="queue one experiment per value with `mlver exp run --queue -S ...`, "
                                  "then `mlver queue start`")
        rel = confine(o.file)
        if rel not in texts:
            path = os.path.join(root, *rel.split("/"))
            try:
                with open(path, encoding="utf-8") as f:
                    texts[rel] = f.read()
            except FileNotFoundError:
                if not set_new:
                    raise UsageError(f"-S {o.text}: params file '{rel}' does not exist",
                                     hint="pass --set-new to create it") from None
                texts[rel] = ""
            except UnicodeDecodeError:
                raise FormatError(rel, "not UTF-8 text") from None
        texts[rel] = set_value(texts[rel], rel, o.key, o.values[0], set_new=set_new, shown=o.text)
    changed = {}
    for rel, text in texts.items():
        path = os.path.join(root, *rel.split("/"))
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old != text:
            changed[rel] = text
    return changed


def set_value(text: str, file: str, key: str, value: Any, *, set_new: bool, shown: str) -> str:
    """``text`` (a params file named ``file``) with ``key`` set to ``value``."""
    doc = parse_values(text.encode("utf-8"), file)
    found, _old = lookup(doc, key)
    if not found and not set_new:
        raise UsageError(f"-S {shown}: no key '{key}' in {file}",
                         hint="check the spelling, or pass --set-new to add it")
    if not found:
        _refuse_below_a_value(doc, key, file, shown)
    fmt = file_format(file)
    if fmt == "json":
        new = _set_json(text, key, value, found)
    elif fmt == "toml":
        new = _set_toml(text, key, value, found, shown)
    else:
        new = _set_yaml(text, key, value, found)
    try:
        ok, got = lookup(parse_values(new.encode("utf-8"), file), key)
    except FormatError:
        ok, got = False, None
    if not ok or not same_value(got, value):
        raise UsageError(f"-S {shown}: cannot set '{key}' in {file} without rewriting the file",
                         hint="edit the file by hand for this one")
    return new


def _refuse_below_a_value(doc: Any, key: str, file: str, shown: str) -> None:
    """``--set-new a.b.c`` adds ``c`` below the mapping ``a.b``; when ``a.b`` (or ``a``)
    holds a value that is not a mapping, adding a key there would destroy that value."""
    if isinstance(doc, dict) and key in doc:
        return
    parts = key.split(".")
    node: Any = doc if doc is not None else {}
    for i in range(len(parts)):
        if not isinstance(node, dict):
            where = ".".join(parts[:i])
            what = f"'{where}' is {_yaml_flow(node)}" if where else f"{file} does not hold a mapping at the top"
            raise UsageError(f"-S {shown}: cannot add '{key}': {what}, not a mapping of keys",
                             hint=f"set '{where}' itself, or pick a key that is not below it" if where
                             else "a params file holds a mapping of keys")
        if parts[i] not in node:
            return
        node = node[parts[i]]


# YAML: the composed node tree knows where each value starts and ends.

def _yaml_flow(value: Any) -> str:
    return dump_value(value)  # one line, reading back equal (a string that looks like a number quoted)


def _set_yaml(text: str, key: str, value: Any, found: bool) -> str:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # pragma: no cover - parse_values accepted it
        node = None
    parts = key.split(".")
    if node is None:  # an empty document
        return text + ("" if not text or text.endswith("\n") else "\n") + _yaml_block(parts, value, 0)
    if key in _yaml_keys(node):  # a literal key with dots wins, as in lookup()
        parts = [key]
    shared = _shared_nodes(node)
    path = node
    i = 0
    while i < len(parts):
        if not isinstance(path, yaml.MappingNode):  # pragma: no cover - set_value refused it
            raise _not_in_place(key)
        child = key_node = None
        for k, v in path.value:
            if isinstance(k, yaml.ScalarNode) and k.value == parts[i]:
                child, key_node = v, k
                break
        if child is None or key_node is None:
            merged = any(isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge" for k, _ in path.value)
            if merged and found and i < len(parts) - 1:
                # `train: {<<: *d}` takes `opt` from d: a partial `opt:` under train would
                # replace the whole merged mapping (its other keys lost)
                raise UsageError(f"cannot set '{key}': '{'.'.join(parts[:i + 1])}' comes through a YAML merge key "
                                 "(<<) from another mapping, and setting part of it here would drop the rest",
                                 hint=f"write '{parts[i]}' out in full under '{'.'.join(parts[:i]) or 'the top'}', "
                                      "then set it")
            break
        written = text[key_node.end_mark.index:].lstrip(" \t")
        if written.startswith(":") and written[1:].lstrip(" \t").startswith("*"):
            # `eval: *defaults`: the value is another key's (an alias); setting it would
            # change that key, and every other alias of it, too
            raise UsageError(f"cannot set '{key}': '{'.'.join(parts[:i + 1])}' is a YAML alias of another key's "
                             "value, which would change with it",
                             hint="write that value out in full under this key, then set it")
        if id(child) in shared:
            raise _anchored(key, parts[:i + 1])
        if i == len(parts) - 1:
            start, end = child.start_mark.index, child.end_mark.index
            if isinstance(child, (yaml.MappingNode, yaml.SequenceNode)) and not child.flow_style:
                # a block value starts on the next line: the new one goes after the ':'
                end = len(text[:end].rstrip())
                start = text.index(":", key_node.end_mark.index) + 1
                return text[:start] + " " + _yaml_flow(value) + text[end:]
            return text[:start] + _yaml_flow(value) + text[end:]
        path = child
        i += 1
    # a new key below the deepest mapping that exists
    if id(path) in shared:  # pragma: no cover - the loop refused it on the way down
        raise _anchored(key, parts[:i])
    if not isinstance(path, yaml.MappingNode):  # pragma: no cover - set_value refused it
        raise _not_in_place(key)
    if path.flow_style or not path.value:  # `train: {a: 1}` or `{}`: the new key goes inside the braces
        close = text.rindex("}", path.start_mark.index, path.end_mark.index)
        sep = ", " if path.value else ""
        entry = f"{_yaml_flow(parts[i])}: {_yaml_flow(_nest(parts[i + 1:], value))}"
        return text[:close].rstrip() + sep + entry + text[close:] if path.value else text[:close] + entry + text[close:]
    indent = path.value[0][0].start_mark.column
    last = path.value[-1][1]
    end = last.end_mark.index
    if isinstance(last, (yaml.MappingNode, yaml.SequenceNode)) and not last.flow_style:
        end = len(text[:end].rstrip())
    nl = text.find("\n", end)
    at = len(text) if nl < 0 else nl + 1
    head = "" if nl >= 0 else "\n"
    return text[:at] + head + _yaml_block(parts[i:], value, indent) + text[at:]


def _shared_nodes(root: Any) -> set[int]:
    """The nodes reached more than once: a value with an anchor (``&d``) that aliases
    (``*d``) repeat. Editing its text changes every key that aliases it."""
    import yaml

    seen: set[int] = set()
    shared: set[int] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            shared.add(id(n))
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack.extend(v for pair in n.value for v in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return shared


def _anchored(key: str, parts: list[str]) -> UsageError:
    return UsageError(f"cannot set '{key}': '{'.'.join(parts)}' holds a YAML anchor that other keys alias, "
                      "which would change with it", hint="write the value out in full under each key that aliases it, then set it")


def _yaml_keys(node: Any) -> set[str]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return set()
    return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _yaml_block(parts: list[str], value: Any, indent: int) -> str:
    pad = " " * indent
    if len(parts) == 1:
        return f"{pad}{_yaml_flow(parts[0])}: {_yaml_flow(value)}\n"
    return f"{pad}{_yaml_flow(parts[0])}:\n" + _yaml_block(parts[1:], value, indent + 2)


def _not_in_place(key: str) -> UsageError:
    return UsageError(f"cannot set '{key}' without rewriting the whole params file (its comments would be lost)",
                      hint="edit the file by hand for this one")


# JSON: a small scanner records where each value starts and ends.

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class _JsonSpan:
    start: int
    end: int
    members: list[tuple[str, int, "_JsonSpan"]] | None = None  # objects: (key, key start, value)


def _scan_json(text: str, pos: int) -> _JsonSpan:
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    ch = text[pos:pos + 1]
    if ch == "{":
        span = _JsonSpan(pos, pos, [])
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text[pos:pos + 1] == "}":
            span.end = pos + 1
            return span
        while True:
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            key_start = pos
            key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
            pos = _WS.match(text, pos).end() + 1  # type: ignore[union-attr]  # the ':'
            val = _scan_json(text, pos)
            assert span.members is not None
            span.members.append((key, key_start, val))
            pos = _WS.match(text, val.end).end()  # type: ignore[union-attr]
            if text[pos] == ",":
                pos += 1
                continue
            span.end = pos + 1
            return span
    if ch == "[":
        start = pos
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text[pos:pos + 1] == "]":
            return _JsonSpan(start, pos + 1)
        while True:
            val = _scan_json(text, pos)
            pos = _WS.match(text, val.end).end()  # type: ignore[union-attr]
            if text[pos] == ",":
                pos += 1
                continue
            return _JsonSpan(start, pos + 1)
    if ch == '"':
        _, end = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        return _JsonSpan(pos, end)
    m = _NUMBER.match(text, pos)
    if m and m.end() > pos:
        return _JsonSpan(pos, m.end())
    for word in ("true", "false", "null", "NaN", "Infinity", "-Infinity"):
        if text.startswith(word, pos):
            return _JsonSpan(pos, pos + len(word))
    raise ValueError(f"unexpected JSON at {pos}")  # pragma: no cover - parse_values accepted it


def _set_json(text: str, key: str, value: Any, found: bool) -> str:
    if not text.strip():
        return json.dumps(_nest(key.split("."), value), indent=2) + "\n"
    root = _scan_json(text, 0)
    keys = {k for k, _, _ in root.members or []}
    parts = [key] if key in keys else key.split(".")
    node = root
    i = 0
    while i < len(parts):
        child = next((v for k, _, v in node.members or [] if k == parts[i]), None)
        if child is None:
            break
        if i == len(parts) - 1:
            return text[:child.start] + json.dumps(value) + text[child.end:]
        if child.members is None:
            break
        node = child
        i += 1
    rest = _nest(parts[i + 1:], value) if i + 1 < len(parts) else value
    member = f"{json.dumps(parts[i])}: {json.dumps(rest)}"
    if not node.members:
        return text[:node.start] + "{" + member + "}" + text[node.end:]
    _, key_start, last = node.members[-1]
    line_start = text.rfind("\n", 0, key_start) + 1
    between = text[line_start:key_start]
    sep = ",\n" + between if between.strip() == "" and line_start > node.start else ", "
    return text[:last.end] + sep + member + text[last.end:]


def _nest(parts: list[str], value: Any) -> Any:
    for p in reversed(parts):
        value = {p: value}
    return value


# TOML: line by line, tracking the current [table].

_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(?:#.*)?$")
_KEYLINE = re.compile(r"^(\s*)((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)"
                      r"\s*=\s*")


def _toml_key(text: str) -> str:
    return ".".join(p.strip().strip("\"'") for p in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", text))


def toml_value(value: Any, shown: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v, shown) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v, shown)}" for k, v in value.items()) + "}"
    raise UsageError(f"-S {shown}: TOML has no value for {value!r} (null)", hint="give a string, number, "
                     "boolean, list or mapping")


def _value_end(lines: list[str], i: int, start: int) -> tuple[int, int]:
    """(last line, end column) of the TOML value starting at ``lines[i][start:]``."""
    depth, quote = 0, ""
    j, col = i, start
    while j < len(lines):
        line = lines[j]
        while col < len(line):
            ch = line[col]
            if quote:
                if ch == "\\" and quote == '"':
                    col += 2
                    continue
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            elif ch == "#":
                if depth == 0:
                    return j, len(line[:col].rstrip())
                break  # a comment inside a multi-line array
            col += 1
        if depth == 0:
            return j, len(line.rstrip("\n").rstrip())
        j, col = j + 1, 0
    return len(lines) - 1, len(lines[-1])  # pragma: no cover - parse_values accepted it


def _set_toml(text: str, key: str, value: Any, found: bool, shown: str) -> str:
    lines = text.splitlines(keepends=True)
    table = ""
    new = toml_value(value, shown)
    last_in: dict[str, int] = {}  # table -> index of its last line holding a key
    headers: dict[str, int] = {}
    first_header = len(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _TABLE.match(line)
        k = None if m else _KEYLINE.match(line)
        if m:
            table = _toml_key(m.group(1))
            headers[table] = i
            first_header = min(first_header, i)
        elif k:
            full = f"{table}.{_toml_key(k.group(2))}" if table else _toml_key(k.group(2))
            j, end = _value_end(lines, i, k.end())
            if found and full == key:
                return "".join(lines[:i]) + line[:k.end()] + new + lines[j][end:] + "".join(lines[j + 1:])
            last_in[table] = i = j
        i += 1
    # a new key (or a key inside an inline table / dotted form we did not match)
    parts = key.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        parent = ".".join(parts[:cut])
        if parent in headers or (cut == 0):
            rest = ".".join(_toml_bare(p) for p in parts[cut:])
            entry = f"{rest} = {new}\n"
            if parent in headers:
                at = last_in.get(parent, headers[parent]) + 1
            else:
                at = first_header
                if at > 0 and not lines[at - 1].endswith("\n"):
                    lines[at - 1] += "\n"
            if at < len(lines) and at > 0 and not lines[at - 1].endswith("\n"):
                lines[at - 1] += "\n"
            if at == len(lines) and lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            return "".join(lines[:at]) + entry + "".join(lines[at:])
    return text  # pragma: no cover - cut == 0 always matches


def _toml_bare(part: str) -> str:
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
