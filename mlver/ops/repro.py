"""``mlver repro``: run changed pipeline stages in dependency order (see
mlver.pipeline.run), then stage the rewritten mlver files when core.autostage is set.
``--pull`` fetches what the stages recorded before deciding; ``--allow-missing`` lets
outputs that only the cache or the default remote hold stand for a run."""

from __future__ import annotations

import os
from typing import Any, Callable

from mlver.ops.common import autostage, with_untracked_pipeline
from mlver.pipeline.lockfile import LockEntry
from mlver.pipeline.run import ReproResult, StageEvent, reproduce
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo


def repro(repo: Repo, targets: list[str] | None = None, *, force: bool = False, dry_run: bool = False,
          downstream: bool = False, single: bool = False, keep_going: bool = False, pull: bool = False,
          allow_missing: bool = False, run_cache: bool = True, progress: Progress = NO_PROGRESS,
          on_event: Callable[[StageEvent], None] | None = None) -> tuple[ReproResult, list[str]]:
    """Returns the result and the files staged in Git (core.autostage)."""
    kwargs: dict[str, Any] = {"on_event": on_event} if on_event is not None else {}
    if pull and not dry_run:
        _pull_recorded(repo, progress)
    result = reproduce(repo, targets, force=force, dry_run=dry_run, downstream=downstream, single=single,
                       keep_going=keep_going, allow_missing=_available(repo) if allow_missing else None,
                       run_cache=run_cache, progress=progress, **kwargs)
    staged = [] if dry_run else autostage(repo, result.files)
    if result.files and not staged:
        result.to_add = with_untracked_pipeline(repo, result.files)
    return result, staged


def _pull_recorded(repo: Repo, progress: Progress) -> None:
    """Fetch and check out every output the lock records that the workspace lacks
    (missing objects are left to the stages that make them)."""
    from mlver.ops.transfer import pull
    from mlver.pipeline.lockfile import lock_outputs

    missing = [o.path for o in lock_outputs(repo) if not os.path.lexists(repo.abs(o.path))]
    if missing:
        pull(repo, missing, progress=progress)


def _available(repo: Repo) -> Callable[[list[LockEntry]], bool]:
    """Whether recorded objects are in the cache or on the default remote (with no
    remote configured: the cache only)."""
    def check(entries: list[LockEntry]) -> bool:
        from mlver.cache import ObjectRef

        refs = [ObjectRef(e.digest, e.kind == "dir") for e in entries]
        stored = repo.cache.present(refs)
        absent = [r for r in refs if r not in stored]
        if not absent:
            return True
        if not repo.config.get("core.remote") and not repo.config.remotes():
            return False
        from mlver.ops.transfer import open_remote

        with open_remote(repo, None) as rem:
            on_remote = rem.list_objects({r.digest[:2] for r in absent})
        return all(r in on_remote for r in absent)

    return check
