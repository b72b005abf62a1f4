"""Params and metrics values of the workspace or of any commit, and comparing them.

The one place that reads pipeline values across history: ``params diff``, ``metrics
show/diff`` use it, and so can ``exp show``, ``plots`` and ``repro --verify``. A commit
is read from Git objects through ``mlver.git`` (one GitPython handle, no checkout, no
subprocess per file): first ``mlver.yaml``, then exactly the params and metrics files it
names.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from mlver import git
from mlver.hashing import algo_of
from mlver.pipeline.dvcfiles import DVC_LOCK, DVC_PIPELINE, dvc_lock_outputs, dvc_lock_stages, read_dvc_pipeline
from mlver.errors import FormatError, MlverError
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE, Pipeline, merge_pipelines, parse_pipeline
from mlver.pipeline.params import Flat, ParamsReader, flatten, parse_values
from mlver.repo import Repo
from mlver.workspace import entries_below, find

WORKSPACE = "workspace"


@dataclass(frozen=True)
class Values:
    """Params and metrics of one revision: {file: {dotted.key: value}}."""

    rev: str
    params: dict[str, Flat] = field(default_factory=dict)
    metrics: dict[str, Flat] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # files that could not be read (named, with the problem)


def metrics_files(pipeline: Pipeline) -> list[str]:
    """Every metrics file the pipeline names: stages' ``metrics`` and top-level ``metrics``."""
    return list(dict.fromkeys([m.path for s in pipeline.stages for m in s.metrics]
                              + [p for s in pipeline.stages for p in s.inner_metrics] + list(pipeline.metrics_files)))


def values_of(rev: str, pipeline: Pipeline, read: Callable[[str], bytes | None], *,
              strict_params: bool = False) -> Values:
    """Values of ``pipeline``'s params and metrics, reading files through ``read``
    (repo-relative path -> bytes, None when absent). Missing files are left out; a file
    that cannot be parsed is an entry of ``errors`` (``strict_params``: a params file
    raises its FormatError, as repro and status do for the workspace's)."""
    errors: list[str] = []
    where = "" if rev == WORKSPACE else f"{rev[:7]}:"  # errors name the revision, as Git's `REV:path`
    reader = ParamsReader(read)
    params: dict[str, Flat] = {}
    for stage in pipeline.stages:
        for ref in stage.params:  # a file that cannot be read hides its own values only
            try:
                vals = reader.ref_values(stage, ref, pipeline.shown, strict=False)
            except FormatError as e:
                if strict_params:
                    raise
                errors.append(where + e.message)
                continue
            if vals is not None:
                params.setdefault(ref.file, {}).update(vals)
    for file in pipeline.params_files:  # top-level `params:`: the whole file
        try:
            doc = reader.doc(file)
        except FormatError as e:
            if strict_params:
                raise
            errors.append(where + e.message)
            continue
        if doc is not None:
            params.setdefault(file, {}).update(flatten(doc))
    metrics: dict[str, Flat] = {}
    for path in metrics_files(pipeline):
        try:
            data = read(path)
        except MlverError as e:  # e.g. a corrupt object of a metrics file inside a folder output
            errors.append(where + e.message)
            continue
        if data is None:
            continue
        try:
            metrics[path] = flatten(parse_values(data, path))
        except FormatError as e:
            errors.append(where + e.message)
    return Values(rev, {f: dict(sorted(v.items())) for f, v in sorted(params.items())}, metrics,
                  tuple(dict.fromkeys(errors)))


def workspace_deps(repo: Repo) -> dict[str, str]:
    """The stage dependencies the workspace's lock files record: path -> digest."""
    from mlver.pipeline.lockfile import read_lock
    from mlver.workspace import has_lock

    found: dict[str, str] = {}
    for s in read_lock(repo).values() if has_lock(repo) else ():
        for e in s.deps:
            found.setdefault(e.path, e.digest)
    return found


def workspace_values(repo: Repo, *, strict_params: bool = False) -> Values:
    def read(rel: str) -> bytes | None:
        try:
            with open(repo.abs(rel), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    from mlver.pipeline.plan import parse_pipelines, pipeline_texts
    from mlver.workspace import has_pipeline

    if not has_pipeline(repo):
        return Values(WORKSPACE)
    pipeline = parse_pipelines(pipeline_texts(repo), ParamsReader(read).doc)  # every pipeline file
    return values_of(WORKSPACE, pipeline, read, strict_params=strict_params)


Locks = tuple[tuple[str, str | None], ...]  # (lock path, blob or None) of each pipeline folder


class History:
    """Reads pipeline values from commits through one Git object-database handle.

    Many commits are read in batches: one ``cat-file --batch-check`` names the blobs of
    every commit's ``mlver.yaml``, one more names the params and metrics files they list,
    one ``cat-file --batch`` reads the blobs not seen before. Blobs, parsed pipelines and
    whole results are cached by blob name, so an unchanged file is read and parsed once
    however many commits share it."""

    def __init__(self, repo: Repo, grepo: Any) -> None:
        self.repo = repo
        self.grepo = grepo
        root = repo.require_scm("reading history")
        self.root = root
        prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
        self.prefix = "" if prefix == "." else prefix + "/"
        self._blobs: dict[str, bytes] = {}
        # pipeline files are cached by (path, blob): the same text means other stage names
        # and paths in another folder
        self._pipelines: dict[tuple[str, str], Pipeline | FormatError] = {}  # plain files
        self._inputs: dict[tuple[str, str], list[str]] = {}  # templated file -> files it reads
        self._templated: dict[tuple[tuple[str, str], tuple[str | None, ...]], Pipeline | FormatError] = {}
        self._values: dict[tuple, Values] = {}
        self._locks: dict[tuple[str, str], list[Any]] = {}  # (lock path, blob) -> its cached outputs
        self._stages: dict[tuple[str, str], dict[str, Any]] = {}  # (lock path, blob) -> its stages
        from mlver.workspace import pipeline_files

        # the pipeline files read at every revision: the top one and those the workspace has;
        # a commit from before `mlver import-dvc` has DVC's dvc.yaml in their folders instead
        if git.is_bare(root):  # a Git URL's clone (mlver.api): no workspace, so HEAD's tree says
            listed = [e.path[len(self.prefix):] for e in git.tree_entries(root, "HEAD", self.prefix.rstrip("/"))
                      if e.type == "blob" and posixpath.basename(e.path) == PIPELINE_FILE] if git.has_head(root) else []
        else:
            listed = pipeline_files(repo, PIPELINE_FILE)
        self.paths = [PIPELINE_FILE] + [p for p in sorted(listed) if p != PIPELINE_FILE]
        self.dvc_paths = [posixpath.join(posixpath.dirname(p), DVC_PIPELINE) for p in self.paths]
        self._remote: Any = None  # the default remote, opened when an object is read from it
        self._trees: dict[str, list[str]] = {}  # commit -> its files (below the project's folder), sorted
        self._lock_blobs: dict[str, Locks] = {}  # commit -> its lock files' blobs
        self._pipe_cache: dict[str, Pipeline | FormatError | None] = {}  # commit -> its merged pipeline

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None

    # --- files inside cached outputs (metrics in a folder output) -----------------------

    def _lock_outputs(self, lock_blob: str | None, commit: str, lock_rel: str = LOCK_FILE) -> list[Any]:
        if not lock_blob:
            return []
        key = (lock_rel, lock_blob)
        if key not in self._locks:
            from mlver.pipeline.lockfile import outputs_from_lock_text

            self._load([lock_blob])
            read = dvc_lock_outputs if posixpath.basename(lock_rel) == DVC_LOCK else outputs_from_lock_text
            try:
                self._locks[key] = read(self._blobs[lock_blob].decode("utf-8", "replace"),
                                        f"{commit[:7]}:{lock_rel}", lock_rel)
            except FormatError:
                self._locks[key] = []
        return self._locks[key]

    def _object(self, digest: str, manifest: bool) -> bytes | None:
        """An object's bytes from the cache, else from the default remote (verified)."""
        from mlver.cache import ObjectRef
        from mlver.errors import MlverError

        cache = self.repo.cache
        if cache.has(digest, manifest):
            return cache.read_bytes(digest, manifest)
        if self._remote is None:
            from mlver.remote import Remote, remote_config

            config = self.repo.config
            if not config.get("core.remote"):
                return None
            try:
                self._remote = Remote(remote_config(config.remotes(), config.get("core.remote"), None),
                                      base_dir=self.repo.root)
            except MlverError:
                return None
        try:
            return self._remote.read_object(ObjectRef(digest, manifest))  # a mismatch raises (named)
        except OSError:
            return None

    def tracked_file(self, lock_blob: str | None | Locks, commit: str, rel: str) -> bytes | None:
        """A file that is (inside) a cached output recorded in ``commit``'s lock (a lock
        blob, or (lock path, blob) pairs of every lock file), read through the folder's
        manifest: a metrics file inside an ``outs: [eval]`` folder. A recorded file whose
        object is neither in the cache nor on the default remote is an MlverError naming
        it, so readers warn instead of showing nothing."""
        from mlver.pointer import parse_manifest

        locks = lock_blob if isinstance(lock_blob, tuple) else ((LOCK_FILE, lock_blob),)
        found = find([o for lock_rel, blob in locks for o in self._lock_outputs(blob, commit, lock_rel)], rel)
        if found is None or (found[0].kind == "dir" and found[1] is None):
            return None  # not recorded, or a whole folder (not a file to read)
        out, inner = found

        def read(digest: str, manifest: bool) -> bytes:
            data = self._object(digest, manifest)
            if data is None:
                raise MlverError(f"{rel}: its data ({out.path}) is neither in the cache nor on the default remote, "
                                 f"so its values are not shown (`mlver fetch --rev {commit[:7]}` gets them)")
            return data

        if out.kind == "file":
            return read(out.digest, False)
        listing = parse_manifest(read(out.digest, True), f"manifest {out.digest}", algo_of(out.digest))
        hit = [e for e in entries_below(listing.entries, inner) if e.path == ""]
        return read(hit[0].digest, False) if hit else None

    def prefetch(self, commits: list[str]) -> None:
        """Read the pipeline and lock files of many commits in one batch, for
        ``pipeline_at``, ``list_at`` and ``read_many`` on them."""
        todo = [c for c in commits if c not in self._pipe_cache]
        if not todo:
            return
        for c, (pipeline, _) in self._pipelines_of(todo).items():
            self._pipe_cache[c] = pipeline
        locks = self._lock_specs(todo)
        names = git.object_names(self.root, list(locks))
        for c in todo:
            self._lock_blobs[c] = tuple((rel, names[spec]) for spec, (commit, rel) in locks.items() if commit == c)

    def pipeline_at(self, commit: str) -> Pipeline | None:
        """The pipeline of ``commit`` (a full id; every pipeline file merged); None when
        it has none; a malformed one raises its FormatError."""
        self.prefetch([commit])
        pipeline = self._pipe_cache[commit]
        if isinstance(pipeline, FormatError):
            raise pipeline
        return pipeline

    def read_many(self, wanted: list[tuple[str, str]], errors: dict[str, list[str]] | None = None
                  ) -> dict[str, dict[str, bytes]]:
        """Files of commits, for many (commit, repo-relative path) pairs in one batch of
        Git reads: commit -> {path: bytes}, absent files left out. A file Git does not
        hold is read from (inside) a cached output the commit's locks record, from the
        cache or the default remote; one whose data is nowhere is left out and its
        message added to ``errors[commit]``."""
        self.prefetch(list(dict.fromkeys(c for c, _ in wanted)))
        specs = {(c, p): f"{c}:{self.prefix}{p}" for c, p in wanted}
        names = git.object_names(self.root, list(specs.values()))
        self._load([n for n in names.values() if n])
        found: dict[str, dict[str, bytes]] = {}
        for (commit, p), spec in specs.items():
            name = names[spec]
            try:
                data = self._blobs[name] if name else self.tracked_file(self._lock_blobs[commit], commit, p)
            except MlverError as e:
                if errors is not None:
                    errors.setdefault(commit, []).append(e.message)
                continue
            if data is not None:
                found.setdefault(commit, {})[p] = data
        return found

    def list_at(self, commit: str, folder: str) -> list[str]:
        """Files at or below ``folder`` in ``commit``: those Git holds, and those of a
        cached folder output (its manifest), sorted; [] when there are none. The commit's
        tree is listed once (one ``ls-tree``), however many folders are asked for."""
        import bisect

        from mlver.pointer import parse_manifest

        self.prefetch([commit])
        if commit not in self._trees:
            n = len(self.prefix)
            self._trees[commit] = sorted(p[n:] for p in git.tree_files(self.root, commit, self.prefix or "."))
        tree = self._trees[commit]
        found: set[str] = set()
        start = bisect.bisect_left(tree, folder)
        for p in tree[start:]:
            if p == folder or p.startswith(folder + "/"):
                found.add(p)
            elif not p.startswith(folder):
                break
        outputs = [o for rel, blob in self._lock_blobs[commit] for o in self._lock_outputs(blob, commit, rel)]
        for out in outputs:
            if out.path == folder or out.path.startswith(folder + "/") or folder.startswith(out.path + "/"):
                if out.kind == "file":
                    found.add(out.path)
                    continue
                data = self._object(out.digest, True)
                if data is None:
                    continue
                for entry in parse_manifest(data, f"manifest {out.digest}", algo_of(out.digest)).entries:
                    rel = f"{out.path}/{entry.path}"
                    if rel == folder or rel.startswith(folder + "/"):
                        found.add(rel)
        return sorted(found)

    def read_file(self, rev: str, rel: str) -> bytes | None:
        """The bytes of project file ``rel`` at ``rev``: from Git, else from (inside) a
        cached output its lock records; None when it is neither."""
        commit = self.resolve(rev)
        spec = f"{commit}:{self.prefix}{rel}"
        locks = self._lock_specs([commit])
        names = git.object_names(self.root, [spec, *locks])
        blob = names.get(spec)
        if blob:
            self._load([blob])
            return self._blobs[blob]
        return self.tracked_file(tuple((lock, names[s]) for s, (_, lock) in locks.items()), commit, rel)

    def resolve(self, rev: str) -> str:
        return git.resolve(self.grepo, rev)

    def values(self, rev: str) -> Values:
        """Values at ``rev`` (labelled with the revision as given)."""
        sha = self.resolve(rev)
        return replace(self.values_many([sha])[0], rev=rev)

    def values_many(self, commits: list[str]) -> list[Values]:
        """Values of each commit (full ids), in the order given, labelled with the id."""
        pipelines = self._pipelines_of(commits)
        wanted: dict[str, list[str]] = {}  # commit -> files its pipelines read
        for c in commits:
            pipeline = pipelines[c][0]
            if isinstance(pipeline, Pipeline):
                files = {r.file for s in pipeline.stages for r in s.params} | set(pipeline.params_files)
                files |= set(metrics_files(pipeline))
                wanted[c] = sorted(files)
        specs = [f"{c}:{self.prefix}{f}" for c, files in wanted.items() for f in files]
        locks = self._lock_specs(wanted)
        file_blobs = git.object_names(self.root, specs + list(locks))
        self._load([b for b in (file_blobs[spec] for spec in specs) if b])
        result = []
        for c in commits:
            pipeline, key = pipelines[c]
            if pipeline is None:
                result.append(Values(c))
                continue
            if isinstance(pipeline, FormatError):
                result.append(Values(c, errors=(pipeline.message,)))
                continue
            blobs = {f: file_blobs[f"{c}:{self.prefix}{f}"] for f in wanted[c]}
            lock_blobs: Locks = tuple((rel, file_blobs[spec]) for spec, (commit, rel) in locks.items() if commit == c)
            vkey = (key, lock_blobs, tuple(sorted(blobs.items(), key=lambda kv: kv[0])))
            if vkey not in self._values:
                def read(rel: str, b: dict[str, str | None] = blobs, lock: Locks = lock_blobs,
                         commit: str = c) -> bytes | None:
                    name = b.get(rel)
                    return self._blobs.get(name) if name else self.tracked_file(lock, commit, rel)

                self._values[vkey] = values_of(c, pipeline, read)
            result.append(replace(self._values[vkey], rev=c))
        return result

    def _pipelines_of(self, commits: list[str]) -> dict[str, tuple[Pipeline | FormatError | None, tuple]]:
        """Each commit's pipeline, its files (``self.paths``) merged, with a key naming
        their blobs; None when it has none, the first error when one does not parse. A
        commit with none of them but DVC's ``dvc.yaml`` in their folders (from before
        ``mlver import-dvc``) has those read instead."""
        specs = [f"{c}:{self.prefix}{rel}" for c in commits for rel in self.paths + self.dvc_paths]
        names = git.object_names(self.root, specs)
        self._load([b for b in names.values() if b])
        out: dict[str, tuple[Pipeline | FormatError | None, tuple]] = {}
        for c in commits:
            found = [(rel, b) for rel in self.paths if (b := names[f"{c}:{self.prefix}{rel}"])]
            if not found:
                found = [(rel, b) for rel in self.dvc_paths if (b := names[f"{c}:{self.prefix}{rel}"])]
            parsed = [self._pipeline(b, c, rel) for rel, b in found]
            error = next((p for p in parsed if isinstance(p, FormatError)), None)
            merged: Pipeline | FormatError | None = error or (
                merge_pipelines([p for p in parsed if isinstance(p, Pipeline)]) if parsed else None)
            out[c] = (merged, tuple(found))
        return out

    def _lock_specs(self, commits: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``commit:path`` of every pipeline folder's lock -> (commit, lock path): mlver's
        and DVC's (a commit has one or the other)."""
        locks = [posixpath.join(posixpath.dirname(rel), name) for rel in self.paths for name in (LOCK_FILE, DVC_LOCK)]
        return {f"{c}:{self.prefix}{lock}": (c, lock) for c in commits for lock in locks}

    def deps_many(self, commits: list[str]) -> list[dict[str, str]]:
        """Each commit's stage dependencies as its lock files record them (mlver's, or
        DVC's in a commit from before the import): repo-relative path -> digest."""
        locks = self._lock_specs(commits)
        blobs = git.object_names(self.root, list(locks))
        self._load([b for b in blobs.values() if b])
        found: dict[str, dict[str, str]] = {c: {} for c in commits}
        for spec, (commit, rel) in locks.items():
            blob = blobs[spec]
            if blob:
                for s in self._stage_locks(rel, blob, commit).values():
                    for e in s.deps:
                        found[commit].setdefault(e.path, e.digest)
        return [found[c] for c in commits]

    def _stage_locks(self, rel: str, blob: str, commit: str) -> dict[str, Any]:
        """The stages a lock file's blob records, paths from the top (unreadable: none)."""
        key = (rel, blob)
        if key not in self._stages:
            from mlver.pipeline.lockfile import stage_locks_from_text

            text = self._blobs[blob].decode("utf-8", "replace")
            read = dvc_lock_stages if posixpath.basename(rel) == DVC_LOCK else stage_locks_from_text
            try:
                self._stages[key] = read(text, f"{commit[:7]}:{rel}", rel)
            except FormatError:
                self._stages[key] = {}
        return self._stages[key]

    def files_many(self, commits: list[str], choose: Callable[[Pipeline], list[str]]) -> list[dict[str, bytes]]:
        """For each commit, the files ``choose`` picks from its pipeline (repo-relative
        path -> bytes; absent files left out), read in the same batches as ``values_many``."""
        pipelines = self._pipelines_of(commits)
        wanted: dict[str, list[str]] = {}
        for c in commits:
            pipeline = pipelines[c][0]
            wanted[c] = sorted(set(choose(pipeline))) if isinstance(pipeline, Pipeline) else []
        specs = [f"{c}:{self.prefix}{f}" for c, files in wanted.items() for f in files]
        file_blobs = git.object_names(self.root, specs)
        self._load([b for b in file_blobs.values() if b])
        result = []
        for c in commits:
            found = {f: file_blobs[f"{c}:{self.prefix}{f}"] for f in wanted[c]}
            result.append({f: self._blobs[b] for f, b in found.items() if b})
        return result

    def _load(self, names: list[str]) -> None:
        todo = sorted({n for n in names if n not in self._blobs})
        if todo:
            self._blobs.update(git.read_blobs(self.root, todo))

    def _pipeline(self, blob: str, commit: str, path: str = PIPELINE_FILE) -> Pipeline | FormatError:
        """The pipeline of ``commit``'s file ``path`` (``mlver.yaml`` or ``sub/mlver.yaml``)
        whose blob is ``blob``. A plain file is parsed once per blob; a templated one
        (``vars``, ``${}`` reading params files) once per blob and set of input blobs,
        read at that commit."""
        file_key = (path, blob)
        if file_key in self._pipelines:
            return self._pipelines[file_key]
        inputs = self._inputs.get(file_key)
        if inputs is not None:
            specs = [f"{commit}:{self.prefix}{rel}" for rel in inputs]
            names = git.object_names(self.root, specs)
            key = (file_key, tuple(names[spec] for spec in specs))
            if key in self._templated:
                return self._templated[key]
        shown = f"{commit[:7]}:{path}"
        read: dict[str, str | None] = {}

        def load(rel: str) -> Any:
            spec = f"{commit}:{self.prefix}{rel}"
            name = git.object_names(self.root, [spec])[spec]
            read[rel] = name
            if name is None:
                return None
            self._load([name])
            return parse_values(self._blobs[name], f"{commit[:7]}:{rel}")

        text = self._blobs[blob].decode("utf-8", "replace")
        try:
            if posixpath.basename(path) == DVC_PIPELINE:  # a commit from before `mlver import-dvc`
                pipeline: Pipeline | FormatError = read_dvc_pipeline(text, shown, load, posixpath.dirname(path) or ".")[1]
            else:
                pipeline = parse_pipeline(text, shown, load, base=posixpath.dirname(path) or ".")
        except FormatError as e:
            pipeline = e
        if not read:
            self._pipelines[file_key] = pipeline
        else:
            self._inputs[file_key] = sorted(read)
            self._templated[(file_key, tuple(read[rel] for rel in sorted(read)))] = pipeline
        return pipeline

    def commits(self, *, count: int | None = None, all_commits: bool = False) -> list[str]:
        """Commit ids, newest first: ``count`` from HEAD, or every commit of every ref."""
        root = self.repo.require_scm("reading history")
        if not git.has_head(root):
            return []
        args = ["rev-list", "--all"] if all_commits else ["rev-list", f"--max-count={count or 1}", "HEAD"]
        return git.run(root, *args).stdout.decode().split()


@contextlib.contextmanager
def open_history(repo: Repo) -> Iterator[History]:
    root = repo.require_scm("reading history")
    with git.open_repo(root) as grepo, contextlib.closing(History(repo, grepo)) as history:
        yield history


def has_head(repo: Repo) -> bool:
    root = repo.require_scm("reading history")
    return git.has_head(root)


# --- comparing ---------------------------------------------------------------------------

def _number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare_values(old: dict[str, Flat], new: dict[str, Flat], *,
                   include_unchanged: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
    """{file: {key: {"old", "new", "diff"}}} for keys whose value differs (or all);
    ``diff`` is new - old for numbers, else None."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for file in sorted(set(old) | set(new)):
        a, b = old.get(file, {}), new.get(file, {})
        rows = {}
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            same = key in a and key in b and type(va) is type(vb) and va == vb
            if same and not include_unchanged:
                continue
            diff = vb - va if _number(va) and _number(vb) else None
            if isinstance(diff, float):
                diff = round(diff, 12)
            rows[key] = {"old": va, "new": vb, "diff": diff}
        if rows:
            out[file] = rows
    return out
