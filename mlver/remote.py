"""Remotes: fsspec filesystems named by URL, and batched, parallel transfers of objects
by digest. A remote uses the cache's layout (``files/xxh3-128/ab/cdef...``); fsspec and
every cloud library are imported in this module only, and only when a remote is opened.

What the remote holds is found by listing one prefix folder (``files/xxh3-128/ab``) per
needed prefix, in parallel — never one request per object. Uploads go to a temporary
name and are renamed into place where the backend has a rename (folders, SSH); object
stores get one PUT (S3 multipart uploads also appear only when complete). Downloads are
verified by ``Cache.store_stream_verified`` before they enter the cache. Every request is
retried a bounded number of times; then a one-line ``RemoteError`` names the remote and
the cause, and the remaining work is abandoned (running the command again resumes it).

SSH uses the asyncssh-based ``sshfs`` package rather than fsspec's paramiko SFTP: it is
asynchronous (many requests in flight over one connection), keeps a pool of SFTP
channels, supports ``posix-rename`` (atomic replace) and is what DVC uses too.
"""

from __future__ import annotations

import datetime
import errno
import getpass
import itertools
import logging
import importlib.util
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar
from urllib.parse import unquote, urlparse

from mlver import failpoint
from mlver.cache import Cache, ObjectRef, algo_folder, parse_object_name
from mlver.config import check_remote_option
from mlver.errors import ChecksumMismatch, MlverError, RemoteError, UsageError
from mlver.fsutil import atomic_write, copy_file, is_stale_tmp, unique_suffix, unlink_quiet
from mlver.hashing import ALGORITHMS, CHUNK, DEFAULT_ALGO, VerifiedReader, algo_of, new_hasher
from mlver.progress import NO_PROGRESS, ByteCallback, Progress

if TYPE_CHECKING:  # pragma: no cover
    from fsspec import AbstractFileSystem

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Backend:
    protocol: str
    module: str | None  # the Python package that provides it (None: built in)
    extra: str | None  # the mlver extra that installs it


BACKENDS = {
    "file": Backend("file", None, None),
    "s3": Backend("s3", "s3fs", "s3"),
    "gs": Backend("gs", "gcsfs", "gs"),
    "gcs": Backend("gcs", "gcsfs", "gs"),
    "az": Backend("az", "adlfs", "azure"),
    "abfs": Backend("abfs", "adlfs", "azure"),
    "ssh": Backend("ssh", "sshfs", "ssh"),
    "sftp": Backend("ssh", "sshfs", "ssh"),
    "http": Backend("http", "aiohttp", None),
    "https": Backend("https", "aiohttp", None),
}

# Options each backend understands (``remote modify NAME KEY VALUE``); ``url``, ``jobs``
# and the pack settings (mlver.packs) are valid for every remote, ``timeout`` for every
# remote reached over a network (a folder remote is local system calls: no deadline).
COMMON_OPTIONS = ("url", "jobs", "packs", "pack_threshold", "pack_size")
OPTIONS: dict[str, tuple[str, ...]] = {
    "file": (),
    "s3": ("endpoint_url", "region", "profile", "access_key_id", "secret_access_key", "session_token",
           "ssl_verify"),
    "gs": ("project", "credentialpath"),
    "gcs": ("project", "credentialpath"),
    "az": ("account_name", "account_key", "connection_string", "sas_token", "tenant_id", "client_id",
           "client_secret"),
    "abfs": ("account_name", "account_key", "connection_string", "sas_token", "tenant_id", "client_id",
             "client_secret"),
    "ssh": ("user", "port", "keyfile", "password", "passphrase", "known_hosts"),
    "http": ("user", "password"),
    "https": ("user", "password"),
}
# Options that are credentials: refused in the committed config file.
SECRET_OPTIONS = frozenset({"access_key_id", "secret_access_key", "session_token", "account_key",
                            "connection_string", "sas_token", "client_secret", "password", "passphrase"})
READ_ONLY = frozenset({"http", "https"})
OBJECT_STORES = frozenset({"s3", "gs", "gcs", "az", "abfs"})  # one atomic PUT, no rename

ATTEMPTS = 3  # per request, before the remote is declared unreachable
DEFAULT_TIMEOUT = 60.0  # seconds a request may go without progress (remote.NAME.timeout)
SSH_CONNECT_TIMEOUT = 10.0  # connecting over SSH, unless remote.NAME.timeout is set
SEND_PIECE = 256 << 10  # a hashed upload writes (and counts progress) in pieces this size
UPLOAD_PART = 8 << 20  # S3 uploads above two parts are multipart: progress every part
STREAM_PART = 5 << 20  # parts of streamed uploads (packs): S3's smallest, as each writer holds about two
FLAT_LISTING_ABOVE = 16  # prefix folders; above this an object store is listed flat
FIRST_DELAY = 0.5
SMALL_GET = 16 << 20  # objects up to this size are fetched with one GET
READ_BLOCK = 32 << 20
OPEN_BLOCK = 4 << 20  # the request size of reads in place (open_object): a ranged read costs at most this
RUNS_DIR = "runs"


def scheme_of(url: str) -> str:
    if "://" not in url:
        return "file"
    return urlparse(url).scheme.lower()


def backend_for(url: str) -> Backend:
    scheme = scheme_of(url)
    return BACKENDS.get(scheme, Backend(scheme, None, None))


def backend_installed(backend: Backend) -> bool:
    return backend.module is None or importlib.util.find_spec(backend.module) is not None


def check_url(url: str, *, name: str | None = None) -> Backend:
    """The backend of ``url``; an error naming the extra to install when it is missing."""
    if not url.strip():
        raise UsageError("a remote URL cannot be empty", hint="use a folder path, file://, s3://, gs://, az://, "
                                                              "ssh:// or http(s)://")
    scheme = scheme_of(url)
    if scheme not in BACKENDS:
        known = ", ".join(sorted({f"{s}://" for s in BACKENDS if s != "file"}))
        raise UsageError(f"unsupported remote URL '{url}'",
                         hint=f"use a folder path, file://, or one of {known}")
    backend = BACKENDS[scheme]
    if not backend_installed(backend):
        label = f"remote '{name}' ({url})" if name else f"'{url}'"
        if backend.extra:
            raise RemoteError(f"{label} needs the {backend.module} package: pip install \"mlver[{backend.extra}]\"")
        raise RemoteError(f"{label} needs the {backend.module} package: pip install {backend.module}")
    return backend


def option_names(url: str) -> tuple[str, ...]:
    protocol = BACKENDS.get(scheme_of(url), BACKENDS["file"]).protocol
    return COMMON_OPTIONS + (("timeout",) if protocol != "file" else ()) + OPTIONS.get(protocol, ())


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict)


def remote_config(remotes: dict[str, dict[str, str]], default: str | None, name: str | None) -> RemoteConfig:
    """The named remote (the default one when ``name`` is None) from merged settings."""
    if name is None:
        if not default:
            if not remotes:
                raise RemoteError("no remote is configured",
                                  hint="add one: `mlver remote add -d storage /path/or/s3://bucket/prefix`")
            raise RemoteError("no default remote is set and -r was not given",
                              hint=f"use -r NAME or `mlver remote default NAME` (remotes: {', '.join(sorted(remotes))})")
        name = default
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteError(f"remote '{name}' is not configured (remotes: {known})",
                          hint="see `mlver remote list`")
    opts = dict(remotes[name])
    url = opts.pop("url", None)
    if not url:
        raise RemoteError(f"remote '{name}' has no url", hint=f"`mlver remote modify {name} url URL`")
    return RemoteConfig(name, url, opts)


def _cause(e: BaseException) -> str:
    text = str(e).strip() or getattr(e, "strerror", None) or ""
    text = " ".join(text.split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Stop(Exception):
    """Raised in workers after another worker failed: the batch is being abandoned."""


class _Stalled(Exception):
    """A request moved nothing for ``remote.NAME.timeout`` seconds (retried, then reported)."""


class _Touching:
    """A remote file whose every write counts as progress of the current request."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        for at in range(0, len(view), SEND_PIECE):  # small writes: progress shows within the deadline
            self._f.write(view[at:at + SEND_PIECE])
            _touch()
        return len(view)


class _Watch:
    """When a request last made progress (monotonic clock)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def stalled(self) -> bool:
        return time.monotonic() - self.last > self.timeout


_request = threading.local()  # .watch: the _Watch of the request this thread runs


def _touch() -> None:
    """Progress of the current request (bytes moved): its deadline starts again."""
    watch = getattr(_request, "watch", None)
    if watch is not None:
        watch.touch()


def _progress_callback(on_bytes: ByteCallback | None = None) -> Any:
    """An fsspec callback (fsspec's own progress protocol, spoken by s3fs and sshfs
    transfers) that counts as progress of the current request for its deadline (backends
    call it on their event loop's thread, hence the bound watch rather than ``_touch``)
    and passes each chunk's size to ``on_bytes``."""
    from fsspec.callbacks import Callback

    watch = getattr(_request, "watch", None)

    class Progressing(Callback):
        def relative_update(self, inc: int = 1) -> None:
            super().relative_update(inc)
            if on_bytes is not None and inc > 0:
                on_bytes(inc)

        def absolute_update(self, value: int) -> None:
            inc = value - (self.value or 0)
            super().absolute_update(value)
            if on_bytes is not None and inc > 0:
                on_bytes(inc)

        def call(self, *args: Any, **kwargs: Any) -> None:
            if watch is not None:
                watch.touch()

    return Progressing()


@dataclass
class Uploaded:
    objects: int = 0
    bytes: int = 0
    corrupt: list[ObjectRef] = field(default_factory=list)  # bytes in the cache did not match: not uploaded


@dataclass
class Downloaded:
    objects: int = 0
    bytes: int = 0
    missing: list[ObjectRef] = field(default_factory=list)  # absent on the remote
    corrupt: list[tuple[ObjectRef, str]] = field(default_factory=list)  # (object, message)


class Remote:
    """An opened remote: a filesystem, the folder that holds the layout, and transfers."""

    def __init__(self, rc: RemoteConfig, *, base_dir: str, jobs: int | None = None) -> None:
        self.name = rc.name
        self.url = rc.url
        self.options = rc.options
        self.backend = check_url(rc.url, name=rc.name)
        self.protocol = self.backend.protocol
        self.read_only = self.protocol in READ_ONLY
        self.can_list = not self.read_only
        self.atomic_put = self.protocol in OBJECT_STORES
        # A folder remote is local disk work, bound by syscalls: more threads than cores
        # only fight over the GIL. Network backends wait on latency: many in flight.
        local_default = os.cpu_count() or 2
        self.jobs = jobs or _int_option(rc, "jobs") or (local_default if self.protocol == "file" else default_jobs())
        self.root = self._root(base_dir)
        self.timeout = _timeout_option(rc)
        self._fs: AbstractFileSystem | None = None
        self._fs_lock = threading.Lock()
        self._made: set[str] = set()
        self._root_checked = False

    # --- opening ------------------------------------------------------------------

    def _root(self, base_dir: str) -> str:
        url = self.url
        if self.protocol == "file":
            path = unquote(urlparse(url).path) if url.startswith("file://") else os.path.expanduser(url)
            if not os.path.isabs(path):
                path = os.path.join(base_dir, path)
            return os.path.normpath(path)
        if self.protocol in ("http", "https"):
            return url.rstrip("/")
        parsed = urlparse(url)
        if self.protocol == "ssh":
            return (unquote(parsed.path) or ".").rstrip("/") or "/"
        return f"{parsed.netloc}{unquote(parsed.path)}".rstrip("/")

    @property
    def fs(self) -> "AbstractFileSystem":
        if self._fs is None:
            with self._fs_lock:  # workers may ask at once: open one filesystem only
                if self._fs is None:
                    self._fs = self._retry("connecting", self._open_fs)
        return self._fs

    def _open_fs(self) -> "AbstractFileSystem":
        o = self.options
        # Async backends leave tasks behind when a server drops mid-request; asyncio logs
        # them ("Task exception was never retrieved") through Python's last-resort handler.
        # Our errors are reported as one line; that debris shows only with -v.
        logging.getLogger("asyncio").addHandler(logging.NullHandler())
        if self.protocol == "file":
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        if self.protocol == "s3":
            import s3fs

            client_kwargs: dict[str, Any] = {}
            if o.get("region"):
                client_kwargs["region_name"] = o["region"]
            if o.get("ssl_verify", "").lower() in ("0", "false", "no", "off"):
                client_kwargs["verify"] = False
            kw: dict[str, Any] = {
                "skip_instance_cache": True,
                "client_kwargs": client_kwargs,
                # botocore's timeouts are per socket operation (no bytes for that long);
                # _attempt's watchdog is the deadline around the whole request
                "config_kwargs": {"connect_timeout": min(self.timeout, 10.0), "read_timeout": self.timeout,
                                  "retries": {"max_attempts": 1},
                                  "max_pool_connections": max(10, self.jobs)},
            }
            if o.get("endpoint_url") or o.get("endpointurl"):
                kw["endpoint_url"] = o.get("endpoint_url") or o.get("endpointurl")
            if o.get("profile"):
                kw["profile"] = o["profile"]
            if o.get("access_key_id"):
                kw["key"] = o["access_key_id"]
            if o.get("secret_access_key"):
                kw["secret"] = o["secret_access_key"]
            if o.get("session_token"):
                kw["token"] = o["session_token"]
            fs = s3fs.S3FileSystem(**kw)
            fs.retries = 2  # s3fs' own retry loop; ours is around it
            return fs
        if self.protocol == "ssh":
            import sshfs

            parsed = urlparse(self.url)
            kw = {"skip_instance_cache": True, "port": int(o.get("port") or parsed.port or 22),
                  "username": o.get("user") or (unquote(parsed.username) if parsed.username else getpass.getuser()),
                  "connect_timeout": self.timeout if o.get("timeout") else SSH_CONNECT_TIMEOUT}
            if o.get("keyfile"):
                kw["client_keys"] = [os.path.expanduser(o["keyfile"])]
            if o.get("password") or parsed.password:
                kw["password"] = o.get("password") or unquote(parsed.password or "")
            if o.get("passphrase"):
                kw["passphrase"] = o["passphrase"]
            known = o.get("known_hosts")
            if known and known.lower() in ("none", "ignore", "no", "false"):
                kw["known_hosts"] = None
            elif known:
                kw["known_hosts"] = os.path.expanduser(known)
            else:
                default = os.path.expanduser("~/.ssh/known_hosts")
                kw["known_hosts"] = default if os.path.exists(default) else None
            return sshfs.SSHFileSystem(parsed.hostname or "localhost", **kw)
        if self.protocol in ("gs", "gcs"):
            import gcsfs

            gkw: dict[str, Any] = {"skip_instance_cache": True}
            if o.get("project"):
                gkw["project"] = o["project"]
            if o.get("credentialpath"):
                gkw["token"] = os.path.expanduser(o["credentialpath"])
            return gcsfs.GCSFileSystem(**gkw)
        if self.protocol in ("az", "abfs"):
            import adlfs

            akw: dict[str, Any] = {"skip_instance_cache": True}
            for k in OPTIONS["az"]:
                if o.get(k):
                    akw[k] = o[k]
            return adlfs.AzureBlobFileSystem(**akw)
        if self.protocol in ("http", "https"):
            from fsspec.implementations.http import HTTPFileSystem

            hkw: dict[str, Any] = {"skip_instance_cache": True}
            if o.get("user"):
                import aiohttp

                hkw["client_kwargs"] = {"auth": aiohttp.BasicAuth(o["user"], o.get("password", ""))}
            return HTTPFileSystem(**hkw)
        raise UsageError(f"unsupported remote URL '{self.url}'")  # check_url refused it already

    def close(self) -> None:
        fs, self._fs = self._fs, None
        if fs is None:
            return
        if self.protocol == "ssh":  # close the SSH connection now rather than at exit
            try:
                fs._finalize(fs.loop, fs._pool, fs._stack)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests, retried --------------------------------------------------------

    def describe(self) -> str:
        return f"remote '{self.name}' ({self.url})"

    def _retry(self, what: str, fn: Callable[..., R], *args: Any, stop: threading.Event | None = None,
               **kw: Any) -> R:
        delay = FIRST_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            if stop is not None and stop.is_set():
                raise _Stop()
            try:
                return self._attempt(fn, args, kw, stop)
            except (FileNotFoundError, FileExistsError, MlverError, _Stop):
                raise
            except PermissionError as e:
                if self.protocol == "file":  # a folder: its permissions, not credentials
                    raise RemoteError(f"{self.describe()}: permission denied while {what}: {_cause(e)}",
                                      hint="check the folder's permissions") from None
                raise RemoteError(f"{self.describe()} refused access while {what}: {_cause(e)}",
                                  hint=f"check the credentials (`mlver remote modify --local {self.name} KEY VALUE`)"
                                  ) from None
            except Exception as e:  # noqa: BLE001 - any backend error: retry, then one line
                if isinstance(e, OSError) and e.errno in _CANNOT_WRITE:  # no retry mends these
                    raise RemoteError(f"{self.describe()}: cannot write while {what}: {_CANNOT_WRITE[e.errno]}",
                                      hint="free space or make it writable; running the command again resumes "
                                           "the work") from None
                if _is_auth_error(e):
                    raise RemoteError(f"{self.describe()} refused the credentials while {what}: {_cause(e)}",
                                      hint=f"check the credentials (`mlver remote modify --local {self.name} KEY VALUE`)"
                                      ) from None
                if _is_timeout(e) and (attempt == ATTEMPTS or (stop is not None and stop.is_set())):
                    how = f"made no progress for {self.timeout:g} s" if isinstance(e, _Stalled) else "timed out"
                    raise RemoteError(f"{self.describe()} stopped answering: {what} {how} ({attempt} attempt(s))",
                                      hint=f"check the network and the server (remote.{self.name}.timeout sets "
                                           "the deadline); running the command again resumes the work",
                                      remote=self.name, reason="timeout") from None
                if attempt == ATTEMPTS or (stop is not None and stop.is_set()):
                    raise RemoteError(f"{self.describe()} is unreachable: {what} failed after {attempt} "
                                      f"attempt(s): {_cause(e)}",
                                      hint="check the URL, the network and the server; running the command "
                                           "again resumes the work") from None
                time.sleep(delay)
                delay *= 3
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, fn: Callable[..., R], args: tuple, kw: dict, stop: threading.Event | None) -> R:
        """One try of a request, with a deadline that moves with progress: on a network
        remote ``fn`` runs on a thread of its own while this one watches; when it moves no
        bytes (``_touch``) for ``self.timeout`` seconds it is abandoned (``_Stalled``).
        Abandoned requests hold no lock and no file of the repository; their threads are
        daemons blocked on a silent socket, so they never keep the process alive.
        A folder remote is local system calls: called directly, no watchdog."""
        if self.protocol == "file":
            return fn(*args, **kw)
        watch = _Watch(self.timeout)
        outcome: list[tuple[bool, Any]] = []
        done = threading.Event()

        def request() -> None:
            _request.watch = watch
            try:
                outcome.append((True, fn(*args, **kw)))
            except BaseException as e:  # noqa: BLE001 - handed to the watching thread
                outcome.append((False, e))
            finally:
                done.set()

        threading.Thread(target=request, name=f"mlver-remote-{self.name}", daemon=True).start()
        while not done.wait(0.2):
            if stop is not None and stop.is_set():
                raise _Stop()
            if watch.stalled():
                raise _Stalled(f"no progress for {self.timeout:g} s")
        ok, value = outcome[0]
        if ok:
            return value
        raise value

    def _parallel(self, items: list[T], fn: Callable[[T, threading.Event], R]) -> list[R]:
        """``fn`` over ``items`` on ``self.jobs`` threads that take the next item from a
        shared counter (no future per item); the first error stops the rest."""
        if not items:
            return []
        self.fs  # connect once, here, rather than in the first worker while the rest wait
        stop = threading.Event()
        if len(items) == 1 or self.jobs == 1:
            return [fn(i, stop) for i in items]
        counter = itertools.count()  # next() on a count is atomic under the GIL
        results: list[R] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while not stop.is_set():
                    i = next(counter)
                    if i >= len(items):
                        return
                    results.append(fn(items[i], stop))
            except _Stop:
                pass
            except BaseException as e:  # noqa: BLE001 - remembered, re-raised below
                errors.append(e)
                stop.set()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.jobs, len(items)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            stop.set()
            raise
        if errors:
            raise errors[0]
        return results

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root not in ("", "/") else f"{self.root}{rel}"

    def _makedirs(self, d: str) -> None:
        if d in self._made:  # folders this process made (set operations are atomic)
            return
        if not self.atomic_put:
            self._retry("creating folders", self.fs.makedirs, d, exist_ok=True)
        self._made.add(d)

    def require_writable(self) -> None:
        if self.read_only:
            raise RemoteError(f"{self.describe()} is read-only ({self.protocol}://)",
                              hint="push to a folder, s3://, gs://, az:// or ssh:// remote")

    # --- does it exist? -------------------------------------------------------------

    def ensure_exists(self, *, create: bool = False, used: str | None = None) -> str | None:
        """Refuse a remote whose folder or bucket does not exist (a mistyped URL or an
        unmounted drive must not read as an empty remote). With ``create`` (push), a
        missing folder is made when its parent exists, unless ``used`` (why it is known
        to exist: this clone has read or written it, or import-dvc converted it; its
        folder vanishing is a drive not mounted, not a new remote); returns the folder
        made, if any. Buckets are never created.
        Checked for folder, S3 and SSH remotes, once."""
        if self._root_checked:
            return None
        made = None
        if self.protocol == "file":
            made = self._ensure_folder(os.path.isdir, lambda p: self._retry("creating the folder", os.mkdir, p),
                                       create, used)
        elif self.protocol == "ssh":
            made = self._ensure_folder(self._remote_isdir,
                                       lambda p: self._retry("creating the folder", self.fs.mkdir, p,
                                                             create_parents=False), create, used)
        elif self.protocol == "s3":
            bucket, _, prefix = self.root.partition("/")
            try:
                # ListObjectsV2 of one key: NoSuchBucket for a missing bucket, an empty
                # list for an empty prefix (an empty remote); needs no HeadBucket right
                self._retry("checking the bucket", self.fs.call_s3, "list_objects_v2", Bucket=bucket,
                            Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
            except FileNotFoundError:
                raise RemoteError(f"{self.describe()}: bucket '{bucket}' does not exist",
                                  hint=f"check the URL (`mlver remote modify {self.name} url s3://BUCKET/PREFIX`)"
                                       " and endpoint_url; mlver does not create buckets",
                                  remote=self.name, reason="missing") from None
        self._root_checked = True
        return made

    def _remote_isdir(self, path: str) -> bool:
        try:  # info, not fsspec's isdir: that reads a dropped connection as "not a folder"
            info = self._retry("checking the folder", self.fs.info, path)
        except FileNotFoundError:
            return False
        return info.get("type") == "directory"

    def _ensure_folder(self, isdir: Callable[[str], bool], mkdir: Callable[[str], Any], create: bool,
                       used: str | None) -> str | None:
        root = self.root
        if isdir(root):
            return None
        if create and used:
            raise RemoteError(f"{self.describe()}: folder {root} does not exist, yet {used}",
                              hint="mount the drive or fix the URL (`mlver remote modify "
                                   f"{self.name} url URL`); to start the remote afresh, create the folder "
                                   "and push again", remote=self.name, reason="missing")
        parent = root.rsplit("/", 1)[0] or "/"
        if create and parent != root and isdir(parent):
            try:
                mkdir(root)
            except FileExistsError:
                if not isdir(root):
                    raise RemoteError(f"{self.describe()}: {root} is not a folder", remote=self.name,
                                      reason="missing") from None
                return None
            return root
        if create:
            hint = (f"its parent folder {parent} does not exist either: check the URL (`mlver remote modify "
                    f"{self.name} url URL`) or mount the drive; push creates the remote's folder only "
                    "inside an existing one")
        else:
            hint = (f"check the URL (`mlver remote modify {self.name} url URL`) or mount the drive; "
                    "`mlver push` creates the folder when its parent exists")
        raise RemoteError(f"{self.describe()}: folder {root} does not exist", hint=hint, remote=self.name,
                          reason="missing")

    # --- listing ------------------------------------------------------------------

    def _ls(self, path: str) -> list[dict]:
        try:
            if self.protocol == "file":  # a folder: scandir, not fsspec's dict of ten fields a file
                return _scan_folder(path)
            return self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []

    def list_objects(self, folders: Iterable[str] | None = None) -> dict[ObjectRef, int]:
        """Objects on the remote (with sizes) in the given object folders
        (``cache.object_folders``: ``<algo>/<two hex digits>``), or all of them; one
        listing per folder, in parallel."""
        return {ref: size for ref, (size, _) in self.list_object_info(folders).items()}

    def probe_objects(self, refs: Iterable[ObjectRef]) -> dict[ObjectRef, int]:
        """Which of ``refs`` the remote holds loose (with sizes), asked one by one (a HEAD
        each, in parallel): for remotes that cannot be listed (http)."""
        def one(ref: ObjectRef, stop: threading.Event) -> tuple[ObjectRef, int | None]:
            try:
                info = self._retry(f"checking {ref.relpath}", self.fs.info, self.path(ref.relpath), stop=stop)
            except FileNotFoundError:
                return ref, None
            return ref, int(info.get("size") or 0)

        return {ref: size for ref, size in self._parallel(list(refs), one) if size is not None}

    def list_object_info(self, folders: Iterable[str] | None = None
                         ) -> dict[ObjectRef, tuple[int, float | None]]:
        """``list_objects`` with each object's modification time (seconds since the
        epoch; None when the backend gives none), from the same listing."""
        self.ensure_exists()
        by_algo: dict[str, set[str]] = {}
        if folders is None:
            for algo in ALGORITHMS:
                found = self._retry("listing objects", self._ls, self._algo_path(algo))
                by_algo[algo] = {n for n in (_basename(i["name"]) for i in found if i.get("type") == "directory")
                                 if len(n) == 2 and all(c in "0123456789abcdef" for c in n)}
        else:
            for f in folders:
                algo, _, prefix = f.partition("/")
                by_algo.setdefault(algo, set()).add(prefix)
        result: dict[ObjectRef, tuple[int, float | None]] = {}
        for algo, prefixes in by_algo.items():
            result.update(self._list_algo(algo, sorted(p for p in prefixes if len(p) == 2)))
        return result

    def _algo_path(self, algo: str) -> str:
        top = algo_folder(algo)
        return self.path(top) if top else self.root

    def _list_algo(self, algo: str, wanted: list[str]) -> dict[ObjectRef, tuple[int, float | None]]:
        base = self._algo_path(algo)
        if self.atomic_put and len(wanted) > FLAT_LISTING_ABOVE:
            # Object stores list a whole prefix flat, 1,000 keys a request: ~20 requests
            # for 20,000 objects instead of one request per two-letter folder.
            return self._retry("listing objects", self._list_flat, base, algo, set(wanted))

        def one(prefix: str, stop: threading.Event) -> list[tuple[ObjectRef, tuple[int, float | None]]]:
            items = self._retry("listing objects", self._ls, f"{base}/{prefix}", stop=stop)
            out = []
            for i in items:
                if i.get("type") == "directory":
                    continue
                ref = parse_object_name(algo, prefix, _basename(i["name"]))
                if ref is not None:
                    out.append((ref, (int(i.get("size") or 0), modified_time(i))))
            return out

        result: dict[ObjectRef, tuple[int, float | None]] = {}
        for chunk in self._parallel(wanted, one):
            result.update(chunk)
        return result

    def _list_flat(self, base: str, algo: str, wanted: set[str]) -> dict[ObjectRef, tuple[int, float | None]]:
        result: dict[ObjectRef, tuple[int, float | None]] = {}
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return result
        for name, info in found.items():
            rel = _strip(name)[len(_strip(base)) + 1:]
            prefix, _, rest = rel.partition("/")
            if prefix not in wanted or not rest or "/" in rest:
                continue
            ref = parse_object_name(algo, prefix, rest)
            if ref is not None:
                result[ref] = (int(info.get("size") or 0), modified_time(info))
        return result

    # --- upload -------------------------------------------------------------------

    def _put(self, src: str, rel: str, on_bytes: ByteCallback | None = None, digest: str | None = None) -> None:
        """Put the local file ``src`` at ``rel``: whole or not at all; ``on_bytes`` hears
        of the bytes as they are sent. With ``digest`` (an object), the bytes are hashed in
        the same read that feeds the upload, and when they do not match,
        ``ChecksumMismatch`` is raised before anything appears at ``rel``: the temporary is
        dropped before its rename, and an object store's PUT (or multipart upload) is
        abandoned before it completes."""
        try:
            self._put_whole(src, rel, on_bytes, digest)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise RemoteError(f"{self.describe()} is out of space: cannot write {rel}: {_cause(e)}",
                                  hint="free space on it (or move it: `mlver remote modify "
                                       f"{self.name} url URL`); running the command again resumes the work",
                                  remote=self.name, reason="no_space") from None
            raise

    def _put_whole(self, src: str, rel: str, on_bytes: ByteCallback | None, digest: str | None) -> None:
        dest = self.path(rel)
        if self.atomic_put:
            if digest is None:
                if self.protocol == "s3":  # parts small enough that progress shows within the deadline
                    self.fs.put_file(src, dest, callback=_progress_callback(on_bytes), chunksize=UPLOAD_PART)
                else:
                    self.fs.put_file(src, dest, callback=_progress_callback(on_bytes))
                return
            if self.protocol == "s3":  # parts small enough that progress shows within the deadline
                f = self.fs.open(dest, "wb", block_size=UPLOAD_PART)
            else:
                f = self.fs.open(dest, "wb")
            try:
                self._check(self._send_hashing(src, f, on_bytes, algo_of(digest)), digest, rel)
                f.close()  # the PUT / CompleteMultipartUpload: only for verified bytes
            except BaseException:
                try:
                    f.discard()  # aborts a multipart upload already under way
                except Exception:  # noqa: BLE001 - best effort: an abandoned upload never completes
                    pass
                f.closed = True  # never committed later by the file object's finaliser
                raise
            return
        tmp_dir = self.path("tmp")
        self._makedirs(tmp_dir)
        self._makedirs(dest.rsplit("/", 1)[0])
        tmp = f"{tmp_dir}/{temporary_name()}"
        if self.protocol == "file":  # a folder: a copy (in-kernel when not hashing) and a rename, no fsspec layers
            try:
                h = new_hasher(algo_of(digest)) if digest is not None else None
                copy_file(src, tmp, 0o444, on_chunk=on_bytes, hasher=h)
                if h is not None and digest is not None:
                    self._check(h.hexdigest(), digest, rel)
                failpoint.hit("remote-before-rename")
                os.replace(tmp, dest)
            except BaseException:
                unlink_quiet(tmp)
                raise
            return
        try:
            if digest is None:
                self.fs.put_file(src, tmp, callback=_progress_callback(on_bytes))
            else:
                with self.fs.open(tmp, "wb") as f:
                    actual = self._send_hashing(src, f, on_bytes, algo_of(digest))
                self._check(actual, digest, rel)
            failpoint.hit("remote-before-rename")
            try:
                self.fs.mv(tmp, dest)
            except Exception:
                if not self.fs.exists(dest):  # a concurrent upload of the same object won
                    raise
                self.fs.rm_file(tmp)
        except BaseException:
            try:
                self.fs.rm_file(tmp)
            except Exception:  # noqa: BLE001 - the temporary may not exist
                pass
            raise

    @staticmethod
    def _send_hashing(src: str, f: Any, on_bytes: ByteCallback | None = None, algo: str = DEFAULT_ALGO) -> str:
        """Write the local file ``src`` into the open remote file ``f``; the digest of
        the bytes sent (hashed as they are read: one read feeds both). Each chunk written
        counts as progress of the request for its deadline (``_touch``: a write that stalls
        blocks here, so a stalled upload is detected and a moving one is not) and is
        passed to ``on_bytes``."""
        h = new_hasher(algo)
        with open(src, "rb", buffering=0) as fin:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                view = memoryview(chunk)
                for at in range(0, len(view), SEND_PIECE):  # small writes: progress shows within the deadline
                    piece = view[at:at + SEND_PIECE]
                    f.write(piece)
                    _touch()
                    if on_bytes is not None:
                        on_bytes(len(piece))
        return h.hexdigest()

    def _check(self, actual: str, digest: str, rel: str) -> None:
        if actual != digest:
            raise ChecksumMismatch(rel, digest, actual, where="in the cache, not uploaded")

    def upload(self, cache: Cache, refs: list[ObjectRef], *, progress: Progress = NO_PROGRESS) -> Uploaded:
        """Upload ``refs`` from ``cache``, each verified against its digest as it is read;
        one whose bytes do not match is not uploaded, and listed in ``corrupt``."""
        self.require_writable()
        res = Uploaded()
        if not refs:
            return res
        sizes = {r: os.path.getsize(cache.path(r.digest, r.manifest)) for r in refs}
        progress.start(f"push to {self.name}", total_files=len(refs), total_bytes=sum(sizes.values()))
        lock = threading.Lock()

        def one(ref: ObjectRef, stop: threading.Event) -> None:
            rel = ref.relpath
            bar = progress.file(sizes[ref])
            try:
                self._retry(f"uploading {rel}", self._put, cache.path(ref.digest, ref.manifest), rel, bar,
                            ref.digest, stop=stop)
            except FileNotFoundError as e:
                raise RemoteError(f"{self.describe()}: cannot write {rel}: {_cause(e)}",
                                  hint="check that the bucket or folder exists") from None
            except ChecksumMismatch:
                bar.done()
                with lock:
                    res.corrupt.append(ref)
                return
            failpoint.hit("remote-after-upload")
            bar.done()
            with lock:
                res.objects += 1
                res.bytes += sizes[ref]

        try:
            self._parallel(refs, one)
        finally:
            progress.finish()
        res.corrupt.sort(key=lambda r: (r.digest, r.manifest))
        return res

    # --- download -----------------------------------------------------------------

    def _chunks(self, path: str, size: int | None) -> Iterator[bytes]:
        if size is not None and size <= SMALL_GET:
            yield self.fs.cat_file(path)
            return
        with self.fs.open(path, "rb", block_size=READ_BLOCK) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                _touch()
                yield chunk

    def read_object(self, ref: ObjectRef, size: int | None = None) -> bytes:
        """The object's bytes, verified (for manifests read without storing them)."""
        data = self._retry(f"reading {ref.relpath}", lambda: b"".join(self._chunks(self.path(ref.relpath), size)))
        h = new_hasher(algo_of(ref.digest))
        h.update(data)
        if h.hexdigest() != ref.digest:
            raise ChecksumMismatch(ref.relpath, ref.digest, h.hexdigest(), where=f"on remote '{self.name}'")
        return data

    # --- reading in place (mlver.api, the mlver:// filesystem) ------------------------

    def object_url(self, ref: ObjectRef) -> str:
        """Where the loose object lives on this remote, as a URL its backend's tools
        accept (a plain path for a folder remote). An object inside a pack has no URL of
        its own (ops/source.py raises PackedObject with the pack's URL and range)."""
        return self.object_url_of(ref.relpath)

    def object_url_of(self, rel: str) -> str:
        """The URL of the file ``rel`` (relative to the remote's root)."""
        path = self.path(rel)
        if self.protocol in ("file", "http", "https"):
            return path
        if self.protocol == "ssh":
            parsed = urlparse(self.url)
            return f"ssh://{parsed.netloc}{path if path.startswith('/') else '/' + path}"
        return f"{self.protocol}://{path}"

    def open_object(self, ref: ObjectRef, size: int, *, shown: str | None = None) -> VerifiedReader:
        """A seekable file of the object's bytes, read from the remote in place: a read
        or a seek becomes a ranged request of at most ``OPEN_BLOCK`` bytes (read-ahead
        included), nothing is written to disk, and reading every byte verifies the
        digest (``ChecksumMismatch``). An object the remote lacks: ``FileNotFoundError``.
        (Packs hook here too: a packed object opens as a range of its pack.)"""
        path = self.path(ref.relpath)
        f = self._retry(f"opening {ref.relpath}", lambda: self.fs.open(path, "rb", block_size=OPEN_BLOCK,
                                                                       cache_type="readahead"))
        where = f"on remote '{self.name}'"

        def mismatch(actual: str) -> Exception:
            return ChecksumMismatch(shown or ref.relpath, ref.digest, actual, where=where)

        if size < 0:  # not recorded (an md5 folder's entry: DVC's listing has no sizes)
            size = int(getattr(f, "size", None) or self._retry(f"reading {ref.relpath}", self.fs.size, path))
        return VerifiedReader(f, ref.digest, size, name=shown or ref.relpath, mismatch=mismatch)

    def download(self, cache: Cache, refs: dict[ObjectRef, int | None], *,
                 progress: Progress = NO_PROGRESS) -> Downloaded:
        """Download ``refs`` (object -> size when known) into ``cache``, verified."""
        res = Downloaded()
        if not refs:
            return res
        items = sorted(refs.items(), key=lambda kv: (kv[0].digest, kv[0].manifest))
        progress.start(f"fetch from {self.name}", total_files=len(items),
                       total_bytes=sum(s or 0 for _, s in items) or None)
        lock = threading.Lock()

        def one(item: tuple[ObjectRef, int | None], stop: threading.Event) -> None:
            ref, size = item
            where = f"on remote '{self.name}'"
            src = self.path(ref.relpath)
            bar = progress.file(size or 0)
            if self.protocol == "file":  # a folder: an in-kernel copy, hashed as it lands
                def fetch() -> int:
                    return cache.store_copy_verified(src, ref.digest, manifest=ref.manifest, where=where,
                                                     on_bytes=bar)
            else:
                def fetch() -> int:
                    return cache.store_stream_verified(self._chunks(src, size), ref.digest, manifest=ref.manifest,
                                                       where=where, on_bytes=bar)
            try:
                n = self._retry(f"downloading {ref.relpath}", fetch, stop=stop)
            except FileNotFoundError:
                with lock:
                    res.missing.append(ref)
                return
            except ChecksumMismatch as e:
                with lock:
                    res.corrupt.append((ref, e.message))
                return
            failpoint.hit("remote-after-download")
            bar.done()
            if not size:  # the size was not known in advance: count what arrived
                progress.advance(nbytes=n)
            with lock:
                res.objects += 1
                res.bytes += n

        try:
            self._parallel(items, one)
        finally:
            progress.finish()
        return res

    # --- checking and removing ----------------------------------------------------

    def digest_of(self, ref: ObjectRef, size: int | None = None) -> str:
        """Re-hash the object as stored on the remote."""
        def work() -> str:
            h = new_hasher(algo_of(ref.digest))
            for chunk in self._chunks(self.path(ref.relpath), size):
                h.update(chunk)
            return h.hexdigest()

        return self._retry(f"reading {ref.relpath}", work)

    def check_objects(self, refs: dict[ObjectRef, int], *, progress: Progress = NO_PROGRESS) -> list[ObjectRef]:
        """Objects whose bytes on the remote do not match their digest."""
        items = sorted(refs.items(), key=lambda kv: kv[0].digest)
        progress.start(f"checking {self.name}", total_files=len(items), total_bytes=sum(s for _, s in items))

        def one(item: tuple[ObjectRef, int], stop: threading.Event) -> ObjectRef | None:
            ref, size = item
            if stop.is_set():
                raise _Stop()
            try:
                actual = self.digest_of(ref, size)
            except FileNotFoundError:  # removed meanwhile: nothing to check
                return None
            progress.advance(files=1, nbytes=size)
            return ref if actual != ref.digest else None

        try:
            return sorted((r for r in self._parallel(items, one) if r is not None), key=lambda r: (r.digest, r.manifest))
        finally:
            progress.finish()

    def quarantine(self, ref: ObjectRef) -> str | None:
        """Move a corrupt object out of the layout, to ``quarantine/`` on the remote (kept
        for inspection), so the next push from a clone with a good copy sends it again.
        None on a read-only remote (it is only reported)."""
        if self.read_only:
            return None
        src, dest = self.path(ref.relpath), self.path(f"quarantine/{ref.quarantine_name}")
        if self.protocol == "file":
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(src, dest)
        else:  # a rename where the backend has one; copy then delete on object stores
            self._makedirs(dest.rsplit("/", 1)[0])
            self._retry(f"quarantining {ref.relpath}", self.fs.mv, src, dest)
        return dest

    def remove_objects(self, refs: list[ObjectRef], *, progress: Progress = NO_PROGRESS) -> int:
        self.require_writable()
        if not refs:
            return 0
        paths = [self.path(r.relpath) for r in refs]
        progress.start(f"gc on {self.name}", total_files=len(paths))
        try:
            if self.atomic_put:  # object stores delete in batches of up to 1000 per request
                for i in range(0, len(paths), 1000):
                    batch = paths[i:i + 1000]
                    self._retry("removing objects", self.fs.rm, batch)
                    progress.advance(files=len(batch))
                return len(paths)

            def one(p: str, stop: threading.Event) -> int:
                try:
                    self._retry("removing objects", self.fs.rm_file, p, stop=stop)
                except FileNotFoundError:
                    return 0
                progress.advance(files=1)
                return 1

            return sum(self._parallel(paths, one))
        finally:
            progress.finish()

    def remove_stale_temporaries(self, older_than: float = 24 * 3600) -> int:
        """Temporaries left by killed uploads (folder and SSH remotes): those whose writer
        on this host is gone, and any older than a day (``is_stale_temporary``)."""
        if self.atomic_put or self.read_only:
            return 0
        items = self._retry("listing temporaries", self._ls, self.path("tmp"))
        now = time.time()
        stale = []
        for i in items:
            if i.get("type") != "directory" and is_stale_temporary(_basename(i["name"]), modified_time(i),
                                                                   now=now, older_than=older_than):
                stale.append(i["name"])
        for p in stale:
            try:
                self._retry("removing temporaries", self.fs.rm_file, p)
            except FileNotFoundError:
                pass
        return len(stale)

    # --- whole files, ranges and folders outside files/ (used by mlver.packs) -------

    def put_stream(self, rel: str, fill: Callable[[Any], None]) -> None:
        """Write ``rel`` from ``fill(f)`` (which writes into the open remote file ``f``),
        whole or not at all: a temporary then a rename on folders and SSH, one PUT (or a
        multipart upload that completes on close) on object stores. When ``fill`` raises,
        nothing appears at ``rel``."""
        self.require_writable()
        dest = self.path(rel)
        try:
            self._put_stream(dest, lambda f: fill(_Touching(f)))
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise RemoteError(f"{self.describe()} is out of space: cannot write {rel}: {_cause(e)}",
                                  hint="free space on it; running the command again resumes the work",
                                  remote=self.name, reason="no_space") from None
            raise

    def _put_stream(self, dest: str, fill: Callable[[Any], None]) -> None:
        if self.atomic_put:
            f = self.fs.open(dest, "wb", block_size=STREAM_PART) if self.protocol == "s3" else self.fs.open(dest, "wb")
            try:
                fill(f)
                f.close()
            except BaseException:
                try:
                    f.discard()
                except Exception:  # noqa: BLE001 - an abandoned upload never completes
                    pass
                f.closed = True
                raise
            return
        tmp_dir = self.path("tmp")
        self._makedirs(tmp_dir)
        self._makedirs(dest.rsplit("/", 1)[0])
        tmp = f"{tmp_dir}/{temporary_name()}"
        if self.protocol == "file":
            try:
                with open(tmp, "xb") as fl:
                    fill(fl)
                failpoint.hit("remote-before-rename")
                os.replace(tmp, dest)
            except BaseException:
                unlink_quiet(tmp)
                raise
            return
        try:
            with self.fs.open(tmp, "wb") as fr:
                fill(fr)
            failpoint.hit("remote-before-rename")
            self.fs.mv(tmp, dest)
        except BaseException:
            try:
                self.fs.rm_file(tmp)
            except Exception:  # noqa: BLE001 - the temporary may not exist
                pass
            raise

    def put_bytes(self, rel: str, data: bytes) -> None:
        """``data`` at ``rel``, whole or not at all, retried."""
        self._retry(f"writing {rel}", self.put_stream, rel, lambda f: f.write(data))

    def read_file(self, rel: str) -> bytes:
        """The bytes at ``rel`` (FileNotFoundError when absent), retried."""
        return self._retry(f"reading {rel}", self.fs.cat_file, self.path(rel))

    def read_range(self, rel: str, start: int, end: int, *, stop: threading.Event | None = None) -> bytes:
        """Bytes ``[start, end)`` of ``rel``: one ranged GET (a seek and a read on folders)."""
        path = self.path(rel)
        if self.protocol == "file":
            def local() -> bytes:
                with open(path, "rb") as f:
                    f.seek(start)
                    return f.read(end - start)
            return self._retry(f"reading {rel}", local, stop=stop)
        if self.protocol == "ssh":  # sshfs' cat_file ignores start and end: seek and read
            def seek_read() -> bytes:
                with self.fs.open(path, "rb", block_size=min(end - start, READ_BLOCK) or 1) as f:
                    f.seek(start)
                    return f.read(end - start)
            return self._retry(f"reading {rel}", seek_read, stop=stop)
        data = self._retry(f"reading {rel}", self.fs.cat_file, path, start=start, end=end, stop=stop)
        return data if len(data) <= end - start else data[start:end]  # a backend that ignored the range

    def list_folder(self, rel: str) -> list[tuple[str, int, float | None]]:
        """Files directly in the folder ``rel``: (name, size, modification time); none
        when the folder does not exist."""
        if not self.can_list:
            return []
        self.ensure_exists()
        items = self._retry(f"listing {rel}/", self._ls, self.path(rel))
        return sorted((_basename(i["name"]), int(i.get("size") or 0), modified_time(i))
                      for i in items if i.get("type") != "directory")

    def remove_files(self, rels: list[str]) -> int:
        """Remove the files ``rels`` (missing ones are skipped); how many went."""
        self.require_writable()
        if not rels:
            return 0
        if self.atomic_put:
            paths = [self.path(r) for r in rels]
            for i in range(0, len(paths), 1000):
                self._retry("removing objects", self.fs.rm, paths[i:i + 1000])
            return len(paths)
        gone = 0
        for r in rels:
            try:
                self._retry(f"removing {r}", self.fs.rm_file, self.path(r))
                gone += 1
            except FileNotFoundError:
                continue
        return gone

    # --- the run-cache subtree ----------------------------------------------------

    def list_tree(self, rel: str) -> set[str]:
        """Files below ``rel`` on the remote, relative to ``rel`` (POSIX)."""
        if not self.can_list:
            return set()
        self.ensure_exists()
        top = self.path(rel)

        def find() -> list[str]:
            try:
                return self.fs.find(top) if self.protocol == "file" else self.fs.find(top, refresh=True)
            except FileNotFoundError:
                return []

        found = self._retry(f"listing {rel}/", find)
        prefix = _strip(top) + "/"
        out = set()
        for p in found:
            p = _strip(p)
            if p.startswith(prefix):
                out.add(p[len(prefix):])
        return out

    def upload_tree(self, local_top: str, rel: str, names: list[str]) -> int:
        self.require_writable()

        def one(name: str, stop: threading.Event) -> int:
            self._retry(f"uploading {rel}/{name}", self._put, os.path.join(local_top, *name.split("/")),
                        f"{rel}/{name}", stop=stop)
            return 1

        return sum(self._parallel(sorted(names), one))

    def download_tree(self, local_top: str, rel: str, names: list[str]) -> int:
        def one(name: str, stop: threading.Event) -> int:
            try:
                data = self._retry(f"downloading {rel}/{name}", self.fs.cat_file, self.path(f"{rel}/{name}"),
                                   stop=stop)
            except FileNotFoundError:
                return 0
            atomic_write(os.path.join(local_top, *name.split("/")), data)
            return 1

        return sum(self._parallel(sorted(names), one))


def _scan_folder(path: str) -> list[dict]:
    """A local folder's entries in the shape of fsspec's ``ls(detail=True)`` (name, type,
    size, mtime); an entry removed while listing (a teammate's gc) is left out."""
    found: list[dict] = []
    with os.scandir(path) as it:
        for e in it:
            try:
                if e.is_dir():
                    found.append({"name": e.path, "type": "directory"})
                else:
                    st = e.stat()
                    found.append({"name": e.path, "type": "file", "size": st.st_size, "mtime": st.st_mtime})
            except FileNotFoundError:
                continue
    return found


_TIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "created", "time_created")


def modified_time(info: dict) -> float | None:
    """When a listed entry was last written, in seconds since the epoch, from whichever
    field the backend fills in (folder and SFTP ``mtime``, S3 ``LastModified``, Azure
    ``last_modified``, GCS ``updated``, else ``created``); None when there is none."""
    for key in _TIME_FIELDS:
        v = info.get(key)
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            return float(v)
        if hasattr(v, "timestamp"):
            if getattr(v, "tzinfo", True) is None:  # a naive datetime from a backend means UTC
                v = v.replace(tzinfo=datetime.timezone.utc)
            return float(v.timestamp())
        if isinstance(v, str):
            try:
                return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                try:
                    return float(v)
                except ValueError:
                    continue
    return None


def temporary_name() -> str:
    """A remote temporary's name: ``PID-TAG-N.HOST`` (``fsutil.unique_suffix`` and this
    host's name), so a later run on the same host can tell that its writer is gone."""
    return f"{unique_suffix()}.{_HOST}"


_HOST = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname()) or "localhost"


def is_stale_temporary(name: str, mtime: float | None, *, now: float, older_than: float) -> bool:
    """A temporary left by a killed upload: written from this host by a process that is
    gone, or (from any host, or named in an older form) not modified for ``older_than``."""
    suffix, _, host = name.partition(".")
    if host == _HOST and is_stale_tmp(suffix):
        return True
    return mtime is not None and now - mtime > older_than


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _strip(path: str) -> str:
    return path.replace("\\", "/").rstrip("/")


def _is_timeout(e: BaseException) -> bool:
    """Our watchdog's ``_Stalled``, or a backend's own timeout (asyncio's and fsspec's
    are ``TimeoutError``s; botocore's read and connect timeouts are named so)."""
    return isinstance(e, (_Stalled, TimeoutError)) or type(e).__name__ in ("ReadTimeoutError",
                                                                           "ConnectTimeoutError")


def _is_auth_error(e: BaseException) -> bool:
    name = type(e).__name__
    if name in ("PermissionDenied", "NoCredentialsError", "PartialCredentialsError", "HostKeyNotVerifiable"):
        return True
    code = ""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    return code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
                    "InvalidToken", "403")


def checked_option(name: str, options: dict[str, str], key: str) -> str | None:
    """Option ``key`` of remote ``name`` checked as when it is set (config files were
    checked when read; a remote built otherwise, from DVC's config say, is checked here)."""
    v = options.get(key)
    if v is not None:
        try:
            check_remote_option(key, v)
        except UsageError as e:
            raise UsageError(f"remote.{name}.{e.message}") from None
    return v


_CANNOT_WRITE = {errno.EROFS: "it is a read-only file system", errno.ENOSPC: "its disk is full",
                 errno.EDQUOT: "its disk quota is used up"}


def _timeout_option(rc: RemoteConfig) -> float:
    v = checked_option(rc.name, rc.options, "timeout")
    return float(v) if v is not None else DEFAULT_TIMEOUT


def _int_option(rc: RemoteConfig, key: str) -> int | None:
    v = checked_option(rc.name, rc.options, key)
    return int(v) if v is not None else None


def default_jobs() -> int:
    return max(8, min(64, (os.cpu_count() or 2) * 4))


def local_tree_files(top: str) -> set[str]:
    """Files below the local folder ``top``, relative to it (POSIX)."""
    out = set()
    for dirpath, _dirs, files in os.walk(top):
        rel = os.path.relpath(dirpath, top).replace(os.sep, "/")
        for f in files:
            if f.startswith(".mlver-tmp-"):
                continue
            out.add(f if rel == "." else f"{rel}/{f}")
    return out


