"""The one Git adapter. Porcelain verbs (ls-files, add, commit) run the ``git`` binary
once each; history is read through GitPython's object database (one ``cat-file --batch``
process per handle, closed after use), never one subprocess per blob.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from mlver.errors import GitError

if TYPE_CHECKING:  # pragma: no cover
    import git as gitpython


def find_root(start: str) -> str | None:
    """The top of the Git work tree containing ``start`` (a ``.git`` dir or file)."""
    d = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def run(root: str, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(["git", *args], cwd=root, input=input, capture_output=True)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc


def tracked(root: str, paths: list[str]) -> list[str]:
    """Which of ``paths`` (or files below them) Git tracks in the index."""
    if not paths:
        return []
    out = run(root, "ls-files", "-z", "--", *paths).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def list_files(root: str, pattern: str) -> list[str]:
    """Files matching ``pattern`` that are tracked, or untracked and not ignored."""
    out = run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", pattern).stdout
    return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})


def stage(root: str, paths: list[str]) -> None:
    if paths:
        run(root, "add", "--", *paths)


def has_staged_changes(root: str) -> bool:
    return run(root, "diff", "--cached", "--quiet", check=False).returncode == 1


def commit(root: str, message: str) -> str:
    run(root, "commit", "-q", "-m", message)
    return run(root, "rev-parse", "HEAD").stdout.decode().strip()


def has_head(root: str) -> bool:
    return run(root, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0


@contextlib.contextmanager
def open_repo(root: str) -> Iterator["gitpython.Repo"]:
    import git as gitpython  # only the commands that read history pay for GitPython

    try:
        repo = gitpython.Repo(root)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
        raise GitError(f"{root} is not a Git repository") from None
    try:
        yield repo
    finally:
        repo.close()


def resolve(repo: "gitpython.Repo", rev: str) -> str:
    import gitdb.exc
    import git as gitpython

    try:
        return repo.commit(rev).hexsha
    except (gitpython.BadName, ValueError, gitdb.exc.BadName, gitdb.exc.BadObject):
        raise GitError(f"unknown revision '{rev}'") from None


@dataclass(frozen=True)
class Snapshot:
    """Selected files of one commit, read from Git objects without a checkout."""

    rev: str
    files: dict[str, bytes]


def read_tree(repo: "gitpython.Repo", rev: str, want: Callable[[str], bool]) -> Snapshot:
    """Every blob at ``rev`` whose path passes ``want``."""
    sha = resolve(repo, rev)
    tree = repo.commit(sha).tree
    files: dict[str, bytes] = {}
    for item in tree.traverse():
        if item.type == "blob" and want(item.path):  # type: ignore[union-attr]
            files[item.path] = item.data_stream.read()  # type: ignore[union-attr]
    return Snapshot(sha, files)
