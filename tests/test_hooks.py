"""Git hooks (`mlver install`): scripts, chaining, uninstall, and what each hook does,
driven by real `git commit`, `git checkout` and `git merge` in temporary repositories."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run

HOOKS = ("pre-commit", "post-checkout", "post-merge", "pre-push")


def git_proc(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """git with its exit code and output (hooks print to stderr), never raising."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, **kw)


def hooks_dir(root: Path) -> Path:
    return root / ".git" / "hooks"


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tracked(repo: Path) -> Path:
    """`repo` with a tracked file and a tracked folder committed, and the hooks installed."""
    gen(repo, {"data/a.csv": "a,b\n1,2\n", "images/1.bin": b"one", "images/sub/2.bin": b"two", "src/x.py": "x = 1\n"})
    run(["add", "data/a.csv", "images"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    run(["install"], repo)
    return repo


# --- install / uninstall ---------------------------------------------------------------

def test_install_writes_scripts_that_call_the_recorded_interpreter(repo: Path) -> None:
    proc = run(["install"], repo)
    assert "Installed the pre-commit hook" in proc.stderr
    for name in HOOKS:
        path = hooks_dir(repo) / name
        text = path.read_text()
        assert path.stat().st_mode & stat.S_IXUSR
        assert f"-m mlver hook {name} \"$@\"" in text
        python = next(line for line in text.splitlines() if line.startswith("MLVER_PYTHON=")).split("=", 1)[1]
        python = python.strip("'")
        assert os.path.isabs(python) and os.access(python, os.X_OK)
    # the scripts work without mlver (or any Python) on PATH
    gen(repo, {"data/a.csv": "1\n"})
    run(["add", "data/a.csv"], repo)
    git(["add", "-A"], repo)
    gen(repo, {"data/a.csv": "2\n"})
    proc = git_proc(["commit", "-q", "-m", "stale"], repo, env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert "data/a.csv" in proc.stderr


def test_install_twice_is_harmless(repo: Path) -> None:
    run(["install"], repo)
    before = {n: (hooks_dir(repo) / n).read_bytes() for n in HOOKS}
    proc = run(["install"], repo)
    assert "already installed" in proc.stderr
    assert {n: (hooks_dir(repo) / n).read_bytes() for n in HOOKS} == before
    assert not list(hooks_dir(repo).glob("*.pre-mlver"))


def test_uninstall_restores_what_was_there(repo: Path) -> None:
    own = b"#!/bin/sh\necho own pre-push >&2\n"
    (hooks_dir(repo) / "pre-push").write_bytes(own)
    (hooks_dir(repo) / "pre-push").chmod(0o755)
    run(["install"], repo)
    assert (hooks_dir(repo) / "pre-push.pre-mlver").read_bytes() == own
    proc = run(["install", "--uninstall"], repo)
    assert "restored" in proc.stderr
    assert (hooks_dir(repo) / "pre-push").read_bytes() == own
    assert os.access(hooks_dir(repo) / "pre-push", os.X_OK)
    for name in ("pre-commit", "post-checkout", "post-merge"):
        assert not (hooks_dir(repo) / name).exists()
    assert not list(hooks_dir(repo).glob("*.pre-mlver"))
    # a hook that is not mlver's is left alone
    proc = run(["install", "--uninstall"], repo)
    assert "not mlver's; left alone" in proc.stderr
    assert (hooks_dir(repo) / "pre-push").read_bytes() == own


def test_a_hook_edited_after_install_is_kept_by_install_and_uninstall(repo: Path) -> None:
    """The user extended mlver's pre-commit hook: neither a second `install` (a refresh)
    nor `--uninstall` removes or rewrites it; they say so. The other hooks go."""
    run(["install"], repo)
    hook = hooks_dir(repo) / "pre-commit"
    edited = hook.read_text() + "echo my-own-check\n"
    hook.write_text(edited)
    for args in (["install"], ["install", "--uninstall"]):
        proc = run(args, repo)
        assert "pre-commit hook was edited after `mlver install`" in proc.stderr, proc.stderr
        assert hook.read_text() == edited
    assert not (hooks_dir(repo) / "pre-push").exists()


def test_foreign_hook_replacing_ours_is_not_overwritten(repo: Path) -> None:
    (hooks_dir(repo) / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    run(["install"], repo)
    other = "#!/bin/sh\n# another tool's hook\nexit 0\n"
    (hooks_dir(repo) / "pre-commit").write_text(other)  # another tool replaced ours
    proc = run(["install"], repo, check=False)
    assert proc.returncode == 3
    assert "pre-commit.pre-mlver already exists" in proc.stderr
    assert (hooks_dir(repo) / "pre-commit").read_text() == other


def test_install_respects_core_hooks_path_and_worktrees(repo: Path, tmp_path: Path) -> None:
    git(["config", "core.hooksPath", "githooks"], repo)
    proc = run(["install"], repo)
    assert str(repo / "githooks") in proc.stderr
    assert (repo / "githooks" / "pre-commit").exists()
    assert not (hooks_dir(repo) / "pre-commit").exists()
    git(["config", "--unset", "core.hooksPath"], repo)
    # a linked worktree shares the main repository's hooks folder
    wt = tmp_path / "wt"
    git(["worktree", "add", "-q", "-b", "side", str(wt)], repo)
    proc = run(["install"], wt)
    assert str(hooks_dir(repo)) in proc.stderr
    assert (hooks_dir(repo) / "post-checkout").exists()


def test_chained_pre_commit_runs_first_and_keeps_its_veto(tracked: Path) -> None:
    run(["install", "--uninstall"], tracked)
    marker = tracked / "prior-ran"
    prior = hooks_dir(tracked) / "pre-commit"
    prior.write_text(f"#!/bin/sh\necho ran >> '{marker}'\nexit ${{PRIOR_EXIT:-0}}\n")
    prior.chmod(0o755)
    run(["install"], tracked)
    gen(tracked, {"src/x.py": "x = 2\n"})
    git(["add", "src/x.py"], tracked)
    proc = git_proc(["commit", "-q", "-m", "refused by the prior hook"], tracked,
                    env={**os.environ, "PRIOR_EXIT": "7"})
    assert proc.returncode != 0
    assert marker.read_text() == "ran\n"
    proc = git_proc(["commit", "-q", "-m", "code"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "ran\nran\n"
    # the prior hook passes, mlver still refuses stale data
    gen(tracked, {"data/a.csv": "changed\n"})
    gen(tracked, {"src/x.py": "x = 3\n"})
    git(["add", "src/x.py"], tracked)
    proc = git_proc(["commit", "-q", "-m", "stale"], tracked)
    assert proc.returncode == 1
    assert "data/a.csv" in proc.stderr
    assert marker.read_text() == "ran\nran\nran\n"


def test_chained_post_checkout_both_run(tracked: Path) -> None:
    run(["install", "--uninstall"], tracked)
    marker = tracked / "prior-args"
    prior = hooks_dir(tracked) / "post-checkout"
    prior.write_text(f"#!/bin/sh\necho \"$3\" >> '{marker}'\n")
    prior.chmod(0o755)
    run(["install"], tracked)
    git(["checkout", "-q", "-b", "other"], tracked)
    gen(tracked, {"data/a.csv": "other\n"})
    run(["commit", "-m", "other data"], tracked)
    proc = git_proc(["checkout", "-q", "main"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert (tracked / "data/a.csv").read_text() == "a,b\n1,2\n"
    assert marker.read_text() == "1\n1\n"


# --- pre-commit ------------------------------------------------------------------------

def test_pre_commit_refuses_stale_data_then_accepts_after_mlver_commit(tracked: Path) -> None:
    head = git(["rev-parse", "HEAD"], tracked)
    gen(tracked, {"data/a.csv": "a,b\n1,3\n", "images/3.bin": b"three", "src/x.py": "x = 2\n"})
    git(["add", "src/x.py"], tracked)
    proc = git_proc(["commit", "-q", "-m", "stale"], tracked)
    assert proc.returncode == 1
    assert "mlver: error: tracked data differs" in proc.stderr
    assert "    data/a.csv\n" in proc.stderr
    assert "    images\n        new: images/3.bin\n" in proc.stderr
    assert "mlver commit" in proc.stderr
    assert git(["rev-parse", "HEAD"], tracked) == head
    run(["commit"], tracked)
    # recorded but not staged: the index still holds the old pointers
    proc = git_proc(["commit", "-q", "-m", "pointers not staged"], tracked)
    assert proc.returncode == 1
    assert "git add data/a.csv.mlver images.mlver" in proc.stderr
    git(["add", "data/a.csv.mlver", "images.mlver"], tracked)
    proc = git_proc(["commit", "-q", "-m", "data and code"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert git(["rev-parse", "HEAD"], tracked) != head


def test_pre_commit_checks_the_index_git_commit_all_builds(tracked: Path) -> None:
    gen(tracked, {"data/a.csv": "new\n"})
    run(["commit"], tracked)
    # `git commit -a` stages the pointer in a temporary index (GIT_INDEX_FILE)
    proc = git_proc(["commit", "-q", "-a", "-m", "all"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert "new" not in git(["status", "--porcelain"], tracked)


def test_pre_commit_ignores_data_that_was_never_pulled(tracked: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(["clone", "-q", str(tracked), str(clone)], tmp_path)
    run(["install"], clone)
    assert not (clone / "data/a.csv").exists()
    gen(clone, {"src/x.py": "x = 5\n"})
    git(["add", "src/x.py"], clone)
    proc = git_proc(["commit", "-q", "-m", "code only"], clone)
    assert proc.returncode == 0, proc.stderr


# --- post-checkout / post-merge --------------------------------------------------------

def test_branch_checkout_syncs_only_changed_outputs(tracked: Path) -> None:
    gen(tracked, {"models/m.bin": b"model v1"})
    run(["add", "models/m.bin"], tracked)
    git(["add", "-A"], tracked)
    git(["commit", "-q", "-m", "model"], tracked)
    git(["checkout", "-q", "-b", "other"], tracked)
    gen(tracked, {"data/a.csv": "other,data\n", "extra/e.bin": b"extra"})
    run(["remove", "models/m.bin.mlver"], tracked)
    (tracked / "models/m.bin").unlink()
    run(["add", "extra/e.bin"], tracked)
    run(["commit"], tracked)
    git(["add", "-A"], tracked)
    git(["commit", "-q", "-m", "other data"], tracked)
    assert not (tracked / "models/m.bin.mlver").exists()
    images_before = mtimes(tracked / "images")
    proc = git_proc(["checkout", "main"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert "mlver: data synced" in proc.stderr
    assert (tracked / "data/a.csv").read_text() == "a,b\n1,2\n"
    assert (tracked / "models/m.bin").read_bytes() == b"model v1"  # its pointer came back
    assert not (tracked / "extra/e.bin").exists()  # its pointer is gone on main
    assert mtimes(tracked / "images") == images_before  # untouched
    proc = git_proc(["checkout", "other"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert (tracked / "data/a.csv").read_text() == "other,data\n"
    assert (tracked / "extra/e.bin").read_bytes() == b"extra"
    assert not (tracked / "models/m.bin").exists()
    assert mtimes(tracked / "images") == images_before
    # a checkout that changes no pointer touches nothing
    git(["checkout", "-q", "-b", "third"], tracked)
    gen(tracked, {"src/x.py": "x = 9\n"})
    git(["commit", "-q", "-am", "code"], tracked)
    a_mtime = (tracked / "data/a.csv").stat().st_mtime_ns
    proc = git_proc(["checkout", "other"], tracked)
    assert proc.returncode == 0 and "mlver" not in proc.stderr, proc.stderr
    assert (tracked / "data/a.csv").stat().st_mtime_ns == a_mtime
    assert mtimes(tracked / "images") == images_before


def test_file_checkout_does_not_sync(tracked: Path) -> None:
    git(["checkout", "-q", "-b", "other"], tracked)
    gen(tracked, {"data/a.csv": "v2\n"})
    run(["commit", "-m", "v2"], tracked)
    git(["checkout", "-q", "main", "--", "data/a.csv.mlver"], tracked)  # flag 0: files, not a branch
    assert (tracked / "data/a.csv").read_text() == "v2\n"


def test_checkout_keeps_uncached_local_edits_and_exits_0(tracked: Path) -> None:
    git(["checkout", "-q", "-b", "other"], tracked)
    gen(tracked, {"data/a.csv": "v2\n", "images/1.bin": b"one v2"})
    run(["commit", "-m", "v2"], tracked)
    gen(tracked, {"data/a.csv": "my local edit\n"})  # not in the cache
    proc = git_proc(["checkout", "main"], tracked)
    assert proc.returncode == 0, proc.stderr
    assert "kept local changes that are not in the cache" in proc.stderr
    assert "    data/a.csv\n" in proc.stderr
    assert (tracked / "data/a.csv").read_text() == "my local edit\n"
    assert (tracked / "images/1.bin").read_bytes() == b"one"  # everything else was updated


def test_missing_objects_are_listed_with_a_pull_hint(tracked: Path, tmp_path: Path) -> None:
    git(["checkout", "-q", "-b", "other"], tracked)
    gen(tracked, {"data/a.csv": "v2\n"})
    run(["commit", "-m", "v2"], tracked)
    git(["checkout", "-q", "main"], tracked)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(tracked), str(clone)], tmp_path)
    run(["install"], clone)
    proc = git_proc(["checkout", "other"], clone)
    assert proc.returncode == 0, proc.stderr
    assert "not in the cache, so not checked out:\n    data/a.csv\n" in proc.stderr
    assert "mlver pull" in proc.stderr
    assert not (clone / "data/a.csv").exists()


def test_git_pull_syncs_data_fast_forward_and_merge(tracked: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(["clone", "-q", str(tracked), str(clone)], tmp_path)
    # one cache for both clones, so the merge can be synced from the cache alone
    run(["config", "--local", "cache.dir", str(tracked / ".mlver" / "cache")], clone)
    run(["checkout"], clone)
    run(["install"], clone)
    images_before = mtimes(clone / "images")
    gen(tracked, {"data/a.csv": "v2 from upstream\n"})
    run(["commit", "-m", "upstream v2"], tracked)
    proc = git_proc(["pull", "-q", "--ff-only"], clone)
    assert proc.returncode == 0, proc.stderr
    assert (clone / "data/a.csv").read_text() == "v2 from upstream\n"
    gen(tracked, {"data/a.csv": "v3 from upstream\n"})
    run(["commit", "-m", "upstream v3"], tracked)
    gen(clone, {"src/x.py": "x = 'local'\n"})
    git(["commit", "-q", "-am", "local code"], clone)
    proc = git_proc(["pull", "-q", "--no-rebase", "--no-edit"], clone)  # a real merge
    assert proc.returncode == 0, proc.stderr
    assert len(git(["log", "-1", "--format=%P"], clone).split()) == 2
    assert (clone / "data/a.csv").read_text() == "v3 from upstream\n"
    assert mtimes(clone / "images") == images_before


def test_hooks_outside_an_mlver_project_do_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    git(["init", "-q"], plain)
    for args in (["pre-commit"], ["post-checkout", "0" * 40, "0" * 40, "1"], ["post-merge", "0"]):
        proc = run(["hook", *args], plain)
        assert proc.stdout == "" and proc.stderr == ""


def test_a_vanished_interpreter_is_reported(tracked: Path) -> None:
    for name in ("pre-commit", "post-checkout"):
        path = hooks_dir(tracked) / name
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join("MLVER_PYTHON=/nonexistent/python3\n" if ln.startswith("MLVER_PYTHON=") else ln
                                for ln in lines))
    proc = git_proc(["commit", "-q", "--allow-empty", "-m", "x"], tracked)
    assert proc.returncode == 1
    assert "/nonexistent/python3 (the Python mlver was installed with) is gone" in proc.stderr
    proc = git_proc(["checkout", "-q", "-b", "other", "HEAD~1"], tracked)
    assert proc.returncode == 0
    assert "mlver: warning:" in proc.stderr and "mlver install" in proc.stderr
