"""``mlver repro``: run changed pipeline stages in dependency order (see
mlver.pipeline.run), then stage the rewritten mlver files when core.autostage is set.
``--pull`` fetches what the stages recorded before deciding; ``--allow-missing`` lets
outputs that only the cache or the default remote hold stand for a run."""

from __future__ import annotations

import os
from typing import Any, Callable

from mlver.ops.commit import record_changed_inputs, refuse_missing_inputs
from mlver.ops.common import PIPELINE_FILE, autostage, in_folder_pipeline, with_untracked_pipeline
from mlver.pipeline.lockfile import LockEntry
from mlver.pipeline.run import ReproResult, StageEvent, reproduce
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo


def repro(repo: Repo, targets: list[str] | None = None, *, force: bool = False, dry_run: bool = False,
          downstream: bool = False, single: bool = False, keep_going: bool = False, pull: bool = False,
          allow_missing: bool = False, run_cache: bool = True, all_pipelines: bool = False,
          progress: Progress = NO_PROGRESS, on_event: Callable[[StageEvent], None] | None = None
          ) -> tuple[ReproResult, list[str]]:
    """Returns the result and the files staged in Git (core.autostage). Without targets,
    every pipeline file's stages; run from a subfolder that holds its own ``mlver.yaml``,
    that file's stages (and what they depend on), as DVC does, unless ``all_pipelines``."""
    kwargs: dict[str, Any] = {"on_event": on_event} if on_event is not None else {}
    here = os.path.relpath(os.getcwd(), repo.root).replace(os.sep, "/")
    if (not all_pipelines and here != "." and not here.startswith("../")
            and os.path.isfile(os.path.join(os.getcwd(), PIPELINE_FILE))):
        targets = in_folder_pipeline(repo, f"{here}/{PIPELINE_FILE}", targets)
    if pull and not dry_run:
        _pull_recorded(repo, progress)
    if not allow_missing and not (pull and dry_run):  # before a folder holding the missing file is recorded
        refuse_missing_inputs(repo, targets, downstream=downstream, single=single)
    recorded = [] if dry_run else record_changed_inputs(repo, progress, targets, downstream=downstream, single=single)
    result = reproduce(repo, targets, force=force, dry_run=dry_run, downstream=downstream, single=single,
                       keep_going=keep_going, allow_missing=_available(repo) if allow_missing else None,
                       run_cache=run_cache, progress=progress, **kwargs)
    result.files = list(dict.fromkeys([*recorded, *result.files]))
    staged = [] if dry_run else autostage(repo, result.files)
    if result.files and not staged:
        result.to_add = with_untracked_pipeline(repo, result.files)
    return result, staged


def _pull_recorded(repo: Repo, progress: Progress) -> None:
    """Fetch and check out what the stages need that the workspace lacks: every output
    the lock files record, and tracked data (pointers) a stage depends on (missing
    objects are left to the stages that make them)."""
    from mlver.pipeline.graph import overlaps
    from mlver.ops.common import all_outputs
    from mlver.ops.transfer import pull
    from mlver.pipeline.plan import load_pipeline

    deps = [d.path for s in load_pipeline(repo).stages for d in s.deps]
    missing = [o.path for o in all_outputs(repo) if not os.path.lexists(repo.abs(o.path))
               and (o.stage is not None or any(overlaps(o.path, d) for d in deps))]
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

        from mlver.packs import held

        with open_remote(repo, None) as rem:
            on_remote = held(rem, absent, repo.tmp_dir)
        return all(r in on_remote for r in absent)

    return check
