"""``mlver unprotect``: turn linked, read-only workspace files into editable copies."""

from __future__ import annotations

import os
import stat

from mlver.errors import PathError
from mlver.fsutil import confine, replace_with_copy, walk_files
from mlver.repo import Repo


def _unprotect_file(repo: Repo, path: str) -> bool:
    st = os.lstat(path)
    linked = stat.S_ISLNK(st.st_mode) or st.st_nlink > 1
    if not linked and st.st_mode & stat.S_IWUSR:
        return False
    # the bytes are read through a link (into the cache); the link itself is replaced
    replace_with_copy(path, path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IWUSR, inside=repo.root)
    return True


def unprotect(repo: Repo, paths: list[str]) -> list[str]:
    """Returns the repo-relative paths of the files made editable."""
    changed: list[str] = []
    for given in paths:
        rel = repo.rel(given)
        path = repo.abs(rel)
        if not os.path.lexists(path):
            raise PathError(given, "does not exist")
        if os.path.isdir(path):
            confine(repo.root, os.path.join(path, "-"))  # a folder reached through a link out: refused
            for e in walk_files(path, links_into=repo.cache_dir):
                if _unprotect_file(repo, e.path):
                    changed.append(f"{rel}/{e.rel}")
        elif _unprotect_file(repo, path):
            changed.append(rel)
    return changed
