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
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from mlver import git
from mlver.errors import FormatError
from mlver.pipeline.model import PIPELINE_FILE, Pipeline, parse_pipeline
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


def values_of(rev: str, pipeline: Pipeline, read: Callable[[str], bytes | None]) -> Values:
    """Values of ``pipeline``'s params and metrics, reading files through ``read``
    (repo-relative path -> bytes, None when absent). Missing files are left out."""
    errors: list[str] = []
    reader = ParamsReader(read)
    params: dict[str, Flat] = {}
    for stage in pipeline.stages:
        try:
            for file, vals in reader.stage_params(stage, pipeline.shown, strict=False).items():
                params.setdefault(file, {}).update(vals)
        except FormatError as e:
            errors.append(e.message)
    metrics: dict[str, Flat] = {}
    for path in dict.fromkeys(m.path for s in pipeline.stages for m in s.metrics):
        data = read(path)
        if data is None:
            continue
        try:
            metrics[path] = flatten(parse_values(data, path))
        except FormatError as e:
            errors.append(e.message)
    return Values(rev, {f: dict(sorted(v.items())) for f, v in sorted(params.items())}, metrics, tuple(errors))


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
    pipeline = parse_pipeline(data.decode("utf-8", "replace"), PIPELINE_FILE)
    return values_of(WORKSPACE, pipeline, read)


class History:
    """Reads pipeline values from commits through one Git object-database handle."""

    def __init__(self, repo: Repo, grepo: Any) -> None:
        self.repo = repo
        self.grepo = grepo
        root = repo.require_scm("reading history")
        prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
        self.prefix = "" if prefix == "." else prefix + "/"

    def resolve(self, rev: str) -> str:
        return git.resolve(self.grepo, rev)

    def values(self, rev: str) -> Values:
        """Values at ``rev`` (labelled with the revision as given)."""
        name = self.prefix + PIPELINE_FILE
        snap = git.read_tree(self.grepo, rev, lambda p: p == name)
        if name not in snap.files:
            return Values(rev)
        shown = f"{rev}:{PIPELINE_FILE}"
        try:
            pipeline = parse_pipeline(snap.files[name].decode("utf-8", "replace"), shown)
        except FormatError as e:
            return Values(rev, errors=(e.message,))
        wanted = {self.prefix + r.file for s in pipeline.stages for r in s.params}
        wanted |= {self.prefix + m.path for s in pipeline.stages for m in s.metrics}
        files = git.read_tree(self.grepo, snap.rev, lambda p: p in wanted).files if wanted else {}
        return values_of(rev, pipeline, lambda rel: files.get(self.prefix + rel))

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
    with git.open_repo(root) as grepo:
        yield History(repo, grepo)


def has_head(repo: Repo) -> bool:
    root = repo.require_scm("reading history")
    return git.has_head(root)


# --- comparing ---------------------------------------------------------------------------

def _number(v: Any) -> bool:
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
