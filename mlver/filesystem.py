"""``MlverFileSystem``: the ``mlver://`` protocol for fsspec, so pandas, Dask, PyTorch
and anything else that opens fsspec URLs read versioned data in place.

    pandas.read_csv("mlver://data/train.csv", storage_options={"repo": URL, "rev": "v3"})
    dask.dataframe.read_csv("mlver://data/parts/*.csv?rev=v3&repo=https://host/org/proj.git")

Paths are relative to the project root. Storage options: ``repo`` (a local project
folder or a Git URL; default the project around the current folder), ``rev`` (any Git
revision; default the workspace), ``remote`` (the mlver remote to stream from; default
the project's default remote), ``remote_config`` (options overriding the remote's
settings, e.g. ``{"endpoint_url": ...}``, for a worker without the project's
``config.local``). The one-string form carries them as a query after the path:
``mlver://PATH?rev=REV&repo=URL&remote=NAME`` (URL-quote a value holding ``&`` or ``?``).

The view is the merged one of ``mlver ls``: files Git tracks and tracked data, folders
listed from manifests without downloading their files; reads are ranged and verified
(see ``mlver.ops.source``). Pickling keeps the storage options only, with ``rev``
pinned to the commit it resolved to, so every Dask worker or multiprocessing child reads
the same commit and opens its own remote connection (credentials come from that
machine's config or environment; ``config.local`` is never pickled).

This module and ``mlver/remote.py`` are the only homes of fsspec in mlver.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fsspec.spec import AbstractFileSystem

from mlver.hashing import digest_fields
from mlver.errors import PathNotTracked
from mlver.ops.source import Node, Source, is_git_url, source_for

QUERY_KEYS = ("repo", "rev", "remote")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


def _split_query(path: str) -> tuple[str, dict[str, str]]:
    """``PATH?rev=..&repo=..`` -> (PATH, options). A ``?`` not followed by known
    options is part of the path (a glob's one-character wildcard)."""
    head, sep, query = path.rpartition("?")
    if not sep or "=" not in query:
        return path, {}
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs or any(k not in QUERY_KEYS for k, _ in pairs):
        return path, {}
    return head, dict(pairs)


class MlverFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over one mlver project at one revision."""

    protocol = "mlver"
    root_marker = ""
    # not reused across calls: each new filesystem resolves ``rev`` afresh (a branch that
    # moved is read at its new commit), and one filesystem keeps the commit it resolved
    cachable = False

    def __init__(self, repo: str | None = None, rev: str | None = None, remote: str | None = None,
                 remote_config: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(repo=repo, rev=rev, remote=remote, remote_config=remote_config, **kwargs)
        # a local project is pinned by its absolute path now: a pickled filesystem is opened
        # in other processes (Dask workers) whose current folder is not this one
        self.repo = repo if repo is not None and is_git_url(repo) else os.path.abspath(repo or ".")
        self.rev = rev
        self.remote = remote
        self.remote_config = dict(remote_config or {})
        self._resolved: tuple[int, str | None] | None = None  # (pid, commit)

    # --- URLs ---------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("mlver://"):
            path = path[len("mlver://"):]
        elif path.startswith("mlver::"):
            path = path[len("mlver::"):]
        path, _ = _split_query(path)
        return path.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        if path.startswith("mlver://"):
            path = path[len("mlver://"):]
        return dict(_split_query(path)[1])

    @classmethod
    def url(cls, path: str, *, repo: str | None = None, rev: str | None = None, remote: str | None = None) -> str:
        """The one-string URL of ``path`` with its options."""
        opts = {k: v for k, v in (("rev", rev), ("repo", repo), ("remote", remote)) if v}
        return f"mlver://{path.strip('/')}" + (f"?{urlencode(opts)}" if opts else "")

    # --- the repository -----------------------------------------------------------------

    @property
    def source(self) -> Source:
        return source_for(self.repo, remote=self.remote, remote_options=self.remote_config)

    @property
    def commit(self) -> str | None:
        """The commit ``rev`` names, resolved once per process (None: the workspace)."""
        pid = os.getpid()
        if self._resolved is None or self._resolved[0] != pid:
            self._resolved = (pid, self.source.commit(self.rev))
        return self._resolved[1]

    def __reduce__(self) -> Any:
        from fsspec.spec import make_instance

        opts = dict(self.storage_options)
        opts["repo"] = self.repo
        # every worker reads the same commit, whatever a branch does meanwhile; a full commit
        # id is not resolved again (a scheduler passing the task on may not have the repo)
        commit = self.rev if self.rev is not None and _FULL_SHA.fullmatch(self.rev) else self.commit
        if commit is not None:
            opts["rev"] = commit
        return make_instance, (type(self), (), opts)

    # --- listing ------------------------------------------------------------------------

    @staticmethod
    def _info(node: Node) -> dict[str, Any]:
        return {"name": node.path, "size": node.size if node.size is not None else 0, "type": node.type,
                "tracked": node.tracked, **digest_fields(node.digest)}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        rel = self._strip_protocol(path)
        nodes = self.source.list(self.commit, rel)
        infos = [self._info(n) for n in nodes]
        return infos if detail else [i["name"] for i in infos]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        rel = self._strip_protocol(path)
        if not rel:
            return {"name": "", "size": 0, "type": "directory", "tracked": False, "digest": None}
        nodes = self.source.list(self.commit, rel)
        if len(nodes) == 1 and nodes[0].path == rel:
            return self._info(nodes[0])
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        for n in self.source.list(self.commit, parent):
            if n.path == rel:
                return self._info(n)
        return {"name": rel, "size": 0, "type": "directory", "tracked": False, "digest": None}

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
             **kwargs: Any) -> Any:
        rel = self._strip_protocol(path)
        try:
            nodes = self.source.list(self.commit, rel, recursive=True)
        except PathNotTracked:
            return {} if detail else []
        base = rel.count("/") + 1 if rel else 0
        folders = tuple(o.path for o in self.source.outputs(self.commit) if o.kind == "dir")
        found: dict[str, dict[str, Any]] = {}
        for n in nodes:
            depth = n.path.count("/") + 1 - base
            if n.path != rel and maxdepth is not None and depth > maxdepth:
                continue
            found[n.path] = self._info(n)
            if withdirs:
                parts = n.path.split("/")
                for i in range(base + 1, len(parts)):
                    d = "/".join(parts[:i])
                    if maxdepth is None or i - base <= maxdepth:
                        tracked = any(d == f or d.startswith(f + "/") for f in folders)
                        found.setdefault(d, {"name": d, "size": 0, "type": "directory", "tracked": tracked,
                                             "digest": None})
        if withdirs and rel and rel not in found:
            info = self.info(rel)
            if info["type"] == "directory":
                found[rel] = info
        names = sorted(found)
        return {p: found[p] for p in names} if detail else names

    # --- reading ------------------------------------------------------------------------

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError("the mlver filesystem is read-only")
        return self.source.open(self.commit, self._strip_protocol(path))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self._open(path) as f:
            size = self.info(path)["size"] if (start is not None and start < 0) or (end is not None and end < 0) \
                else None
            lo = (start + size if start < 0 else start) if start is not None and size is not None else (start or 0)
            if end is not None and end < 0 and size is not None:
                end = end + size
            f.seek(lo)
            data: bytes = f.read() if end is None else f.read(max(end - lo, 0))
            return data

    def _rm(self, path: str) -> None:
        raise PermissionError("the mlver filesystem is read-only")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        raise PermissionError("the mlver filesystem is read-only")
