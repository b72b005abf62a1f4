"""The Repo handle: the project root, the ``.mlver/`` layout, lazily opened services
(config, cache, state, ignore rules) and the repository lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from functools import cached_property
from typing import Iterator

from mlver import git
from mlver.cache import Cache
from mlver.config import Config
from mlver.errors import FormatError, GitError, LockBusy, NotARepoError
from mlver.fsutil import atomic_write_text, inside_root
from mlver.ignore import IgnoreSpec
from mlver.state import State

MLVER_DIR = ".mlver"
DEFAULT_LOCK_TIMEOUT = 10.0


class Repo:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        # before this command read any file: what the state memo records is trusted
        # only for files last modified before this moment (the racy rule)
        self.started_ns = time.time_ns()
        self.dir = os.path.join(self.root, MLVER_DIR)
        self.tmp_dir = os.path.join(self.dir, "tmp")
        self.config_path = os.path.join(self.dir, "config")
        self.local_config_path = os.path.join(self.dir, "config.local")
        # pipeline and lock files found in the workspace, listed once per command
        # (workspace.pipeline_files; a command that writes a new one adds it)
        self.found: dict[str, list[str]] = {}
        # records of old commits that could not be read and were passed over (walks of
        # history: gc, push -A); said once the command is done
        self.skipped: list[str] = []
        self._reader = False  # see read_only()

    @classmethod
    def find(cls, start: str = ".", *, check_config: bool = True) -> "Repo":
        """The project around ``start``. Its config is read now (a malformed one fails every
        command, early and by name), except for `mlver config`, which must be able to fix it."""
        d = os.path.abspath(start)
        while True:
            if os.path.isdir(os.path.join(d, MLVER_DIR)):
                repo = cls(d)
                if check_config:
                    repo.config  # noqa: B018
                return repo
            if os.path.lexists(os.path.join(d, ".git")):
                # The Git repository around ``start`` is the boundary: a clone or `git init`
                # inside a project is its own repository, not a folder of the outer project.
                raise NotARepoError(f"not inside an mlver project: the Git repository {d} has no {MLVER_DIR}/",
                                    hint="run `mlver init` there (a Git repository inside another "
                                         "project is a project of its own)")
            parent = os.path.dirname(d)
            if parent == d:
                raise NotARepoError("not inside an mlver project", hint="run `mlver init` at the top of your Git repository")
            d = parent

    # --- services -------------------------------------------------------------------

    @cached_property
    def config(self) -> Config:
        return Config.load(self.config_path, self.local_config_path)

    def unchecked_config(self) -> Config:
        """The settings with bad values left in: for commands that may be fixing one."""
        return Config.load(self.config_path, self.local_config_path, check=False)

    @cached_property
    def cache_dir(self) -> str:
        configured = self.config.get("cache.dir")
        if configured:
            path = os.path.expanduser(configured)
            real = os.path.realpath(path if os.path.isabs(path) else os.path.join(self.root, path))
            if os.path.exists(real) and not os.path.isdir(real):
                raise FormatError(self.config.sources.get("cache.dir", self.config_path),
                                  f"cache.dir: {real} is not a folder",
                                  hint="point it at a folder (`mlver config cache.dir PATH`), or unset it")
            return real
        return os.path.join(self.dir, "cache")

    @property
    def is_scratch(self) -> bool:
        """A scratch worktree mlver made inside another project's ``.mlver/tmp`` (an
        experiment run, `repro --verify`): it uses that project's cache and goes away."""
        return f"{os.sep}{MLVER_DIR}{os.sep}tmp{os.sep}" in self.root + os.sep

    def clone_id(self) -> str:
        """This clone's id (``.mlver/tmp/clone-id``, made on first use): the name of its entry
        in a shared cache, so a moved clone replaces its entry. A copy (`cp -r`) starts with
        the same id; the first command in it finds the id registered for a place that still
        holds that id, and takes a new one, so the original stays registered."""
        path = os.path.join(self.tmp_dir, CLONE_ID)
        try:
            with open(path, encoding="ascii") as f:
                cid = f.read().strip()
        except (OSError, UnicodeDecodeError):
            cid = ""
        if len(cid) == 32 and all(c in "0123456789abcdef" for c in cid):
            there = self.cache.registered_root(cid)
            if there is None or there == self.root or not _holds_clone_id(there, cid):
                return cid  # new, here, or moved from a place that no longer has it
        cid = os.urandom(16).hex()
        os.makedirs(self.tmp_dir, exist_ok=True)
        atomic_write_text(path, cid + "\n", inside=self.root)
        return cid

    @property
    def shares_cache(self) -> bool:
        """Is the cache outside this project (``cache.dir``), where other projects may use it?"""
        return self.cache_dir != os.path.join(self.dir, "cache")

    @cached_property
    def cache(self) -> Cache:
        return Cache(self.cache_dir, link_types=self.config.link_types, fsync=self.fsync, workspace=self.root)

    @cached_property
    def state(self) -> State:
        return State(os.path.join(self.tmp_dir, "state.db"), started_ns=self.started_ns,
                     shown=f"{MLVER_DIR}/tmp/state.db", create=not self._reader)

    def read_only(self) -> None:
        """This process only reads the project (``mlver.api``): caches that would be made
        on disk where none exists (the state database) are not made."""
        self._reader = True

    @cached_property
    def ignore(self) -> IgnoreSpec:
        return IgnoreSpec.load(self.root)

    @cached_property
    def hash_algo(self) -> str:
        """``core.hash``: the algorithm of outputs added afresh (an output keeps its own)."""
        from mlver.config import parse_hash
        from mlver.hashing import DEFAULT_ALGO

        return parse_hash(self.config.get("core.hash") or DEFAULT_ALGO, "core.hash")

    @property
    def fsync(self) -> bool:
        return self.config.get_bool("core.fsync")

    @cached_property
    def scm_root(self) -> str | None:
        return git.find_root(self.root)

    def require_scm(self, what: str) -> str:
        if self.scm_root is None:
            raise GitError(f"`{what}` needs Git, and this project was initialised with --no-scm")
        return self.scm_root

    def close(self) -> None:
        if "state" in self.__dict__:
            self.state.close()

    def warnings(self) -> list[str]:
        """What the services worked around (a damaged or full state database), for the
        command line to show once the command is done."""
        return (list(self.state.warnings) if "state" in self.__dict__ else []) + list(dict.fromkeys(self.skipped))

    # --- paths ----------------------------------------------------------------------

    def rel(self, path: str) -> str:
        """``path`` as given by the user (relative to cwd) -> POSIX path relative to the root."""
        return inside_root(self.root, path)

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/")) if rel != "." else self.root

    # --- the repository lock --------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, command: str, *, name: str = "lock", shared: bool = False) -> Iterator[None]:
        """One writer at a time: an flock on ``.mlver/tmp/lock`` (released by the kernel
        when the holder dies, so a stale lock clears itself), recording pid and host.
        ``name="cache.lock"`` is the lock of the cache's contents: experiment runs in
        scratch worktrees hold it ``shared`` (their writes are content-addressed), gc
        holds it exclusively."""
        import fcntl

        os.makedirs(self.tmp_dir, exist_ok=True)
        path = os.path.join(self.tmp_dir, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        timeout = self.config.get_float("core.lock_timeout", DEFAULT_LOCK_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockBusy(f"the repository is locked by {self._holder(path)}",
                                   hint="wait for it to finish, then run the command again") from None
                time.sleep(0.05)
        if name == "lock" and self.shares_cache and not self.is_scratch:
            self.cache.register_project(self.root, self.clone_id())  # gc elsewhere keeps what it references
        try:
            info = {"pid": os.getpid(), "host": os.uname().nodename, "command": command, "since": time.time()}
            try:
                if not shared:
                    os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode().ljust(200), 0)
            except OSError:  # who holds it is for messages only; the flock is the lock
                pass
            yield
        finally:
            try:
                if not shared:
                    os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)

    @staticmethod
    def _holder(path: str) -> str:
        try:
            with open(path) as f:
                info = json.loads(f.read().strip())
            return f"`mlver {info.get('command', '?')}` (pid {info.get('pid')} on {info.get('host')})"
        except (OSError, ValueError):
            return "another mlver process"


CLONE_ID = "clone-id"


def _holds_clone_id(root: str, cid: str) -> bool:
    try:
        with open(os.path.join(root, MLVER_DIR, "tmp", CLONE_ID), encoding="ascii") as f:
            return f.read().strip() == cid
    except (OSError, UnicodeDecodeError):
        return False
