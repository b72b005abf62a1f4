"""Hooks that talk to a remote: pre-push sends the data of the pushed commits to the
default mlver remote (a local folder); post-checkout fetches first with hooks.fetch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run


def git_proc(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, **kw)


def digest_of(pointer: Path) -> str:
    return next(line.split(": ", 1)[1] for line in pointer.read_text().splitlines() if line.startswith("digest: "))


def stored(store: Path, digest: str, manifest: bool = False) -> bool:
    name = digest[2:] + (".manifest" if manifest else "")
    return (store / "files" / "xxh3-128" / digest[:2] / name).is_file()


@pytest.fixture
def pushing(repo: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repo with hooks installed and a default folder remote, bare origin, store)."""
    origin = tmp_path / "origin.git"
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "remote"], repo)
    run(["install"], repo)
    return repo, origin, store


def test_git_push_sends_the_data_of_every_pushed_commit(pushing: tuple[Path, Path, Path]) -> None:
    repo, origin, store = pushing
    gen(repo, {"data/a.csv": "v1\n", "images/1.bin": b"one", "images/2.bin": b"two"})
    run(["add", "data/a.csv", "images"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v1"], repo)
    v1 = digest_of(repo / "data/a.csv.mlver")
    gen(repo, {"data/a.csv": "v2\n"})
    run(["commit", "-m", "v2"], repo)
    v2 = digest_of(repo / "data/a.csv.mlver")
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode == 0, proc.stderr
    assert "mlver: pushed" in proc.stderr
    assert stored(store, v1) and stored(store, v2)  # v1 is only in the first pushed commit
    assert stored(store, digest_of(repo / "images.mlver"), manifest=True)
    assert git(["rev-parse", "main"], origin) == git(["rev-parse", "main"], repo)
    # nothing new: the push goes on, nothing is sent; data recorded but not committed
    # stays local (only what the pushed commits name goes up)
    git(["commit", "-q", "--allow-empty", "-m", "code only"], repo)
    gen(repo, {"data/a.csv": "v3, not committed\n"})
    run(["commit"], repo)
    v3 = digest_of(repo / "data/a.csv.mlver")
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode == 0, proc.stderr
    assert "mlver: data already on store" in proc.stderr
    assert not stored(store, v3)


def test_pre_push_without_a_remote_warns_or_fails_when_required(repo: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    run(["install"], repo)
    gen(repo, {"data/a.csv": "v1\n"})
    run(["add", "data/a.csv"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v1"], repo)
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode == 0, proc.stderr
    assert "mlver: warning: no default mlver remote" in proc.stderr
    run(["config", "hooks.require_push", "true"], repo)
    git(["commit", "-q", "-am", "require push"], repo)
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode != 0
    assert "hooks.require_push" in proc.stderr
    assert git(["rev-parse", "main"], origin) != git(["rev-parse", "main"], repo)


def test_chained_pre_push_gets_the_same_stdin(pushing: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, origin, store = pushing
    run(["install", "--uninstall"], repo)
    seen = tmp_path / "seen"
    prior = repo / ".git" / "hooks" / "pre-push"
    prior.write_text(f"#!/bin/sh\necho \"$1 $2\" > '{seen}'\ncat >> '{seen}'\n")
    prior.chmod(0o755)
    run(["install"], repo)
    gen(repo, {"data/a.csv": "v1\n"})
    run(["add", "data/a.csv"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v1"], repo)
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode == 0, proc.stderr
    head = git(["rev-parse", "HEAD"], repo).strip()
    assert seen.read_text() == f"origin {origin}\nrefs/heads/main {head} refs/heads/main {'0' * 40}\n"
    assert stored(store, digest_of(repo / "data/a.csv.mlver"))
    # the prior hook's veto still stops the push (and mlver pushes nothing)
    prior.write_text("#!/bin/sh\ncat >/dev/null\nexit 1\n")
    gen(repo, {"data/a.csv": "v2\n"})
    run(["commit", "-m", "v2"], repo)
    proc = git_proc(["push", "-q", "origin", "main"], repo)
    assert proc.returncode != 0
    assert not stored(store, digest_of(repo / "data/a.csv.mlver"))


def test_post_checkout_fetches_first_with_hooks_fetch(pushing: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, origin, store = pushing
    git(["checkout", "-q", "-b", "other"], repo)
    gen(repo, {"data/a.csv": "on other\n"})
    run(["add", "data/a.csv"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "other data"], repo)
    git(["push", "-q", "origin", "main", "other"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(origin), str(clone)], tmp_path)
    run(["install"], clone)
    proc = git_proc(["checkout", "other"], clone)  # cache only: listed, not fetched
    assert proc.returncode == 0, proc.stderr
    assert "mlver pull" in proc.stderr and not (clone / "data/a.csv").exists()
    git(["checkout", "-q", "main"], clone)
    run(["config", "--local", "hooks.fetch", "true"], clone)
    proc = git_proc(["checkout", "other"], clone)
    assert proc.returncode == 0, proc.stderr
    assert "fetched 1 object(s)" in proc.stderr
    assert (clone / "data/a.csv").read_text() == "on other\n"
