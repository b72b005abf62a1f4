"""The pre-commit framework (https://pre-commit.com) running this repository's
``.pre-commit-hooks.yaml``: once as a real hook repository (``language: python``, so the
framework pip-installs mlver from a snapshot of this source tree into its own
virtualenv) and once as ``repo: local`` hooks with the same ids and entries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import gen, git, run

pytest.importorskip("pre_commit")

SOURCE = Path(__file__).resolve().parents[1]
# captured before the fixtures pin HOME: a warm pip cache makes the install quick
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pip")
OFFLINE_SIGNS = ("Failed to establish a new connection", "Temporary failure in name resolution",
                 "Network is unreachable", "No matching distribution found", "Could not find a version")
STAGES = ["-t", "pre-commit", "-t", "post-checkout", "-t", "post-merge", "-t", "pre-push"]


def pre_commit(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PIP_CACHE_DIR": PIP_CACHE}
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def git_proc(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PIP_CACHE_DIR": PIP_CACHE}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A Git repository holding a snapshot of this source tree (the framework clones
    hook repositories at a commit), its commit, and a PRE_COMMIT_HOME shared by the tests."""
    snap = tmp_path_factory.mktemp("mlver-hook-repo")
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        if (SOURCE / name).exists():
            shutil.copy2(SOURCE / name, snap / name)
    shutil.copytree(SOURCE / "mlver", snap / "mlver", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", *args], cwd=snap, check=True, capture_output=True, env=env)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=snap, check=True, capture_output=True,
                         text=True).stdout.strip()
    return snap, rev, tmp_path_factory.mktemp("pre-commit-home")


def _project(repo: Path, config: dict) -> None:
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    gen(repo, {"data/a.csv": "v1\n", "src/x.py": "x = 1\n"})
    run(["add", "data/a.csv"], repo)


def _check_stages(repo: Path, home: Path, tmp_path: Path) -> None:
    """pre-commit passes on a clean repo and fails on stale data; post-checkout and
    post-merge sync; pre-push sends the data."""
    git(["add", "-A"], repo)
    proc = git_proc(["commit", "-q", "-m", "data"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stderr  # git sends a hook's stdout to stderr
    gen(repo, {"data/a.csv": "stale\n", "src/x.py": "x = 2\n"})
    git(["add", "src/x.py"], repo)
    proc = git_proc(["commit", "-q", "-m", "stale"], repo, home)
    assert proc.returncode == 1
    assert "- hook id: mlver-status" in proc.stderr and "    data/a.csv" in proc.stderr
    run(["commit"], repo)
    git(["add", "-A"], repo)
    proc = git_proc(["commit", "-q", "-m", "v2"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # post-checkout and post-merge through the framework's environment variables
    git(["checkout", "-q", "-b", "other"], repo)
    gen(repo, {"data/a.csv": "v3 on other\n"})
    run(["commit"], repo)
    git(["add", "-A"], repo)
    assert git_proc(["commit", "-q", "-m", "v3"], repo, home).returncode == 0
    proc = git_proc(["checkout", "-q", "main"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "data/a.csv").read_text() == "stale\n"
    proc = git_proc(["merge", "-q", "other"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "data/a.csv").read_text() == "v3 on other\n"
    # a local edit the cache lacks is kept, and the framework shows the list (the hook
    # exits 0, so it needs `verbose: true`, which mlver's hook definition sets)
    gen(repo, {"data/a.csv": "precious, not committed\n"})
    proc = git_proc(["checkout", "-q", "HEAD~1"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kept local changes" in proc.stderr and "data/a.csv" in proc.stderr, proc.stderr
    assert (repo / "data/a.csv").read_text() == "precious, not committed\n"
    git_proc(["checkout", "-q", "main"], repo, home)
    gen(repo, {"data/a.csv": "v3 on other\n"})
    # pre-push: every commit's data goes to the default remote
    origin, store = tmp_path / "origin.git", tmp_path / "store"
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    # with no default mlver remote the push goes on, and the framework shows the warning
    scratch = tmp_path / "scratch.git"
    git(["init", "-q", "--bare", str(scratch)], tmp_path)
    proc = git_proc(["push", "-q", str(scratch), "main"], repo, home)
    assert proc.returncode == 0 and "no default mlver remote" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    run(["remote", "add", "-d", "store", str(store)], repo)
    git(["add", "-A"], repo)
    assert git_proc(["commit", "-q", "-m", "remote"], repo, home).returncode == 0
    proc = git_proc(["push", "-q", "origin", "main"], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len([p for p in (store / "files").rglob("*") if p.is_file()]) == 3  # v1, stale, v3


def test_hook_repository_with_the_real_framework(hook_repo: tuple[Path, str, Path], repo: Path,
                                                 tmp_path: Path) -> None:
    snap, rev, home = hook_repo
    _project(repo, {"repos": [{"repo": str(snap), "rev": rev,
                               "hooks": [{"id": "mlver-status"}, {"id": "mlver-checkout"}, {"id": "mlver-push"}]}]})
    proc = pre_commit(["install", "--install-hooks", *STAGES], repo, home)
    if proc.returncode != 0 and any(s in proc.stdout + proc.stderr for s in OFFLINE_SIGNS):
        pytest.skip("the pre-commit framework could not pip-install mlver's dependencies (offline)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_stages(repo, home, tmp_path)


def test_local_hooks_with_the_same_ids(repo: Path, tmp_path: Path) -> None:
    hooks = yaml.safe_load((SOURCE / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["mlver-status", "mlver-checkout", "mlver-push", "mlver-check"]
    local = []
    for h in hooks:
        if h["id"] == "mlver-check":  # needs checks in mlver.yaml (tests/test_check.py)
            continue
        entry = h["entry"].replace("mlver ", f"{sys.executable} -m mlver ", 1)
        local.append({**h, "entry": entry, "language": "system"})
    _project(repo, {"repos": [{"repo": "local", "hooks": local}]})
    home = tmp_path / "pre-commit-home"
    proc = pre_commit(["install", *STAGES], repo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_stages(repo, home, tmp_path)
