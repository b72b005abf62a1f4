"""A repository opened for reading at any revision, without a checkout and without the
repository lock: a local project, or a Git URL kept as a bare clone in the user's cache
folder (``$MLVER_CACHE_HOME``, else ``$XDG_CACHE_HOME/mlver``, else ``~/.cache/mlver``;
made shallow, deepened when a revision is older, fetched again whenever a branch is read).

Files come from Git objects, or for tracked data from the local cache, else streamed
from the remote in place (``Remote.open_object``): ranged reads, nothing written to
disk, verified once read to the end. ``mlver.api``, the ``mlver://`` filesystem and
``mlver ls`` read through ``Source``; one is shared by every thread of a process
(``source_for``), and a forked or spawned process opens its own.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tempfile
import threading
from typing import BinaryIO, NamedTuple

from mlver import git
from mlver.cache import ObjectRef
from mlver.config import Config
from mlver.errors import (ChecksumMismatch, GitError, MlverError, NotARepoError, ObjectMissing, PackedObject, PathIsFolder,
                          PathError, PathNotTracked, RemoteError, RevisionNotFound)
from mlver.hashing import VerifiedReader, algo_of, digest_fields
from mlver.pointer import Entry, Manifest, parse_manifest
from mlver.remote import Remote, RemoteConfig, remote_config
from mlver.repo import MLVER_DIR, Repo
from mlver.tracked import WORKSPACE, entries_below, find, outputs_at
from mlver.workspace import Output

BUFFER = 1 << 20  # the read buffer over an object: lines and small reads cost no request each

class Node(NamedTuple):
    """One file or folder of the merged view (Git files and tracked data) at a revision
    (a tuple: a listing of 20,000 files builds 20,000 of them)."""

    path: str  # POSIX, relative to the project root
    type: str  # "file" or "directory"
    size: int | None
    tracked: bool  # tracked data (or inside a tracked folder), not a Git file
    digest: str | None  # of the object (a tracked folder: its manifest); None for Git files

    def to_json(self) -> dict:
        return {"path": self.path, "type": self.type, "size": self.size, "tracked": self.tracked,
                **digest_fields(self.digest)}


def cache_home() -> str:
    """The user's mlver cache folder (clones of Git URLs read through ``mlver.api``)."""
    home = os.environ.get("MLVER_CACHE_HOME")
    if home:
        return os.path.abspath(os.path.expanduser(home))
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg if xdg else os.path.expanduser("~/.cache"), "mlver")


def is_git_url(repo: str) -> bool:
    """A Git URL (``https://``, ``ssh://``, ``file://``, ``user@host:path``) rather than
    a local folder; a local folder holding a bare repository counts as a URL too."""
    if "://" in repo or (":" in repo.split("/", 1)[0] and "@" in repo.split(":", 1)[0]):
        return True
    return os.path.isdir(repo) and not os.path.exists(os.path.join(repo, ".git")) \
        and os.path.exists(os.path.join(repo, "HEAD")) and os.path.isdir(os.path.join(repo, "objects"))


class Source:
    """One repository, read at revisions: ``commit(rev)`` resolves, ``outputs``,
    ``open`` and ``list`` read. ``url`` is None for a local project (whose workspace is
    rev ``None``)."""

    def __init__(self, repo: Repo, *, url: str | None, remote: str | None = None,
                 remote_options: dict[str, str] | None = None) -> None:
        self.repo = repo
        self.url = url
        self.remote_name = remote
        self.remote_options = dict(remote_options or {})
        self.root = repo.require_scm("reading revisions")
        self.prefix = "" if url else _prefix(repo.root, self.root)
        self._lock = threading.Lock()
        self._outputs: dict[str, list[Output]] = {}
        self._manifests: dict[str, Manifest] = {}
        self._settings: dict[str, Config] = {}
        self._remotes: dict[str, Remote] = {}
        self._git_files: dict[str, dict[str, int | None]] = {}

    @property
    def shown(self) -> str:
        return self.url or self.repo.root

    def close(self) -> None:
        with self._lock:
            remotes, self._remotes = list(self._remotes.values()), {}
        for r in remotes:
            r.close()
        self.repo.close()

    # --- revisions --------------------------------------------------------------------

    def commit(self, rev: str | None) -> str | None:
        """The commit ``rev`` names (None: the workspace of a local project; the default
        branch of a Git URL). A branch of a Git URL is fetched first."""
        if rev is None and self.url is None:
            return None
        name = rev or "HEAD"
        if self.url is not None:
            return self._remote_commit(name)
        commit = git.verify_commit(self.root, name) if not name.startswith("-") else None
        if commit is None:
            raise RevisionNotFound(name, repo=None)
        return commit

    def _remote_commit(self, rev: str) -> str:
        bare = self.root
        if rev == "HEAD" or git.verify_commit(bare, f"refs/heads/{rev}") is not None:
            _fetch(bare, self.url or "", deepen=False)  # a branch moves: read its latest commit
        commit = git.verify_commit(bare, rev) if not rev.startswith("-") else None
        if commit is None:  # older than the shallow clone, or a tag or commit not fetched yet
            _fetch(bare, self.url or "", deepen=True)
            commit = git.verify_commit(bare, rev) if not rev.startswith("-") else None
        if commit is None:
            raise RevisionNotFound(rev, repo=self.url)
        return commit

    # --- what is recorded -------------------------------------------------------------

    def outputs(self, commit: str | None) -> list[Output]:
        if commit is None:
            return outputs_at(self.repo, WORKSPACE)  # the workspace changes: never memoised
        found = self._outputs.get(commit)
        if found is None:
            found = self._outputs[commit] = outputs_at(self.repo, commit)
        return found

    def settings(self, commit: str | None) -> Config:
        """Settings that name the remotes: a local project's own; a Git URL's committed
        config at ``commit``, overridden by the one at its HEAD (remotes are often added
        after the commits whose data they hold); the user's config under both."""
        if self.url is None:
            return self.repo.config
        key = commit or "HEAD"
        if key not in self._settings:
            self._settings[key] = settings_at(self.root, key)
        return self._settings[key]

    def remote(self, commit: str | None) -> Remote | None:
        """The remote objects are read from (``remote`` given, else the default one);
        None when none is configured."""
        settings = self.settings(commit)
        name = self.remote_name or settings.get("core.remote")
        if not name and not self.remote_options.get("url"):
            return None
        key = name or ""
        with self._lock:
            if key in self._remotes:
                return self._remotes[key]
            remotes = settings.remotes()
            if name and name in remotes:
                rc = remote_config(remotes, name, name)
                rc = RemoteConfig(rc.name, self.remote_options.get("url", rc.url),
                                  {**rc.options, **{k: v for k, v in self.remote_options.items() if k != "url"}})
            elif self.remote_options.get("url"):
                rc = RemoteConfig(name or "remote", self.remote_options["url"],
                                  {k: v for k, v in self.remote_options.items() if k != "url"})
            else:
                rc = remote_config(remotes, name, name)  # names the unknown remote
            local = local_path(self.url) if self.url else None
            base = local if local is not None else self.repo.root  # relative folder remotes
            self._remotes[key] = Remote(rc, base_dir=base)
            return self._remotes[key]

    def remote_name_for(self, commit: str | None) -> str | None:
        return self.remote_name or self.settings(commit).get("core.remote")

    # --- objects ----------------------------------------------------------------------

    def manifest(self, commit: str | None, output: Output) -> Manifest:
        """A tracked folder's manifest: from the cache, else read from the remote
        (verified; nothing is stored)."""
        digest = output.digest
        got = self._manifests.get(digest)
        if got is not None:
            return got
        cache = self.repo.cache
        if cache.has(digest, True):
            data = cache.read_bytes(digest, True)
        else:
            remote = self.remote(commit)
            if remote is None:
                raise ObjectMissing(digest, output.path)
            try:
                data = remote.read_object(ObjectRef(digest, True))
            except FileNotFoundError:
                raise ObjectMissing(digest, output.path, remote=remote.name) from None
        manifest = self._manifests[digest] = parse_manifest(data, f"manifest {digest} of {output.path}", algo_of(digest))
        return manifest

    def open_object(self, commit: str | None, digest: str, size: int, shown: str, *,
                    keep: bool = False) -> VerifiedReader:
        """A seekable, verifying file of one data object: the cache's copy, else the
        remote's, read in place (``keep``: downloaded into the cache first, verified, and
        read from there; the cache's writes are atomic, so no lock is needed)."""
        cache = self.repo.cache
        if keep and not cache.has(digest):
            self._keep(commit, digest, size, shown)
        if cache.has(digest):
            path = cache.path(digest)

            def mismatch(actual: str) -> Exception:
                return ChecksumMismatch(shown, digest, actual, where=f"in the cache, {path}")

            try:
                f = open(path, "rb", buffering=0)
                return VerifiedReader(f, digest, size if size >= 0 else os.fstat(f.fileno()).st_size, name=shown,
                                      mismatch=mismatch)
            except FileNotFoundError:  # removed by gc since: the remote may have it
                pass
        remote = self.remote(commit)
        if remote is None:
            raise ObjectMissing(digest, shown)
        ref = ObjectRef(digest, False)
        try:
            return remote.open_object(ref, size, shown=shown)
        except FileNotFoundError:
            pass
        from mlver import packs  # a small object travels in a pack: read its range (verified)

        try:
            data = packs.read_any(remote, ref, packs.load(remote, None))
        except FileNotFoundError:
            raise ObjectMissing(digest, shown, remote=remote.name) from None

        def packed_mismatch(actual: str) -> Exception:
            return ChecksumMismatch(shown, digest, actual, where=f"on remote '{remote.name}'")

        return VerifiedReader(io.BytesIO(data), digest, size, name=shown, mismatch=packed_mismatch)

    def _keep(self, commit: str | None, digest: str, size: int, shown: str) -> None:
        remote = self.remote(commit)
        if remote is None:
            raise ObjectMissing(digest, shown)
        from mlver import packs

        got = packs.download_any(remote, self.repo.cache, [ObjectRef(digest, False)], None)
        if got.corrupt:
            raise ChecksumMismatch(shown, digest, "(differs)", where=f"on remote '{remote.name}'")
        if got.missing:
            raise ObjectMissing(digest, shown, remote=remote.name)

    def object_url(self, commit: str | None, digest: str, shown: str) -> str:
        remote = self.remote(commit)
        if remote is None:
            raise RemoteError("no remote is configured, so the data has no URL",
                              hint="add one: `mlver remote add -d storage URL`")
        from mlver import packs

        ref = ObjectRef(digest, False)
        where = packs.load(remote, None).locate(ref) if packs.has_inventory(remote) else None
        if where is not None and where.offset is not None and where.length is not None:
            raise PackedObject(shown, digest, url=remote.object_url_of(where.rel), offset=where.offset,
                               length=where.length)
        return remote.object_url(ref)

    # --- files ------------------------------------------------------------------------

    def rel(self, path: str) -> str:
        """A user's path (relative to the project root; ``/`` or ``\\`` separated) as the
        POSIX path the layer uses (``""`` for the root); one leaving the project is refused."""
        given = path.replace("\\", "/")
        if given.startswith("/"):  # an absolute path: inside a local project it is that project's file
            inside = self.url is None and (os.path.realpath(path) + os.sep).startswith(os.path.realpath(self.repo.root)
                                                                                     + os.sep)
            if not inside:
                raise PathError(path, "is an absolute path outside the repository",
                                hint="give the path relative to the repository's root")
            given = os.path.relpath(os.path.realpath(path), os.path.realpath(self.repo.root)).replace(os.sep, "/")
        normal = posixpath.normpath(given) if given else "."
        if normal == ".." or normal.startswith("../"):
            raise PathError(path, "is outside the repository", hint="give the path relative to the repository's root")
        return "" if normal == "." else normal

    def locate(self, commit: str | None, rel: str) -> tuple[Output, Entry] | Output | None:
        """The tracked data ``rel`` names: (output, file entry) for a file, the output for
        a whole tracked folder; None when ``rel`` is not tracked data."""
        found = find(self.outputs(commit), rel)
        if found is None:
            return None
        output, inner = found
        if output.kind == "file":
            return output, Entry("", output.digest, output.size, False)
        if inner is None:
            return output
        below = entries_below(self.manifest(commit, output).entries, inner)
        if len(below) == 1 and below[0].path == "":
            return output, below[0]
        if below:
            return output  # a folder inside a tracked folder
        raise PathNotTracked(rel, rev=commit, repo=self.url)

    def git_file(self, commit: str, rel: str) -> bytes | None:
        spec = f"{commit}:{self.prefix}{rel}"
        blob = git.object_names(self.root, [spec]).get(spec)
        return git.read_blobs(self.root, [blob])[blob] if blob else None

    def open(self, commit: str | None, rel: str, *, keep: bool = False) -> BinaryIO:
        """A binary file of ``rel`` at ``commit`` (None: the workspace's bytes);
        ``keep``: tracked data read from the remote is stored in the cache too."""
        if commit is None:
            if not rel:
                raise PathIsFolder(".")
            full = self._workspace_path(rel)
            if full is not None and os.path.isfile(full):
                return open(full, "rb")
            if full is not None and os.path.isdir(full) and self.locate(None, rel) is None:
                raise PathIsFolder(rel)
        located = self.locate(commit, rel)
        if isinstance(located, tuple):
            _, entry = located
            raw = self.open_object(commit, entry.digest, entry.size, rel, keep=keep)
            return io.BufferedReader(raw, buffer_size=BUFFER)
        if located is not None:
            raise PathIsFolder(rel)
        if commit is not None:
            data = self.git_file(commit, rel)
            if data is not None:
                return io.BytesIO(data)
            if rel == "" or self._git_folder(commit, rel):
                raise PathIsFolder(rel or ".")
        raise PathNotTracked(rel or ".", rev=commit, repo=self.url)

    def _workspace_path(self, rel: str) -> str | None:
        if not rel or rel.split("/")[0] in (".git", MLVER_DIR):
            return None
        full = self.repo.abs(rel)
        real = os.path.realpath(full)
        if real != self.repo.root and not real.startswith(self.repo.root + os.sep):
            raise PathError(rel, "is a symbolic link leading outside the repository: mlver does not follow it")
        return full

    def _git_folder(self, commit: str, rel: str) -> bool:
        spec = f"{commit}:{self.prefix}{rel}"
        out = git.run(self.root, "cat-file", "-t", spec, check=False)
        return out.returncode == 0 and out.stdout.strip() == b"tree"

    # --- listing ----------------------------------------------------------------------

    def git_files(self, commit: str | None) -> dict[str, int | None]:
        """Files Git has at ``commit`` (the workspace: tracked or untracked and not ignored,
        present on disk) -> size, relative to the project."""
        if commit is None:
            out = git.run(self.repo.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
            files: dict[str, int | None] = {}
            for p in out.decode("utf-8", "surrogateescape").split("\0"):
                if p:
                    try:
                        st = os.lstat(self.repo.abs(p))
                    except OSError:
                        continue
                    files[p] = st.st_size
            return files
        found = self._git_files.get(commit)
        if found is None:
            n = len(self.prefix)
            entries = git.tree_entries(self.root, commit, sizes=True)
            found = self._git_files[commit] = {e.path[n:]: e.size for e in entries
                                               if e.type == "blob" and e.path.startswith(self.prefix)}
        return found

    def list(self, commit: str | None, path: str, *, recursive: bool = False,
             tracked_only: bool = False) -> list[Node]:
        """The entries of folder ``path`` (or the one file it names) at ``commit``:
        Git files and tracked data merged; a tracked folder is listed from its manifest
        (cache or remote), never by downloading its files. ``recursive``: every file
        below, no folders (as ``git ls-tree -r`` and ``dvc ls -R``)."""
        rel = self.rel(path)
        outputs = self.outputs(commit)
        files: dict[str, Node] = {}
        dirs: dict[str, Node] = {}  # folders with facts of their own (tracked folders)
        prefix = rel + "/" if rel else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) or p == rel

        if not tracked_only:
            files.update((p, Node(p, "file", s, False, None)) for p, s in self.git_files(commit).items() if wanted(p))
        for o in outputs:
            if o.kind == "file":
                if wanted(o.path):
                    files[o.path] = Node(o.path, "file", o.size, True, o.digest)
                continue
            dirs[o.path] = Node(o.path, "directory", o.size, True, o.digest)
            under = not rel or o.path.startswith(rel + "/")
            if rel == o.path or rel.startswith(o.path + "/") or (recursive and under):
                for e in self.manifest(commit, o).entries:
                    p = f"{o.path}/{e.path}"
                    files[p] = Node(p, "file", e.size if e.size >= 0 else None, True, e.digest)
        if rel in files:
            return [files[rel]]
        inside = tuple(o.path + "/" for o in outputs if o.kind == "dir")
        if recursive:
            found = [n for p, n in sorted(files.items()) if p.startswith(prefix)]
        else:
            children: dict[str, Node] = {}
            for p, n in files.items():
                if not p.startswith(prefix):
                    continue
                head, sep, _ = p[len(prefix):].partition("/")
                child = prefix + head
                if not sep:
                    children[child] = n
                elif child not in children:
                    children[child] = dirs.get(child) or Node(child, "directory", None,
                                                              child.startswith(inside), None)
            for p, n in dirs.items():
                if p.startswith(prefix) and "/" not in p[len(prefix):]:
                    children[p] = n
                elif p.startswith(prefix):  # a tracked folder deeper down: its parents are folders
                    head = p[len(prefix):].split("/", 1)[0]
                    children.setdefault(prefix + head, Node(prefix + head, "directory", None,
                                                            (prefix + head).startswith(inside), None))
            found = [children[p] for p in sorted(children)]
        if not found and rel and rel not in dirs:
            raise PathNotTracked(rel, rev=commit, repo=self.url)
        return found


def _prefix(project: str, root: str) -> str:
    rel = os.path.relpath(project, os.path.realpath(root)).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"


def settings_at(root: str, commit: str) -> Config:
    """A repository's committed settings at ``commit``, overridden by those at its HEAD
    (remotes are often added after the commits whose data they hold)."""
    specs = [f"{commit}:{MLVER_DIR}/config", f"HEAD:{MLVER_DIR}/config"]
    names = git.object_names(root, specs)
    blobs = git.read_blobs(root, [n for n in names.values() if n])
    with tempfile.TemporaryDirectory(prefix="mlver-config-") as tmp:
        paths = []
        for i, spec in enumerate(specs):
            name = names.get(spec)
            if name:
                path = os.path.join(tmp, f"config-{i}")
                with open(path, "wb") as f:
                    f.write(blobs[name])
                paths.append(path)
        return Config.load(paths[0] if paths else None, paths[1] if len(paths) > 1 else None)


# --- Git URLs: bare clones in the user's cache ------------------------------------------

def clone_dir(url: str) -> str:
    key = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return os.path.join(cache_home(), "repos", key)


REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


def local_path(url: str) -> str | None:
    """The folder a Git URL names on this machine (a path or ``file://``), else None."""
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path)
    return os.path.abspath(url) if os.path.isdir(url) else None


def _git_url(url: str) -> str:
    return "file://" + os.path.abspath(url) if os.path.isdir(url) else url  # --depth needs file://


def bare_clone(url: str) -> str:
    """The cached bare clone of ``url`` (made now when absent: shallow, every branch tip);
    its folder holds ``.git`` so it reads as a work tree without files."""
    top = clone_dir(url)
    gitdir = os.path.join(top, ".git")
    if os.path.isdir(gitdir):
        return top
    os.makedirs(os.path.dirname(top), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".clone-", dir=os.path.dirname(top))
    try:
        proc = git.run(tmp, "clone", "-q", "--bare", "--depth=1", "--no-single-branch", _git_url(url),
                       os.path.join(tmp, ".git"), check=False)
        if proc.returncode != 0:
            raise git.clone_error(url, proc)
        try:
            os.rename(tmp, top)  # whole or not at all; another process may have won the race
        except OSError:
            if not os.path.isdir(gitdir):
                raise
    finally:
        if os.path.isdir(tmp):
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return top


def _fetch(top: str, url: str, *, deepen: bool) -> None:
    """Bring the clone's branches and tags up to date (``deepen``: the whole history).
    Best effort: two processes fetching at once, or no network, leave what is there."""
    args = ["fetch", "-q", "--prune", "--force"]
    if deepen and os.path.exists(os.path.join(top, ".git", "shallow")):
        args.append("--unshallow")
    git.run(top, *args, _git_url(url), *REFSPECS, check=False)


# --- one Source per repository and process ------------------------------------------------

_SOURCES: dict[tuple, Source] = {}
_SOURCES_LOCK = threading.Lock()


def source_for(repo: str | None, *, remote: str | None = None,
               remote_options: dict[str, str] | None = None) -> Source:
    """The process's ``Source`` for ``repo`` (a local path, default the current folder's
    project, or a Git URL). Thread-safe; a child process opens its own."""
    opts = tuple(sorted((remote_options or {}).items()))
    spec = repo if repo is not None else "."
    url = spec if is_git_url(spec) else None
    where = url or os.path.realpath(spec)
    key = (os.getpid(), where, remote, opts)
    with _SOURCES_LOCK:
        found = _SOURCES.get(key)
        if found is not None:
            return found
    if url is not None:
        top = bare_clone(url)
        project = Repo(top)
    else:
        if not os.path.isdir(spec):
            raise NotARepoError(f"{spec}: no such folder, and not a Git URL")
        try:
            project = Repo.find(spec)
            project.read_only()  # the API reads: no state database is made where there is none
        except MlverError:
            git_top = git.find_root(spec)
            if git_top is None:
                raise NotARepoError(f"{spec} is not inside an mlver project nor a Git repository",
                                    hint="give the project's folder or its Git URL as repo") from None
            project = Repo(git_top)  # a plain Git repository: its files, no tracked data
        if project.scm_root is None:
            raise GitError(f"{project.root} is not in a Git repository (initialised with --no-scm)")
    source = Source(project, url=url, remote=remote, remote_options=dict(opts))
    with _SOURCES_LOCK:
        return _SOURCES.setdefault(key, source)
