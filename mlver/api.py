"""mlver's Python API: the data of any revision where the code is, without a checkout.

    import mlver.api
    with mlver.api.open("data/train.csv", rev="v3") as f: ...
    mlver.api.read("model.pkl", repo="https://github.com/org/proj.git", rev="main")

``repo`` is a local project folder (default: the one around the current folder) or a
Git URL (kept as a bare clone in the user's cache folder); ``rev`` any Git revision,
``None`` the workspace (its current bytes, as DVC does; for a Git URL: its default
branch). Tracked data of other revisions comes from the local cache, else is streamed
from the remote (``remote`` names it; default the project's default remote): reads and
seeks become ranged requests, nothing is downloaded whole, and a file read to its end is
verified against its digest. Plain Git files are read from Git.

Everything here is read-only, takes no repository lock and is safe from many threads
and processes at once. Errors are mlver's exception types, with fields:
``PathNotTracked(path, rev, repo)`` (also a ``FileNotFoundError``),
``RevisionNotFound(rev, repo)``, ``ObjectMissing(digest, path, remote)``,
``PathIsFolder(path)`` (also an ``IsADirectoryError``).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO, Any, Iterator

from mlver.errors import (ChecksumMismatch, GitError, MlverError, ObjectMissing, PackedObject, PathError, PathIsFolder,
                          PathNotTracked, RevisionNotFound, UsageError)
from mlver.ops.source import Source, source_for

__all__ = ["open", "read", "exists", "get_url", "ls", "params_show", "metrics_show", "PathNotTracked",
           "RevisionNotFound", "ObjectMissing", "PackedObject", "PathIsFolder", "ChecksumMismatch", "MlverError"]

_open = open  # the builtin, before ``open`` below shadows it


def _source(repo: str | None, remote: str | None, remote_config: dict[str, str] | None) -> Source:
    return source_for(repo, remote=remote, remote_options=remote_config)


@contextlib.contextmanager
def open(path: str, repo: str | None = None, rev: str | None = None, remote: str | None = None,  # noqa: A001
         mode: str = "rb", encoding: str | None = None, *,
         remote_config: dict[str, str] | None = None, cache: bool = False) -> Iterator[IO[Any]]:
    """A file object of ``path`` (tracked data, or a file Git tracks) at ``rev``:
    binary for ``mode="rb"``, text for ``mode="r"`` (``encoding``, default UTF-8).
    ``remote_config``: options that override the remote's settings (``url``,
    ``endpoint_url``, ...), e.g. on a machine without the project's ``config.local``.
    ``cache=True``: tracked data that is not in the cache is downloaded into it (verified)
    and read from there, so the next read is local (a Git URL's cache is kept beside its
    clone)."""
    if mode not in ("r", "rb", "rt"):
        raise UsageError(f"mlver.api.open is read-only: mode must be 'r' or 'rb', not '{mode}'")
    source = _source(repo, remote, remote_config)
    raw = source.open(source.commit(rev), source.rel(path), keep=cache)  # buffered, seekable
    f: IO[Any] = raw if mode == "rb" else io.TextIOWrapper(raw, encoding=encoding or "utf-8")
    try:
        yield f
    finally:
        f.close()


def read(path: str, repo: str | None = None, rev: str | None = None, remote: str | None = None,
         mode: str = "rb", encoding: str | None = None, *,
         remote_config: dict[str, str] | None = None, cache: bool = False) -> bytes | str:
    """The whole content of ``path`` at ``rev`` (bytes for ``mode="rb"``, else text),
    verified against its digest when it is tracked data."""
    with open(path, repo, rev, remote, mode, encoding, remote_config=remote_config, cache=cache) as f:
        data: bytes | str = f.read()
    return data


def exists(path: str, repo: str | None = None, rev: str | None = None, remote: str | None = None) -> bool:
    """Whether ``path`` is a file or folder (Git's or tracked) at ``rev``. Nothing is
    read from the remote unless ``path`` is inside a tracked folder."""
    source = _source(repo, remote, None)
    try:
        source.list(source.commit(rev), path)
    except PathNotTracked:
        return False
    return True


def get_url(path: str, repo: str | None = None, rev: str | None = None, remote: str | None = None) -> str:
    """The URL of the object holding tracked file ``path`` on the remote (a plain path
    for a folder remote, ``s3://bucket/...`` for S3). Nothing is read or checked on the
    remote. A Git file or a folder has no object URL: ``PathNotTracked`` / ``PathIsFolder``."""
    source = _source(repo, remote, None)
    commit = source.commit(rev)
    rel = source.rel(path)
    located = source.locate(commit, rel)
    if located is None:
        if commit is not None and source.git_file(commit, rel) is not None or \
                commit is None and rel and os.path.isfile(source.repo.abs(rel)):
            raise PathError(rel, "is a file Git tracks, not tracked data: it has no object on a remote")
        raise PathNotTracked(rel or ".", rev=commit, repo=source.url)
    if not isinstance(located, tuple):
        raise PathIsFolder(rel)
    return source.object_url(commit, located[1].digest, rel)


def ls(path: str = ".", repo: str | None = None, rev: str | None = None, recursive: bool = False, *,
       tracked_only: bool = False, remote: str | None = None) -> list[dict[str, Any]]:
    """Entries of folder ``path`` (or the file it names) at ``rev``, Git files and tracked
    data merged: ``{"path", "type": "file"/"directory", "size", "tracked", "digest", "hash"}``,
    paths relative to the project root. Tracked folders are listed from their manifests
    (read from the cache or the remote, never by downloading their files).
    ``recursive``: every file below ``path``, no folder entries."""
    source = _source(repo, remote, None)
    commit = source.commit(rev)
    if remote is not None:
        source.remote(commit)  # an unknown name is said now, not only when a folder needs the remote
    return [n.to_json() for n in source.list(commit, path, recursive=recursive, tracked_only=tracked_only)]


def params_show(repo: str | None = None, rev: str | None = None) -> dict[str, dict[str, Any]]:
    """Parameters the pipeline reads at ``rev``: ``{file: {dotted.key: value}}``."""
    return _values(repo, rev).params


def metrics_show(repo: str | None = None, rev: str | None = None) -> dict[str, dict[str, Any]]:
    """Metrics at ``rev``: ``{file: {dotted.key: value}}`` (metrics inside a tracked
    folder are read through its manifest)."""
    return _values(repo, rev).metrics


def _values(repo: str | None, rev: str | None) -> Any:
    from mlver.pipeline.revision import open_history, workspace_values

    source = _source(repo, None, None)
    commit = source.commit(rev)
    if commit is None:
        return workspace_values(source.repo)
    try:
        with open_history(source.repo) as history:
            return history.values_many([commit])[0]
    except GitError as e:  # pragma: no cover - the commit was resolved above
        raise RevisionNotFound(rev or "HEAD", repo=source.url) from e
