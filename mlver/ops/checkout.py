"""``mlver checkout``: make workspace data match the pointers and the lock."""

from __future__ import annotations

import os
import posixpath
from dataclasses import replace

from mlver import git
from mlver.errors import GitError, PathError, UsageError
from mlver.ops.common import LOCK_FILE, all_outputs, full_stage_names
from mlver.pipeline.lockfile import (LockEntry, StageLock, lock_files, read_lock, stage_locks_from_text,
                                     write_lock)
from mlver.pointer import POINTER_SUFFIX
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import CheckoutResult, check_writable, checkout_output, clean_vanished, select_outputs


def checkout(repo: Repo, targets: list[str] | None = None, *, force: bool = False, relink: bool = False,
             rev: str | None = None, progress: Progress = NO_PROGRESS) -> CheckoutResult:
    targets = full_stage_names(repo, targets or []) or targets
    if rev is not None:
        targets = bring_from_rev(repo, rev, targets or [])
    outputs = all_outputs(repo)
    chosen = select_outputs(repo, outputs, targets) if targets else [] if rev is not None else outputs
    for out in chosen:  # refuse a path that leads out of the repository before writing anything
        check_writable(repo, out)
    result = CheckoutResult()
    for out in chosen:
        result.merge(checkout_output(repo, out, force=force, relink=relink, progress=progress))
    if not targets and rev is None:
        result.merge(clean_vanished(repo, outputs))
    if result.missing:  # outputs declared `push: false` are not expected from a remote
        from mlver.ops.scope import declared_routes

        unpushed = {path for path, (push, _) in declared_routes(repo).items() if not push}
        result.not_pushed = [p for p in result.missing if p in unpushed]
        result.missing = [p for p in result.missing if p not in unpushed]
    repo.state.flush()
    return result


def bring_from_rev(repo: Repo, rev: str, targets: list[str]) -> list[str]:
    """Like ``git checkout REV -- path`` for the pointers of ``targets`` (and, for stage
    outputs, their records in the lock; metrics files kept in Git come from REV's tree).
    Returns the targets whose data is then checked out from the cache."""
    root = repo.require_scm("checkout --rev")
    if not targets:
        raise UsageError("--rev needs at least one target", hint="e.g. `mlver checkout --rev HEAD~1 data/train.csv`")
    shown, rev = rev, git.verify_commit(root, rev) or ""  # a Git revision or an experiment's name
    if not rev:
        raise GitError(f"unknown revision '{shown}'", hint="`git log --oneline` and `mlver exp list` name them")
    files: list[str] = []
    data: list[str] = []  # targets whose data comes from the cache
    recorded: list[tuple[StageLock, LockEntry]] = []  # (stage at rev, an output's entry)
    then: dict[str, StageLock] | None = None
    for t in targets:
        rel = repo.rel(t)
        if rel.endswith(POINTER_SUFFIX):
            files.append(rel)
            data.append(t)
        elif os.path.exists(repo.abs(rel + POINTER_SUFFIX)) or _exists_at(root, rev, repo, rel + POINTER_SUFFIX):
            files.append(rel + POINTER_SUFFIX)
            data.append(t)
        else:
            then = _locks_at(repo, root, rev) if then is None else then
            found = _recorded(then, t, rel)
            if not found:
                raise PathError(t, f"is neither a pointer nor a stage output recorded at {shown}",
                                hint=f"see the files of {shown} with `git show --stat {rev[:10]}`")
            recorded += found
            kept = [e.path for _, e in found if not e.cache]  # metrics/plots kept in Git: REV's file
            files += [p for p in kept if _exists_at(root, rev, repo, p)]
            data += [repo.abs(e.path) for _, e in found if e.cache]  # (a stage's name may be an old one)
    producers = _current_producers(repo, recorded) if recorded else {}
    if files:
        git.run(repo.root, "checkout", rev, "--", *sorted({repo.abs(f) for f in files}), literal=True)
    if recorded:
        _record_outputs(repo, recorded, producers)
    return list(dict.fromkeys(data))


def _current_producers(repo: Repo, recorded: list[tuple[StageLock, LockEntry]]) -> dict[str, str]:
    """Output path -> the stage of today's pipeline that makes it, for each recorded output;
    one that no stage makes now is refused (its record would be a stage mlver.yaml lacks)."""
    from mlver.ops.common import declared_outputs

    declared = declared_outputs(repo)
    out: dict[str, str] = {}
    for stage, entry in recorded:
        name = declared.get(entry.path)
        if name is None:
            raise PathError(entry.path, f"was made by stage '{stage.name}', which no stage of the pipeline "
                                        "makes now", hint=f"write that version elsewhere with `mlver get --rev REV "
                                                          f"{entry.path} -o FILE`")
        out[entry.path] = name
    return out


def _locks_at(repo: Repo, root: str, rev: str) -> dict[str, StageLock]:
    """The stages the workspace's lock files recorded at ``rev``."""
    from mlver.pipeline.dvcfiles import DVC_LOCK, dvc_lock_stages
    from mlver.tracked import kept_in_git

    out: dict[str, StageLock] = {}
    for lock in lock_files(repo) or [LOCK_FILE]:
        spec = os.path.relpath(repo.abs(lock), root).replace(os.sep, "/")
        proc = git.run(root, "show", f"{rev}:{spec}", check=False)
        if proc.returncode == 0:
            out.update(stage_locks_from_text(proc.stdout.decode("utf-8", "replace"), f"{lock} at {rev[:10]}", lock))
            continue
        # a commit from before `mlver import-dvc`: DVC's dvc.lock in that folder says the same
        dvc_rel = posixpath.join(posixpath.dirname(lock), DVC_LOCK)
        dvc_spec = os.path.relpath(repo.abs(dvc_rel), root).replace(os.sep, "/")
        proc = git.run(root, "show", f"{rev}:{dvc_spec}", check=False)
        if proc.returncode == 0:
            in_git = kept_in_git(repo, rev)  # DVC's `cache: false` outputs, which dvc.lock does not mark

            def marked(entries: tuple[LockEntry, ...]) -> tuple[LockEntry, ...]:
                return tuple(replace(e, cache=False) if e.path in in_git else e for e in entries)

            for name, st in dvc_lock_stages(proc.stdout.decode("utf-8", "replace"), f"{dvc_rel} at {rev[:10]}",
                                            dvc_rel).items():
                out[name] = replace(st, outs=marked(st.outs), metrics=marked(st.metrics))
    return out


def _recorded(stages: dict[str, StageLock], target: str, rel: str) -> list[tuple[StageLock, LockEntry]]:
    """The recorded outputs (metrics and plots too) a target brings: every output of each
    stage that made what the target names (a stage's name, an output, a folder holding
    outputs, or a path inside a folder output). A stage's outputs come back together:
    they are one record of one run, and a lock mixing two runs would claim what neither
    made."""
    if target in stages and not os.path.exists(target):
        named = [stages[target]]
    else:
        named = [s for s in stages.values() if any(
            rel in (".", e.path) or e.path.startswith(rel + "/") or rel.startswith(e.path + "/") for e in s.products)]
    return [(s, e) for s in named for e in s.products]


def _record_outputs(repo: Repo, recorded: list[tuple[StageLock, LockEntry]], producers: dict[str, str]) -> None:
    """Record in the workspace's lock that these stages' outputs are ``rev``'s: the stage
    that makes them now (``producers``; renamed since, it is the same stage) gets its
    whole record of ``rev`` (command, deps, params, outputs: one run), so `status` says
    the stage changed when today's deps differ and `repro` makes it current; the lock's
    other stages stay as they are."""
    stages = read_lock(repo)
    for stage, entry in recorded:
        stages[producers[entry.path]] = replace(stage, name=producers[entry.path])
    write_lock(repo, stages, list(stages))


def _exists_at(root: str, rev: str, repo: Repo, rel: str) -> bool:
    spec = os.path.relpath(repo.abs(rel), root).replace(os.sep, "/")
    return git.run(root, "cat-file", "-e", f"{rev}:{spec}", check=False).returncode == 0
