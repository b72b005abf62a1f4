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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from mlver import git
from mlver.errors import FormatError, MlverError
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE, Pipeline, parse_pipeline
from mlver.pipeline.params import Flat, ParamsReader, flatten, parse_values
from mlver.repo import Repo

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


def values_of(rev: str, pipeline: Pipeline, read: Callable[[str], bytes | None]) -> Values:
    """Values of ``pipeline``'s params and metrics, reading files through ``read``
    (repo-relative path -> bytes, None when absent). Missing files are left out."""
    errors: list[str] = []
    where = "" if rev == WORKSPACE else f"{rev[:7]}:"  # errors name the revision, as Git's `REV:path`
    reader = ParamsReader(read)
    params: dict[str, Flat] = {}
    for stage in pipeline.stages:
        for ref in stage.params:  # a file that cannot be read hides its own values only
            try:
                vals = reader.ref_values(stage, ref, pipeline.shown, strict=False)
            except FormatError as e:
                errors.append(where + e.message)
                continue
            if vals is not None:
                params.setdefault(ref.file, {}).update(vals)
    for file in pipeline.params_files:  # top-level `params:`: the whole file
        try:
            doc = reader.doc(file)
        except FormatError as e:
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


def workspace_values(repo: Repo) -> Values:
    def read(rel: str) -> bytes | None:
        try:
            with open(repo.abs(rel), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    data = read(PIPELINE_FILE)
    if data is None:
        return Values(WORKSPACE)
    pipeline = parse_pipeline(data.decode("utf-8", "replace"), PIPELINE_FILE, ParamsReader(read).doc)
    return values_of(WORKSPACE, pipeline, read)


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
        self._pipelines: dict[str, Pipeline | FormatError] = {}  # plain pipeline files, by blob
        self._inputs: dict[str, list[str]] = {}  # templated pipeline blob -> files it reads
        self._templated: dict[tuple[str, tuple[str | None, ...]], Pipeline | FormatError] = {}
        self._values: dict[tuple, Values] = {}
        self._locks: dict[str, list[Any]] = {}  # lock blob -> its cached outputs
        self._remote: Any = None  # the default remote, opened when an object is read from it
        self._trees: dict[str, list[str]] = {}  # commit -> its files (below the project's folder), sorted
        self._lock_blobs: dict[str, str | None] = {}  # commit -> its lock's blob
        self._pipe_blobs: dict[str, str | None] = {}  # commit -> its mlver.yaml's blob

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None

    # --- files inside cached outputs (metrics in a folder output) -----------------------

    def _lock_outputs(self, lock_blob: str | None, commit: str) -> list[Any]:
        if not lock_blob:
            return []
        if lock_blob not in self._locks:
            from mlver.pipeline.lockfile import outputs_from_lock_text

            self._load([lock_blob])
            try:
                self._locks[lock_blob] = outputs_from_lock_text(self._blobs[lock_blob].decode("utf-8", "replace"),
                                                                f"{commit[:7]}:{LOCK_FILE}")
            except FormatError:
                self._locks[lock_blob] = []
        return self._locks[lock_blob]

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

    def tracked_file(self, lock_blob: str | None, commit: str, rel: str) -> bytes | None:
        """A file that is (inside) a cached output recorded in ``commit``'s lock, read
        through the folder's manifest: a metrics file inside an ``outs: [eval]`` folder."""
        from mlver.pointer import parse_manifest

        for out in self._lock_outputs(lock_blob, commit):
            if out.kind == "file" and out.path == rel:
                return self._object(out.digest, False)
            if out.kind == "dir" and rel.startswith(out.path + "/"):
                data = self._object(out.digest, True)
                if data is None:
                    return None
                inner = rel[len(out.path) + 1:]
                for entry in parse_manifest(data, f"manifest {out.digest}").entries:
                    if entry.path == inner:
                        return self._object(entry.digest, False)
                return None
        return None

    def prefetch(self, commits: list[str]) -> None:
        """Read the ``mlver.yaml`` and ``mlver.lock`` of many commits in one batch, for
        ``pipeline_at``, ``list_at`` and ``read_at`` on them."""
        specs = [f"{c}:{self.prefix}{f}" for c in commits for f in (PIPELINE_FILE, LOCK_FILE)]
        names = git.object_names(self.root, specs)
        self._load([n for n in names.values() if n])
        for c in commits:
            self._pipe_blobs[c] = names[f"{c}:{self.prefix}{PIPELINE_FILE}"]
            self._lock_blobs[c] = names[f"{c}:{self.prefix}{LOCK_FILE}"]

    def pipeline_at(self, commit: str) -> Pipeline | None:
        """The pipeline of ``commit`` (a full id); None when it has no ``mlver.yaml``;
        a malformed one raises its FormatError."""
        if commit not in self._pipe_blobs:
            spec = f"{commit}:{self.prefix}{PIPELINE_FILE}"
            self._pipe_blobs[commit] = git.object_names(self.root, [spec])[spec]
        blob = self._pipe_blobs[commit]
        if blob is None:
            return None
        self._load([blob])
        pipeline = self._pipeline(blob, commit)
        if isinstance(pipeline, FormatError):
            raise pipeline
        return pipeline

    def read_at(self, commit: str, paths: list[str]) -> dict[str, bytes]:
        """Files of ``commit`` (repo-relative; absent ones left out): Git's blobs in one
        batch, else the bytes of a cached output (or a file inside a cached folder) its
        lock records, from the cache or the default remote."""
        return self.read_many([(commit, p) for p in paths]).get(commit, {})

    def read_many(self, wanted: list[tuple[str, str]]) -> dict[str, dict[str, bytes]]:
        """``read_at`` for many (commit, path) pairs, in one batch of Git reads:
        commit -> {path: bytes}."""
        specs = {(c, p): f"{c}:{self.prefix}{p}" for c, p in wanted}
        names = git.object_names(self.root, list(specs.values()))
        self._load([n for n in names.values() if n])
        found: dict[str, dict[str, bytes]] = {}
        for (commit, p), spec in specs.items():
            name = names[spec]
            data = self._blobs[name] if name else self.tracked_file(self._lock_blob(commit), commit, p)
            if data is not None:
                found.setdefault(commit, {})[p] = data
        return found

    def _lock_blob(self, commit: str) -> str | None:
        if commit not in self._lock_blobs:
            spec = f"{commit}:{self.prefix}{LOCK_FILE}"
            self._lock_blobs[commit] = git.object_names(self.root, [spec])[spec]
        return self._lock_blobs[commit]

    def list_at(self, commit: str, folder: str) -> list[str]:
        """Files at or below ``folder`` in ``commit``: those Git holds, and those of a
        cached folder output (its manifest), sorted; [] when there are none. The commit's
        tree is listed once (one ``ls-tree``), however many folders are asked for."""
        import bisect

        from mlver.pointer import parse_manifest

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
        for out in self._lock_outputs(self._lock_blob(commit), commit):
            if out.path == folder or out.path.startswith(folder + "/") or folder.startswith(out.path + "/"):
                if out.kind == "file":
                    found.add(out.path)
                    continue
                data = self._object(out.digest, True)
                if data is None:
                    continue
                for entry in parse_manifest(data, f"manifest {out.digest}").entries:
                    rel = f"{out.path}/{entry.path}"
                    if rel == folder or rel.startswith(folder + "/"):
                        found.add(rel)
        return sorted(found)

    def resolve(self, rev: str) -> str:
        return git.resolve(self.grepo, rev)

    def values(self, rev: str) -> Values:
        """Values at ``rev`` (labelled with the revision as given)."""
        sha = self.resolve(rev)
        return replace(self.values_many([sha])[0], rev=rev)

    def values_many(self, commits: list[str]) -> list[Values]:
        """Values of each commit (full ids), in the order given, labelled with the id."""
        name = self.prefix + PIPELINE_FILE
        pipe_blobs = git.object_names(self.root, [f"{c}:{name}" for c in commits])
        self._load([b for b in pipe_blobs.values() if b])
        wanted: dict[str, list[str]] = {}  # commit -> files its pipeline reads
        for c in commits:
            blob = pipe_blobs[f"{c}:{name}"]
            pipeline = self._pipeline(blob, c) if blob else None
            if isinstance(pipeline, Pipeline):
                files = {r.file for s in pipeline.stages for r in s.params} | set(pipeline.params_files)
                files |= set(metrics_files(pipeline))
                wanted[c] = sorted(files)
        specs = [f"{c}:{self.prefix}{f}" for c, files in wanted.items() for f in files]
        specs += [f"{c}:{self.prefix}{LOCK_FILE}" for c in wanted]
        file_blobs = git.object_names(self.root, specs)
        self._load([b for spec, b in file_blobs.items() if b and not spec.endswith(LOCK_FILE)])
        result = []
        for c in commits:
            blob = pipe_blobs[f"{c}:{name}"]
            if blob is None:
                result.append(Values(c))
                continue
            pipeline = self._pipeline(blob, c)
            if isinstance(pipeline, FormatError):
                result.append(Values(c, errors=(pipeline.message,)))
                continue
            blobs = {f: file_blobs[f"{c}:{self.prefix}{f}"] for f in wanted[c]}
            lock_blob = file_blobs[f"{c}:{self.prefix}{LOCK_FILE}"]
            key = (blob, lock_blob, tuple(sorted(blobs.items(), key=lambda kv: kv[0])))
            if key not in self._values:
                def read(rel: str, b: dict[str, str | None] = blobs, lock: str | None = lock_blob,
                         commit: str = c) -> bytes | None:
                    name = b.get(rel)
                    return self._blobs.get(name) if name else self.tracked_file(lock, commit, rel)

                self._values[key] = values_of(c, pipeline, read)
            result.append(replace(self._values[key], rev=c))
        return result

    def files_many(self, commits: list[str], choose: Callable[[Pipeline], list[str]]) -> list[dict[str, bytes]]:
        """For each commit, the files ``choose`` picks from its pipeline (repo-relative
        path -> bytes; absent files left out), read in the same batches as ``values_many``."""
        name = self.prefix + PIPELINE_FILE
        pipe_blobs = git.object_names(self.root, [f"{c}:{name}" for c in commits])
        self._load([b for b in pipe_blobs.values() if b])
        wanted: dict[str, list[str]] = {}
        for c in commits:
            blob = pipe_blobs[f"{c}:{name}"]
            pipeline = self._pipeline(blob, c) if blob else None
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

    def _pipeline(self, blob: str, commit: str) -> Pipeline | FormatError:
        """The pipeline of ``commit`` whose ``mlver.yaml`` is ``blob``. A plain file is
        parsed once per blob; a templated one (``vars``, ``${}`` reading params files) once
        per blob and set of input blobs, read at that commit."""
        if blob in self._pipelines:
            return self._pipelines[blob]
        inputs = self._inputs.get(blob)
        if inputs is not None:
            specs = [f"{commit}:{self.prefix}{rel}" for rel in inputs]
            names = git.object_names(self.root, specs)
            key = (blob, tuple(names[spec] for spec in specs))
            if key in self._templated:
                return self._templated[key]
        shown = f"{commit[:7]}:{PIPELINE_FILE}"
        read: dict[str, str | None] = {}

        def load(rel: str) -> Any:
            spec = f"{commit}:{self.prefix}{rel}"
            name = git.object_names(self.root, [spec])[spec]
            read[rel] = name
            if name is None:
                return None
            self._load([name])
            return parse_values(self._blobs[name], f"{commit[:7]}:{rel}")

        try:
            pipeline: Pipeline | FormatError = parse_pipeline(self._blobs[blob].decode("utf-8", "replace"), shown, load)
        except FormatError as e:
            pipeline = e
        if not read:
            self._pipelines[blob] = pipeline
        else:
            self._inputs[blob] = sorted(read)
            self._templated[(blob, tuple(read[rel] for rel in sorted(read)))] = pipeline
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
