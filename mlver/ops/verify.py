"""``mlver repro --verify``: prove that a commit's pipeline still reproduces.

REV is materialised in a scratch ``git worktree`` (detached, under ``.mlver/tmp/``, so
the workspace, the index and every branch stay as they are) whose ``config.local``
points at this clone's cache and remotes. Its tracked input data is checked out from
the cache, fetched from the default remote when missing; then every stage in scope runs
(run cache off) and each output's new digest is compared with REV's ``mlver.lock``.
The worktree is removed afterwards unless ``keep``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlver.hashing import algo_of, hex_of
from mlver import git
from mlver.config import ConfigFile
from mlver.errors import (
    EXIT_DIFF,
    EXIT_ERROR,
    EXIT_OK,
    GitError,
    MlverError,
    RemoteError,
)
from mlver.pipeline.graph import Graph
from mlver.pipeline.lockfile import LockEntry, StageLock, read_lock
from mlver.pipeline.model import PIPELINE_FILE, Stage
from mlver.pipeline.params import flatten, parse_values
from mlver.pipeline.plan import load_graph
from mlver.pipeline.revision import compare_values
from mlver.pipeline.run import ReproFailed, StageEvent, reproduce, select
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver import tracked
from mlver.workspace import Output, pointer_outputs

REPRODUCED = "reproduced"
DIFFERS = "differs"
ERROR = "error"


@dataclass(frozen=True)
class OutputCheck:
    stage: str
    path: str
    status: str  # reproduced / differs / error
    expected: str | None  # digest recorded in REV's lock
    actual: str | None  # digest of the new run
    message: str = ""
    values: dict[str, dict[str, Any]] | None = None  # metrics that differ: key -> {"old","new","diff"}

    def to_json(self) -> dict:
        doc: dict[str, Any] = {"stage": self.stage, "path": self.path, "status": self.status,
                               "expected": self.expected and hex_of(self.expected),
                               "actual": self.actual and hex_of(self.actual),
                               "hash": algo_of(self.expected or self.actual or ""), "message": self.message}
        if self.values is not None:
            doc["values"] = self.values
        return doc


@dataclass
class VerifyResult:
    rev: str  # the commit verified (full id)
    outputs: list[OutputCheck] = field(default_factory=list)
    worktree: str | None = None  # kept scratch worktree (``keep``)
    missing_inputs: dict[str, str] = field(default_factory=dict)  # input path -> why it is not available

    def error(self) -> MlverError | None:
        """The one error a run that could not verify everything ends with (exit 3): an
        input missing everywhere first, else the first output that could not be made."""
        bad = [o for o in self.outputs if o.status == ERROR]
        if not bad:
            return None
        head = f"{len(bad)} output(s) at {self.rev[:7]} could not be verified: "
        if self.missing_inputs:
            path, why = next(iter(self.missing_inputs.items()))
            more = f" (and {len(self.missing_inputs) - 1} more input(s))" if len(self.missing_inputs) > 1 else ""
            return MlverError(f"{head}input {path}: {why}{more}",
                              hint="push it from a clone that has it (`mlver push`), or configure the remote "
                                   "that holds it (`mlver remote add -d NAME URL`)")
        first = next((o for o in bad if not o.message.startswith("not run:")), bad[0])
        return MlverError(f"{head}{first.stage}:{first.path}: {first.message}")

    @property
    def reproduced(self) -> bool:
        return all(o.status == REPRODUCED for o in self.outputs)

    @property
    def exit_code(self) -> int:
        if any(o.status == ERROR for o in self.outputs):
            return EXIT_ERROR
        return EXIT_OK if self.reproduced else EXIT_DIFF

    def to_json(self) -> dict:
        doc: dict[str, Any] = {"version": 1, "rev": self.rev, "reproduced": self.reproduced,
                               "outputs": [o.to_json() for o in self.outputs]}
        if self.worktree:
            doc["worktree"] = self.worktree
        return doc


def _on_nothing(event: StageEvent) -> None:
    pass


def verify(repo: Repo, rev: str | None = None, targets: list[str] | None = None, *, keep: bool = False,
           progress: Progress = NO_PROGRESS, on_event: Callable[[StageEvent], None] = _on_nothing) -> VerifyResult:
    root = repo.require_scm("repro --verify")
    commit = git.verify_commit(root, rev or "HEAD")
    if commit is None:
        raise GitError(f"unknown revision '{rev or 'HEAD'}'")
    prefix = os.path.relpath(repo.root, root)
    os.makedirs(repo.tmp_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"verify-{commit[:7]}-", dir=repo.tmp_dir)
    os.rmdir(scratch)  # git creates it
    added = False
    try:
        git.worktree_add(root, scratch, commit)
        added = True
        top = scratch if prefix == "." else os.path.join(scratch, prefix)
        if not os.path.isfile(os.path.join(top, PIPELINE_FILE)):
            raise MlverError(f"there is no {PIPELINE_FILE} at {commit[:7]}", hint="pick a commit with a pipeline")
        configure_worktree(repo, top)
        wrepo = Repo(top)
        try:
            outputs, missing = _verify_in(wrepo, commit, targets, progress, on_event)
        finally:
            wrepo.close()
    finally:
        if added and not keep:
            git.worktree_remove(root, scratch)
        elif not added and os.path.isdir(scratch):
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return VerifyResult(commit, outputs, scratch if keep else None, missing)


def configure_worktree(repo: Repo, top: str) -> None:
    """The worktree's ``config.local``: this clone's cache, and this clone's remotes
    (project and local settings, credentials included) over REV's committed ones."""
    os.makedirs(os.path.join(top, ".mlver", "tmp"), exist_ok=True)
    local = ConfigFile(os.path.join(top, ".mlver", "config.local"))
    for key, value in scratch_config(repo):
        local.set(key, value)
    local.save()


def scratch_config(repo: Repo) -> list[tuple[str, str]]:
    """The settings a scratch worktree of this clone needs: its cache and its remotes."""
    values = [("cache.dir", repo.cache_dir)]
    for key, value in repo.config.values.items():
        if key.startswith("remote.") or key == "core.remote":
            values.append((key, _absolute_url(repo, value) if key.endswith(".url") else value))
    return values


def _absolute_url(repo: Repo, url: str) -> str:
    """A folder remote written relative to the project means the same folder from the worktree."""
    if "://" in url or os.path.isabs(url) or url.startswith("~"):
        return url
    return os.path.normpath(os.path.join(repo.root, url))


def _stage_of(graph: Graph, path: str) -> str | None:
    for s in graph.pipeline.stages:
        if any(o.path == path for o in s.products):
            return s.name
    return None


def _materialise(wrepo: Repo, needed: list[Output], progress: Progress) -> dict[str, str]:
    """Check out ``needed`` input data from the cache, fetching what is missing from the
    default remote. Returns path -> why it is unavailable."""
    from mlver.ops.checkout import checkout
    from mlver.ops.transfer import fetch

    if not needed:
        return {}
    paths = [wrepo.abs(o.path) for o in needed]  # absolute: targets are read relative to the cwd
    problems: dict[str, str] = {}
    if tracked.missing(wrepo.cache, needed) and wrepo.config.get("core.remote"):
        try:
            res = fetch(wrepo, paths, progress=progress)
            for issue in res.missing + res.corrupt:
                problems.setdefault(_owner(needed, issue.path),
                                    f"object {issue.digest} is in neither the cache nor remote '{res.remote}'")
        except RemoteError as e:
            for o in needed:
                problems[o.path] = f"could not fetch from the default remote: {e.message}"
    done = checkout(wrepo, paths, progress=progress)
    for p in done.missing:
        owner = _owner(needed, p)
        if owner not in problems:
            where = "the cache nor the default remote" if wrepo.config.get("core.remote") else \
                "the cache (no remote is configured)"
            problems[owner] = f"data is in neither {where}"
    return problems


def _owner(outputs: list[Output], path: str) -> str:
    for o in outputs:
        if path == o.path or path.startswith(o.path + "/"):
            return o.path
    return path


def _verify_in(wrepo: Repo, commit: str, targets: list[str] | None, progress: Progress,
               on_event: Callable[[StageEvent], None]) -> tuple[list[OutputCheck], dict[str, str]]:
    """The per-output checks, and the inputs that are not available (path -> why)."""
    graph = load_graph(wrepo)
    stages = select(graph, targets, downstream=False)
    expected = read_lock(wrepo)
    in_scope = {s.name for s in stages}
    # Inputs: data tracked by pointer files that a stage in scope reads.
    deps = {d.path for s in stages for d in s.deps}
    inputs = [o for o in pointer_outputs(wrepo)
              if any(d == o.path or d.startswith(o.path + "/") or o.path.startswith(d + "/") for d in deps)]
    problems = _materialise(wrepo, inputs, progress)
    blocked: dict[str, str] = {}  # stage -> why it cannot run
    missing: dict[str, str] = {}  # input -> why it is not available
    for s in stages:
        for d in s.deps:
            bad = [p for p in problems if d.path == p or d.path.startswith(p + "/") or p.startswith(d.path + "/")]
            if bad:
                blocked.setdefault(s.name, f"input {bad[0]}: {problems[bad[0]]}")
                missing.setdefault(bad[0], problems[bad[0]])
            elif (not os.path.lexists(wrepo.abs(d.path)) and _stage_of(graph, d.path) is None
                  and not any(d.path.startswith(o.path + "/") for st in graph.pipeline.stages for o in st.products)):
                blocked.setdefault(s.name, f"input {d.path} does not exist at {commit[:7]}")
                missing.setdefault(d.path, f"does not exist at {commit[:7]}")
    for name in list(blocked):
        for down in graph.closure([name], down=True):
            if down != name and down in in_scope:
                blocked.setdefault(down, f"not run: upstream stage '{name}' could not run")
    runnable = [s.name for s in stages if s.name not in blocked]
    old_values = {m.path: _read_metrics(wrepo, m.path, expected.get(s.name)) for s in stages for m in s.metrics}
    started: list[str] = []

    def note(event: StageEvent) -> None:
        if event.action == "running":
            started.append(event.stage)
        on_event(event)

    failure: tuple[str, str] | None = None
    if runnable:
        try:
            reproduce(wrepo, runnable, force=True, run_cache=False, progress=progress, on_event=note)
        except ReproFailed as e:
            failure = (e.result.failed.stage if e.result.failed else runnable[0], e.message)
        except MlverError as e:  # before any stage ran
            failure = (started[-1] if started else runnable[0], e.message)
    if failure is not None:
        failed, message = failure
        blocked[failed] = message
        for down in graph.closure([failed], down=True):
            if down != failed and down in in_scope:
                blocked.setdefault(down, f"not run: stage '{failed}' failed")
        for s in stages:  # stages after the failure in run order never started
            if s.name not in blocked and s.name not in started:
                blocked[s.name] = f"not run: stage '{failed}' failed"
    actual = read_lock(wrepo)
    return [check for s in stages for check in _compare(wrepo, s, expected.get(s.name), actual.get(s.name),
                                                          blocked.get(s.name), old_values)], missing


def _read_metrics(wrepo: Repo, path: str, locked: StageLock | None) -> dict[str, Any] | None:
    """Metric values as REV recorded them: the file in the worktree (it is in Git), else
    the cached copy the lock names."""
    data: bytes | None = None
    full = wrepo.abs(path)
    if os.path.isfile(full):
        with open(full, "rb") as f:
            data = f.read()
    elif locked is not None:
        entry = next((e for e in locked.metrics if e.path == path), None)
        if entry is not None and entry.kind == "file" and wrepo.cache.has(entry.digest):
            data = wrepo.cache.read_bytes(entry.digest)
    if data is None:
        return None
    try:
        return flatten(parse_values(data, path))
    except MlverError:
        return None


def _dir_difference(wrepo: Repo, old: LockEntry, new: LockEntry) -> str:
    a, b = wrepo.cache.manifest(old.digest), wrepo.cache.manifest(new.digest)
    if a is None or b is None:
        return ""
    before = {e.path: e.digest for e in a.entries}
    after = {e.path: e.digest for e in b.entries}
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"{len(changed)} file(s) differ: {shown}" if changed else ""


def _compare(wrepo: Repo, stage: Stage, old: StageLock | None, new: StageLock | None, blocked: str | None,
             old_values: dict[str, dict[str, Any] | None]) -> list[OutputCheck]:
    recorded = {e.path: e for e in old.products} if old else {}
    made = {e.path: e for e in new.products} if new else {}
    checks = []
    for out in stage.products:
        before = recorded.get(out.path)
        expected = before.digest if before else None
        if blocked is not None:
            checks.append(OutputCheck(stage.name, out.path, ERROR, expected, None, blocked))
            continue
        after = made.get(out.path)
        if before is None:
            checks.append(OutputCheck(stage.name, out.path, ERROR, None, after.digest if after else None,
                                      "REV's mlver.lock has no record of this output"))
            continue
        if after is None:  # pragma: no cover - a run that finished records every product
            checks.append(OutputCheck(stage.name, out.path, ERROR, expected, None, "not recorded by the run"))
            continue
        if (before.kind, before.digest) == (after.kind, after.digest):
            checks.append(OutputCheck(stage.name, out.path, REPRODUCED, expected, after.digest))
            continue
        values = None
        message = ""
        if out.metric:
            now = _read_metrics(wrepo, out.path, new)
            was = old_values.get(out.path)
            if was is not None and now is not None:
                values = compare_values({out.path: was}, {out.path: now}).get(out.path, {})
                message = "; ".join(f"{k}: {_show(c['old'])} -> {_show(c['new'])}" for k, c in values.items())
        elif before.kind == "dir" and after.kind == "dir":
            message = _dir_difference(wrepo, before, after)
        checks.append(OutputCheck(stage.name, out.path, DIFFERS, expected, after.digest, message, values))
    return checks


def _show(v: Any) -> str:
    return "-" if v is None else str(v)
