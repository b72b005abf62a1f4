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
from mlver.workspace import Output

if TYPE_CHECKING:  # pragma: no cover - the pipeline modules import YAML: only when used
    from mlver.pipeline.plan import StageCommit

LOCK_FILE = "mlver.lock"
PIPELINE_FILE = "mlver.yaml"


def stage_outputs(repo: Repo) -> list[Output]:
    """Outputs recorded for pipeline stages in ``mlver.lock`` (none without a lock)."""
    if not os.path.exists(repo.abs(LOCK_FILE)):
        return []
    from mlver.pipeline.lockfile import lock_outputs

    return lock_outputs(repo)


def pipeline_status(repo: Repo, targets: list[str] | None = None) -> list[tuple[str, bool, list[str]]]:
    """(stage, changed, reasons) for every stage of ``mlver.yaml`` (none without one)."""
    if not os.path.exists(repo.abs(PIPELINE_FILE)):
        return []
    from mlver.pipeline.plan import stage_status

    return stage_status(repo, targets)


def stage_names(repo: Repo) -> list[str]:
    if not os.path.exists(repo.abs(PIPELINE_FILE)):
        return []
    from mlver.pipeline.plan import load_pipeline

    return [s.name for s in load_pipeline(repo).stages]


def declared_outputs(repo: Repo) -> dict[str, str]:
    """Output path -> stage name for every output ``mlver.yaml`` declares (run or not)."""
    if not os.path.exists(repo.abs(PIPELINE_FILE)):
        return {}
    from mlver.pipeline.plan import load_pipeline

    return {o.path: s.name for s in load_pipeline(repo).stages for o in s.products}


def plan_stage_commit(repo: Repo, names: list[str] | None, *, force: bool,
                      progress: Progress) -> StageCommit | None:
    """Check the stages (all when ``names`` is None) ``commit`` would record; refuses
    stale ones unless ``force`` (mlver.pipeline.plan.plan_stage_commit). None without
    ``mlver.yaml``."""
    if not os.path.exists(repo.abs(PIPELINE_FILE)):
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
    """``files`` (mlver files to `git add`), plus ``mlver.yaml`` when it exists and Git
    does not track it yet: the lock means little without the pipeline it records."""
    if (repo.scm_root is None or PIPELINE_FILE in files
            or not os.path.exists(repo.abs(PIPELINE_FILE)) or git.tracked(repo.root, [PIPELINE_FILE])):
        return files
    return [PIPELINE_FILE, *files]


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
