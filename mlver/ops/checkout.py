"""``mlver checkout``: make workspace data match the pointers and the lock."""

from __future__ import annotations

import os

from mlver import git
from mlver.errors import GitError, PathError, UsageError
from mlver.ops.common import LOCK_FILE, all_outputs
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
    for t in targets:
        rel = repo.rel(t)
        if rel.endswith(POINTER_SUFFIX):
            files.append(rel)
        elif os.path.exists(repo.abs(rel + POINTER_SUFFIX)) or _exists_at(root, rev, repo, rel + POINTER_SUFFIX):
            files.append(rel + POINTER_SUFFIX)
        else:
            lock = _lock_recording(repo, rel)
            if not _exists_at(root, rev, repo, lock):
                raise PathError(t, f"is neither a pointer nor a stage output recorded at {shown}",
                                hint=f"see the files of {shown} with `git show --stat {rev[:10]}`")
            files.append(lock)
    git.run(repo.root, "checkout", rev, "--", *sorted({repo.abs(f) for f in files}), literal=True)


def _lock_recording(repo: Repo, rel: str) -> str:
    """The lock file that records output ``rel`` (or a folder output holding it): that of
    the stage declaring it (a subfolder pipeline's ``sub/mlver.lock``), else the top one."""
    from mlver.ops.common import declared_outputs

    for path, stage in declared_outputs(repo).items():
        if rel == path or rel.startswith(path + "/"):
            from mlver.pipeline.lockfile import lock_file_of

            return lock_file_of(stage)
    return LOCK_FILE


def _exists_at(root: str, rev: str, repo: Repo, rel: str) -> bool:
    spec = os.path.relpath(repo.abs(rel), root).replace(os.sep, "/")
    return git.run(root, "cat-file", "-e", f"{rev}:{spec}", check=False).returncode == 0
