"""The one home for reading DVC's own files: ``*.dvc`` files, ``dvc.lock`` (schema 2.0)
and ``.dvc/config`` / ``.dvc/config.local``. Each is parsed at the edge into frozen
dataclasses (a ``dvc.lock`` straight into mlver's ``StageLock``s), with DVC's MD5
digests qualified as ``md5:<hex>`` and a folder's ``<hex>.dir`` as ``kind: dir``.

DVC 3 writes ``hash: md5`` beside each digest; an entry without it was written by DVC 2
(``md5-dos2unix``: text files hashed with CRLF read as LF), a digest of its own:
``md5-dos2unix:<hex>``, whose objects mlver reads in DVC 2's layout.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mlver.errors import FormatError
from mlver.fsutil import check_relative
from mlver.hashing import LEGACY_MD5, qualify
from mlver.pipeline.yamlio import LinedList, LinedMap, load_lined, plain
from mlver.pointer import Pointer
from mlver.workspace import Output

if TYPE_CHECKING:  # pragma: no cover - the lock module pulls in the pipeline model: only when a lock is read
    from mlver.pipeline.lockfile import LockEntry, StageLock

DVC_DIR = ".dvc"
DVC_SUFFIX = ".dvc"
DVC_PIPELINE = "dvc.yaml"
DVC_LOCK = "dvc.lock"
DVC_IGNORE = ".dvcignore"
DVC3_HASH = "md5"
_MD5 = re.compile(r"[0-9a-f]{32}")


def qualified_md5(hex_digest: str, algo: str = DVC3_HASH) -> str:
    """The mlver digest of a DVC MD5: ``md5:<hex>``, or DVC 2's ``md5-dos2unix:<hex>``
    (DVC 2's entries have no ``hash:`` key)."""
    return qualify(algo, hex_digest)


@dataclass(frozen=True)
class DvcOut:
    """One ``outs:`` entry of a ``.dvc`` file, or a dep/out of ``dvc.lock``."""

    path: str  # as written (relative to the file's folder, or the stage's wdir)
    kind: str  # "file" or "dir"
    digest: str  # qualified: "md5:<hex>"
    size: int | None
    files: int | None = None
    cache: bool = True
    push: bool = True
    persist: bool = False
    desc: str | None = None
    remote: str | None = None

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[-1]


@dataclass(frozen=True)
class DvcImport:
    """Where ``dvc import`` data came from: ``deps: [{path, repo: {url, rev_lock}}]``."""

    url: str
    path: str
    rev_lock: str | None = None
    rev: str | None = None

    def describe(self) -> str:
        at = f" at {self.rev_lock}" if self.rev_lock else (f" at {self.rev}" if self.rev else "")
        return f"imported from {self.url} {self.path}{at}"


@dataclass(frozen=True)
class DvcFile:
    """A parsed ``*.dvc`` file."""

    shown: str
    outs: tuple[DvcOut, ...]
    imported: DvcImport | None = None  # `dvc import`
    url_dep: str | None = None  # `dvc import-url`: the URL (or outside path) it came from
    cmd: str | None = None  # a DVC 1 single-stage file (`dvc run -f x.dvc`)
    frozen: bool = False
    wdir: str = "."
    desc: str | None = None


def _doc(text: str, shown: str, kind: str) -> LinedMap:
    doc = load_lined(text, shown, kind=kind)
    if doc is None:
        doc = LinedMap()
    if not isinstance(doc, LinedMap):
        raise FormatError(shown, "expected a YAML mapping")
    return doc


def _entry(shown: str, item: Any, line: int | None, *, where: str) -> DvcOut:
    """One entry (DVC 3's md5, or DVC 2's md5-dos2unix)."""
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise FormatError(shown, f"each '{where}' entry must be a mapping with 'path'", line=line)
    path = item["path"]
    problem = check_relative(path)
    if problem and ".." not in problem:  # `..` may be right (a dep above a stage's wdir): checked once joined
        raise FormatError(shown, f"'{path}': {problem}", line=line)
    md5 = item.get("md5", item.get("etag"))
    algo = item.get("hash")
    if algo is None and md5 is not None:
        algo = LEGACY_MD5
    if algo not in (None, DVC3_HASH, LEGACY_MD5):
        raise FormatError(shown, f"'{path}': unknown hash {algo!r}", line=line)
    kind = "file"
    if isinstance(md5, str) and md5.endswith(".dir"):
        kind, md5 = "dir", md5[:-4]
    if md5 is None:
        digest = ""  # not computed yet (a fresh `dvc stage add`, an output DVC never ran)
    elif not isinstance(md5, str) or not _MD5.fullmatch(md5):
        raise FormatError(shown, f"'{path}': md5 must be 32 lower-case hex digits", line=line)
    else:
        digest = qualified_md5(md5, algo or DVC3_HASH)
    size, files = item.get("size"), item.get("nfiles")
    for key, value in (("size", size), ("nfiles", files)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise FormatError(shown, f"'{path}': {key} must be a non-negative integer", line=line)
    desc = item.get("desc")
    return DvcOut(path, kind, digest, size, files if kind == "dir" else None,
                  cache=item.get("cache", True) is not False,
                  push=item.get("push", True) is not False, persist=item.get("persist") is True,
                  desc=None if desc is None else str(desc), remote=item.get("remote"))


def parse_dvc_file(text: str, shown: str) -> DvcFile:
    """A ``*.dvc`` file's outputs and where they came from (``dvc import``/``import-url``)."""
    doc = _doc(text, shown, "pointer")
    outs_doc = doc.get("outs", LinedList())
    if not isinstance(outs_doc, LinedList):
        raise FormatError(shown, "'outs' must be a list", line=doc.line_of("outs"))
    outs = [_entry(shown, item, outs_doc.line_at(i), where="outs") for i, item in enumerate(outs_doc)]
    imported, url_dep = None, None
    deps = doc.get("deps") or []
    if not isinstance(deps, list):
        raise FormatError(shown, "'deps' must be a list", line=doc.line_of("deps"))
    for dep in deps:
        if not isinstance(dep, dict):
            continue
        repo = dep.get("repo")
        if isinstance(repo, dict) and isinstance(repo.get("url"), str):
            imported = DvcImport(repo["url"], str(dep.get("path", "")),
                                 None if repo.get("rev_lock") is None else str(repo["rev_lock"]),
                                 None if repo.get("rev") is None else str(repo["rev"]))
        elif isinstance(dep.get("path"), str) and doc.get("cmd") is None:
            url_dep = dep["path"]
    cmd = doc.get("cmd")
    wdir = doc.get("wdir", ".")
    return DvcFile(shown, tuple(outs), imported, url_dep, None if cmd is None else str(cmd),
                   frozen=doc.get("frozen") is True, wdir=str(wdir), desc=None if doc.get("desc") is None
                   else str(doc.get("desc")))


def read_text(root: str, rel: str, *, missing_ok: bool = False) -> str:
    """The text of DVC file ``rel`` (relative to ``root``); "" for a missing file when
    ``missing_ok``."""
    try:
        with open(os.path.join(root, *rel.split("/")), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        if missing_ok:
            return ""
        raise
    except UnicodeDecodeError:
        raise FormatError(rel, "not UTF-8 text") from None


def is_dvc_file(rel: str) -> bool:
    """A ``*.dvc`` file (not the ``.dvc`` folder itself, nor a file inside it)."""
    name = rel.rsplit("/", 1)[-1]
    return name.endswith(DVC_SUFFIX) and name != DVC_SUFFIX and not rel.startswith(DVC_DIR + "/")


def is_dvc_lock(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] == DVC_LOCK


def dvc_file_outputs(text: str, shown: str, rel: str) -> list[Output]:
    """The outputs a ``*.dvc`` file at ``rel`` (repo-relative) records, as mlver's (a
    pointer each, ``pointer_file`` naming the ``.dvc`` file). Outputs DVC 2 hashed are
    left out unless this mlver reads md5-dos2unix."""
    dvc = parse_dvc_file(text, shown)
    folder = posixpath.dirname(rel)
    out = []
    for o in dvc.outs:
        if not o.digest:
            continue
        path = posixpath.normpath(posixpath.join(folder, dvc.wdir, o.path))
        if check_relative(path):
            raise FormatError(shown, f"'{o.path}' leaves the repository")
        ptr = Pointer(path=posixpath.basename(path), kind=o.kind, digest=o.digest, size=o.size or 0,
                      files=o.files, desc=o.desc)
        out.append(Output(path, o.kind, o.digest, o.size or 0, o.files, pointer_file=rel, pointer=ptr))
    return out


def dvc_lock_stages(text: str, shown: str, rel: str) -> dict[str, StageLock]:
    """The stages a ``dvc.lock`` at ``rel`` records, named and with paths from the top (as
    ``lockfile.stage_locks_from_text`` gives mlver's; without its ``dvc.yaml`` every
    output counts as cached and stage ``wdir`` as the lock's folder)."""
    from mlver.pipeline.lockfile import _moved
    from mlver.pipeline.model import PIPELINE_FILE

    folder = posixpath.dirname(rel)
    stages = parse_dvc_lock(text, shown, folder=folder).stages
    if not folder:
        return stages
    return {f"{folder}/{PIPELINE_FILE}:{n}": _moved(s, f"{folder}/{PIPELINE_FILE}:{n}", folder, into=False)
            for n, s in stages.items()}


def dvc_lock_outputs(text: str, shown: str, rel: str) -> list[Output]:
    """The cached stage outputs a ``dvc.lock`` at ``rel`` records (paths repo-relative)."""
    from mlver.pipeline.lockfile import _outputs

    return _outputs(dvc_lock_stages(text, shown, rel))


# --- dvc.yaml ------------------------------------------------------------------------

UNSUPPORTED_NOTE = "# mlver import-dvc: not supported by mlver, kept as a comment: "


@dataclass(frozen=True)
class DroppedField:
    """A ``dvc.yaml`` field mlver does not support, left out (as a comment)."""

    key: str
    line: int
    where: str  # "top level" or "stage 'NAME'"


def _yaml_block_end(lines: list[str], start: int) -> int:
    """The index after the YAML block that starts at line index ``start``: its key and
    everything indented deeper below it (and a block list written at the key's own
    indentation, ``key:`` then ``- item``)."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    i = start + 1
    while i < len(lines):
        text = lines[i]
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            deeper = len(text) - len(text.lstrip()) > indent
            if not deeper and not (len(text) - len(text.lstrip()) == indent and stripped.startswith("- ")):
                break
        i += 1
    return i


def read_dvc_pipeline(text: str, shown: str, load: Any, base: str) -> tuple[str, Any, list[DroppedField]]:
    """A ``dvc.yaml`` read as mlver's pipeline language (which is DVC's): the text for
    ``mlver.yaml`` (a copy keeping comments, each field mlver does not support commented
    out), the ``Pipeline`` it defines, and the fields left out. Anything else mlver
    cannot read is a FormatError naming the line."""
    from mlver.pipeline.model import parse_pipeline

    lines = text.splitlines(keepends=True)
    dropped: list[DroppedField] = []
    while True:
        try:
            return "".join(lines), parse_pipeline("".join(lines), shown, load, base=base), dropped
        except FormatError as e:
            if "unknown field '" not in e.problem or not e.line or len(dropped) > 1000:
                raise
            at = e.line - 1
            key = e.problem.split("unknown field '", 1)[1].split("'", 1)[0]
            stripped = lines[at].lstrip()
            if not stripped.startswith((f"{key}:", f"'{key}':", f'"{key}":')):
                raise FormatError(shown, f"{e.problem.split(' (known', 1)[0]}: mlver does not support it, and it is "
                                  "not on a line of its own to leave out", line=e.line,
                                  hint=f"put '{key}' on a line of its own (block style) or remove it, then try again"
                                  ) from None
            end = _yaml_block_end(lines, at)
            indent = lines[at][:len(lines[at]) - len(stripped)]
            lines[at] = f"{indent}{UNSUPPORTED_NOTE}{stripped}"
            for i in range(at + 1, end):
                if lines[i].strip():
                    rest = lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip()
                    lines[i] = f"{indent}# {rest}"
            where = e.problem.split(":", 1)[0] if e.problem.startswith("stage '") else "top level"
            dropped.append(DroppedField(key, e.line, where))


# --- dvc.lock -------------------------------------------------------------------------

@dataclass(frozen=True)
class LockConversion:
    """A ``dvc.lock`` as mlver ``StageLock``s (paths relative to the lock's folder)."""

    stages: dict[str, StageLock]


@dataclass(frozen=True)
class Declared:
    """What ``dvc.yaml`` says of one stage that its lock entry does not: the stage's
    ``wdir`` (relative to the lock's folder; DVC's lock paths are relative to it) and,
    per output path (relative to the lock's folder), (is a metrics file, is cached)."""

    wdir: str = "."
    outputs: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)


def _lock_entry(out: DvcOut, path: str, *, cache: bool) -> LockEntry:
    from mlver.pipeline.lockfile import LockEntry

    return LockEntry(path, out.kind, out.digest, out.size or 0, out.files if out.kind == "dir" else None, cache)


def parse_dvc_lock(text: str, shown: str, *, declared: Mapping[str, Declared] | None = None,
                   folder: str = "") -> LockConversion:
    """A ``dvc.lock`` (schema 2.0) as mlver stage locks, paths relative to the lock's
    folder. ``declared``: per stage name, from ``dvc.yaml``: DVC lists a stage's metrics
    files among its ``outs``, mlver records them under ``metrics``; an output missing
    there is an ordinary cached output."""
    from mlver.pipeline.lockfile import StageLock
    from mlver.pipeline.params import flatten

    doc = _doc(text, shown, "lock")
    if doc.get("schema") != "2.0":
        raise FormatError(shown, f"unsupported dvc.lock schema {doc.get('schema')!r} (mlver reads DVC 2 and 3's '2.0')",
                          line=doc.line_of("schema"),
                          hint="run `dvc repro` (or `dvc commit`) with DVC 3 to rewrite it, then import")
    stages_doc = doc.get("stages") or {}
    if not isinstance(stages_doc, LinedMap):
        raise FormatError(shown, "'stages' must be a mapping", line=doc.line_of("stages"))
    declared = declared or {}
    stages: dict[str, StageLock] = {}
    for name, body in stages_doc.items():
        line = stages_doc.line_of(name)
        if not isinstance(body, LinedMap) or not isinstance(body.get("cmd"), (str, list)):
            raise FormatError(shown, f"stage '{name}': expected a mapping with 'cmd'", line=line)
        cmd = body["cmd"]
        if isinstance(cmd, list):
            cmd = "\n".join(str(c) for c in cmd)
        info = declared.get(str(name), Declared())

        def at(path: str) -> str:
            joined = posixpath.normpath(posixpath.join(info.wdir, path))
            if check_relative(posixpath.normpath(posixpath.join(folder, joined))):
                raise FormatError(shown, f"stage '{name}': '{path}' leaves the repository")
            return joined

        def entries(key: str) -> list[DvcOut]:
            items = body.get(key)
            if items is None:
                return []
            if not isinstance(items, LinedList):
                raise FormatError(shown, f"stage '{name}': '{key}' must be a list", line=body.line_of(key))
            out = []
            for i, item in enumerate(items):
                entry = _entry(shown, item, items.line_at(i), where=key)
                if not entry.digest:
                    raise FormatError(shown, f"stage '{name}': '{entry.path}' has no md5", line=items.line_at(i))
                out.append(entry)
            return out

        deps, outs = entries("deps"), entries("outs")
        params_doc = body.get("params") or {}
        if not isinstance(params_doc, dict) or not all(isinstance(v, dict) or v is None for v in params_doc.values()):
            raise FormatError(shown, f"stage '{name}': 'params' must map params files to their values",
                              line=body.line_of("params"))
        # DVC records a whole section as one nested value, mlver's lock records its leaves
        params = {at(str(f)): flatten({str(k): plain(v) for k, v in (vals or {}).items()})
                  for f, vals in params_doc.items()}
        kept: list[LockEntry] = []
        metrics: list[LockEntry] = []
        for o in outs:
            path = at(o.path)
            metric, cache = info.outputs.get(path, (False, True))
            (metrics if metric else kept).append(_lock_entry(o, path, cache=cache))
        stages[str(name)] = StageLock(str(name), str(cmd), tuple(_lock_entry(d, at(d.path), cache=True) for d in deps),
                                      params, tuple(kept), tuple(metrics))
    return LockConversion(stages)


# --- .dvc/config ----------------------------------------------------------------------

# DVC's remote option names that mlver spells otherwise
OPTION_NAMES = {"endpointurl": "endpoint_url", "projectname": "project"}


@dataclass(frozen=True)
class DvcRemote:
    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict)  # DVC's names, from the committed config
    local_options: dict[str, str] = field(default_factory=dict)  # from config.local (secrets)
    in_committed: bool = True  # the remote is (also) in the committed .dvc/config


@dataclass(frozen=True)
class DvcConfig:
    remotes: tuple[DvcRemote, ...] = ()
    default: str | None = None  # `[core] remote` of the committed config
    local_default: str | None = None  # `[core] remote` of config.local (this machine's choice)
    cache_dir: str | None = None  # `[cache] dir`, relative to .dvc/ when relative
    cache_type: str | None = None
    site_cache_dir: str | None = None  # `[core] site_cache_dir`: where DVC keeps its state database


def _read_ini(text: str, shown: str) -> dict[str, dict[str, str]]:
    """DVC's configobj INI: ``[core]``, ``['remote "name"']`` sections."""
    import configparser  # only when a DVC config is read

    parser = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"),
                                          inline_comment_prefixes=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=shown)
    except configparser.Error as e:
        raise FormatError(shown, f"not a DVC config file: {' '.join(str(e).split())}") from None
    out: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        name = section.strip().strip("'").strip()
        out.setdefault(name, {}).update({k: _unquote(v) for k, v in parser.items(section)})
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


_REMOTE_SECTION = re.compile(r'^remote\s+"(.+)"$')


def parse_dvc_config(text: str, shown: str, local_text: str = "", local_shown: str = "") -> DvcConfig:
    """Remotes, the default remote and the cache settings of ``.dvc/config`` and
    ``.dvc/config.local`` (the local file wins, as in DVC)."""
    committed = _read_ini(text, shown)
    local = _read_ini(local_text, local_shown or shown) if local_text else {}
    names: list[str] = []
    for sections in (committed, local):
        for section in sections:
            m = _REMOTE_SECTION.match(section)
            if m and m.group(1) not in names:
                names.append(m.group(1))
    remotes = []
    for name in names:
        section = f'remote "{name}"'
        options = dict(committed.get(section, {}))
        local_options = dict(local.get(section, {}))
        url = local_options.pop("url", None) or options.pop("url", None)
        options.pop("url", None)
        if not url:
            raise FormatError(local_shown if section in local else shown, f"remote '{name}' has no url")
        remotes.append(DvcRemote(name, url, options, local_options, in_committed=section in committed))

    def setting(section: str, key: str) -> str | None:
        return local.get(section, {}).get(key) or committed.get(section, {}).get(key)

    return DvcConfig(tuple(remotes), committed.get("core", {}).get("remote"), local.get("core", {}).get("remote"),
                     setting("cache", "dir"), setting("cache", "type"),
                     setting("core", "site_cache_dir"))


# --- DVC's state database -------------------------------------------------------------

# Where DVC 3 keeps per-repository state (platformdirs' site cache dir) unless
# `core.site_cache_dir` says otherwise: `<dir>/repo/<token>/hashes/local/cache.db`.
SITE_CACHE_DIRS = ("/var/tmp/dvc", "/Library/Caches/dvc")


@dataclass(frozen=True)
class DvcStateEntry:
    """What DVC's state database remembers of one file: the MD5 it hashed, valid while
    the file's (inode, mtime, size) give the same ``checksum``."""

    path: str  # absolute
    checksum: str
    md5: str


def state_checksum(st: Any) -> str:
    """DVC's validity token for a file's stat: ``int(fsspec.utils.tokenize([ino, mtime,
    size]), 16)`` as a string (dvc-data's ``_checksum``)."""
    import hashlib

    token = hashlib.md5(str(([st.st_ino, st.st_mtime, st.st_size],)).encode(), usedforsecurity=False).hexdigest()
    return str(int(token, 16))


def state_entries(root: str, config: DvcConfig) -> list[DvcStateEntry]:
    """The files below ``root`` whose MD5 DVC's state database remembers: the rows of
    every database in the site cache dirs (an older repository at the same path has one
    too: a row counts only while its checksum matches the file), unreadable ones skipped."""
    import glob
    import json
    import sqlite3

    dirs = [config.site_cache_dir] if config.site_cache_dir else list(SITE_CACHE_DIRS)
    prefix = root.rstrip(os.sep) + os.sep
    found: list[DvcStateEntry] = []
    for d in dirs:
        for db in sorted(glob.glob(os.path.join(os.path.expanduser(d), "repo", "*", "hashes", "local", "cache.db"))):
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    rows = conn.execute("SELECT key, value FROM Cache WHERE key >= ? AND key < ?",
                                        (prefix, prefix[:-1] + chr(ord(os.sep) + 1))).fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:
                continue
            for key, value in rows:
                try:
                    doc = json.loads(value)
                    md5 = doc["hash_info"]["md5"]
                    checksum = doc["checksum"]
                except (TypeError, ValueError, KeyError):
                    continue
                if isinstance(key, str) and isinstance(md5, str) and _MD5.fullmatch(md5) and isinstance(checksum, str):
                    found.append(DvcStateEntry(key, checksum, md5))
    return found


def remote_url_for_mlver(url: str) -> str:
    """A DVC remote URL as mlver's: a relative local path is relative to ``.dvc/`` in
    DVC's config, to the project root in mlver's."""
    if "://" in url or posixpath.isabs(url) or url.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", url):
        return url
    return posixpath.normpath(posixpath.join(DVC_DIR, url.replace("\\", "/")))

