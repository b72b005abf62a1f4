"""``mlver.lock``: what each stage last ran with and produced. Parsed into frozen
dataclasses; dumped byte-stably in SPEC's layout (stages in ``mlver.yaml`` order, deps
and outs sorted by path). Paths are relative to the lock's folder: the repository
root for the top ``mlver.lock``, ``sub`` for ``sub/mlver.lock`` beside ``sub/mlver.yaml``. An output entry
carries ``cache: false`` only when it stays in Git (``cache: true`` for a cached
metrics file), so the lock alone says which outputs live in the cache.
"""

from __future__ import annotations

import functools
import os
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from mlver.errors import FormatError
from mlver.fsutil import atomic_write_text, check_relative
from mlver.hashing import ALGORITHMS, DEFAULT_ALGO, HEX_LEN, algo_of, hex_of
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE, split_stage_name
from mlver.pipeline.yamlio import LinedList, LinedMap, dump_value, load_lined, plain
from mlver.pointer import parse_hex, yaml_scalar
from mlver.repo import Repo
from mlver.workspace import Output

HEADER = "# mlver lock: written by mlver; commit it together with mlver.yaml\n"
ENTRY_KEYS = ("path", "kind", "hash", "digest", "size", "files", "cache")
STAGE_KEYS = ("cmd", "deps", "params", "outs", "metrics")


@dataclass(frozen=True)
class LockEntry:
    """A dependency, output or metrics file as recorded: its digest and size."""

    path: str
    kind: str  # "file" or "dir"
    digest: str
    size: int
    files: int | None = None
    cache: bool = True


@dataclass(frozen=True)
class StageLock:
    name: str
    cmd: str
    deps: tuple[LockEntry, ...] = ()
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> key -> value
    outs: tuple[LockEntry, ...] = ()
    metrics: tuple[LockEntry, ...] = ()

    @property
    def products(self) -> tuple[LockEntry, ...]:
        return self.outs + self.metrics


def _dump_entries(key: str, entries: Iterable[LockEntry], cache_default: bool, algo: str) -> list[str]:
    """``algo``: the lock's top-level algorithm; an entry of another one says its own."""
    rows = sorted(entries, key=lambda e: e.path)
    if not rows:
        return []
    out = [f"    {key}:\n"]
    for e in rows:
        own = algo_of(e.digest)
        out.append(f"    - path: {yaml_scalar(e.path)}\n      kind: {e.kind}\n"
                   + (f"      hash: {own}\n" if own != algo else "")
                   + f"      digest: {dump_hex(e.digest)}\n      size: {e.size}\n")
        if e.kind == "dir":
            out.append(f"      files: {e.files or 0}\n")
        if e.cache != cache_default:
            out.append(f"      cache: {'true' if e.cache else 'false'}\n")
    return out


def dump_hex(digest: str) -> str:
    """A digest's hex as a YAML scalar (quoted when all digits: YAML would read a number)."""
    h = hex_of(digest)
    return repr(h) if h.isdigit() else h


def dump_lock(stages: Iterable[StageLock]) -> str:
    """The lock's text. Its top-level ``hash`` is the default algorithm unless every entry
    is of one other (an imported DVC lock: ``md5``); entries of another algorithm carry
    their own ``hash``."""
    stages = list(stages)
    algos = {algo_of(e.digest) for s in stages for e in s.deps + s.outs + s.metrics}
    algo = algos.pop() if len(algos) == 1 else DEFAULT_ALGO
    out = [HEADER, "version: 1\n", f"hash: {algo}\n"]
    body = []
    for s in stages:
        body.append(f"  {yaml_scalar(s.name)}:\n    cmd: {yaml_scalar(s.cmd)}\n")
        body += _dump_entries("deps", s.deps, True, algo)
        if s.params:
            body.append("    params:\n")
            for file, values in sorted(s.params.items()):
                body.append(f"      {yaml_scalar(file)}:{'' if values else ' {}'}\n")
                for k, v in sorted(values.items()):
                    body.append(f"        {yaml_scalar(k)}: {dump_value(v)}\n")
        body += _dump_entries("outs", s.outs, True, algo)
        body += _dump_entries("metrics", s.metrics, False, algo)
    out.append("stages:\n" if body else "stages: {}\n")
    return "".join(out + body)


# --- parsing ---------------------------------------------------------------------------

def parse_lock(text: str, shown: str = LOCK_FILE, folder: str = "") -> dict[str, StageLock]:
    """A lock file's stages; ``folder`` is the lock's folder (paths in it may go up out
    of the folder, never out of the repository)."""
    doc = load_lined(text, shown, kind="lock")
    if not isinstance(doc, LinedMap):
        raise FormatError(shown, "not an mlver lock file (expected a YAML mapping)")
    if doc.get("version") != 1:
        raise FormatError(shown, f"unsupported lock version {doc.get('version')!r} (this mlver reads version 1)",
                          line=doc.line_of("version"))
    algo = doc.get("hash", DEFAULT_ALGO)
    if algo not in ALGORITHMS:
        raise FormatError(shown, f"unknown hash {algo!r} (this mlver reads {', '.join(ALGORITHMS)})",
                          line=doc.line_of("hash"))
    stages_doc = doc.get("stages") or {}
    if not isinstance(stages_doc, dict):
        raise FormatError(shown, "'stages' must be a mapping", line=doc.line_of("stages"))
    result = {}
    for name, body in stages_doc.items():
        line = stages_doc.line_of(name) if isinstance(stages_doc, LinedMap) else None
        result[str(name)] = _parse_stage(shown, str(name), body, line, folder, algo)
    return result


def _parse_stage(shown: str, name: str, body: Any, line: int | None, folder: str = "",
                 lock_algo: str = DEFAULT_ALGO) -> StageLock:
    def bad(problem: str, at: int | None = None) -> FormatError:
        return FormatError(shown, f"stage '{name}': {problem}", line=at or line)

    if not isinstance(body, LinedMap) or not isinstance(body.get("cmd"), str):
        raise bad("expected a mapping with 'cmd'")
    for key in body:
        if key not in STAGE_KEYS:
            raise bad(f"unknown field '{key}'", body.line_of(key))

    def entries(key: str, cache_default: bool) -> tuple[LockEntry, ...]:
        items = body.get(key)
        if items is None:
            return ()
        if not isinstance(items, LinedList):
            raise bad(f"'{key}' must be a list", body.line_of(key))
        out = []
        for i, item in enumerate(items):
            at = items.line_at(i)
            if not isinstance(item, dict):
                raise bad(f"each '{key}' entry must be a mapping", at)
            for k in item:
                if k not in ENTRY_KEYS:
                    raise bad(f"unknown field '{k}' in '{key}'", at)
            path, kind, digest, size = item.get("path"), item.get("kind"), item.get("digest"), item.get("size")
            if not isinstance(path, str) or check_relative(path if not folder or path.startswith("/") else
                                                           posixpath.normpath(posixpath.join(folder, path))):
                raise bad(f"bad path {path!r} in '{key}'", at)
            if kind not in ("file", "dir"):
                raise bad(f"'{path}': kind must be 'file' or 'dir'", at)
            algo = item.get("hash", lock_algo)
            if algo not in ALGORITHMS:
                raise bad(f"'{path}': unknown hash {algo!r}", at)
            digest = parse_hex(digest, algo)
            if digest is None:
                raise bad(f"'{path}': digest must be {HEX_LEN[algo]} lower-case hex digits ({algo})", at)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise bad(f"'{path}': size must be a non-negative integer", at)
            files = item.get("files")
            if kind == "dir" and (not isinstance(files, int) or isinstance(files, bool)):
                raise bad(f"'{path}': a folder needs 'files'", at)
            cache = item.get("cache", cache_default)
            if not isinstance(cache, bool):
                raise bad(f"'{path}': cache must be true or false", at)
            out.append(LockEntry(path, kind, digest, size, files if kind == "dir" else None, cache))
        return tuple(out)

    params_doc = body.get("params") or {}
    if not isinstance(params_doc, dict) or not all(isinstance(v, dict) or v is None for v in params_doc.values()):
        raise bad("'params' must map params files to their values", body.line_of("params"))
    params = {str(f): {str(k): plain(v) for k, v in (vals or {}).items()} for f, vals in params_doc.items()}
    return StageLock(name, body["cmd"], entries("deps", True), params, entries("outs", True),
                     entries("metrics", False))


def read_lock(repo: Repo) -> dict[str, StageLock]:
    """The stages recorded in the workspace's lock files (empty without one): the top
    ``mlver.lock`` and one beside each ``sub/mlver.yaml``, whose stages are named
    ``sub/mlver.yaml:NAME`` and whose paths are relative to ``sub`` (returned
    repo-relative)."""
    out: dict[str, StageLock] = {}
    for rel in lock_files(repo):
        try:
            with open(repo.abs(rel), encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except UnicodeDecodeError:
            raise FormatError(rel, "not UTF-8 text") from None
        stages = repo.state.parsed("lock" if rel == LOCK_FILE else f"lock {rel}", text,
                                   functools.partial(_parse_at, rel))
        out.update(stages)
    return out


def lock_files(repo: Repo) -> list[str]:
    """The lock files of the workspace, the top one first."""
    from mlver.workspace import pipeline_files

    files = pipeline_files(repo, LOCK_FILE)
    if LOCK_FILE not in files and os.path.isfile(repo.abs(LOCK_FILE)):
        files.insert(0, LOCK_FILE)  # the top lock counts even when Git ignores it
    return files


def lock_file_of(stage_name: str) -> str:
    """The lock file that records ``stage_name`` (``sub/mlver.yaml:train`` -> ``sub/mlver.lock``)."""
    folder = posixpath.dirname(split_stage_name(stage_name)[0])
    return f"{folder}/{LOCK_FILE}" if folder else LOCK_FILE


def _parse_at(rel: str, text: str) -> dict[str, StageLock]:
    """A lock file's text, its stages named and its paths given from the top."""
    folder = posixpath.dirname(rel)
    stages = parse_lock(text, rel, folder)
    if not folder:
        return stages
    return {f"{folder}/{PIPELINE_FILE}:{n}": _moved(s, f"{folder}/{PIPELINE_FILE}:{n}", folder, into=False)
            for n, s in stages.items()}


def _moved(stage: StageLock, name: str, folder: str, *, into: bool) -> StageLock:
    """``stage`` renamed, its paths made relative to ``folder`` (``into``) or from the top."""
    def path(p: str) -> str:
        return posixpath.relpath(p, folder) if into else posixpath.normpath(posixpath.join(folder, p))

    def entries(es: tuple[LockEntry, ...]) -> tuple[LockEntry, ...]:
        return tuple(replace(e, path=path(e.path)) for e in es)

    return replace(stage, name=name, deps=entries(stage.deps), outs=entries(stage.outs),
                   metrics=entries(stage.metrics), params={path(f): v for f, v in stage.params.items()})


def write_lock(repo: Repo, stages: dict[str, StageLock], order: list[str]) -> list[str]:
    """Write the lock files atomically: each pipeline file's stages in ``order`` (the
    pipeline's), others pruned. Returns the lock files that changed."""
    by_file: dict[str, list[StageLock]] = {}
    for rel in lock_files(repo):
        by_file[rel] = []  # a lock whose stages all left is rewritten empty
    for n in order:
        if n in stages:
            by_file.setdefault(lock_file_of(n), []).append(stages[n])
    changed = []
    for rel, entries in by_file.items():
        folder = posixpath.dirname(rel)
        if folder:
            entries = [_moved(s, split_stage_name(s.name)[1], folder, into=True) for s in entries]
        if _write_one(repo, rel, dump_lock(entries)):
            changed.append(rel)
            if rel not in repo.found.setdefault(LOCK_FILE, []):
                repo.found[LOCK_FILE].append(rel)
    return changed


def _write_one(repo: Repo, rel: str, text: str) -> bool:
    path = repo.abs(rel)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text, fsync=repo.fsync, inside=repo.root)
    return True


# --- outputs for the data commands ----------------------------------------------------

def _outputs(stages: dict[str, StageLock]) -> list[Output]:
    return [Output(e.path, e.kind, e.digest, e.size, e.files, pointer_file=None, stage=s.name)
            for s in stages.values() for e in sorted(s.products, key=lambda e: e.path) if e.cache]


def lock_outputs(repo: Repo) -> list[Output]:
    """Cached stage outputs recorded in the workspace's lock (``stage`` set, no pointer)."""
    return _outputs(read_lock(repo))


def stage_locks_from_text(text: str, shown: str, rel: str = LOCK_FILE) -> dict[str, StageLock]:
    """The stages of a lock read from Git history (``rel``: its path in the project, so a
    subfolder's lock gives names and paths from the top)."""
    return _parse_at(rel, text) if posixpath.dirname(rel) else parse_lock(text, shown)


def outputs_from_lock_text(text: str, shown: str, rel: str = LOCK_FILE) -> list[Output]:
    """Cached stage outputs of a lock read from Git history."""
    return _outputs(stage_locks_from_text(text, shown, rel))


