"""Digests of stage dependencies and outputs in the workspace, and recording outputs:
cached outputs go into the cache exactly like ``mlver add`` data; outputs that stay in
Git (``cache: false``, metrics) are hashed, and copied into the cache when the run cache
needs to bring them back later.
"""

from __future__ import annotations

import os
import stat
import time

from mlver import git
from mlver.errors import FormatError, MlverError, PathError
from mlver.fsutil import confine, is_executable, remove_path, replace_with_copy
from mlver.hashing import DEFAULT_ALGO, algo_of
from mlver.pipeline.lockfile import LockEntry
from mlver.pipeline.model import PIPELINE_FILE, Out, Stage
from mlver.pointer import POINTER_SUFFIX, Entry, Manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import (Output, current_dir_summary, current_file_digest, current_manifest, missing,
                             scan_dir, store_output)


class Inspector:
    """Current digests of workspace paths, memoised for one command (call ``forget``
    after anything in the workspace changes)."""

    def __init__(self, repo: Repo, progress: Progress = NO_PROGRESS) -> None:
        self.repo = repo
        self.progress = progress
        self._memo: dict[tuple[str, str], LockEntry | None] = {}
        self._algos: dict[str, str] | None = None

    def algo_for(self, path: str) -> str:
        """The algorithm ``path`` is hashed with: that of the lock entry or pointer that
        records it (an output keeps its algorithm, and a dependency is compared in the one
        it was recorded with), else ``core.hash``."""
        if self._algos is None:
            self._algos = recorded_algorithms(self.repo)
        return self._algos.get(path) or self.repo.hash_algo

    def entry(self, path: str, algo: str | None = None) -> LockEntry | None:
        """The path's kind, digest and size now (None when it does not exist)."""
        key = (path, algo or self.algo_for(path))
        if key not in self._memo:
            self._memo[key] = self._compute(*key)
        return self._memo[key]

    def _compute(self, path: str, algo: str) -> LockEntry | None:
        full = self.repo.abs(path)
        if os.path.isdir(full) and not os.path.islink(full):
            digest, size, files = current_dir_summary(self.repo, path, progress=self.progress, algo=algo)
            return LockEntry(path, "dir", digest, size, files)
        got = current_file_digest(self.repo, path, progress=self.progress, algo=algo)
        if got is None:
            return None
        return LockEntry(path, "file", got[0], got[1])

    def assume(self, entry: LockEntry) -> None:
        """Answer ``entry`` for its path from now on: what a planned step (a run-cache
        restore in ``repro --dry-run``) will put there."""
        self._memo[(entry.path, algo_of(entry.digest))] = entry
        self._memo[(entry.path, self.algo_for(entry.path))] = entry

    def forget(self) -> None:
        self._memo.clear()


def recorded_algorithms(repo: Repo) -> dict[str, str]:
    """Path -> algorithm, for every path the workspace's locks and pointers record with
    an algorithm other than the default (an imported DVC project's md5)."""
    from mlver.pipeline.lockfile import read_lock
    from mlver.workspace import pointer_outputs

    out: dict[str, str] = {}
    for s in read_lock(repo).values():
        for e in s.deps + s.products:
            if algo_of(e.digest) != DEFAULT_ALGO:
                out[e.path] = algo_of(e.digest)
    for o in pointer_outputs(repo):
        if algo_of(o.digest) != DEFAULT_ALGO:
            out[o.path] = algo_of(o.digest)
    return out


def _snapshot(repo: Repo, path: str, algo: str) -> LockEntry:
    """Copy the content at ``path`` into the cache without touching the workspace file
    (it stays in Git, editable)."""
    cache = repo.cache
    full = repo.abs(path)
    if os.path.isdir(full) and not os.path.islink(full):
        entries = []
        for e in scan_dir(repo, path):
            t = time.time_ns()
            known = repo.state.lookup(f"{path}/{e.rel}", e.st)
            digest, size = cache.store_file(e.path, known_digest=known if known and algo_of(known) == algo else None,
                                            algo=algo)
            repo.state.record(f"{path}/{e.rel}", e.st, digest, read_ns=t)
            entries.append(Entry(e.rel, digest, size, is_executable(e.st.st_mode)))
        manifest = Manifest.build(entries, algo)
        digest = cache.store_bytes(manifest.dumps(), manifest=True, algo=algo)
        return LockEntry(path, "dir", digest, manifest.size, len(manifest.entries))
    st = os.stat(full)
    t = time.time_ns()
    known = repo.state.lookup(path, st)
    digest, size = cache.store_file(full, known_digest=known if known and algo_of(known) == algo else None, algo=algo)
    repo.state.record(path, st, digest, read_ns=t)
    return LockEntry(path, "file", digest, size)


def record_product(repo: Repo, out: Out, inspector: Inspector, *, snapshot: bool,
                   progress: Progress = NO_PROGRESS) -> LockEntry:
    """Record one output or metrics file that exists in the workspace. One the command
    made as a symbolic link (other than mlver's own link into the cache) is refused:
    its content would be another path's."""
    full = repo.abs(out.path)
    if os.path.islink(full) and not os.path.realpath(full).startswith(os.path.realpath(repo.cache_dir) + os.sep):
        raise PathError(out.path, f"is a symbolic link (to {os.readlink(full)}) that the stage's command made; "
                                  "mlver tracks files and folders, not links",
                        hint="make the command write (or copy) the file itself")
    algo = inspector.algo_for(out.path)
    if out.cache:
        stored = store_output(repo, out.path, progress=progress, algo=algo)
        repo.state.set_placed(out.path, stored.kind, stored.digest)
        return LockEntry(out.path, stored.kind, stored.digest, stored.size, stored.files, True)
    if snapshot:
        e = _snapshot(repo, out.path, algo)
    else:
        found = inspector.entry(out.path)
        assert found is not None
        e = found
    return LockEntry(e.path, e.kind, e.digest, e.size, e.files, False)


def keep_edits(repo: Repo, stage: Stage, recorded: dict[str, LockEntry]) -> list[tuple[str, str]]:
    """Store in the cache every output whose workspace content is not there yet, so the
    stage can replace it without losing anything (SPEC guarantee 1). Returns the
    (path, digest) of content that differs from what the lock recorded: hand edits."""
    cache = repo.cache
    kept = []
    for out in stage.products:
        full = repo.abs(out.path)
        if not os.path.lexists(full):
            continue
        old = recorded.get(out.path)
        algo = algo_of(old.digest) if old is not None else repo.hash_algo
        if os.path.isdir(full) and not os.path.islink(full):
            manifest = current_manifest(repo, out.path, algo=algo)
            pointer = next((e.path for e in manifest.entries if e.path.endswith(POINTER_SUFFIX)), None)
            if pointer is not None:  # the command would delete a Git-tracked pointer with the folder
                raise FormatError(PIPELINE_FILE, f"stage '{stage.name}': output '{out.path}' holds the pointer "
                                  f"file {out.path}/{pointer}", line=out.line or stage.line,
                                  hint=f"stop tracking it (`mlver remove {out.path}/{pointer}`) or move it "
                                       "out of the folder")
            fresh = [e for e in manifest.entries if not cache.has(e.digest)]
            for e in fresh:
                cache.store_file(os.path.join(full, *e.path.split("/")), known_digest=e.digest)
            stored_new = bool(fresh)
            digest = cache.store_bytes(manifest.dumps(), manifest=True, algo=algo)
        else:
            got = current_file_digest(repo, out.path, algo=algo)
            if got is None:
                continue
            digest = got[0]
            stored_new = not cache.has(digest)
            if stored_new:
                cache.store_file(full, known_digest=digest)
        if stored_new and (old is None or old.digest != digest):
            kept.append((out.path, digest))
    return kept


def refuse_git_tracked(repo: Repo, stage: Stage) -> None:
    """A cached output must not be a file Git tracks: running the stage would delete it
    and the cache would take it over (``cache: false`` outputs, like metrics, may be)."""
    cached = [o for o in stage.products if o.cache]
    if repo.scm_root is None or not cached:
        return
    tracked = set(git.tracked(repo.root, [repo.abs(o.path) for o in cached]))
    for out in cached:
        if out.path in tracked or any(t.startswith(out.path + "/") for t in tracked):
            raise PathError(out.path, f"is an output of stage '{stage.name}' and is tracked by Git",
                            hint=f"stop tracking it in Git (`git rm -r --cached {out.path}`), or mark the "
                                 "output `cache: false` to keep it in Git")


def clear_products(repo: Repo, stage: Stage) -> None:
    """Before the command runs: remove its outputs, except ``persist`` ones, which become
    plain writable files (never links into the cache the command could write through)."""
    for out in stage.products:
        full = repo.abs(out.path)
        confine(repo.root, full)
        if not os.path.lexists(full):
            parent = os.path.dirname(full)
            os.makedirs(parent, exist_ok=True)
            continue
        if not out.persist:
            remove_path(full, inside=repo.root)
            continue
        if os.path.isdir(full):
            confine(repo.root, os.path.join(full, "-"))  # a persisted folder reached through a link out
        paths = [full] if not os.path.isdir(full) or os.path.islink(full) else [
            os.path.join(d, f) for d, _, fs in os.walk(full) for f in fs]
        for p in paths:
            _unlink_from_cache(repo, p)


def _unlink_from_cache(repo: Repo, path: str) -> None:
    st = os.lstat(path)
    if not (stat.S_ISLNK(st.st_mode) or st.st_nlink > 1 or not st.st_mode & stat.S_IWUSR):
        return
    replace_with_copy(path, path, 0o755 if is_executable(os.stat(path).st_mode) else 0o644, inside=repo.root)


def restore_plain(repo: Repo, entry: LockEntry) -> None:
    """Put an output that stays in Git back from its cache copy as plain files."""
    cache = repo.cache
    full = repo.abs(entry.path)
    if entry.kind == "file":
        files = [(full, entry.digest, False)]
        if os.path.isdir(full) and not os.path.islink(full):
            remove_path(full, inside=repo.root)
    else:
        manifest = cache.manifest(entry.digest)
        if manifest is None:
            raise MlverError(f"{entry.path}: manifest {entry.digest} is not in the cache")
        if os.path.lexists(full):
            remove_path(full, inside=repo.root)
        files = [(os.path.join(full, *e.path.split("/")), e.digest, e.exec) for e in manifest.entries]
    for dest, digest, exe in files:
        confine(repo.root, dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        replace_with_copy(cache.path(digest), dest, 0o755 if exe else 0o644, inside=repo.root)


def products_restorable(repo: Repo, entries: list[LockEntry]) -> bool:
    """Whether every object the entries name (folders: manifest and files) is cached."""
    return not missing(repo.cache, [Output(e.path, e.kind, e.digest, e.size, e.files) for e in entries])
