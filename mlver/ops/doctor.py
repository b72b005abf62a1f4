"""``mlver doctor``: a report of the environment mlver runs in."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from mlver import __version__, git
from mlver.fsutil import LINK_TYPES, link_file, unlink_quiet
from mlver.errors import MlverError, NotARepoError
from mlver.remote import backend_for
from mlver.repo import Repo


@dataclass
class DoctorReport:
    version: str
    python: str
    platform: str
    git: str | None
    root: str | None = None
    cache_dir: str | None = None
    cache_objects: int = 0
    cache_bytes: int = 0
    link_types: dict[str, bool] = field(default_factory=dict)
    configured_link_types: list[str] = field(default_factory=list)
    remotes: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # traps (``traps``)

    def to_json(self) -> dict:
        return {"version": 1, **{k: v for k, v in self.__dict__.items() if k != "version"}, "mlver": self.version}


# dvclive's Live() calls `dvc init` in a Git repository that has no .dvc/ (its
# get_dvc_repo falls back to Repo.init), whatever its options; save_dvc_exp=False stops it
# saving DVC experiments and dvcyaml=None stops it writing dvc.yaml.
DVCLIVE_WARNING = ("dvclive is installed here: its Live() runs `dvc init` when it finds a Git repository "
                   "without .dvc/, and by default saves a DVC experiment and writes dvc.yaml; "
                   "pass Live(save_dvc_exp=False, dvcyaml=None) to stop the experiments and dvc.yaml, and use "
                   "mlver.live.Live (same log_metric / next_step / log_plot) or `pip uninstall dvclive` "
                   "to keep .dvc/ from coming back")


def traps(root: str, metrics: list[str], pipeline_files: list[str]) -> list[str]:
    """Warnings for traps a project can fall into (also shown by ``import-dvc``): a
    metrics file or pipeline file that a .gitignore line hides from Git (so `git add`
    refuses it and history shows nothing), and dvclive installed."""
    warnings = []
    hidden = git.ignore_sources(root, list(dict.fromkeys(pipeline_files + metrics)))
    for path, source in hidden.items():
        what = "pipeline file" if path in pipeline_files else "metrics file"
        warnings.append(f"the {what} {path} is hidden from Git by {source} (a .gitignore line): "
                        f"remove that line, or `git add -f {path}`")
    if importlib.util.find_spec("dvclive") is not None:
        warnings.append(DVCLIVE_WARNING)
    return warnings


def git_kept_metrics(repo: Repo) -> tuple[list[str], list[str]]:
    """(metrics files that stay in Git, pipeline files) of the workspace: what a
    .gitignore line must not hide. A metrics file inside a cached output is meant to be."""
    from mlver.workspace import has_pipeline, pipeline_files

    files = list(dict.fromkeys(pipeline_files(repo, "mlver.yaml") + git.ignored_files(repo.root, "*mlver.yaml")))
    files = [f for f in files if f.rsplit("/", 1)[-1] == "mlver.yaml"]
    if not has_pipeline(repo):
        return [], files
    from mlver.pipeline.plan import load_pipeline

    try:
        pipeline = load_pipeline(repo)
    except MlverError:
        return [], files
    return kept_metrics(pipeline), files


def kept_metrics(pipeline: Any) -> list[str]:
    """The pipeline's metrics files that stay in Git (not inside a cached output)."""
    from mlver.pipeline.revision import metrics_files

    cached = [o.path for s in pipeline.stages for o in s.products if o.cache]
    return [m for m in metrics_files(pipeline) if not any(m == c or m.startswith(c + "/") for c in cached)]


def _probe_links(cache_dir: str, workspace_tmp: str) -> dict[str, bool]:
    os.makedirs(os.path.join(cache_dir, "tmp"), exist_ok=True)
    os.makedirs(workspace_tmp, exist_ok=True)
    src = os.path.join(cache_dir, "tmp", f"doctor-{os.getpid()}")
    with open(src, "wb") as f:
        f.write(b"mlver link probe\n")
    works = {}
    for kind in LINK_TYPES:
        dst = os.path.join(workspace_tmp, f"doctor-{os.getpid()}-{kind}")
        try:
            link_file(src, dst, kind)
            works[kind] = True
        except OSError:
            works[kind] = False
        unlink_quiet(dst)
    unlink_quiet(src)
    return works


def doctor(start: str) -> DoctorReport:
    try:
        gv = git.run(start, "--version").stdout.decode().strip()
    except Exception:  # noqa: BLE001 - any failure means "no usable git"
        gv = None
    report = DoctorReport(__version__, sys.version.split()[0], platform.platform(), gv)
    try:
        repo = Repo.find(start)
    except NotARepoError:
        return report
    report.root = repo.root
    report.cache_dir = repo.cache_dir
    for ref in repo.cache.iter_objects():
        report.cache_objects += 1
        try:
            report.cache_bytes += os.path.getsize(repo.cache.path(ref.digest, ref.manifest))
        except OSError:
            pass
    report.link_types = _probe_links(repo.cache_dir, repo.tmp_dir)
    report.configured_link_types = list(repo.config.link_types)
    if repo.scm_root is not None:
        report.warnings = traps(repo.root, *git_kept_metrics(repo))
    elif importlib.util.find_spec("dvclive") is not None:
        report.warnings = [DVCLIVE_WARNING]
    default = repo.config.get("core.remote")
    for name, opts in sorted(repo.config.remotes().items()):
        url = opts.get("url", "")
        backend = backend_for(url)
        installed = backend.module is None or importlib.util.find_spec(backend.module) is not None
        report.remotes.append({"name": name, "url": url, "default": name == default,
                               "backend": backend.module or "local", "extra": backend.extra, "installed": installed})
    return report
