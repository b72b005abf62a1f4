"""``mlver init``: create ``.mlver/`` and stage its committed files."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlver import git
from mlver.errors import NotARepoError
from mlver.fsutil import atomic_write_text
from mlver.repo import MLVER_DIR

CONFIG_TEXT = "# mlver project settings (committed); per-machine settings go in config.local\n"
GITIGNORE_TEXT = "/cache/\n/tmp/\n/config.local\n"


@dataclass(frozen=True)
class InitResult:
    root: str
    created: bool
    scm: bool


def init(cwd: str, *, no_scm: bool = False) -> InitResult:
    root = os.path.realpath(cwd)
    git_root = git.find_root(root)
    if git_root is None and not no_scm:
        raise NotARepoError(f"{root} is not inside a Git repository",
                            hint="run `git init` first, or `mlver init --no-scm` to use mlver without Git")
    mdir = os.path.join(root, MLVER_DIR)
    if os.path.isdir(mdir):
        return InitResult(root, False, git_root is not None)
    os.makedirs(os.path.join(mdir, "tmp"), exist_ok=True)
    atomic_write_text(os.path.join(mdir, "config"), CONFIG_TEXT)
    atomic_write_text(os.path.join(mdir, ".gitignore"), GITIGNORE_TEXT)
    if git_root is not None:
        git.stage(root, [os.path.join(mdir, "config"), os.path.join(mdir, ".gitignore")])
    return InitResult(root, True, git_root is not None)
