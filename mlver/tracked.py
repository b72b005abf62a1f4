"""The one tracked-data layer: which outputs are recorded at a Git revision, in the index
or in the workspace, which objects they name, and which of those the cache lacks.

``diff``, ``get``, the revision scopes of push/fetch/gc, the Git hooks, ``repro
--verify`` and ``mlver.api`` all ask here. Pointers and ``mlver.lock`` are read from Git
objects through ``mlver.git`` (one ``ls-tree`` and one ``cat-file --batch`` a revision,
no checkout); every pointer's ``path`` is checked not to leave the repository. The
values returned are frozen (``Output``, ``Entry``, ``ObjectRef``).
"""

from __future__ import annotations

import os
from typing import Callable, Final

from mlver import git
from mlver.errors import FormatError, PathError
from mlver.pointer import POINTER_SUFFIX, parse_pointer
from mlver.repo import Repo
from mlver.workspace import (Output, data_path_of, entries_below, find, has_lock, missing, objects_of,  # noqa: F401
                             pointer_outputs)

LOCK_FILE = "mlver.lock"


class Place(str):
    """Where outputs are recorded, besides a Git revision: the index or the workspace."""


INDEX: Final = Place("index")
WORKSPACE: Final = Place("workspace")


def project_prefix(repo: Repo) -> str:
    """The project's folder inside its Git work tree: ``""`` at the top, else ``"sub/"``."""
    root = repo.require_scm("reading pointers from Git")
    rel = os.path.relpath(repo.root, os.path.realpath(root)).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"


def record_paths(repo: Repo) -> tuple[str, Callable[[str], bool]]:
    """The project's prefix in Git and a test of Git paths (from the top of the work
    tree) for the files that record outputs at revisions: pointer files and the lock
    files (the top one, and those of subfolder pipelines), and in commits from before
    ``import-dvc`` DVC's ``*.dvc`` files and ``dvc.lock``."""
    prefix = project_prefix(repo)

    def want(p: str) -> bool:
        return p.startswith(prefix) and (p.endswith(POINTER_SUFFIX) or is_lock_file(p)
                                         or is_dvc_record(p[len(prefix):]))

    return prefix, want


def pathspecs(prefix: str) -> list[str]:
    """Git pathspecs of the record files (``*`` in a pathspec matches ``/`` too)."""
    return [f"{prefix}*{POINTER_SUFFIX}", f"{prefix}{LOCK_FILE}", f"{prefix}*/{LOCK_FILE}"]


def is_dvc_record(rel: str) -> bool:
    """A DVC file that records outputs: ``*.dvc`` or ``dvc.lock`` (read at revisions only,
    so the DVC module is imported only then)."""
    from mlver.pipeline.dvcfiles import is_dvc_file, is_dvc_lock

    return is_dvc_file(rel) or is_dvc_lock(rel)


def is_lock_file(rel: str) -> bool:
    """``mlver.lock``, or a subfolder pipeline's ``sub/mlver.lock``."""
    return rel.rsplit("/", 1)[-1] == LOCK_FILE


def outputs_in_file(repo: Repo, rel: str, data: bytes, shown: str) -> list[Output]:
    """The outputs that a pointer file's or the lock's bytes record; ``rel`` is the file's
    path in the project, ``shown`` how errors name it (``REV:path``). A pointer whose
    ``path`` leaves the repository is a ``FormatError``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(shown, "not UTF-8 text") from None
    if is_lock_file(rel):
        from mlver.pipeline.lockfile import outputs_from_lock_text  # YAML: only when a lock is read

        return outputs_from_lock_text(text, shown, rel)
    if is_dvc_record(rel):  # a commit from before `mlver import-dvc`
        from mlver.pipeline.dvcfiles import dvc_file_outputs, dvc_lock_outputs, is_dvc_lock

        return (dvc_lock_outputs if is_dvc_lock(rel) else dvc_file_outputs)(text, shown, rel)
    ptr = parse_pointer(text, shown)
    try:
        path = data_path_of(repo, rel, ptr)
    except PathError as e:
        raise FormatError(shown, f"'path': {ptr.path} leaves the repository ({e.message.split(': ', 1)[-1]})") from None
    return [Output(path, ptr.kind, ptr.digest, ptr.size, ptr.files, pointer_file=rel, pointer=ptr)]


def outputs_at(repo: Repo, where: str, *, skip_bad: bool = False) -> list[Output]:
    """Outputs recorded at ``where``: a Git revision (a commit id or any name Git
    resolves), ``INDEX`` (what the next commit would record; ``GIT_INDEX_FILE`` is
    honoured) or ``WORKSPACE`` (the pointer files and lock on disk). Pointer outputs come
    first, sorted by pointer file, then the lock's. ``skip_bad`` (walks over many
    commits): a commit's record that cannot be read is passed over and noted in
    ``repo.skipped`` rather than stopping the walk."""
    if where is WORKSPACE:
        return workspace_outputs(repo)
    root = repo.require_scm("reading pointers from Git")
    prefix, want = record_paths(repo)
    if where is INDEX:
        blobs = git.index_blobs(root, pathspecs(prefix))
        label = "index"
    else:
        blobs = git.tree_blobs(root, where, want)
        label = where
    blobs = {p: sha for p, sha in blobs.items() if want(p)}
    if any(p.endswith(POINTER_SUFFIX) or is_lock_file(p) for p in blobs):
        # mlver's own records: DVC's files beside them (`import-dvc --keep-dvc`) say the same
        blobs = {p: sha for p, sha in blobs.items() if not is_dvc_record(p[len(prefix):])}
    data = git.read_blobs(root, list(blobs.values()))
    outs: list[Output] = []
    lock: list[Output] = []
    for path, sha in sorted(blobs.items()):
        rel = path[len(prefix):]
        shown = f"{rel} (staged)" if where is INDEX else f"{label}:{rel}"
        is_lock = is_lock_file(rel) or (rel.endswith("dvc.lock") and is_dvc_record(rel))
        try:
            found = outputs_in_file(repo, rel, data[sha], shown)
        except FormatError as e:
            if not skip_bad or where is INDEX:
                raise
            repo.skipped.append(f"skipped a commit's record that cannot be read (it names no data): {e.message}")
            continue
        (lock if is_lock else outs).extend(found)
    if lock and where is not INDEX and any(p.endswith("dvc.lock") and is_dvc_record(p[len(prefix):]) for p in blobs):
        in_git = kept_in_git(repo, where)  # not data to fetch or keep
        lock = [o for o in lock if o.path not in in_git]
    return outs + lock


def kept_in_git(repo: Repo, rev: str) -> set[str]:
    """The project's files Git tracks at ``rev`` (project-relative). In a commit from before
    ``import-dvc`` these are its ``cache: false`` outputs: dvc.lock does not say which
    outputs are (dvc.yaml does), and DVC git-ignores every output it caches."""
    prefix = project_prefix(repo)
    root = repo.require_scm("reading a commit's files")
    return {e.path[len(prefix):] for e in git.tree_entries(root, rev, prefix.rstrip("/")) if e.type == "blob"}


def workspace_outputs(repo: Repo) -> list[Output]:
    """Every output the workspace's pointer files and lock files record."""
    outs = pointer_outputs(repo)
    if has_lock(repo):
        from mlver.pipeline.lockfile import lock_outputs  # YAML: only when there is a lock

        outs += lock_outputs(repo)
    return outs
