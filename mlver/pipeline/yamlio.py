"""YAML for pipeline files: parse keeping the line of every mapping key and list item
(so errors can name the line), and dump single values byte-stably for the lock."""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING, Any

from mlver.pointer import YAML12_KINDS, load_yaml, unique_pairs, yaml12_types

if TYPE_CHECKING:
    import yaml


class LinedMap(dict):
    """A mapping that knows the line of itself and of each key (1-based)."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.lines.get(key, self.line)


class LinedList(list):
    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []

    def line_at(self, i: int) -> int | None:
        return self.lines[i] if i < len(self.lines) else self.line


def _map(loader: Any, node: yaml.MappingNode) -> LinedMap:
    out = LinedMap()
    out.line = node.start_mark.line + 1
    for key, line, value in unique_pairs(loader, node):
        out[key] = value
        out.lines[key] = line
    return out


def _seq(loader: Any, node: yaml.SequenceNode) -> LinedList:
    out = LinedList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


@functools.lru_cache(maxsize=2)
def _loader(yaml12: bool) -> Any:
    """The line-keeping loader; PyYAML (~15 ms to import) loads on first use only, so a
    command whose pipeline and lock parses are memoised never imports it. ``yaml12``:
    plain scalars typed as YAML 1.2 (mlver.yaml, as DVC reads dvc.yaml); the lock, which
    mlver writes itself, keeps the YAML 1.1 types its writer quotes for."""
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class LineLoader(base):
        pass

    LineLoader.add_constructor("tag:yaml.org,2002:map", _map)
    LineLoader.add_constructor("tag:yaml.org,2002:seq", _seq)
    if yaml12:
        yaml12_types(LineLoader)
    return LineLoader


def load_lined(text: str, shown: str, *, kind: str) -> Any:
    """Parse YAML into LinedMap/LinedList within the limits of ``kind`` ("pipeline",
    "lock"); syntax errors and duplicate keys become FormatErrors naming ``shown`` and the line."""
    return load_yaml(text, shown, kind=kind, loader=_loader(kind in YAML12_KINDS))


def plain(value: Any) -> Any:
    """``value`` with LinedMap/LinedList turned into plain dicts and lists (for values
    that are compared by type, dumped or pickled)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _one_line_dumper() -> Any:
    """PyYAML's safe dumper, but ``bytes`` (a params file's ``!!binary``) as a quoted
    base64 scalar on one line (PyYAML writes a block scalar, which breaks a lock line)."""
    import base64

    import yaml

    class OneLine(yaml.SafeDumper):
        pass

    # a string that YAML 1.2 would read as another type (`1e-3`, `0o17`) is quoted too:
    # params files are read with 1.2's types, as DVC reads them, and PyYAML writes 1.1
    from mlver.pointer import YAML12_RESOLVERS

    for tag, pattern, firsts in YAML12_RESOLVERS:
        OneLine.add_implicit_resolver(tag, re.compile(pattern), list(firsts))
    OneLine.add_representer(bytes, lambda d, b: d.represent_scalar(
        "tag:yaml.org,2002:binary", base64.standard_b64encode(b).decode("ascii"), style='"'))
    return OneLine


def dump_value(value: Any) -> str:
    """One YAML value on one line (flow style for lists), reading back equal."""
    import yaml

    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    text = yaml.dump(plain(value), Dumper=_one_line_dumper(), default_flow_style=True, allow_unicode=True,
                     width=1 << 30)
    if text.endswith("\n...\n"):
        text = text[:-5]
    return text.rstrip("\n")
