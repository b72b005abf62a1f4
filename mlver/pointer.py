"""Pointer files (``NAME.mlver``) and directory manifests: parse at the edge into frozen
dataclasses, dump byte-stable (keys in SPEC order, unknown keys kept).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from mlver.errors import FormatError, check_merge_conflict
from mlver.fsutil import WINDOWS, check_relative
from mlver.hashing import ALGORITHMS, DEFAULT_ALGO, DVC_LISTED, HEX_LEN, algo_of, hex_of, is_digest, qualify

POINTER_SUFFIX = ".mlver"
HEADER = "# mlver pointer: commit this file; the data lives in the mlver cache and remotes\n"
KNOWN_KEYS = ("version", "path", "kind", "hash", "digest", "size", "files", "desc")

def unique_pairs(loader: Any, node: Any) -> Iterator[tuple[Any, int, Any]]:
    """(key, line, value) of a YAML mapping node; a duplicate or unhashable key is a
    YAML error at its line (PyYAML would keep the last value silently)."""
    import yaml

    written = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)  # `<<: *base` pairs come first, then the mapping's own
    keys = []
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        keys.append(key)
        if id(key_node) not in written:
            continue
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    for key, (key_node, value_node) in zip(keys, node.value):
        if id(key_node) not in written and key in seen:
            continue  # a merged key the mapping writes itself: its own value wins (YAML's merge)
        yield key, key_node.start_mark.line + 1, loader.construct_object(value_node, deep=True)


@functools.lru_cache(maxsize=2)
def _strict_loader(yaml12: bool = False) -> Any:
    """The strict loader; ``yaml12``: with YAML 1.2's core types (``yaml12_types``)."""
    import yaml

    class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    StrictLoader.add_constructor("tag:yaml.org,2002:map",
                                 lambda loader, node: {k: v for k, _, v in unique_pairs(loader, node)})
    if yaml12:
        yaml12_types(StrictLoader)
    return StrictLoader


# YAML 1.2 plain scalars, as DVC's parser (ruamel.yaml) reads them: `yes`/`on`/`no` are
# strings, `010` is ten, `12:30` a string, `1e-3` a float. PyYAML resolves YAML 1.1.
YAML12_RESOLVERS = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
     r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
)


def yaml12_types(loader: Any) -> None:
    """Make the loader class ``loader`` resolve plain scalars as YAML 1.2's core schema
    (the types DVC reads in dvc.yaml and params files) instead of PyYAML's YAML 1.1."""
    import yaml

    resolvers: dict[Any, list[Any]] = {}
    for first, entries in yaml.resolver.Resolver.yaml_implicit_resolvers.items():
        kept = [(tag, rx) for tag, rx in entries if tag not in {t for t, _, _ in YAML12_RESOLVERS}]
        if kept:
            resolvers[first] = kept
    loader.yaml_implicit_resolvers = resolvers
    for tag, pattern, firsts in YAML12_RESOLVERS:
        loader.add_implicit_resolver(tag, re.compile(pattern), list(firsts))

    def construct_int(constructor: Any, node: Any) -> int:
        text = str(constructor.construct_scalar(node)).replace("_", "")
        sign = -1 if text[:1] == "-" else 1
        text = text.lstrip("+-")
        base = {"0b": 2, "0o": 8, "0x": 16}.get(text[:2].lower())
        return sign * (int(text[2:], base) if base else int(text, 10))

    loader.add_constructor("tag:yaml.org,2002:int", construct_int)


YAML12_KINDS = ("pipeline", "params")  # user-written files that DVC reads too: YAML 1.2 types
MAX_DEPTH = 100  # nesting levels of mappings and lists, in every file kind
MAX_ALIAS_VALUES = 1_000_000  # values that YAML aliases may add by repetition (params, pipeline)


@dataclass(frozen=True)
class Limits:
    """What one kind of file may hold (documented in the README's "Limits" section)."""

    max_bytes: int
    aliases: bool  # may the file use YAML anchors and aliases (``&a`` / ``*a``)?


MiB = 1 << 20
LIMITS = {
    "pointer": Limits(1 * MiB, aliases=False),
    "lock": Limits(16 * MiB, aliases=False),
    "pipeline": Limits(16 * MiB, aliases=True),
    "params": Limits(16 * MiB, aliases=True),  # params and metrics files, any format
}


def check_size(size: int, shown: str, kind: str) -> None:
    limit = LIMITS[kind].max_bytes
    if size > limit:
        raise FormatError(shown, f"file is larger than the limit of {limit // MiB} MiB for a {kind} file")


def _check_nodes(root: Any, shown: str, kind: str) -> None:
    """Refuse, before anything is built from it, a YAML node graph nested deeper than
    MAX_DEPTH, an alias in a file kind that allows none, an alias that contains itself,
    or aliases that repeat more than MAX_ALIAS_VALUES values (a "billion laughs" bomb).
    Iterative and memoised by node, so it costs one step per distinct node."""
    allow = LIMITS[kind].aliases
    sizes: dict[int, int] = {}  # node -> values below it, aliases expanded
    open_nodes: set[int] = set()
    distinct = 0
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]

    def line(node: Any) -> int:
        return int(node.start_mark.line) + 1

    def children(node: Any) -> list[Any]:
        value = node.value
        if isinstance(value, list):
            return [n for pair in value for n in pair] if value and isinstance(value[0], tuple) else value
        return []

    while stack:
        node, depth, done = stack.pop()
        nid = id(node)
        if done:
            open_nodes.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(k)] for k in children(node))
            continue
        if nid in open_nodes:
            raise FormatError(shown, "invalid YAML: an alias refers to a node that contains it", line=line(node))
        if nid in sizes:
            if not allow:
                raise FormatError(shown, f"YAML anchors and aliases are not allowed in a {kind} file",
                                  line=line(node))
            continue
        if depth > MAX_DEPTH:
            raise FormatError(shown, f"nested deeper than the limit of {MAX_DEPTH} levels", line=line(node))
        distinct += 1
        kids = children(node)
        if not kids:
            sizes[nid] = 1
            continue
        open_nodes.add(nid)
        stack.append((node, depth, True))
        stack.extend((k, depth + 1, False) for k in reversed(kids))
    if sizes[id(root)] - distinct > MAX_ALIAS_VALUES:
        raise FormatError(shown, f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values")


def load_yaml(text: str, shown: str, *, kind: str, loader: Any = None) -> Any:
    """Parse YAML through the one safe path: size, depth and alias limits of ``kind``
    (a key of LIMITS) checked on the node graph before any value is built, duplicate keys
    refused (``loader``: another loader class built on the strict one), and every error
    a FormatError naming file and line."""
    import yaml  # PyYAML costs ~50 ms to import; pointers in canonical form never need it

    check_size(len(text), shown, kind)
    check_merge_conflict(text, shown)
    if "\0" in text:  # libyaml would stop reading there and parse half the file
        raise FormatError(shown, "invalid YAML: the file contains a NUL byte",
                          line=text.count("\n", 0, text.index("\0")) + 1)
    try:
        parser = (loader or _strict_loader(kind in YAML12_KINDS))(text)
    except UnicodeEncodeError:  # text decoded with surrogateescape: bytes that are not UTF-8
        raise FormatError(shown, "not UTF-8 text") from None
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        _check_nodes(node, shown, kind)
        return parser.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context, opened = getattr(e, "context", None) or "", getattr(e, "context_mark", None)
        if opened is not None and ("flow" in context or "quoted" in context) and opened.line + 1 != line:
            # an unclosed `[`, `{` or quote is found where the next thing starts: name the line it opens on
            what = context.replace("while parsing a ", "").replace("while scanning a ", "")
            problem, line = f"{problem} (the {what} that starts here is not closed)", opened.line + 1
        raise FormatError(shown, f"invalid YAML: {problem}", line=line) from None
    except UnicodeEncodeError:
        raise FormatError(shown, "not UTF-8 text") from None
    finally:
        parser.dispose()


# '@' may not start a plain scalar (reserved), nor '- ' (a list item) or a lone '-'
_PLAIN = re.compile(r"^(?:[A-Za-z0-9_./+]|-(?=[^ ]))[A-Za-z0-9_./@+ ,()=-]*$")
_SPECIAL = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|"
    r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def yaml_scalar(text: str) -> str:
    """A YAML scalar for ``text``: plain when that reads back the same, else double-quoted."""
    if _PLAIN.match(text) and not _SPECIAL.match(text) and not text.endswith(" ") and ": " not in text and " #" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Pointer:
    path: str  # relative to the pointer's folder
    kind: str  # "file" or "dir"
    digest: str
    size: int
    files: int | None = None
    desc: str | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def dumps(self) -> str:
        hexd = hex_of(self.digest)
        out = [HEADER, "version: 1\n", f"path: {yaml_scalar(self.path)}\n", f"kind: {self.kind}\n",
               f"hash: {algo_of(self.digest)}\n", f"digest: {hexd if not hexd.isdigit() else repr(hexd)}\n",
               f"size: {self.size}\n"]
        if self.kind == "dir":
            out.append(f"files: {self.files or 0}\n")
        if self.desc is not None:
            out.append(f"desc: {yaml_scalar(self.desc)}\n")
        if self.extra:
            import yaml

            out.append(yaml.safe_dump(dict(self.extra), default_flow_style=False, sort_keys=False, allow_unicode=True))
        return "".join(out)


_FAST_LINE = re.compile(r"^(version|path|kind|hash|digest|size|files|desc): (.+)$")


def _parse_canonical(text: str) -> dict[str, Any] | None:
    """The pointer as a dict when it is in the canonical form mlver writes (plain
    scalars only, known keys), else None so the full YAML parser decides."""
    data: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _FAST_LINE.match(line)
        if m is None:
            return None
        key, value = m.groups()
        if key in data or not _PLAIN.match(value) or _SPECIAL.match(value) or value.endswith(" ") \
                or ": " in value or " #" in value:
            if key in ("version", "size", "files") and value.isdigit() and key not in data:
                data[key] = int(value)
                continue
            return None
        data[key] = value
    return data


def parse_hex(value: Any, algo: str) -> str | None:
    """The digest written as ``value`` (hex, as pointer and lock files hold it) of the
    algorithm ``algo``, or None when it is not one."""
    n = HEX_LEN.get(algo)
    if n is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**n:
        value = f"{value:0{n}d}"  # an all-digit digest that YAML read as a number
    if not isinstance(value, str) or ":" in value:
        return None
    digest = qualify(algo, value)
    return digest if is_digest(digest) else None


def parse_pointer(text: str, shown: str) -> Pointer:
    """Parse and validate pointer text; ``shown`` names the file in errors."""
    check_size(len(text), shown, "pointer")
    data = _parse_canonical(text)
    if data is None:
        data = load_yaml(text, shown, kind="pointer")
    if not isinstance(data, dict):
        raise FormatError(shown, "not an mlver pointer (expected a YAML mapping)")

    def line_of(key: str) -> int | None:
        for i, ln in enumerate(text.splitlines(), 1):
            if ln.startswith(f"{key}:"):
                return i
        return None

    def bad(key: str, problem: str) -> FormatError:
        return FormatError(shown, f"'{key}': {problem}", line=line_of(key))

    for key in ("version", "path", "kind", "hash", "digest", "size"):
        if key not in data:
            raise FormatError(shown, f"missing required key '{key}'")
    if data["version"] != 1:
        raise bad("version", f"unsupported pointer version {data['version']!r} (this mlver reads version 1)")
    path = data["path"]
    if not isinstance(path, str):
        raise bad("path", "must be a string")
    problem = check_relative(path)
    if problem:
        raise bad("path", problem)
    kind = data["kind"]
    if kind not in ("file", "dir"):
        raise bad("kind", f"must be 'file' or 'dir', not {kind!r}")
    algo = data["hash"]
    if algo not in ALGORITHMS:
        raise bad("hash", f"unknown hash {algo!r} (this mlver reads {', '.join(ALGORITHMS)})")
    digest = parse_hex(data["digest"], algo)
    if digest is None:
        raise bad("digest", f"must be {HEX_LEN[algo]} lower-case hex digits ({algo}), got {data['digest']!r}")
    size = data["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("size", f"must be a non-negative integer, got {size!r}")
    files = data.get("files")
    if kind == "dir":
        if not isinstance(files, int) or isinstance(files, bool) or files < 0:
            raise bad("files", f"must be a non-negative integer, got {files!r}")
    else:
        files = None
    desc = data.get("desc")
    if desc is not None and not isinstance(desc, str):
        desc = str(desc)
    extra = tuple((k, v) for k, v in data.items() if k not in KNOWN_KEYS)
    return Pointer(path=path, kind=kind, digest=digest, size=size, files=files, desc=desc, extra=extra)


def read_pointer(abs_path: str, shown: str) -> Pointer:
    try:
        with open(abs_path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise FormatError(shown, "not UTF-8 text") from None
    return parse_pointer(text, shown)


# --- manifests -----------------------------------------------------------------------

class Entry(NamedTuple):
    """One file of a manifest (a NamedTuple: immutable, and cheap to make 20,000 times)."""

    path: str  # POSIX, relative to the tracked folder
    digest: str
    size: int
    exec: bool = False


@dataclass(frozen=True)
class Manifest:
    """The canonical listing of a tracked folder; its digest is the folder's digest.
    Entries' digests are of the manifest's algorithm ``algo``. An md5 folder's manifest is
    DVC's ``.dir`` listing, so DVC reads folders mlver writes and mlver reads DVC's;
    DVC writes no sizes there, so an entry's ``size`` may be ``UNKNOWN_SIZE``."""

    entries: tuple[Entry, ...]
    algo: str = DEFAULT_ALGO

    @classmethod
    def build(cls, entries: list[Entry], algo: str = DEFAULT_ALGO) -> "Manifest":
        return cls(tuple(sorted(entries, key=lambda e: e.path)), algo)

    @classmethod
    def from_sorted(cls, entries: list[Entry], algo: str = DEFAULT_ALGO) -> "Manifest":
        """From entries already sorted by path (a sorted scan of the folder)."""
        return cls(tuple(entries), algo)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries if e.size > 0)

    def dumps(self) -> bytes:
        if self.algo in DVC_LISTED:
            # DVC's listing exactly (DVC refuses any other key; sorted by path, as
            # json.dumps writes by default): the same folder has the same digest whichever
            # tool listed it
            rows = [{"md5": hex_of(e.digest), "relpath": e.path} for e in self.entries]
            return json.dumps(rows, sort_keys=True).encode("utf-8")
        if self.algo == DEFAULT_ALGO:
            # an Entry is the tuple (path, digest, size, exec): JSON writes it as that array
            doc = {"version": 1, "kind": "manifest", "hash": DEFAULT_ALGO, "entries": self.entries}
        else:
            doc = {"version": 1, "kind": "manifest", "hash": self.algo,
                   "entries": [(e.path, hex_of(e.digest), e.size, e.exec) for e in self.entries]}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}


UNKNOWN_SIZE = -1  # an entry of a DVC listing, which records no sizes

# Over the entry paths joined by NUL (which no file name holds): an absolute path, a '..'
# component, an empty entry; on Windows also drive letters and backslashes.
_BAD_PATHS = re.compile(r"(?:^|\0)/|(?:^|[\0/])\.\.(?:[/\0]|$)|\0\0|^\0|\0$"
                        + (r"|(?:^|\0)(?:[A-Za-z]:|\\)|(?:^|[\0/\\])\.\.(?:[/\\\0]|$)" if WINDOWS else ""))
_DIGESTS = re.compile(r"(?:[0-9a-f]{32})*")


def parse_manifest(data: bytes, shown: str, algo: str | None = None) -> Manifest:
    """A manifest object's listing: mlver's (``{"kind": "manifest", ...}``) or DVC's
    ``.dir`` list, whose entries are of ``algo`` (the folder's: ``md5``, or DVC 2's
    ``md5-dos2unix``; the listing does not say)."""
    try:
        doc = json.loads(data)
        if isinstance(doc, list):
            return _parse_dvc_listing(doc, shown, algo if algo in DVC_LISTED else "md5")
        if doc.get("kind") != "manifest" or doc.get("version") != 1:
            raise ValueError("not a manifest")
        algo = doc.get("hash", DEFAULT_ALGO)
        if algo not in ALGORITHMS or algo in DVC_LISTED:
            raise ValueError(f"unknown hash {algo!r}")
        entries = tuple(map(Entry._make, doc["entries"]))  # each row must have 4 fields
        if algo != DEFAULT_ALGO:
            if not all(isinstance(e.digest, str) and ":" not in e.digest for e in entries):
                raise ValueError("an entry's digest is not hex")
            entries = tuple(e._replace(digest=qualify(algo, e.digest)) for e in entries)
        _check_entries(entries, algo)
        if not all([type(e.size) is int and e.size >= 0 and type(e.exec) is bool for e in entries]):
            raise ValueError("an entry's size or executable flag has the wrong type")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise FormatError(shown, f"corrupt manifest: {e}") from None
    return Manifest(entries, algo)


def _check_entries(entries: tuple[Entry, ...], algo: str) -> None:
    # Validated in a few passes over whole columns, not a check per entry: joins fail
    # on a non-string, the regexes on a bad path or digest.
    paths = "\0".join([e.path for e in entries])
    if _BAD_PATHS.search(paths) or (entries and not paths) or paths.count("\0") != max(len(entries) - 1, 0):
        path, problem = next((e.path, check_relative(e.path)) for e in entries if check_relative(e.path))
        raise ValueError(f"entry path {path!r}: {problem}")
    if algo == DEFAULT_ALGO:
        if not _DIGESTS.fullmatch("".join([e.digest for e in entries])):
            raise ValueError("an entry's digest is not 32 lower-case hex digits")
    elif not all(is_digest(e.digest) and algo_of(e.digest) == algo for e in entries):
        raise ValueError(f"an entry's digest is not {HEX_LEN[algo]} lower-case hex digits ({algo})")


def _parse_dvc_listing(doc: list[Any], shown: str, algo: str) -> Manifest:
    entries = []
    for row in doc:
        if not isinstance(row, dict) or not isinstance(row.get("md5"), str) or not isinstance(row.get("relpath"), str):
            raise ValueError("a DVC listing entry needs 'md5' and 'relpath'")
        size = row.get("size", UNKNOWN_SIZE)
        if type(size) is not int or size < UNKNOWN_SIZE:
            raise ValueError(f"entry {row['relpath']!r}: bad size {size!r}")
        entries.append(Entry(row["relpath"], qualify(algo, row["md5"]), size, bool(row.get("isexec", False))))
    manifest = Manifest.build(entries, algo)
    _check_entries(manifest.entries, algo)
    if len({e.path for e in manifest.entries}) != len(manifest.entries):
        raise ValueError("a path is listed twice")
    return manifest
