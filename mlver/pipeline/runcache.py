"""The run cache: what a stage produced, keyed by everything it ran with.

The key is the xxh3-128 digest of a canonical JSON document of (cmd, wdir, every dep path
and digest, every param value, every output and metrics path with its cache flag). An
entry lists the outputs and metrics the run produced (kind, digest, size); their bytes
are ordinary objects in the cache (outputs that stay in Git are copied in too). Entries
live in the cache root at ``runs/xxh3-128/<key[:2]>/<key[2:]>``, the same layout on
remotes, so ``push/pull --run-cache`` transfer that subtree together with
``referenced_objects``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from mlver.cache import ObjectRef
from mlver.errors import FormatError
from mlver.fsutil import atomic_write, unlink_quiet
from mlver.hashing import DEFAULT_ALGO, digest_bytes, is_digest
from mlver.pipeline.lockfile import LockEntry
from mlver.pipeline.model import Stage
from mlver.repo import Repo

RUNS_DIR = f"runs/{DEFAULT_ALGO}"


def entry_relpath(key: str) -> str:
    """The entry's path inside a cache or remote (POSIX)."""
    return f"{RUNS_DIR}/{key[:2]}/{key[2:]}"


def run_key(stage: Stage, deps: list[LockEntry], params: dict[str, dict[str, Any]]) -> str:
    doc = {
        "cmd": stage.cmd,
        "wdir": stage.wdir,
        "deps": sorted([d.path, d.digest] for d in deps),
        "params": {f: dict(sorted(v.items())) for f, v in sorted(params.items())},
        "outs": sorted([o.path, o.cache] for o in stage.outs),
        "metrics": sorted([m.path, m.cache] for m in stage.metrics),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return digest_bytes(text.encode("utf-8"))


@dataclass(frozen=True)
class RunEntry:
    key: str
    stage: str
    outs: tuple[LockEntry, ...]
    metrics: tuple[LockEntry, ...]

    @property
    def products(self) -> tuple[LockEntry, ...]:
        return self.outs + self.metrics


def _entry_json(e: LockEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": e.path, "kind": e.kind, "digest": e.digest, "size": e.size}
    if e.kind == "dir":
        doc["files"] = e.files
    doc["cache"] = e.cache
    return doc


def save(repo: Repo, key: str, stage: str, outs: tuple[LockEntry, ...], metrics: tuple[LockEntry, ...]) -> None:
    doc = {"version": 1, "hash": DEFAULT_ALGO, "stage": stage,
           "outs": [_entry_json(e) for e in outs], "metrics": [_entry_json(e) for e in metrics]}
    data = json.dumps(doc, indent=1, sort_keys=False).encode("utf-8") + b"\n"
    atomic_write(os.path.join(repo.cache_dir, *entry_relpath(key).split("/")), data, fsync=repo.fsync)


def parse_entry(data: bytes, key: str) -> RunEntry:
    shown = f"run-cache entry {key}"
    try:
        doc = json.loads(data)
        if doc.get("version") != 1 or doc.get("hash") != DEFAULT_ALGO:
            raise ValueError("unknown version or hash")

        def entries(name: str) -> tuple[LockEntry, ...]:
            out = []
            for e in doc.get(name) or []:
                if e["kind"] not in ("file", "dir") or not is_digest(e["digest"]):
                    raise ValueError(f"bad entry {e!r}")
                out.append(LockEntry(str(e["path"]), e["kind"], e["digest"], int(e["size"]),
                                     int(e["files"]) if e["kind"] == "dir" else None, bool(e.get("cache", True))))
            return tuple(out)

        return RunEntry(key, str(doc.get("stage", "")), entries("outs"), entries("metrics"))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise FormatError(shown, f"corrupt entry: {e}") from None


def lookup(repo: Repo, key: str) -> RunEntry | None:
    path = os.path.join(repo.cache_dir, *entry_relpath(key).split("/"))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return parse_entry(data, key)
    except FormatError as e:
        import logging  # only on this rare path: a damaged entry is a miss

        logging.getLogger(__name__).debug("ignoring %s", e)
        return None


def iter_entries(repo: Repo) -> Iterator[RunEntry]:
    base = os.path.join(repo.cache_dir, *RUNS_DIR.split("/"))
    try:
        prefixes = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for p in prefixes:
        folder = os.path.join(base, p)
        if len(p) != 2 or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            key = p + name
            if is_digest(key):
                entry = lookup(repo, key)
                if entry is not None:
                    yield entry


def referenced_objects(repo: Repo) -> list[ObjectRef]:
    """Every object the local run-cache entries reference: files, manifests, and the
    files listed in those manifests (when the manifest is in the cache)."""
    refs: dict[ObjectRef, None] = {}
    for entry in iter_entries(repo):
        for e in entry.products:
            if e.kind == "file":
                refs[ObjectRef(e.digest, False)] = None
                continue
            refs[ObjectRef(e.digest, True)] = None
            manifest = repo.cache.manifest(e.digest)
            if manifest is not None:
                for x in manifest.entries:
                    refs[ObjectRef(x.digest, False)] = None
    return list(refs)


def prune(repo: Repo) -> int:
    """Remove the local entries whose cached objects are no longer all in the cache (gc
    collected them: `gc --no-run-cache`); they could never restore a run. Returns how many."""
    from mlver.pipeline.record import products_restorable

    removed = 0
    for entry in list(iter_entries(repo)):
        if not products_restorable(repo, list(entry.products)):
            path = os.path.join(repo.cache_dir, *entry_relpath(entry.key).split("/"))
            unlink_quiet(path)
            removed += 1
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:  # other entries share the folder
                pass
    return removed
