"""Keeping tracked data out of Git: one anchored entry (``/name``) per output in the
``.gitignore`` of the data's own folder, added by ``add`` and removed by ``remove``."""

from __future__ import annotations

import os

from mlver.fsutil import atomic_write_text, confine
from mlver.repo import Repo


def _gitignore_entry(data_rel: str) -> tuple[str, str]:
    folder, name = os.path.split(data_rel)
    escaped = "".join("\\" + c if c in "*?[]!#\\" else c for c in name)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return folder, f"/{escaped}"


def check_gitignore(repo: Repo, data_rel: str) -> None:
    """Refuse (before anything is written) when the .gitignore for ``data_rel`` is a
    symlink out of the repository, or in a folder reached through one: it is someone
    else's file, neither edited through the link nor replaced."""
    folder, _ = _gitignore_entry(data_rel)
    _refuse_leaving_link(repo, repo.abs(f"{folder}/.gitignore" if folder else ".gitignore"))


def _refuse_leaving_link(repo: Repo, path: str) -> None:
    confine(repo.root, path)
    if os.path.islink(path):
        confine(repo.root, os.path.join(path, "-"))


def gitignore_add(repo: Repo, data_rel: str) -> str | None:
    """Add the anchored entry for ``data_rel`` to its folder's .gitignore; returns the
    .gitignore's repo-relative path when it changed."""
    folder, entry = _gitignore_entry(data_rel)
    rel = f"{folder}/.gitignore" if folder else ".gitignore"
    path = repo.abs(rel)
    _refuse_leaving_link(repo, path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    lines = text.splitlines()
    if entry in lines:
        return None
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write_text(path, text + entry + "\n", fsync=repo.fsync, inside=repo.root)
    return rel


def gitignore_remove(repo: Repo, data_rel: str) -> str | None:
    folder, entry = _gitignore_entry(data_rel)
    rel = f"{folder}/.gitignore" if folder else ".gitignore"
    path = repo.abs(rel)
    _refuse_leaving_link(repo, path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    kept = [ln for ln in lines if ln != entry]
    if kept == lines:
        return None
    if kept:
        atomic_write_text(path, "\n".join(kept) + "\n", fsync=repo.fsync, inside=repo.root)
    else:
        confine(repo.root, path)
        os.unlink(path)
    return rel
