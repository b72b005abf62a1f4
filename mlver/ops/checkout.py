"""``mlver checkout``: make workspace data match the pointers and the lock."""

from __future__ import annotations

import os
from dataclasses import replace

from mlver import git
from mlver.errors import GitError, PathError, UsageError
from mlver.ops.common import LOCK_FILE, all_outputs
from mlver.pipeline.lockfile import (LockEntry, StageLock, lock_files, read_lock, stage_locks_from_text,
                                     write_lock)
from mlver.pointer import POINTER_SUFFIX
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import CheckoutResult, check_writable, checkout_output, clean_vanished, select_outputs


def checkout(repo: Repo, targets: list[str] | None = None, *, force: bool = False, relink: bool = False,
             rev: str | None = None, progress: Progress = NO_PROGRESS) -> CheckoutResult:
    if rev is not None:
        bring_from_rev(repo, rev, targets or [])
    outputs = all_outputs(repo)
    chosen = select_outputs(repo, outputs, targets) if targets else outputs
    for out in chosen:  # refuse a path that leads out of the repository before writing anything
        check_writable(repo, out)
    result = CheckoutResult()
    for out in chosen:
        result.merge(checkout_output(repo, out, force=force, relink=relink, progress=progress))
    if not targets:
        result.merge(clean_vanished(repo, outputs))
    if result.missing:  # outputs declared `push: false` are not expected from a remote
        from mlver.ops.scope import declared_routes

        unpushed = {path for path, (push, _) in declared_routes(repo).items() if not push}
        result.not_pushed = [p for p in result.missing if p in unpushed]
        result.missing = [p for p in result.missing if p not in unpushed]
    repo.state.flush()
    return result


def bring_from_rev(repo: Repo, rev: str, targets: list[str]) -> None:
    """Like ``git checkout REV -- path`` for the pointers (or lock) of ``targets``."""
    root = repo.require_scm("checkout --rev")
    if not targets:
        raise UsageError("--rev needs at least one target", hint="e.g. `mlver checkout --rev HEAD~1 data/train.csv`")
    shown, rev = rev, git.verify_commit(root, rev) or ""  # a Git revision or an experiment's name
    if not rev:
        raise GitError(f"unknown revision '{shown}'", hint="`git log --oneline` and `mlver exp list` name them")
    files: list[str] = []
    recorded: list[tuple[StageLock, LockEntry]] = []  # (stage at rev, an output's entry)
    then: dict[str, StageLock] | None = None
    for t in targets:
        rel = repo.rel(t)
        if rel.endswith(POINTER_SUFFIX):
            files.append(rel)
        elif os.path.exists(repo.abs(rel + POINTER_SUFFIX)) or _exists_at(root, rev, repo, rel + POINTER_SUFFIX):
            files.append(rel + POINTER_SUFFIX)
        else:
            then = _locks_at(repo, root, rev) if then is None else then
            found = _recorded(then, t, rel)
            if not found:
                raise PathError(t, f"is neither a pointer nor a stage output recorded at {shown}",
                                hint=f"see the files of {shown} with `git show --stat {rev[:10]}`")
            recorded += found
    if files:
        git.run(repo.root, "checkout", rev, "--", *sorted({repo.abs(f) for f in files}), literal=True)
    if recorded:
        _record_outputs(repo, recorded)


def _locks_at(repo: Repo, root: str, rev: str) -> dict[str, StageLock]:
    """The stages the workspace's lock files recorded at ``rev``."""
    out: dict[str, StageLock] = {}
    for lock in lock_files(repo) or [LOCK_FILE]:
        spec = os.path.relpath(repo.abs(lock), root).replace(os.sep, "/")
        proc = git.run(root, "show", f"{rev}:{spec}", check=False)
        if proc.returncode == 0:
            out.update(stage_locks_from_text(proc.stdout.decode("utf-8", "replace"), f"{lock} at {rev[:10]}", lock))
    return out


def _recorded(stages: dict[str, StageLock], target: str, rel: str) -> list[tuple[StageLock, LockEntry]]:
    """The recorded outputs a target names, as ``select_outputs`` reads targets: a stage's
    name, an output, a folder holding outputs, or a path inside a folder output."""
    if target in stages and not os.path.exists(target):
        return [(stages[target], e) for e in stages[target].products if e.cache]
    return [(s, e) for s in stages.values() for e in s.products if e.cache and (
        rel in (".", e.path) or e.path.startswith(rel + "/") or rel.startswith(e.path + "/"))]


def _record_outputs(repo: Repo, recorded: list[tuple[StageLock, LockEntry]]) -> None:
    """Record in the workspace's lock that these outputs are ``rev``'s: each stage named
    gets its record at ``rev`` (command, deps, params: how those outputs were made) with
    the entries of its other outputs kept as they are, and the lock's other stages stay as
    they are. So the lock never claims the current deps made an old output (`status` shows
    the stage changed, `repro` makes it current again) and a later `checkout` leaves the
    outputs that were not asked for alone."""
    stages = read_lock(repo)
    asked: dict[str, set[str]] = {}
    then: dict[str, StageLock] = {}
    for stage, entry in recorded:
        asked.setdefault(stage.name, set()).add(entry.path)
        then[stage.name] = stage
    for name, paths in asked.items():
        now = stages.get(name, then[name])
        stages[name] = replace(
            then[name],
            outs=tuple(e for e in now.outs if e.path not in paths) + tuple(e for e in then[name].outs if e.path in paths),
            metrics=tuple(e for e in now.metrics if e.path not in paths)
            + tuple(e for e in then[name].metrics if e.path in paths))
    write_lock(repo, stages, list(stages))


def _exists_at(root: str, rev: str, repo: Repo, rel: str) -> bool:
    spec = os.path.relpath(repo.abs(rel), root).replace(os.sep, "/")
    return git.run(root, "cat-file", "-e", f"{rev}:{spec}", check=False).returncode == 0
