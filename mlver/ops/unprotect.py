"""``mlver unprotect``: turn linked, read-only workspace files into editable copies."""

from __future__ import annotations

import os
import stat

from mlver.errors import PathError
from mlver.fsutil import replace_with_copy, walk_files
from mlver.repo import Repo


def _unprotect_file(path: str) -> bool:
    st = os.lstat(path)
    linked = stat.S_ISLNK(st.st_mode) or st.st_nlink > 1
    if not linked and st.st_mode & stat.S_IWUSR:
        return False
    replace_with_copy(path, path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IWUSR)  # follows a symlink
    return True


def unprotect(repo: Repo, paths: list[str]) -> list[str]:
    """Returns the repo-relative paths of the files made editable."""
    changed: list[str] = []
    for given in paths:
        rel = repo.rel(given)
        path = repo.abs(rel)
        if not os.path.lexists(path):
            raise PathError(given, "does not exist")
        if os.path.isdir(path) and not os.path.islink(path):
            for e in walk_files(path, links_into=repo.cache_dir):
                if _unprotect_file(e.path):
                    changed.append(f"{rel}/{e.rel}")
        elif _unprotect_file(path):
            changed.append(rel)
    return changed
