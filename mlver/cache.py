"""The local object store. Objects live at ``files/<algorithm>/ab/cdef...``:
``files/xxh3-128/..`` (folder manifests carry a ``.manifest`` suffix), ``files/sha256/..``
likewise, and ``files/md5/..`` in DVC 3's layout (folder listings carry ``.dir``), so a
DVC cache or remote is readable as it is. Objects are written to ``tmp/`` under the cache,
verified, then renamed into place and made read-only. Remotes use the same layout.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterable, Iterator, NamedTuple

from mlver import failpoint
from mlver.errors import ChecksumMismatch, MlverError
from mlver.fsutil import (TMP_MARK, atomic_write, copy_file, fsync_dir, link_file, open_folder_confined, reflink,
                          remove_path, sweep_stale_tmp, unique_suffix, unlink_quiet)
from mlver.hashing import (ALGORITHMS, CHUNK, DEFAULT_ALGO, DVC_LISTED, LEGACY_MD5, algo_of, digest_bytes, digest_file,
                           digest_open, hex_of, is_digest, new_hasher, qualify)
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import ByteCallback

MANIFEST_SUFFIX = ".manifest"
DVC_DIR_SUFFIX = ".dir"  # md5 folders: DVC's listing, under DVC's name


def manifest_suffix(algo: str) -> str:
    return DVC_DIR_SUFFIX if algo in DVC_LISTED else MANIFEST_SUFFIX


def algo_folder(algo: str) -> str:
    """The folder of ``algo``'s objects in a cache or remote: ``files/<algo>``; DVC 2's
    md5-dos2unix objects at the top, in DVC 2's own layout (``ab/cdef…``)."""
    return "" if algo == LEGACY_MD5 else f"files/{algo}"


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def object_relpath(digest: str, manifest: bool = False) -> str:
    """The object's path inside a cache or remote (POSIX)."""
    algo, h = algo_of(digest), hex_of(digest)
    top = algo_folder(algo)
    return f"{top}{'/' if top else ''}{h[:2]}/{h[2:]}{manifest_suffix(algo) if manifest else ''}"


def object_folders(refs: Iterable["ObjectRef"]) -> set[str]:
    """The folders (``<algo>/<two hex digits>``, below ``files/``) that hold ``refs``:
    what a remote lists to learn which of them it has."""
    return {f"{algo_of(r.digest)}/{hex_of(r.digest)[:2]}" for r in refs}


def parse_object_name(algo: str, prefix: str, name: str) -> "ObjectRef | None":
    """The object named ``name`` in the two-letter folder ``prefix`` of ``files/<algo>/``
    (None for anything else found there)."""
    suffix = manifest_suffix(algo)
    manifest = name.endswith(suffix)
    digest = qualify(algo, prefix + (name[: -len(suffix)] if manifest else name))
    return ObjectRef(digest, manifest) if is_digest(digest) and algo_of(digest) == algo else None


def _file_state(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What changes whenever a file's bytes do (beyond the timestamp granularity)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ObjectRef(NamedTuple):
    """An object: its digest, and whether it is a folder's manifest. (A NamedTuple:
    transfers keep tens of thousands in sets, and tuples hash in C.)"""

    digest: str
    manifest: bool

    @property
    def relpath(self) -> str:
        return object_relpath(self.digest, self.manifest)

    @property
    def quarantine_name(self) -> str:
        """Its file name under ``quarantine/`` (in a cache, or on a remote)."""
        algo = algo_of(self.digest)
        name = hex_of(self.digest) if algo == DEFAULT_ALGO else f"{algo}-{hex_of(self.digest)}"
        return name + (manifest_suffix(algo) if self.manifest else "")


PROJECTS_DIR = "projects"  # in a cache shared through cache.dir: one file per project using it


class Cache:
    def __init__(self, root: str, *, link_types: tuple[str, ...], fsync: bool = False,
                 workspace: str | None = None) -> None:
        self.root = root
        self.workspace = workspace  # the real path objects are placed below (``place`` stays in it)
        self.link_types = link_types
        self.fsync = fsync
        self.tmp_dir = os.path.join(root, "tmp")
        self._files = os.path.join(root, "files", DEFAULT_ALGO)
        self._working: dict[str, int] = {}  # workspace device -> index of first link type that worked
        self._made_dirs: set[str] = set()
        self._no_clone: set[int] = set()  # devices whose files could not be cloned into the cache
        self._swept = False
        self.quarantined: dict[str, str] = {}  # digest -> actual digest of objects found corrupt by place()
        # parsed manifests, by digest: a command reads the same folder's listing from several
        # places (status -r: the workspace comparison, then the walk of what to look up);
        # a manifest never changes under its name, and Manifest is immutable
        self._manifests: dict[str, Manifest] = {}

    # --- naming -------------------------------------------------------------------

    def path(self, digest: str, manifest: bool = False) -> str:
        # object_relpath's layout, joined with the OS separator; called once per object
        # by every transfer and checkout, so built with one f-string
        if ":" not in digest:
            return f"{self._files}{os.sep}{digest[:2]}{os.sep}{digest[2:]}{MANIFEST_SUFFIX if manifest else ''}"
        return os.path.join(self.root, *object_relpath(digest, manifest).split("/"))

    def has(self, digest: str, manifest: bool = False) -> bool:
        return os.path.exists(self.path(digest, manifest))

    def _ensure_dir(self, d: str) -> None:
        if d not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(d)

    # --- projects sharing this cache (cache.dir) ------------------------------------

    def register_project(self, root: str, clone_id: str) -> None:
        """Record that the project at ``root`` keeps its objects here, so that gc in any
        project sharing this cache keeps what the others reference (``projects``). The
        entry is named by the clone's id (``Repo.clone_id``): a clone that moved rewrites
        its own entry with its new place. A cache that cannot be written to is left alone."""
        path = self.registration(clone_id)
        current = self._read_registration(path)
        if current is not None and current[0] == root:
            return
        import json

        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, json.dumps({"root": root, "host": os.uname().nodename}).encode("utf-8", "surrogateescape"))
            legacy = os.path.join(self.root, PROJECTS_DIR, digest_bytes(root.encode("utf-8", "surrogateescape"))[:16])
            if legacy != path and self._read_registration(legacy) is not None:
                os.unlink(legacy)  # the entry of this place from before clone ids
        except OSError:
            pass

    def registration(self, clone_id: str) -> str:
        return os.path.join(self.root, PROJECTS_DIR, clone_id)

    def registered_root(self, clone_id: str) -> str | None:
        """Where the clone ``clone_id`` was when it last registered, or None."""
        found = self._read_registration(self.registration(clone_id))
        return found[0] if found else None

    @staticmethod
    def _read_registration(path: str) -> tuple[str, str] | None:
        import json

        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8", "surrogateescape"))
            return str(doc["root"]), str(doc["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none, torn or foreign: not a registration

    def projects(self) -> list[tuple[str, str, str]]:
        """(entry file, project root, host) of every project ``register_project`` recorded."""
        folder = os.path.join(self.root, PROJECTS_DIR)
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        found = []
        for n in names:
            entry = self._read_registration(os.path.join(folder, n))
            if entry is not None:
                found.append((os.path.join(folder, n), *entry))
        return found

    def sweep_tmp(self) -> None:
        """Once per process: drop partial objects left in ``tmp/`` by killed processes."""
        if not self._swept:
            self._swept = True
            sweep_stale_tmp(self.tmp_dir, marked_only=False)

    def _tmp(self) -> str:
        self.sweep_tmp()
        self._ensure_dir(self.tmp_dir)
        return os.path.join(self.tmp_dir, unique_suffix())

    def _commit_tmp(self, tmp: str, digest: str, manifest: bool, *, readonly: bool = False) -> None:
        dest = self.path(digest, manifest)
        self._ensure_dir(os.path.dirname(dest))
        if not readonly:
            os.chmod(tmp, 0o444)
        if self.fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        failpoint.hit("cache-before-rename")
        os.replace(tmp, dest)
        if self.fsync:
            fsync_dir(os.path.dirname(dest))

    # --- storing ------------------------------------------------------------------

    def store_file(self, src: str, *, known_digest: str | None = None,
                   settled: os.stat_result | None = None,
                   on_bytes: ByteCallback | None = None, algo: str = DEFAULT_ALGO) -> tuple[str, int]:
        """Store the file at ``src``; returns (digest, size). The digest is computed from
        the bytes actually written to the store, so nothing enters under a wrong name.

        ``settled``: the stat of ``src`` the caller took, when it was not modified within
        the timestamp granularity of a moment before this call (``state.racy``). A clone
        is then hashed through the source, whose pages are likely warm (a clone's pages
        are its own, and cold): the same bytes as long as the source still has that stat
        after hashing, since any write after the clone moves its ctime past it. ``on_bytes``
        hears of the bytes as they are copied and hashed (progress). ``algo``: the
        algorithm of the digest (``known_digest``'s, when given)."""
        if known_digest and self.has(known_digest):
            return known_digest, os.path.getsize(src)
        if known_digest:
            algo = algo_of(known_digest)
        tmp = self._tmp()
        try:
            digest_size = self._try_reflink(src, tmp, settled, on_bytes, algo)
            cloned = digest_size is not None
            if digest_size is None:
                digest_size = self._copy_hashing(src, tmp, on_bytes, algo)
            digest, size = digest_size
            if known_digest and digest != known_digest:
                raise ChecksumMismatch(src, known_digest, digest, where="changed while being stored")
            if self.has(digest):
                unlink_quiet(tmp)
            else:
                self._commit_tmp(tmp, digest, False, readonly=not cloned)  # a clone is born writable
        except BaseException:
            unlink_quiet(tmp)
            raise
        return digest, size

    def _try_reflink(self, src: str, tmp: str, settled: os.stat_result | None,
                     on_bytes: ByteCallback | None = None, algo: str = DEFAULT_ALGO) -> tuple[str, int] | None:
        """Clone ``src`` to ``tmp`` and hash the clone's bytes; None when the source's
        filesystem cannot clone into the cache (remembered per device, so a 20,000-file
        add does not probe 20,000 times)."""
        if settled is not None and settled.st_dev in self._no_clone:
            return None
        with open(src, "rb", buffering=0) as f:
            fd = f.fileno()
            if settled is None and os.fstat(fd).st_dev in self._no_clone:
                return None
            try:
                reflink(fd, tmp)  # the open file itself: what is hashed below is what was cloned
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):  # a full disk may clear up
                    self._no_clone.add(os.fstat(fd).st_dev)
                return None
            if settled is not None:
                digest_size = digest_open(f, on_bytes=on_bytes, algo=algo)
                if _file_state(os.fstat(fd)) == _file_state(settled) and digest_size[1] == settled.st_size:
                    return digest_size
        return digest_file(tmp, on_bytes=on_bytes, algo=algo)  # unsettled or changed meanwhile: the clone's own bytes

    def _copy_hashing(self, src: str, tmp: str, on_bytes: ByteCallback | None = None,
                      algo: str = DEFAULT_ALGO) -> tuple[str, int]:
        """Copy ``src`` to ``tmp`` (created read-only) and return the digest of the bytes
        that landed in ``tmp``; ``on_bytes`` hears of half of each chunk as it is copied
        and the other half as the copy is hashed, so a bar moves evenly over both."""
        fin = os.open(src, os.O_RDONLY)
        try:
            size = os.fstat(fin).st_size
            if size <= CHUNK:
                # Small files: one read, hashed in memory, one write (syscall-bound work).
                data = os.read(fin, size + 1)
                while len(data) > size:  # grew while we read: take it all
                    more = os.read(fin, CHUNK)
                    if not more:
                        break
                    data += more
                fout = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                try:
                    _write_all(fout, data)
                except OSError as e:  # name the file (a full disk says only "No space left")
                    raise OSError(e.errno, e.strerror, tmp) from None
                finally:
                    os.close(fout)
                if on_bytes is not None:
                    on_bytes(len(data))
                return digest_bytes(data, algo), len(data)
        finally:
            os.close(fin)
        # Large files: an in-kernel copy, then the copy is hashed (from the page cache),
        # so the digest is that of the stored bytes: cp + xxh3, never more.
        def copied(n: int) -> None:
            failpoint.hit("cache-mid-copy")
            if on_bytes is not None:
                on_bytes(n // 2)

        copy_file(src, tmp, 0o444, on_chunk=copied)
        return digest_file(tmp, on_bytes=None if on_bytes is None else (lambda n: on_bytes(n - n // 2)), algo=algo)

    def store_bytes(self, data: bytes, *, manifest: bool = False, algo: str = DEFAULT_ALGO) -> str:
        digest = digest_bytes(data, algo)
        if not self.has(digest, manifest):
            dest = self.path(digest, manifest)
            self._ensure_dir(os.path.dirname(dest))
            atomic_write(dest, data, fsync=self.fsync, mode=0o444)
        return digest

    def store_copy_verified(self, src: str, digest: str, *, manifest: bool, where: str,
                            on_bytes: ByteCallback | None = None) -> int:
        """Copy the local file ``src`` (e.g. on a folder remote) into the store, verified
        against ``digest`` from the bytes that landed; returns the size."""
        tmp = self._tmp()
        try:
            actual, size = self._copy_hashing(src, tmp, on_bytes, algo_of(digest))
            if actual != digest:
                raise ChecksumMismatch(object_relpath(digest, manifest), digest, actual, where=where)
            self._commit_tmp(tmp, digest, manifest, readonly=True)
        except BaseException:
            unlink_quiet(tmp)
            raise
        return size

    def store_stream_verified(self, chunks: Iterator[bytes], digest: str, *, manifest: bool, where: str,
                              on_bytes: ByteCallback | None = None) -> int:
        """Write downloaded ``chunks`` to a temporary file, verify ``digest``, then store."""
        tmp = self._tmp()
        h = new_hasher(algo_of(digest))
        size = 0
        try:
            with open(tmp, "xb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            actual = h.hexdigest()
            if actual != digest:
                raise ChecksumMismatch(object_relpath(digest, manifest), digest, actual, where=where)
            self._commit_tmp(tmp, digest, manifest)
        except BaseException:
            unlink_quiet(tmp)
            raise
        return size

    def read_bytes(self, digest: str, manifest: bool = False) -> bytes:
        with open(self.path(digest, manifest), "rb") as f:
            return f.read()

    # --- materialising ------------------------------------------------------------

    def link_types_from(self, dest_dir: str) -> list[str]:
        try:
            dev = os.stat(dest_dir).st_dev
        except OSError:
            dev = -1
        start = self._working.get(str(dev), 0)
        return list(self.link_types[start:])

    def place(self, digest: str, dest: str, *, executable: bool = False, on_bytes: ByteCallback | None = None) -> str:
        """Put the object at ``dest`` (replacing what is there) with the first link type
        that works; returns the link type used. Below ``workspace``, the object is made and
        renamed relative to the open folder, checked to be inside it (``open_folder_confined``).
        ``on_bytes``: the bytes a copy writes."""
        parent = os.path.dirname(dest)
        if self.workspace is not None:
            fd = open_folder_confined(self.workspace, parent)
        else:
            os.makedirs(parent, exist_ok=True)
            fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._place_at(digest, fd, os.path.basename(dest), dest, executable, on_bytes)
        finally:
            os.close(fd)

    def _place_at(self, digest: str, fd: int, name: str, dest: str, executable: bool,
                  on_bytes: ByteCallback | None) -> str:
        src = self.path(digest)
        dev = str(os.fstat(fd).st_dev)
        tmp = f"{TMP_MARK}{unique_suffix()}"
        mode = 0o755 if executable else 0o644
        last: OSError | None = None
        for i in range(self._working.get(dev, 0), len(self.link_types)):
            kind = self.link_types[i]
            try:
                actual = self._link_verified(src, tmp, kind, mode, fd, on_bytes, algo_of(digest))
            except FileNotFoundError:
                unlink_quiet(tmp, dir_fd=fd)
                if not os.path.exists(src):
                    if digest in self.quarantined:  # another worker just found it corrupt
                        raise ChecksumMismatch(object_relpath(digest), digest, self.quarantined[digest],
                                               where="in the cache") from None
                    raise MlverError(f"object {digest} is not in the cache", hint="run `mlver pull` to fetch it") from None
                raise
            except OSError as e:
                unlink_quiet(tmp, dir_fd=fd)
                last = e
                if e.errno in (errno.ENOSPC, errno.EDQUOT):  # named by the workspace path it was for
                    raise OSError(e.errno, e.strerror, dest) from None
                self._working[dev] = i + 1
                continue
            except BaseException:
                unlink_quiet(tmp, dir_fd=fd)
                raise
            if actual is not None and actual != digest:
                # the object's bytes do not match its name: they never reach ``dest``
                unlink_quiet(tmp, dir_fd=fd)
                self.quarantined[digest] = actual
                self.try_quarantine(ObjectRef(digest, False))
                raise ChecksumMismatch(object_relpath(digest), digest, actual, where="in the cache")
            try:
                failpoint.hit("checkout-before-rename")
                try:
                    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
                except IsADirectoryError:
                    remove_path(dest, inside=self.workspace)  # a folder where the file goes
                    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                unlink_quiet(tmp, dir_fd=fd)
                raise
            return kind
        raise MlverError(f"could not place {dest}: no link type in cache.type worked ({last})")

    @staticmethod
    def _link_verified(src: str, tmp: str, kind: str, mode: int, fd: int,
                       on_bytes: ByteCallback | None, algo: str = DEFAULT_ALGO) -> str | None:
        """Make ``tmp`` (relative to the open folder ``fd``) from the object ``src`` with
        link type ``kind``; for a copy, the digest of the bytes that landed (hashed in the
        read that copies). None for a reflink and for links: they share the object's own
        blocks, so re-reading them would cost a full read of data no byte of which was
        moved (a 2 GiB reflink checkout stays ~0.1 s); status and fsck find rot there."""
        if kind == "copy":
            h = new_hasher(algo)
            copy_file(src, tmp, mode, dir_fd=fd, on_chunk=on_bytes, hasher=h)
            return h.hexdigest()
        link_file(src, tmp, kind, mode, dir_fd=fd, on_bytes=on_bytes)
        return None

    def relink_after_store(self, digest: str, dest: str, *, executable: bool = False) -> str | None:
        """After ``add``: when the first working link type links (hardlink/symlink), swap
        the workspace copy for a link so it takes no extra space. Returns the type used."""
        kinds = self.link_types_from(os.path.dirname(dest) or ".")
        if kinds and kinds[0] in ("hardlink", "symlink"):
            return self.place(digest, dest, executable=executable)
        return None

    # --- iterating, checking, removing ----------------------------------------------

    def iter_objects(self) -> Iterator[ObjectRef]:
        for algo in ALGORITHMS:
            base = os.path.join(self.root, *algo_folder(algo).split("/"))
            try:
                prefixes = os.listdir(base)
            except FileNotFoundError:
                continue
            for p in sorted(prefixes):
                if len(p) != 2:
                    continue
                for name in os.listdir(os.path.join(base, p)):
                    ref = parse_object_name(algo, p, name)
                    if ref is not None:
                        yield ref

    def present(self, refs: Iterable[ObjectRef]) -> set[ObjectRef]:
        """Which of ``refs`` are stored (see ``stored_digests``)."""
        refs = list(refs)
        found: set[ObjectRef] = set()
        for manifest in (False, True):
            group = [r for r in refs if r.manifest is manifest]
            if group:
                have = self.stored_digests({r.digest for r in group}, manifest=manifest)
                found.update(r for r in group if r.digest in have)
        return found

    def stored_digests(self, digests: set[str], *, manifest: bool = False) -> set[str]:
        """Which of ``digests`` are stored: one listing per two-letter folder, not one stat
        per object (20,000 objects live in at most 256 folders)."""
        by_folder: dict[str, list[tuple[str, str]]] = {}  # folder -> (digest, file name)
        bare = MANIFEST_SUFFIX if manifest else ""
        for d in digests:
            if ":" not in d:  # the default algorithm, the hot case: no splitting
                by_folder.setdefault(f"{self._files}{os.sep}{d[:2]}", []).append((d, d[2:] + bare))
            else:
                folder, name = self.path(d, manifest).rsplit(os.sep, 1)
                by_folder.setdefault(folder, []).append((d, name))
        found: set[str] = set()
        for folder, group in by_folder.items():
            try:
                names = set(os.listdir(folder))
            except FileNotFoundError:
                continue
            found.update(d for d, name in group if name in names)
        return found

    MANIFEST_MEMO = 32  # manifests kept parsed (the last read ones)

    def manifest(self, digest: str, *, quarantine: bool = True) -> "Manifest | None":
        """The parsed manifest ``digest`` (None when the cache does not hold it). Its bytes
        are hashed first (a few milliseconds for 20,000 entries): a manifest whose bytes do
        not match its name would place files under wrong names, so it is quarantined (the
        next fetch brings a good copy) and ``ChecksumMismatch`` raised, naming it."""
        if not self.has(digest, manifest=True):
            return None
        m = self._manifests.get(digest)
        if m is not None:
            return m
        data = self.read_bytes(digest, manifest=True)
        algo = algo_of(digest)
        actual = digest_bytes(data, algo)
        if actual != digest:  # (gc asks it left in place: it refuses every run until it is repaired)
            moved = self.try_quarantine(ObjectRef(digest, True))[0] if quarantine else None
            raise ChecksumMismatch(f"manifest {digest}", digest, actual,
                                   where=f"in the cache, {'moved to ' + moved if moved else self.path(digest, True)}")
        m = parse_manifest(data, f"manifest {digest}", algo)
        if len(self._manifests) >= self.MANIFEST_MEMO:
            self._manifests.pop(next(iter(self._manifests)))
        self._manifests[digest] = m
        return m

    def verify(self, ref: ObjectRef) -> bool:
        actual, _ = digest_file(self.path(ref.digest, ref.manifest), algo=algo_of(ref.digest))
        return actual == ref.digest

    def remove(self, ref: ObjectRef) -> int:
        self._manifests.pop(ref.digest, None)
        p = self.path(ref.digest, ref.manifest)
        try:
            size = os.stat(p).st_size
            os.chmod(p, stat.S_IWUSR | stat.S_IRUSR)
            os.unlink(p)
            return size
        except FileNotFoundError:
            return 0

    def quarantine(self, ref: ObjectRef) -> str:
        """Move a corrupt object out of the layout, to ``quarantine/`` (kept for
        inspection): the next fetch brings a good copy. OSError when the cache is
        read-only."""
        if ref.manifest:
            self._manifests.pop(ref.digest, None)  # what was parsed from the bad bytes goes too
        qdir = os.path.join(self.root, "quarantine")
        os.makedirs(qdir, exist_ok=True)
        dest = os.path.join(qdir, ref.quarantine_name)
        try:
            os.replace(self.path(ref.digest, ref.manifest), dest)
        except FileNotFoundError:
            if not os.path.exists(dest):  # moved meanwhile by another worker: done
                raise
        return dest

    def try_quarantine(self, ref: ObjectRef) -> tuple[str | None, str | None]:
        """``quarantine``, where possible: (where it went, None) or (None, why it stayed)."""
        try:
            return self.quarantine(ref), None
        except OSError as e:
            return None, f"{e.strerror or e}"
