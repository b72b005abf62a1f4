"""Helpers shared by several verbs: all tracked outputs, pointer writing, .gitignore."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlver import git
from mlver.fsutil import atomic_write_text
from mlver.pointer import POINTER_SUFFIX, Pointer
from mlver.progress import Progress
from mlver.repo import Repo
from mlver.tracked import workspace_outputs
from mlver.workspace import Output, has_lock, has_pipeline

if TYPE_CHECKING:  # pragma: no cover - the pipeline modules import YAML: only when used
    from mlver.pipeline.plan import StageCommit

LOCK_FILE = "mlver.lock"
PIPELINE_FILE = "mlver.yaml"


def stage_outputs(repo: Repo) -> list[Output]:
    """Outputs recorded for pipeline stages in the lock files (none without a lock)."""
    if not has_lock(repo):
        return []
    from mlver.pipeline.lockfile import lock_outputs

    return lock_outputs(repo)


def pipeline_status(repo: Repo, targets: list[str] | None = None) -> list[tuple[str, bool, list[str]]]:
    """(stage, changed, reasons) for every stage of the pipeline files (none without one)."""
    if not has_pipeline(repo):
        return []
    from mlver.pipeline.plan import stage_status

    return stage_status(repo, targets)


def stage_names(repo: Repo) -> list[str]:
    if not has_pipeline(repo):
        return []
    from mlver.pipeline.plan import load_pipeline

    return [s.name for s in load_pipeline(repo).stages]


def stages_named(repo: Repo, targets: list[str]) -> dict[str, list[str]]:
    """target -> the stages it names (a stage name, a foreach/matrix name, a pipeline
    file, ``sub/mlver.yaml:NAME``), for the targets that name a stage and no existing path."""
    if not has_pipeline(repo):
        return {}
    from mlver.pipeline.plan import load_pipeline

    pipeline = load_pipeline(repo)
    found: dict[str, list[str]] = {}
    for t in targets:
        if os.path.exists(repo.abs(repo.rel(t))) and not t.endswith(PIPELINE_FILE):
            continue
        named = pipeline.named(t)
        if named:
            found[t] = [s.name for s in named]
    return found


def in_folder_pipeline(repo: Repo, file: str, targets: list[str] | None) -> list[str]:
    """Targets as given in a subfolder holding its own pipeline ``file``: none means that
    file's stages, and a bare stage name that file's stage of that name (as `dvc repro
    NAME` there), else whatever the name means project-wide."""
    if not targets:
        return [file]
    from mlver.pipeline.model import split_stage_name
    from mlver.pipeline.plan import load_pipeline

    pipeline = load_pipeline(repo)
    return [f"{file}:{t}" if split_stage_name(t)[0] == PIPELINE_FILE and pipeline.named(f"{file}:{t}") else t
            for t in targets]


def full_stage_names(repo: Repo, targets: list[str]) -> list[str]:
    """``targets`` with each one that names stages (a bare name of a subfolder pipeline's
    stage, a foreach name) replaced by those stages' full names, as `repro` reads them (in
    a subfolder holding its own pipeline, a bare name is first that file's stage)."""
    if not targets:
        return targets
    here = os.path.relpath(os.getcwd(), repo.root).replace(os.sep, "/")
    if here != "." and not here.startswith("../") and os.path.isfile(os.path.join(os.getcwd(), PIPELINE_FILE)):
        targets = [t if os.path.exists(t) else f for t, f in
                   zip(targets, in_folder_pipeline(repo, f"{here}/{PIPELINE_FILE}", targets))]
    named = stages_named(repo, targets)
    return [n for t in targets for n in (named.get(t) or [t])]


def declared_outputs(repo: Repo) -> dict[str, str]:
    """Output path -> stage name for every output the pipeline files declare (run or not)."""
    if not has_pipeline(repo):
        return {}
    from mlver.pipeline.plan import load_pipeline

    return {o.path: s.name for s in load_pipeline(repo).stages for o in s.products}


def plan_stage_commit(repo: Repo, names: list[str] | None, *, force: bool,
                      progress: Progress) -> StageCommit | None:
    """Check the stages (all when ``names`` is None) ``commit`` would record; refuses
    stale ones unless ``force`` (mlver.pipeline.plan.plan_stage_commit). None without
    ``mlver.yaml``."""
    if not has_pipeline(repo):
        return None
    from mlver.pipeline.plan import plan_stage_commit as plan

    return plan(repo, names, force=force, progress=progress)


def commit_stages(repo: Repo, plan: StageCommit | None, *, progress: Progress) -> tuple[list[str], list[str], list[str]]:
    """Record the current outputs of the stages ``plan`` (from plan_stage_commit) holds
    into the lock. Returns (outputs recorded, stages whose lock entry changed, mlver files
    rewritten)."""
    if plan is None:
        return [], [], []
    from mlver.pipeline.plan import commit_stage_outputs

    return commit_stage_outputs(repo, plan, progress=progress)


def with_untracked_pipeline(repo: Repo, files: list[str]) -> list[str]:
    """``files`` (mlver files to `git add`), plus ``mlver.yaml`` (and the pipeline file
    beside each subfolder lock in ``files``) when it exists and Git does not track it yet:
    a lock means little without the pipeline it records."""
    if repo.scm_root is None:
        return files
    folders = sorted({f.rsplit("/", 1)[0] for f in files if f.endswith("/" + LOCK_FILE)})
    candidates = [p for p in [PIPELINE_FILE, *(f"{d}/{PIPELINE_FILE}" for d in folders)]
                  if p not in files and os.path.exists(repo.abs(p))]
    if not candidates:
        return files
    tracked = set(git.tracked(repo.root, candidates))
    return [p for p in candidates if p not in tracked] + files


def ignored_by_git(root: str, files: list[str]) -> list[str]:
    """Which of ``files`` (relative to the project ``root``) a ``.gitignore`` hides from
    `git add`."""
    return git.ignored(root, files)


def all_outputs(repo: Repo) -> list[Output]:
    """Every tracked output: pointer files first, then pipeline outputs."""
    return workspace_outputs(repo)


def pointer_rel_for(data_rel: str) -> str:
    return data_rel + POINTER_SUFFIX


def write_pointer(repo: Repo, pointer_rel: str, pointer: Pointer) -> None:
    atomic_write_text(repo.abs(pointer_rel), pointer.dumps(), fsync=repo.fsync, inside=repo.root)


def autostage(repo: Repo, paths: list[str]) -> list[str]:
    """``git add`` the given mlver files when core.autostage is set; returns what was staged."""
    if not paths or repo.scm_root is None or not repo.config.get_bool("core.autostage"):
        return []
    existing = [repo.abs(p) for p in paths if os.path.exists(repo.abs(p))]
    gone = [repo.abs(p) for p in paths if not os.path.exists(repo.abs(p))]
    git.stage(repo.root, existing)
    if gone:
        git.run(repo.root, "rm", "-q", "--cached", "--ignore-unmatch", "--", *gone, literal=True)
    return paths
