"""``mlver commit``: record the workspace's current data into pointers (and the lock),
optionally followed by ``git commit``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from mlver import git
from mlver.ops.common import (LOCK_FILE, all_outputs, autostage, commit_stages, plan_stage_commit, stages_named,
                              write_pointer)
from mlver.hashing import algo_of
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.gitignore import gitignore_add
from mlver.workspace import Output, pipeline_files, select_outputs, store_output


@dataclass
class CommitResult:
    recorded: list[str] = field(default_factory=list)  # outputs whose pointer/lock changed
    stages: list[str] = field(default_factory=list)  # stages whose lock entry changed
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # outputs with no data in the workspace
    files: list[str] = field(default_factory=list)  # mlver files rewritten (to stage in Git)
    git_commit: str | None = None
    staged: list[str] = field(default_factory=list)  # staged in Git (core.autostage)
    nothing_to_commit: bool = False
    forced: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (stage, reasons): --force
    restored: list[str] = field(default_factory=list)  # unchanged outputs whose object the cache lacked: stored


def commit(repo: Repo, targets: list[str] | None = None, *, message: str | None = None, force: bool = False,
           progress: Progress = NO_PROGRESS) -> CommitResult:
    """All or nothing: stages are checked first, and a stage whose command, dependencies
    or parameters differ from its lock (or that never ran) refuses the whole commit
    (``StaleStage``) unless ``force`` — before any pointer, cache object or lock entry
    is written and before ``git commit``."""
    if message is not None:
        repo.require_scm("commit -m")
    result = CommitResult()
    outputs = all_outputs(repo)
    stages: list[str] = []
    if targets:
        named = stages_named(repo, targets)
        stages = [n for t in targets for n in named.get(t, [])]
        rest = [t for t in targets if t not in named]
        chosen = select_outputs(repo, outputs, rest) if rest else []
    else:
        chosen = outputs
    for out in chosen:
        if out.stage is not None and out.stage not in stages:
            stages.append(out.stage)
    plan = None
    if stages or not targets:
        plan = plan_stage_commit(repo, stages if targets else None, force=force, progress=progress)
        result.forced = list(plan.forced) if plan is not None else []
    for out in chosen:
        if out.stage is not None:
            continue
        if not os.path.lexists(repo.abs(out.path)):
            result.missing.append(out.path)
            continue
        had = repo.cache.has(out.digest, out.kind == "dir")
        stored = store_output(repo, out.path, progress=progress, algo=algo_of(out.digest))
        repo.state.set_placed(out.path, stored.kind, stored.digest)
        assert out.pointer is not None and out.pointer_file is not None
        new = replace(out.pointer, kind=stored.kind, digest=stored.digest, size=stored.size, files=stored.files)
        if new != out.pointer:
            write_pointer(repo, out.pointer_file, new)
            result.recorded.append(out.path)
            result.files.append(out.pointer_file)
        else:
            result.unchanged.append(out.path)
            if not had:
                result.restored.append(out.path)
        ignore = gitignore_add(repo, out.path)
        if ignore:
            result.files.append(ignore)
    if plan is not None:
        recorded, result.stages, files = commit_stages(repo, plan, progress=progress)
        result.recorded += recorded
        result.files += files
    repo.state.flush()
    if message is not None:
        # Every mlver file of the chosen outputs, so pointers recorded by an earlier
        # `mlver commit` without -m go in too; `git add` of an unchanged file is a no-op.
        to_stage = set(result.files) | {o.pointer_file for o in chosen if o.pointer_file}
        to_stage |= {os.path.join(os.path.dirname(o.path), ".gitignore") for o in chosen if o.pointer_file}
        if stages or not targets:
            to_stage.update(pipeline_files(repo, LOCK_FILE) or [LOCK_FILE])
        existing = sorted(repo.abs(f) for f in to_stage if os.path.exists(repo.abs(f)))
        git.stage(repo.root, existing)
        if git.has_staged_changes(repo.root):
            result.git_commit = git.commit(repo.root, message)
        else:
            result.nothing_to_commit = True
    else:
        result.staged = autostage(repo, result.files)
    return result


def record_changed_inputs(repo: Repo, progress: Progress = NO_PROGRESS, targets: list[str] | None = None,
                          **scope: bool) -> list[str]:
    """Before `repro` and `exp run` (as DVC's "verifying data sources"): tracked data (a
    pointer's) that a stage in scope (``repro TARGETS``'s) depends on and that changed in
    the workspace is recorded first (stored in the cache, its pointer rewritten), so the
    lock never names input bytes nothing stores, an experiment names the data it ran on, a
    queued one runs on it, and `push` / `exp push` can send it. Returns the mlver files
    rewritten."""
    changed = [o.path for o in changed_inputs(repo, targets, **scope)]
    return commit(repo, changed, progress=progress).files if changed else []


def _stages_in_scope(repo: Repo, targets: list[str] | None, downstream: bool = False,
                     single: bool = False) -> list[Any]:
    """The stages `repro TARGETS` considers that may run (frozen ones never do)."""
    from mlver.workspace import has_pipeline

    if not has_pipeline(repo):
        return []
    from mlver.pipeline.plan import load_graph
    from mlver.pipeline.run import select

    return [s for s in select(load_graph(repo), targets or None, downstream=downstream, single=single)
            if not s.frozen]


def changed_inputs(repo: Repo, targets: list[str] | None = None, **scope: bool) -> list[Output]:
    """The pointer outputs a stage in scope depends on whose workspace data differs from them."""
    from mlver.pipeline.graph import overlaps
    from mlver.workspace import output_state

    deps = {d.path for s in _stages_in_scope(repo, targets, **scope) for d in s.deps}
    return [o for o in all_outputs(repo) if o.stage is None and any(overlaps(o.path, d) for d in deps)
            and output_state(repo, o).state == "modified"]


def missing_inputs(repo: Repo, targets: list[str] | None = None, **scope: bool) -> list[tuple[str, str]]:
    """(stage, dep) for each dependency on tracked data (a pointer's, or a file inside a
    tracked folder) that is gone from the workspace, among the stages in scope."""
    from mlver.pipeline.graph import overlaps

    tracked = [o.path for o in all_outputs(repo) if o.stage is None]
    return [(s.name, d.path) for s in _stages_in_scope(repo, targets, **scope) for d in s.deps
            if any(overlaps(t, d.path) for t in tracked) and not os.path.lexists(repo.abs(d.path))]


def refuse_missing_inputs(repo: Repo, targets: list[str] | None = None, **scope: bool) -> None:
    """Stop before anything is written, as the stage would, when tracked input data a stage
    in scope depends on is gone from the workspace (recording the folder that held it
    first would make the deletion the new version)."""
    missing = missing_inputs(repo, targets, **scope)
    if missing:
        from mlver.pipeline.run import missing_dep

        raise missing_dep(repo, *missing[0])


def stored_input_pointers(repo: Repo, progress: Progress = NO_PROGRESS, targets: list[str] | None = None
                          ) -> dict[str, str]:
    """For a queued or --temp experiment, which leaves the workspace alone: the changed
    inputs (``changed_inputs``) stored in the cache, and the text of their pointers as
    they would be rewritten (repo-relative pointer file -> text), for the snapshot."""
    refuse_missing_inputs(repo, targets)  # as `repro` would: the snapshot must not quietly run on the recorded data
    return stored_pointer_texts(repo, changed_inputs(repo, targets), progress)


def modified_tracked(repo: Repo) -> list[Output]:
    """The pointer outputs (``mlver add``'s) whose workspace data differs from them."""
    from mlver.workspace import output_state

    return [o for o in all_outputs(repo) if o.stage is None and output_state(repo, o).state == "modified"]


def stored_pointer_texts(repo: Repo, outputs: list[Output], progress: Progress = NO_PROGRESS) -> dict[str, str]:
    """``outputs``' workspace data stored in the cache, and the text their pointers would
    have (repo-relative pointer file -> text), for a snapshot that leaves the workspace alone."""
    from mlver.pointer import read_pointer

    texts: dict[str, str] = {}
    for o in outputs:
        assert o.pointer_file is not None
        old = read_pointer(repo.abs(o.pointer_file), o.pointer_file)
        stored = store_output(repo, o.path, progress=progress, algo=algo_of(old.digest))
        texts[o.pointer_file] = replace(old, kind=stored.kind, digest=stored.digest, size=stored.size,
                                        files=stored.files).dumps()
    return texts
