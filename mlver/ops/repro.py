"""``mlver repro``: run changed pipeline stages in dependency order (see
mlver.pipeline.run), then stage the rewritten mlver files when core.autostage is set."""

from __future__ import annotations

from typing import Callable

from mlver.ops.common import autostage, with_untracked_pipeline
from mlver.pipeline.run import ReproResult, StageEvent, reproduce
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo


def repro(repo: Repo, targets: list[str] | None = None, *, force: bool = False, dry_run: bool = False,
          downstream: bool = False, run_cache: bool = True, progress: Progress = NO_PROGRESS,
          on_event: Callable[[StageEvent], None] | None = None) -> tuple[ReproResult, list[str]]:
    """Returns the result and the files staged in Git (core.autostage)."""
    kwargs = {"on_event": on_event} if on_event is not None else {}
    result = reproduce(repo, targets, force=force, dry_run=dry_run, downstream=downstream,
                       run_cache=run_cache, progress=progress, **kwargs)
    staged = [] if dry_run else autostage(repo, result.files)
    if result.files and not staged:
        result.to_add = with_untracked_pipeline(repo, result.files)
    return result, staged
