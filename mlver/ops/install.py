"""``mlver install [--uninstall]``: put mlver's Git hooks in place, or take them out."""

from __future__ import annotations

import os

from mlver import hooks
from mlver.hooks import HooksResult
from mlver.repo import Repo


def install(repo: Repo, *, uninstall: bool = False) -> HooksResult:
    root = repo.require_scm("install")
    if uninstall:
        return hooks.uninstall(root)
    project_dir = os.path.relpath(repo.root, os.path.realpath(root)).replace(os.sep, "/")
    return hooks.install(root, project_dir=project_dir)
