"""What is tracked, how the workspace differs from it, and putting objects back into it.

An *output* is a tracked file or folder: named by a pointer file (``NAME.mlver``) or by
a pipeline stage in ``mlver.lock``. Digests of workspace files come from the state memo
when the file's stat still matches, and are computed (in parallel) otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

from mlver import git
from mlver.cache import Cache, ObjectRef
from mlver.errors import ChecksumMismatch, DanglingLink, FormatError, PathError
from mlver.fsutil import (TMP_MARK, WalkEntry, check_names, confine, inside_root, is_executable, parallel_map,
                          is_stale_tmp, remove_path, sweep_stale_tmp, unlink_confined, unlink_quiet, walk_files)
from mlver.hashing import DEFAULT_ALGO, DVC_LISTED, algo_of, digest_bytes, digest_file
from mlver.pointer import POINTER_SUFFIX, Entry, Manifest, Pointer, read_pointer
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.state import Placed, racy

# Local file work is syscall-bound: one thread per core; more only fight over the GIL.
WORKERS = int(os.environ.get("MLVER_JOBS", "0")) or (os.cpu_count() or 2)


@dataclass(frozen=True)
class Output:
    path: str  # repo-relative POSIX path of the data
    kind: str  # "file" or "dir"
    digest: str
    size: int
    files: int | None = None
    pointer_file: str | None = None  # repo-relative path of the pointer, if any
    stage: str | None = None  # the stage that produces it, if any
    pointer: Pointer | None = None


# --- finding outputs -------------------------------------------------------------------

PIPELINE_NAMES = ("mlver.yaml", "mlver.lock")


def pointer_files(repo: Repo) -> list[str]:
    """Repo-relative paths of every pointer file in the workspace (listed afresh each
    time: commands add pointers as they go). The first listing of a command also finds
    the pipeline files (``pipeline_files``): one walk of the workspace for both."""
    def is_pointer(name: str) -> bool:
        return name.endswith(POINTER_SUFFIX)

    if PIPELINE_NAMES[0] in repo.found:
        found = _project_files(repo, [f"*{POINTER_SUFFIX}"], is_pointer)
    else:
        found = _project_files(repo, [f"*{POINTER_SUFFIX}", *(f"*{n}" for n in PIPELINE_NAMES)],
                               lambda f: is_pointer(f) or f in PIPELINE_NAMES)
        _remember_pipeline_files(repo, [p for p in found if p.rsplit("/", 1)[-1] in PIPELINE_NAMES])
    pointers = []
    for p in found:
        name = p.rsplit("/", 1)[-1]
        if name.startswith(TMP_MARK):  # a pointer being written, or half-written by a killed mlver
            if is_stale_tmp(name):
                unlink_quiet(repo.abs(p))
        elif is_pointer(name):
            pointers.append(p)
    return pointers


def pipeline_files(repo: Repo, name: str) -> list[str]:
    """Repo-relative paths of every file called ``name`` (``mlver.yaml`` or
    ``mlver.lock``) in the workspace, the top one first. Both names are found in one
    listing, remembered for the command (``Repo.found``; writers of such files add them)."""
    if name not in repo.found:
        _remember_pipeline_files(repo, _project_files(repo, [f"*{n}" for n in PIPELINE_NAMES],
                                                      lambda f: f in PIPELINE_NAMES))
    return list(repo.found.get(name, []))


def _remember_pipeline_files(repo: Repo, found: list[str]) -> None:
    # a pipeline file below the top that .mlverignore names is not a pipeline (a docs example)
    found = [p for p in found if "/" not in p or not repo.ignore.ignored(p, False)]
    for n in PIPELINE_NAMES:
        repo.found[n] = sorted((p for p in found if p.rsplit("/", 1)[-1] == n), key=lambda p: (p != n, p))


def has_pipeline(repo: Repo) -> bool:
    """Whether the project has a pipeline file (``mlver.yaml`` at the top or below)."""
    return os.path.isfile(repo.abs("mlver.yaml")) or bool(pipeline_files(repo, "mlver.yaml"))


def has_lock(repo: Repo) -> bool:
    """Whether the project has a lock file (``mlver.lock`` at the top or below)."""
    return os.path.isfile(repo.abs("mlver.lock")) or bool(pipeline_files(repo, "mlver.lock"))


def _project_files(repo: Repo, patterns: list[str], match: Callable[[str], bool]) -> list[str]:
    """Files of the project whose name ``match``es: tracked by Git or untracked and not
    ignored (without Git: a walk that skips .git, .mlver and tracked folders)."""
    if repo.scm_root is not None:
        # `git ls-files` run in the project folder prints paths relative to it; its '*'
        # matches '/' too, so the patterns find the files at every depth.
        return sorted(p for p in git.list_files(repo.root, *patterns)
                      if match(p.rsplit("/", 1)[-1]) and os.path.isfile(repo.abs(p)))
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(repo.root):
        rel_dir = os.path.relpath(dirpath, repo.root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        names = set(filenames)
        dirnames[:] = [d for d in dirnames if d not in (".git", ".mlver") and d + POINTER_SUFFIX not in names]
        out.extend(rel_dir + f for f in filenames if match(f))
    return sorted(out)


def data_path_of(repo: Repo, pointer_rel: str, pointer: Pointer) -> str:
    folder = os.path.dirname(pointer_rel)
    joined = f"{folder}/{pointer.path}" if folder else pointer.path
    rel = inside_root(repo.root, repo.abs(joined), shown=pointer_rel)
    return rel


def load_output(repo: Repo, pointer_rel: str) -> Output:
    ptr = read_pointer(repo.abs(pointer_rel), pointer_rel)
    try:
        path = data_path_of(repo, pointer_rel, ptr)
    except PathError as e:
        raise FormatError(pointer_rel, f"'path': {ptr.path} leaves the repository ({e.message.split(': ', 1)[-1]})") from None
    return Output(path, ptr.kind, ptr.digest, ptr.size, ptr.files, pointer_file=pointer_rel, pointer=ptr)


def pointer_outputs(repo: Repo) -> list[Output]:
    """Every output named by a pointer file. Two pointer files naming one path (a copy,
    a merge) would make checkout flip between their versions: refused, naming both."""
    outs = [load_output(repo, p) for p in pointer_files(repo)]
    seen: dict[str, Output] = {}
    for o in outs:
        first = seen.setdefault(o.path, o)
        if first is not o:
            raise FormatError(o.pointer_file or o.path, f"tracks {o.path}, which {first.pointer_file} tracks too",
                              hint=f"keep one of them: `git rm {o.pointer_file}` (or fix its `path:`)")
    return outs


def select_outputs(repo: Repo, outputs: list[Output], targets: Iterable[str]) -> list[Output]:
    """Outputs named by user targets: a data path, a pointer file, a folder containing
    outputs, or a stage name. An unknown target is an error suggesting ``add``."""
    chosen: dict[str, Output] = {}
    for t in targets:
        stage_hits = [o for o in outputs if o.stage == t]
        if stage_hits and not os.path.exists(t):
            chosen.update((o.path, o) for o in stage_hits)
            continue
        rel = repo.rel(t)
        if rel.endswith(POINTER_SUFFIX):
            rel_data = [o for o in outputs if o.pointer_file == rel]
            if rel_data:
                chosen.update((o.path, o) for o in rel_data)
                continue
        hits = [o for o in outputs if o.path == rel or o.path.startswith(rel + "/") or rel == "."]
        if not hits:
            inner = [o for o in outputs if rel.startswith(o.path + "/")]
            if inner:
                hits = inner
        if not hits:
            if os.path.lexists(repo.abs(rel)):
                raise PathError(t, "is not tracked by mlver", hint=f"track it with `mlver add {t}`")
            raise _nowhere(t, rel, outputs)
        chosen.update((o.path, o) for o in hits)
    return [o for o in outputs if o.path in chosen]


def _nowhere(target: str, rel: str, outputs: list[Output]) -> PathError:
    """A target that is neither in the workspace nor tracked: suggest the closest tracked
    paths (a typo), not ``mlver add`` of something that does not exist."""
    names = sorted({o.path for o in outputs} | {o.pointer_file for o in outputs if o.pointer_file}
                   | {o.stage for o in outputs if o.stage})
    import difflib  # only on this error path

    close = difflib.get_close_matches(rel, names, n=3, cutoff=0.6)
    hint = ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else \
        "`mlver list` shows the tracked paths"
    return PathError(target, "does not exist and is not tracked by mlver", hint=hint)


# --- digests of workspace files -------------------------------------------------------

def hash_files(repo: Repo, todo: list[tuple[str, str, os.stat_result]], *,
               progress: Progress = NO_PROGRESS, algo: str = DEFAULT_ALGO) -> dict[str, str]:
    """Hash each (repo-rel path, abs path, stat) in parallel with ``algo`` and remember
    the digests."""
    if not todo:
        return {}
    progress.start("hashing", total_files=len(todo), total_bytes=sum(st.st_size for _, _, st in todo))

    def work(item: tuple[str, str, os.stat_result]) -> tuple[str, str, os.stat_result, int]:
        rel, path, st = item
        t = time.time_ns()
        bar = progress.file(st.st_size)
        d, _ = digest_file(path, on_bytes=bar, algo=algo)
        bar.done()
        return rel, d, st, t

    result: dict[str, str] = {}
    for rel, d, st, t in parallel_map(work, todo, WORKERS):
        result[rel] = d
        repo.state.record(rel, st, d, read_ns=t)
    progress.finish()
    return result


def scan_dir(repo: Repo, rel: str, *, debris: list[str] | None = None,
             dangling: list[str] | None = None) -> list[WalkEntry]:
    """The files of the tracked folder ``rel``, sorted by path (unique, so tuples compare
    on it alone). A folder reached through a symlink out of the repository is refused."""
    confine(repo.root, os.path.join(repo.abs(rel), "-"))
    found = sorted(walk_files(repo.abs(rel), ignore=repo.ignore, top_rel=rel, links_into=repo.cache_dir,
                              debris=debris, dangling=dangling))
    check_names([e.rel for e in found], rel)
    return found


def dangling_link(repo: Repo, rel: str) -> bool:
    """Is the workspace file ``rel`` a link into the cache whose object is gone?"""
    path = repo.abs(rel)
    return (os.path.islink(path) and not os.path.exists(path)
            and os.path.realpath(path).startswith(repo.cache_dir + os.sep))


def stat_rows(entries: list[WalkEntry]) -> list[str]:
    """One row per file: what must hold for its memoised digest to stay valid."""
    return [f"{e.rel}\0{e.st.st_ino}\0{e.st.st_size}\0{e.st.st_mtime_ns}\0{e.st.st_ctime_ns}\0{e.st.st_mode}"
            for e in entries]


def _of(digest: str | None, algo: str) -> str | None:
    """A memoised digest, when it is of ``algo`` (the memo keeps one digest a file)."""
    return digest if digest is not None and algo_of(digest) == algo else None


def known_digests(repo: Repo, rel: str, entries: list[WalkEntry], rows: list[str],
                  algo: str = DEFAULT_ALGO) -> list[str | None]:
    """The memoised ``algo`` digest of each file of folder ``rel`` (None: must be read):
    first the folder memo's rows, then the per-file memo for the rest."""
    _, by_row = repo.state.dir_rows(rel)
    got: list[str | None] = [_of(by_row.get(r), algo) for r in rows]
    misses = [i for i, d in enumerate(got) if d is None]
    if misses:
        state = repo.state
        memo = state.lookup_many(rel) if len(misses) > 64 else None
        for i in misses:
            e = entries[i]
            frel = f"{rel}/{e.rel}"
            got[i] = _of(state.valid(memo.get(frel), e.st) if memo is not None else state.lookup(frel, e.st), algo)
    return got


def folder_digests(repo: Repo, rel: str, entries: list[WalkEntry], rows: list[str], *,
                   progress: Progress = NO_PROGRESS, algo: str = DEFAULT_ALGO) -> list[str]:
    """The digest of each of ``entries`` of folder ``rel``: from the memos
    (``known_digests``), else read now (in parallel, and remembered)."""
    digests = known_digests(repo, rel, entries, rows, algo)
    todo = [(f"{rel}/{e.rel}", e.path, e.st) for e, d in zip(entries, digests) if d is None]
    if not todo:
        return digests  # type: ignore[return-value]
    hashed = hash_files(repo, todo, progress=progress, algo=algo)
    return [d if d is not None else hashed[f"{rel}/{e.rel}"] for e, d in zip(entries, digests)]


def manifest_of(repo: Repo, rel: str, entries: list[WalkEntry], *, rows: list[str] | None = None,
                progress: Progress = NO_PROGRESS, algo: str = DEFAULT_ALGO) -> Manifest:
    """The ``algo`` manifest of folder ``rel`` holding ``entries`` (sorted); memoised
    files are not read."""
    digests = folder_digests(repo, rel, entries, stat_rows(entries) if rows is None else rows, progress=progress,
                             algo=algo)
    return Manifest.from_sorted([Entry(e.rel, d, e.st.st_size, tracks_exec(algo) and is_executable(e.st.st_mode))
                                 for e, d in zip(entries, digests)], algo)


def tracks_exec(algo: str) -> bool:
    """Does a folder of ``algo`` record its files' executable bits? Not an md5 folder:
    DVC's listing has no place for them (DVC does not track them either)."""
    return algo not in DVC_LISTED


def current_manifest(repo: Repo, rel: str, *, progress: Progress = NO_PROGRESS,
                     algo: str = DEFAULT_ALGO) -> Manifest:
    entries = scan_dir(repo, rel)
    _, manifest = dir_digest_of(repo, rel, entries, progress=progress, algo=algo)
    return manifest if manifest is not None else manifest_of(repo, rel, entries, progress=progress, algo=algo)


def current_dir_digest(repo: Repo, rel: str, *, progress: Progress = NO_PROGRESS,
                       algo: str = DEFAULT_ALGO) -> tuple[str, Manifest | None]:
    """The ``algo`` digest the folder at ``rel`` would have if added now; the manifest
    too when it had to be computed (an unchanged folder is answered from the folder memo)."""
    return dir_digest_of(repo, rel, scan_dir(repo, rel), progress=progress, algo=algo)


def current_dir_summary(repo: Repo, rel: str, *, progress: Progress = NO_PROGRESS,
                        algo: str = DEFAULT_ALGO) -> tuple[str, int, int]:
    """(digest, total size, file count) of the folder at ``rel``, through the folder memo."""
    entries = scan_dir(repo, rel)
    digest, _ = dir_digest_of(repo, rel, entries, progress=progress, algo=algo)
    return digest, sum(e.st.st_size for e in entries), len(entries)


def dir_digest_of(repo: Repo, rel: str, entries: list[WalkEntry], *, rows: list[str] | None = None,
                  listing: str | None = None, progress: Progress = NO_PROGRESS,
                  algo: str = DEFAULT_ALGO) -> tuple[str, Manifest | None]:
    """``algo`` digest of folder ``rel`` holding ``entries``, from the folder memo while
    its stat listing holds; else computed (returned with its manifest) and remembered."""
    rows = stat_rows(entries) if rows is None else rows
    listing = _listing_digest(rows) if listing is None else listing
    known = _of(repo.state.dir_lookup(rel, listing), algo)
    if known is not None:
        return known, None
    manifest = manifest_of(repo, rel, entries, rows=rows, progress=progress, algo=algo)
    digest = cache_digest_of(manifest)
    remember_dir(repo, rel, entries, [e.digest for e in manifest.entries], digest, rows=rows, listing=listing)
    return digest, manifest


def remember_dir(repo: Repo, rel: str, entries: list[WalkEntry], digests: list[str], digest: str, *,
                 rows: list[str] | None = None, listing: str | None = None) -> None:
    """Record in the folder memo that ``entries`` (as listed now, sorted), whose files
    hold ``digests``, make the folder ``digest``."""
    rows = stat_rows(entries) if rows is None else rows
    listing = _listing_digest(rows) if listing is None else listing
    repo.state.dir_record(rel, listing, digest, rows, digests, [e.st for e in entries])


def _listing_digest(rows: list[str]) -> str:
    return digest_bytes("\0\0".join(rows).encode("utf-8", "surrogateescape"))


def current_file_digest(repo: Repo, rel: str, *, progress: Progress = NO_PROGRESS,
                        algo: str = DEFAULT_ALGO) -> tuple[str, int] | None:
    path = repo.abs(rel)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path):
        return None
    known = _of(repo.state.lookup(rel, st), algo)
    if known is not None:
        return known, st.st_size
    return hash_files(repo, [(rel, path, st)], progress=progress, algo=algo)[rel], st.st_size


# --- what outputs name (the tracked-data layer, mlver.tracked, answers with these) ----------

def find(outputs: list[Output], rel: str) -> tuple[Output, str | None] | None:
    """The output named by ``rel`` (its data path or its pointer file), and the path
    inside it when ``rel`` is below a tracked folder; None when no output holds ``rel``."""
    for o in outputs:
        if o.path == rel or o.pointer_file == rel + POINTER_SUFFIX:
            return o, None
    for o in outputs:
        if o.kind == "dir" and rel.startswith(o.path + "/"):
            return o, rel[len(o.path) + 1:]
    return None


def entries_below(manifest_entries: tuple[Entry, ...] | list[Entry], inner: str | None) -> list[Entry]:
    """A folder's entries for ``inner`` (None: all of them): the one file ``inner``
    names (path ``""``), else the files below it with paths relative to it; empty when
    ``inner`` names nothing in the folder."""
    if inner is None:
        return list(manifest_entries)
    for e in manifest_entries:
        if e.path == inner:
            return [Entry("", e.digest, e.size, e.exec)]
    return [Entry(e.path[len(inner) + 1:], e.digest, e.size, e.exec) for e in manifest_entries
            if e.path.startswith(inner + "/")]


def objects_of(cache: Cache, output: Output) -> list[ObjectRef]:
    """The objects an output names: its file, or its folder's manifest and, when the
    manifest is cached, every file it lists."""
    if output.kind == "file":
        return [ObjectRef(output.digest, False)]
    refs = [ObjectRef(output.digest, True)]
    manifest = cache.manifest(output.digest)
    if manifest is not None:
        refs.extend(dict.fromkeys(ObjectRef(e.digest, False) for e in manifest.entries))
    return refs


def missing(cache: Cache, outputs: list[Output]) -> list[ObjectRef]:
    """The objects of ``outputs`` that the cache lacks (a folder whose manifest is absent
    counts as its manifest only: what it lists is unknown until that arrives)."""
    lacking: dict[ObjectRef, None] = {}
    for o in outputs:
        lacking.update((r, None) for r in objects_of(cache, o) if not cache.has(r.digest, r.manifest))
    return list(lacking)


# --- status ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FileState:
    path: str  # repo-relative
    state: str  # new / modified / deleted / not_in_cache


@dataclass(frozen=True)
class OutputState:
    output: Output
    state: str  # ok / modified / deleted / not_in_cache / new
    files: tuple[FileState, ...] = ()
    current_digest: str | None = None


def compare_manifests(base: str, old: Manifest, new: Manifest) -> list[FileState]:
    if len(old.entries) == len(new.entries) and all(x.path == y.path for x, y in zip(old.entries, new.entries)):
        # the same files (the usual case): one pass in step, no dictionaries
        return [FileState(f"{base}/{y.path}", "modified")
                for x, y in zip(old.entries, new.entries) if x.digest != y.digest or x.exec != y.exec]
    a, b = old.by_path(), new.by_path()
    out = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            out.append(FileState(f"{base}/{p}", "deleted"))
        elif p not in a:
            out.append(FileState(f"{base}/{p}", "new"))
        elif a[p].digest != b[p].digest or a[p].exec != b[p].exec:  # content or executable bit
            out.append(FileState(f"{base}/{p}", "modified"))
    return out


def output_state(repo: Repo, out: Output, *, progress: Progress = NO_PROGRESS) -> OutputState:
    cache = repo.cache
    algo = algo_of(out.digest)  # compared in the algorithm it was recorded with
    path = repo.abs(out.path)
    exists = os.path.lexists(path)
    if out.kind == "file":
        if not exists:
            return OutputState(out, "deleted" if cache.has(out.digest) else "not_in_cache")
        if dangling_link(repo, out.path):  # cache.type symlink, object gone: its data is not in the cache
            return OutputState(out, "not_in_cache")
        if os.path.isdir(path) and not os.path.islink(path):
            return OutputState(out, "modified")
        cur = current_file_digest(repo, out.path, progress=progress, algo=algo)
        cur_digest = cur[0] if cur else None
        if cur_digest != out.digest:
            return OutputState(out, "modified", current_digest=cur_digest)
        return OutputState(out, "ok" if cache.has(out.digest) else "not_in_cache", current_digest=cur_digest)
    # a folder: only its manifest's presence is checked here (not 20,000 objects);
    # `mlver fsck` and `status -r` look at every object.
    has_manifest = cache.has(out.digest, manifest=True)
    if not exists:
        return OutputState(out, "deleted" if has_manifest else "not_in_cache")
    if not os.path.isdir(path):
        return OutputState(out, "modified")
    dangling: list[str] = []
    entries = scan_dir(repo, out.path, dangling=dangling)
    if dangling:  # cache.type symlink, objects gone: that data is not in the cache
        return OutputState(out, "not_in_cache", tuple(FileState(f"{out.path}/{d}", "not_in_cache") for d in dangling))
    rows = stat_rows(entries)
    listing = _listing_digest(rows)
    if repo.state.dir_lookup(out.path, listing) is None:  # the listing changed: what changed?
        changes = _changes_since_recorded(repo, out, entries, rows, listing, progress=progress)
        if changes:
            return OutputState(out, "modified", tuple(changes))
        if changes is not None:  # new stat rows, the recorded bytes and modes (remembered now)
            return OutputState(out, "ok" if has_manifest else "not_in_cache", current_digest=out.digest)
    cur_digest, cur_manifest = dir_digest_of(repo, out.path, entries, rows=rows, listing=listing, progress=progress,
                                             algo=algo)
    if cur_digest == out.digest:
        return OutputState(out, "ok" if has_manifest else "not_in_cache", current_digest=cur_digest)
    if cur_manifest is None:  # known from the folder memo, but the files are needed now
        cur_manifest = manifest_of(repo, out.path, entries, rows=rows, progress=progress, algo=algo)
    recorded = cache.manifest(out.digest)
    files = tuple(compare_manifests(out.path, recorded, cur_manifest)) if recorded is not None else ()
    return OutputState(out, "modified", files, current_digest=cur_digest)


def _changes_since_recorded(repo: Repo, out: Output, entries: list[WalkEntry], rows: list[str], listing: str,
                            *, progress: Progress) -> list[FileState] | None:
    """The files of folder ``out`` that differ from its recorded version, answered from
    the folder memo alone when the memo describes exactly that version (its digest, every
    file): no manifest is built, parsed or stored. None when the memo cannot say. An
    empty list: the stat rows changed (a checkout, a ``touch``) but every file's bytes
    and mode are the recorded ones; the memo is updated to the new rows."""
    memo_digest, by_row = repo.state.dir_rows(out.path)
    if memo_digest != out.digest or len(by_row) != out.files:
        return None
    recorded = {r[:r.index("\0")]: (r, d) for r, d in by_row.items()}  # name -> (row, digest)
    # only files whose stat row is new can differ (an unchanged row means unchanged bytes
    # and mode): their digests, then their content and mode against the recorded ones
    changed = [(e, r) for e, r in zip(entries, rows) if r not in by_row]
    digests = folder_digests(repo, out.path, [e for e, _ in changed], [r for _, r in changed], progress=progress,
                             algo=algo_of(out.digest))
    present = {e.rel for e in entries}
    changes = [FileState(f"{out.path}/{name}", "deleted") for name in recorded if name not in present]
    for (e, _), digest in zip(changed, digests):
        was = recorded.get(e.rel)
        if was is None:
            changes.append(FileState(f"{out.path}/{e.rel}", "new"))
        elif digest != was[1] or (tracks_exec(algo_of(out.digest))
                                  and is_executable(e.st.st_mode) != is_executable(int(was[0].rsplit("\0", 1)[1]))):
            changes.append(FileState(f"{out.path}/{e.rel}", "modified"))
    if not changes:  # the recorded version, under new stat rows: remember those
        fresh = dict(zip((r for _, r in changed), digests))
        remember_dir(repo, out.path, entries, [by_row[r] if r in by_row else fresh[r] for r in rows], out.digest,
                     rows=rows, listing=listing)
    return sorted(changes, key=lambda c: c.path)


def cache_digest_of(manifest: Manifest) -> str:
    return digest_bytes(manifest.dumps(), manifest.algo)


# --- storing workspace data -----------------------------------------------------------

@dataclass
class Stored:
    kind: str
    digest: str
    size: int
    files: int | None
    link_type: str | None = None


def store_output(repo: Repo, rel: str, *, progress: Progress = NO_PROGRESS, algo: str = DEFAULT_ALGO) -> Stored:
    """Hash (with ``algo``) and store the workspace data at ``rel`` (file or folder) in the
    cache. A symbolic link there is refused (its target is not this output's data, and
    may be outside the repository), except one into the cache that checkout made."""
    path = repo.abs(rel)
    cache = repo.cache
    if os.path.islink(path) and not os.path.realpath(path).startswith(repo.cache_dir + os.sep):
        raise PathError(rel, "is a symbolic link; mlver tracks files and folders, not links",
                        hint="replace the link with the data itself, then run the command again")
    if os.path.isdir(path) and not os.path.islink(path):
        entries = scan_dir(repo, rel)
        rows = stat_rows(entries)
        known = known_digests(repo, rel, entries, rows, algo)
        # memoised files whose object is already stored need nothing: one listing of the
        # cache folders answers for all of them (not a stat per object)
        stored = cache.stored_digests({d for d in known if d is not None})
        done = [Entry(e.rel, d, e.st.st_size, tracks_exec(algo) and is_executable(e.st.st_mode)) if d in stored else None
                for e, d in zip(entries, known)]
        todo = [(i, entries[i], known[i]) for i, x in enumerate(done) if x is None]
        progress.start(f"adding {rel}", total_files=len(todo), total_bytes=sum(e.st.st_size for _, e, _ in todo))

        def work(item: tuple[int, WalkEntry, str | None]) -> tuple[int, Entry]:
            i, e, d = item
            t = time.time_ns()
            bar = progress.file(e.st.st_size)
            digest, size = cache.store_file(e.path, known_digest=d, settled=None if racy(e.st, t) else e.st, on_bytes=bar,
                                            algo=algo)
            if d is None:
                repo.state.record(f"{rel}/{e.rel}", e.st, digest, read_ns=t)
            bar.done()
            return i, Entry(e.rel, digest, size, tracks_exec(algo) and is_executable(e.st.st_mode))

        for i, entry in parallel_map(work, todo, WORKERS):
            done[i] = entry
        manifest = Manifest.from_sorted(done, algo)  # type: ignore[arg-type]
        progress.finish()
        digest = cache.store_bytes(manifest.dumps(), manifest=True, algo=algo)
        link = None
        for e in manifest.entries:
            link = cache.relink_after_store(e.digest, os.path.join(path, *e.path.split("/")), executable=e.exec)
            if link is None:  # copies stay copies: nothing to swap
                break
        if link is None:  # the files on disk are the ones just listed: the next status need not look inside
            remember_dir(repo, rel, entries, [e.digest for e in manifest.entries], digest, rows=rows)
        return Stored("dir", digest, manifest.size, len(manifest.entries), link)
    st = os.stat(path)
    known_digest = _of(repo.state.lookup(rel, st), algo)
    busy = not (known_digest and cache.has(known_digest))  # a remembered digest already stored: no bar to flash
    if busy:
        progress.start(f"adding {rel}", total_files=1, total_bytes=st.st_size)
    t = time.time_ns()
    bar = progress.file(st.st_size)
    digest, size = cache.store_file(path, known_digest=known_digest, settled=None if racy(st, t) else st, on_bytes=bar,
                                    algo=algo)
    if busy:
        bar.done()
        progress.finish()
    if known_digest is None:
        repo.state.record(rel, st, digest, read_ns=t)
    link = cache.relink_after_store(digest, path, executable=is_executable(st.st_mode))
    return Stored("file", digest, size, None, link)


# --- checkout -------------------------------------------------------------------------

class CorruptFile(NamedTuple):
    path: str  # repo-relative path of the file that was not checked out
    digest: str  # its object, found corrupt in the cache (and moved to quarantine/)


@dataclass
class CheckoutResult:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # local content not in the cache, left alone
    missing: list[str] = field(default_factory=list)  # objects absent from the cache
    orphaned: list[str] = field(default_factory=list)  # data whose pointer is gone, kept (not safe to remove)
    relinked: list[str] = field(default_factory=list)  # same content, placed again (``--relink``)
    corrupt: list[CorruptFile] = field(default_factory=list)  # the object's bytes did not match: quarantined, not placed
    link_types: set[str] = field(default_factory=set)
    not_pushed: list[str] = field(default_factory=list)  # absent, and never pushed or fetched (``push: false``)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def merge(self, other: "CheckoutResult") -> None:
        for name in ("added", "modified", "deleted", "kept", "missing", "orphaned", "relinked", "corrupt", "not_pushed"):
            getattr(self, name).extend(getattr(other, name))
        self.link_types |= other.link_types

    def merge_retry(self, redone: "CheckoutResult") -> list[CorruptFile]:
        """Fold in ``redone``, a second checkout of the outputs whose objects were corrupt
        (after a fetch of good copies): its lists replace this one's corrupt entries, and
        what the first pass already listed is not listed twice. Returns the corrupt files
        it placed (repaired)."""
        placed = set(redone.added) | set(redone.modified)
        repaired = [c for c in self.corrupt if c.path in placed]
        self.corrupt = []
        for name in ("added", "modified", "deleted", "kept", "missing", "orphaned", "corrupt"):
            have = getattr(self, name)
            seen = set(have)
            have.extend(p for p in getattr(redone, name) if p not in seen)
        self.link_types |= redone.link_types
        return repaired


@dataclass(frozen=True)
class _Place:
    rel: str
    digest: str
    exec: bool
    existed: bool
    same: bool = False  # the content there is already right: only the link is re-made (relink)


def _safe_to_replace(repo: Repo, rel: str, current: str | None, force: bool, res: CheckoutResult) -> bool:
    """May the workspace content at ``rel`` (digest ``current``) be overwritten?"""
    if current is None or repo.cache.has(current):
        return True
    if force:
        repo.cache.store_file(repo.abs(rel), known_digest=current)
        return True
    res.kept.append(rel)
    return False


def check_writable(repo: Repo, out: Output) -> None:
    """Refuse (before anything is written) an output whose place in the workspace is
    reached through a symlink out of the repository: for a folder, the folder itself."""
    path = repo.abs(out.path)
    confine(repo.root, os.path.join(path, "-") if out.kind == "dir" or os.path.isdir(path) else path)


def checkout_output(repo: Repo, out: Output, *, force: bool = False, relink: bool = False,
                    progress: Progress = NO_PROGRESS) -> CheckoutResult:
    """Make the workspace data of ``out`` match its recorded digest (plan, then act)."""
    check_writable(repo, out)
    debris = [os.path.dirname(repo.abs(out.path))]  # temporary files a killed mlver left beside the data
    try:
        return _checkout_output(repo, out, debris, force=force, relink=relink, progress=progress)
    finally:
        _sweep_debris(repo, debris)


def _checkout_output(repo: Repo, out: Output, debris: list[str], *, force: bool, relink: bool,
                     progress: Progress) -> CheckoutResult:
    res = CheckoutResult()
    cache = repo.cache
    path = repo.abs(out.path)
    algo = algo_of(out.digest)
    plan: list[_Place] = []
    removals: list[str] = []

    if out.kind == "file":
        if not cache.has(out.digest):
            _clear_other_version(repo, out, res, force)
            res.missing.append(out.path)
            return res
        if os.path.isdir(path) and not os.path.islink(path):
            # a folder where the file goes: its files whose content the cache lacks, and
            # files .mlverignore leaves out of it, are local data like any other
            cur = current_manifest(repo, out.path, algo=algo)
            unsafe = [f"{out.path}/{e.path}" for e in cur.entries if not cache.has(e.digest)]
            unsafe += _ignored_files(repo, out.path, cur)
            if unsafe and not force:
                res.kept.extend(unsafe)
                return res
            for f in unsafe:
                cache.store_file(repo.abs(f), algo=algo)
            remove_path(path, inside=repo.root)
            plan.append(_Place(out.path, out.digest, False, False))
        else:
            cur_file = current_file_digest(repo, out.path, algo=algo) if os.path.lexists(path) else None
            if cur_file and cur_file[0] == out.digest and not relink:
                return res
            if cur_file and not _safe_to_replace(repo, out.path, cur_file[0], force, res):
                return res
            plan.append(_Place(out.path, out.digest, False, cur_file is not None,
                               cur_file is not None and cur_file[0] == out.digest))
    else:
        try:
            manifest = cache.manifest(out.digest)
        except ChecksumMismatch:  # damaged in the cache: quarantined, nothing placed from it
            res.corrupt.append(CorruptFile(out.path, out.digest))
            return res
        if manifest is None:
            _clear_other_version(repo, out, res, force)
            res.missing.append(out.path)
            return res
        if os.path.lexists(path) and not os.path.isdir(path):
            cur_d = current_file_digest(repo, out.path, algo=algo)
            if cur_d and not _safe_to_replace(repo, out.path, cur_d[0], force, res):
                return res
            unlink_confined(repo.root, path)
        # which objects the cache holds: one listing of its folders, not a stat per object
        have = cache.stored_digests({e.digest for e in manifest.entries})
        sizes = {e.digest: e.size for e in manifest.entries if e.digest in have}
        res.missing.extend(f"{out.path}/{e.path}" for e in manifest.entries if e.digest not in have)
        current: dict[str, Entry] = {}
        if os.path.isdir(path):
            # ... or inside it; a link into the cache whose object is gone holds nothing: placed anew
            entries = scan_dir(repo, out.path, debris=debris, dangling=[])
            cur_digest, cur_manifest = dir_digest_of(repo, out.path, entries, algo=algo)
            if cur_digest == out.digest and not relink:  # already in place: one walk, nothing read
                if not res.missing:
                    repo.state.set_placed(out.path, out.kind, out.digest)
                return res
            current = (cur_manifest or manifest_of(repo, out.path, entries, algo=algo)).by_path()
        wanted = manifest.by_path()
        for p, e in current.items():
            if p not in wanted:
                frel = f"{out.path}/{p}"
                if _safe_to_replace(repo, frel, e.digest, force, res):
                    removals.append(frel)
        for e in manifest.entries:
            cur_e = current.get(e.path)
            frel = f"{out.path}/{e.path}"
            if e.digest not in sizes:  # not in the cache: another version there goes if the cache keeps it
                if cur_e is not None and cur_e.digest != e.digest and _safe_to_replace(repo, frel, cur_e.digest,
                                                                                        force, res):
                    removals.append(frel)
                continue
            if cur_e is not None and cur_e.digest == e.digest and not relink:
                if (cur_e.exec != e.exec and cache.link_types_from(path)[:1] != ["hardlink"]
                        and not os.path.islink(repo.abs(frel))):  # chmod would follow a link
                    confine(repo.root, repo.abs(frel))
                    os.chmod(repo.abs(frel), 0o755 if e.exec else 0o644)
                continue
            if cur_e is not None and not _safe_to_replace(repo, frel, cur_e.digest, force, res):
                continue
            plan.append(_Place(frel, e.digest, e.exec, cur_e is not None,
                               cur_e is not None and cur_e.digest == e.digest))

    for rel in removals:
        unlink_confined(repo.root, repo.abs(rel))
        res.deleted.append(rel)
    _prune_empty_dirs(repo, out.path, removals)
    if plan:
        if out.kind == "file":
            sizes = {out.digest: out.size}
        progress.start(f"checkout {out.path}", total_files=len(plan), total_bytes=sum(sizes[p.digest] for p in plan))

        def work(p: _Place) -> tuple[_Place, str | None, os.stat_result | None]:
            dest = repo.abs(p.rel)
            bar = progress.file(sizes[p.digest])
            try:
                kind = cache.place(p.digest, dest, executable=p.exec, on_bytes=bar)
            except ChecksumMismatch:  # quarantined by place(); the workspace file is as it was
                bar.done()
                return p, None, None
            bar.done()
            try:
                return p, kind, os.stat(dest)  # for the state DB: the next status reads nothing
            except OSError:
                return p, kind, None

        done = parallel_map(work, plan, WORKERS)
        progress.finish()
        for placed, kind, st in done:
            if kind is None:
                res.corrupt.append(CorruptFile(placed.rel, placed.digest))
                continue
            res.link_types.add(kind)
            (res.relinked if placed.same else res.modified if placed.existed else res.added).append(placed.rel)
            if st is not None:
                repo.state.record(placed.rel, st, placed.digest)
    if out.kind == "dir" and not os.path.isdir(path) and not res.kept and not res.missing and not res.corrupt:
        confine(repo.root, os.path.join(path, "-"))
        os.makedirs(path)  # a folder recorded empty is restored empty
        res.added.append(out.path)
    if not res.kept and not res.missing and not res.corrupt:
        repo.state.set_placed(out.path, out.kind, out.digest)
    return res


def _clear_other_version(repo: Repo, out: Output, res: CheckoutResult, force: bool) -> None:
    """The object of ``out`` is not in the cache, so what its path holds is another
    version (the one checked out before, say): remove what the cache keeps (as `dvc
    checkout` does; `status` then says the data is not in the cache, and a commit cannot
    record the old version as this one), keep and list what only the workspace holds.
    Data that already is ``out``'s stays."""
    path = repo.abs(out.path)
    algo = algo_of(out.digest)
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            cur = current_manifest(repo, out.path, algo=algo)
        except DanglingLink:  # links into the cache whose objects are gone: leave them to status
            return
        if out.kind == "dir" and cache_digest_of(cur) == out.digest:
            return
        removals = [f"{out.path}/{e.path}" for e in cur.entries
                    if _safe_to_replace(repo, f"{out.path}/{e.path}", e.digest, force, res)]
        res.kept.extend(_ignored_files(repo, out.path, cur))
        for rel in removals:
            unlink_confined(repo.root, repo.abs(rel))
        _prune_empty_dirs(repo, out.path, removals)
        if removals and not os.listdir(path):
            unlink_confined(repo.root, path, folder=True)
        res.deleted.extend(removals)
        return
    try:
        cur_file = current_file_digest(repo, out.path, algo=algo)
    except DanglingLink:
        return
    if cur_file is None or cur_file[0] == out.digest:
        return
    if _safe_to_replace(repo, out.path, cur_file[0], force, res):
        unlink_confined(repo.root, path)
        res.deleted.append(out.path)


def _sweep_debris(repo: Repo, folders: list[str]) -> None:
    """Remove the temporary files of killed mlver runs from ``folders`` and the cache."""
    for folder in set(folders):
        try:
            confine(repo.root, os.path.join(folder, "-"))
        except PathError:
            continue  # not the workspace's: not ours to tidy
        sweep_stale_tmp(folder)
    repo.cache.sweep_tmp()


def _prune_empty_dirs(repo: Repo, top_rel: str, removed: list[str]) -> None:
    top = repo.abs(top_rel)
    for rel in sorted(removed, key=len, reverse=True):
        d = os.path.dirname(repo.abs(rel))
        while d.startswith(top + os.sep):
            try:
                unlink_confined(repo.root, d, folder=True)
            except OSError:
                break
            d = os.path.dirname(d)


def clean_vanished(repo: Repo, outputs: list[Output], *, only: Iterable[str] | None = None) -> CheckoutResult:
    """Remove data mlver placed whose pointer (or lock entry) is gone — only when its
    content is in the cache and unchanged since mlver wrote it; otherwise keep and list.
    ``only`` limits this to those output paths (the hooks know which pointers vanished)."""
    res = CheckoutResult()
    live = {o.path for o in outputs}
    limit = set(only) if only is not None else None
    gone = []
    for placed in repo.state.placed():
        if placed.path in live or (limit is not None and placed.path not in limit):
            continue
        # Inside a live output, or a folder that now holds live outputs: no longer ours alone.
        overlaps = any(placed.path.startswith(p + "/") or p.startswith(placed.path + "/") for p in live)
        if overlaps or not os.path.lexists(repo.abs(placed.path)):
            repo.state.forget_placed(placed.path)
        else:
            gone.append(placed)
    # A path Git tracks now (an output that became `cache: false`, a file committed in
    # Git): Git owns it; mlver neither removes nor reports it.
    in_git = set(git.tracked(repo.root, [repo.abs(p.path) for p in gone])) if gone and repo.scm_root else set()
    for placed in gone:
        if placed.path in in_git or any(t.startswith(placed.path + "/") for t in in_git):
            repo.state.forget_placed(placed.path)
            continue
        safe, cur = _unchanged_and_cached(repo, placed)
        if safe:
            _remove_placed(repo, placed, cur)
            res.deleted.append(placed.path)
            repo.state.forget_placed(placed.path)
        else:
            res.orphaned.append(placed.path)
    return res


def _remove_placed(repo: Repo, placed: Placed, manifest: Manifest | None) -> None:
    """Remove data mlver placed (``manifest``: a folder's current one); in a folder,
    files .mlverignore leaves out stay (with the folders holding them)."""
    if manifest is None or not _ignored_files(repo, placed.path, manifest):
        remove_path(repo.abs(placed.path), inside=repo.root)
        return
    removed = [f"{placed.path}/{e.path}" for e in manifest.entries]
    for rel in removed:
        unlink_confined(repo.root, repo.abs(rel))
    _prune_empty_dirs(repo, placed.path, removed)


def _ignored_files(repo: Repo, rel: str, manifest: Manifest) -> list[str]:
    """Files below folder ``rel`` that its manifest leaves out (.mlverignore)."""
    if not repo.ignore:
        return []
    listed = {e.path for e in manifest.entries}
    top = repo.abs(rel)
    found = (os.path.relpath(os.path.join(d, f), top).replace(os.sep, "/") for d, _, fs in os.walk(top) for f in fs)
    return sorted(f"{rel}/{f}" for f in found if f not in listed and not os.path.basename(f).startswith(TMP_MARK))


def _unchanged_and_cached(repo: Repo, placed: Placed) -> tuple[bool, Manifest | None]:
    """Is the data mlver placed still what it wrote, and in the cache? With a folder, its
    current manifest too (the removal needs it)."""
    path = repo.abs(placed.path)
    if placed.kind == "dir" and os.path.isdir(path) and not os.path.islink(path):  # a link: not what mlver placed
        try:
            cur = current_manifest(repo, placed.path, algo=algo_of(placed.digest))
        except DanglingLink:  # part of it is gone from the cache: not safe to call it unchanged
            return False, None
        return cache_digest_of(cur) == placed.digest and all(repo.cache.has(e.digest) for e in cur.entries), cur
    if placed.kind == "file" and os.path.isfile(path):
        d = current_file_digest(repo, placed.path, algo=algo_of(placed.digest))
        return d is not None and d[0] == placed.digest and repo.cache.has(placed.digest), None
    return False, None
