"""Filesystem primitives: atomic writes, link-or-copy, read-only marking, and walking a
directory with `.mlverignore` rules (matched by mlver.ignore). Everything mlver writes
goes through here.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import sys
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol, Sequence, TypeVar

from mlver.errors import DanglingLink, PathError

if TYPE_CHECKING:  # pragma: no cover
    from mlver.ignore import IgnoreSpec

T = TypeVar("T")
R = TypeVar("R")

LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
TMP_MARK = ".mlver-tmp-"


_TMP_PREFIX = f"{os.getpid()}-{os.urandom(4).hex()}"
_tmp_counter = itertools.count()


def unique_suffix() -> str:
    """Unique within this machine: pid, a random tag per process, a counter."""
    return f"{_TMP_PREFIX}-{next(_tmp_counter)}"


def tmp_name(path: str) -> str:
    """A unique temporary name in the same folder as ``path`` (so rename is atomic)."""
    d, base = os.path.split(path)
    return os.path.join(d, f"{TMP_MARK}{unique_suffix()}.{base[:40]}")


def is_tmp_name(name: str) -> bool:
    """Is ``name`` one of mlver's temporary names (marked, or a bare unique suffix)?"""
    rest = name[len(TMP_MARK):] if name.startswith(TMP_MARK) else name
    pid, _, tail = rest.partition("-")
    tag, _, count = tail.partition("-")
    return name.startswith(TMP_MARK) or (pid.isdigit() and len(tag) == 8 and count.split(".")[0].isdigit())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_tmp(name: str) -> bool:
    """A temporary file left by a killed mlver process (its pid, first in the name after
    the optional mark, is gone)."""
    rest = name[len(TMP_MARK):] if name.startswith(TMP_MARK) else name
    head = rest.split("-", 1)[0]
    return head.isdigit() and int(head) != os.getpid() and not _pid_alive(int(head))


def sweep_stale_tmp(folder: str, *, marked_only: bool = True) -> int:
    """Remove temporary files of dead mlver processes from ``folder``; returns how many.
    (A process that was SIGKILLed cannot clean up after itself; the next run does.)"""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if (name.startswith(TMP_MARK) or not marked_only) and is_stale_tmp(name):
            try:
                os.unlink(os.path.join(folder, name))
                removed += 1
            except OSError:
                pass
    return removed


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads, in contiguous batches so a
    folder of 20,000 small files costs a handful of futures, not 20,000."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    n = min(workers, len(items))
    size = -(-len(items) // n)
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(n) as ex:
        parts = list(ex.map(lambda batch: [fn(x) for x in batch], batches))
    return [r for part in parts for r in part]


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, fsync: bool = False, mode: int | None = None,
                 inside: str | None = None) -> None:
    """Write ``data`` to ``path`` whole or not at all: temporary name, then rename. With
    ``inside`` (a workspace root), the write stays in it (see ``confine``)."""
    parent = os.path.dirname(path) or "."
    if inside is not None:
        confine(inside, path)
    os.makedirs(parent, exist_ok=True)
    tmp = tmp_name(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if inside is not None:
            confine(inside, path)  # again, right before the rename: a link swapped in meanwhile
        os.replace(tmp, path)
    except OSError as e:
        unlink_quiet(tmp)
        if e.filename is None:  # a failed write names no file ("No space left on device")
            raise OSError(e.errno, e.strerror, path) from None
        raise
    except BaseException:
        unlink_quiet(tmp)
        raise
    if fsync:
        fsync_dir(parent)


def atomic_write_text(path: str, text: str, *, fsync: bool = False, inside: str | None = None) -> None:
    atomic_write(path, text.encode("utf-8"), fsync=fsync, inside=inside)


def unlink_quiet(path: str, *, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except OSError:
        pass



# --- links ---------------------------------------------------------------------------

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h: the same number on every architecture Linux runs on
AT_FDCWD_DARWIN = -2


def reflink(src: str | int, dst: str, *, dir_fd: int | None = None) -> None:
    """Copy-on-write clone of ``src`` (a path, or a file descriptor open for reading, so
    the caller can hash exactly the file it cloned) at ``dst``, which must not exist (relative to the open folder ``dir_fd`` when given);
    OSError if this filesystem or platform cannot clone (nothing is left at ``dst``)."""
    if sys.platform == "darwin":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if isinstance(src, int):  # fclonefileat(srcfd, dst_dirfd, dst, 0)
            rc = libc.fclonefileat(src, AT_FDCWD_DARWIN if dir_fd is None else dir_fd, os.fsencode(dst), 0)
        elif dir_fd is None:
            rc = libc.clonefile(os.fsencode(src), os.fsencode(dst), 0)
        else:  # clonefileat(AT_FDCWD, src, dir_fd, dst, 0)
            rc = libc.clonefileat(AT_FDCWD_DARWIN, os.fsencode(src), dir_fd, os.fsencode(dst), 0)
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), dst)
        return
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOTSUP, "reflink not supported on this platform", dst)
    import fcntl

    src_fd = src if isinstance(src, int) else os.open(src, os.O_RDONLY)
    try:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
        try:
            fcntl.ioctl(fd, FICLONE, src_fd)
        except OSError:
            os.close(fd)
            unlink_quiet(dst, dir_fd=dir_fd)
            raise
        os.close(fd)
    finally:
        if not isinstance(src, int):
            os.close(src_fd)


COPY_CHUNK = 16 << 20
HASHED_COPY_BUF = 256 << 10


def replace_with_copy(src: str, dest: str, mode: int, *, inside: str | None = None) -> None:
    """Make ``dest`` a plain copy of ``src``'s bytes (a symlink is followed) with exactly
    ``mode``: copied beside it under a temporary name, then renamed over it (within
    ``inside``, a workspace root, when given: see ``confine``)."""
    tmp = tmp_name(dest)
    if inside is not None:
        confine(inside, dest)
    try:
        copy_file(src, tmp, mode)
        os.chmod(tmp, mode)  # exact, whatever the umask
        if inside is not None:
            confine(inside, dest)
        os.replace(tmp, dest)
    except BaseException:
        unlink_quiet(tmp)
        raise


def _read_into(fd: int, buf: bytearray) -> int:
    if hasattr(os, "readv"):  # POSIX: straight into the buffer, no bytes object per chunk
        return os.readv(fd, [buf])
    data = os.read(fd, len(buf))
    buf[: len(data)] = data
    return len(data)


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...


def copy_file(src: str, dst: str, mode: int = 0o644, *, on_chunk: Callable[[int], None] | None = None,
              dir_fd: int | None = None, hasher: Hasher | None = None) -> int:
    """Copy bytes into a new file ``dst`` (relative to the open folder ``dir_fd`` when
    given) created with ``mode``; returns how many. Without ``hasher`` the copy is
    in-kernel where the OS offers it (the bytes never pass through Python); with one,
    every byte read is fed to ``hasher`` on its way to ``dst`` (one read both verifies and
    copies). ``on_chunk`` is told the size of each chunk once it is copied (progress,
    failpoints)."""
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
        try:
            return _copy_fd(fin, fout, on_chunk, hasher)
        except OSError as e:  # a failed write names no file ("No space left on device")
            raise OSError(e.errno, e.strerror, dst) from None
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_fd(fin: int, fout: int, on_chunk: Callable[[int], None] | None, hasher: Hasher | None = None) -> int:
    """Copy ``fin`` to ``fout`` up to the size seen at open; returns the bytes copied."""
    size = os.fstat(fin).st_size
    offset = 0
    if hasher is None and hasattr(os, "sendfile") and sys.platform.startswith("linux"):
        while offset < size:
            n = os.sendfile(fout, fin, offset, min(size - offset, COPY_CHUNK))
            if n == 0:  # the source shrank under us
                break
            offset += n
            if on_chunk is not None:
                on_chunk(n)
        return offset
    # hashing: a buffer that stays in the CPU cache between the read, the hash and the
    # write (measured ~2x faster for a 2 GiB copy than 16 MiB)
    buf = bytearray(min(HASHED_COPY_BUF if hasher is not None else 4 << 20, max(size, 1)))
    view = memoryview(buf)
    since = 0
    while True:
        n = _read_into(fin, buf)
        if not n:
            break
        chunk = view[:n]
        if hasher is not None:
            hasher.update(chunk)
        while chunk:
            chunk = chunk[os.write(fout, chunk):]
        offset += n
        since += n
        if on_chunk is not None and (hasher is None or since >= COPY_CHUNK or offset >= size):
            on_chunk(since)
            since = 0
        if offset >= size:  # the size seen at open, as sendfile above: no extra read for EOF
            break
    if on_chunk is not None and since:
        on_chunk(since)
    return offset


def link_file(src: str, dst: str, link_type: str, mode: int = 0o644, *, dir_fd: int | None = None,
              on_bytes: Callable[[int], None] | None = None) -> None:
    """Create ``dst`` (not existing; relative to the open folder ``dir_fd`` when given) from
    ``src`` with one link type; OSError if it cannot. ``mode`` applies to the independent
    copies (reflink, copy), not to links; ``on_bytes`` hears of each chunk a copy writes."""
    if link_type == "reflink":
        reflink(src, dst, dir_fd=dir_fd)
        os.chmod(dst, mode, dir_fd=dir_fd)
    elif link_type == "hardlink":
        os.link(src, dst, dst_dir_fd=dir_fd)
    elif link_type == "symlink":
        os.symlink(os.path.abspath(src), dst, dir_fd=dir_fd)
    elif link_type == "copy":
        copy_file(src, dst, mode, dir_fd=dir_fd, on_chunk=on_bytes)
    else:  # pragma: no cover - validated by config
        raise ValueError(link_type)


def is_executable(mode: int) -> bool:
    return bool(mode & stat.S_IXUSR)


def remove_path(path: str, *, inside: str | None = None) -> None:
    """Remove a file, link or whole folder, read-only entries included (a link is removed,
    never followed). With ``inside`` (a workspace root), only within it (``confine``)."""
    if inside is not None:
        confine(inside, path)
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        def onerror(func, p, exc):
            os.chmod(os.path.dirname(p), 0o755)
            try:
                os.chmod(p, 0o644)
            except OSError:
                pass
            func(p)

        import shutil  # ~5 ms to import (it pulls in bz2, lzma): only when a folder goes

        shutil.rmtree(path, onerror=onerror)


# --- paths ---------------------------------------------------------------------------

def to_posix(path: str) -> str:
    return path.replace(os.sep, "/") if os.sep != "/" else path


def inside_root(root: str, path: str, *, shown: str | None = None,
                resolved: dict[str, str] | None = None) -> str:
    """Resolve ``path`` (absolute or relative to cwd) and return it relative to ``root``
    as POSIX; refuse anything that leaves the repository, through ``..`` or a symlinked
    parent folder.  ``resolved`` (optional) memoises ``os.path.realpath`` across calls
    that check many paths at one moment (the folders do not change in between)."""
    shown = shown or path
    memo: dict[str, str] = {} if resolved is None else resolved

    def realpath(p: str) -> str:
        r = memo.get(p)
        if r is None:
            r = memo[p] = os.path.realpath(p)
        return r

    absolute = os.path.abspath(path)
    real_root = realpath(root)
    # The parent folder is resolved (symlinks followed); the last component is kept so
    # a tracked file that is itself a link to the cache is still its own path.
    parent, base = os.path.split(absolute)
    real_parent = realpath(parent)
    if base in ("", ".", ".."):
        real = os.path.realpath(absolute)
    else:
        real = os.path.join(real_parent, base)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise PathError(shown, "is outside the repository")
    if real == real_root:
        return "."
    rel = to_posix(os.path.relpath(real, real_root))
    if rel.split("/")[0] in (".git", ".mlver"):
        raise PathError(shown, "is inside mlver's or Git's own folder")
    return rel


# --- writing inside the workspace ------------------------------------------------------
# Every write, removal or new folder mlver makes in a workspace is checked here, right
# before it happens (so a link swapped in after an earlier look is still caught): the
# folder it lands in must resolve inside the repository. The last component is never
# followed by mlver's writes (they rename over it, or unlink it), so a workspace file
# that is a symlink into the cache (`cache.type symlink`) is replaced, not written through.

_PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")


def _resolved(folder: str) -> str:
    """Where ``folder`` really is: one open and one readlink on Linux (``realpath`` costs
    an lstat per component, and this runs once per file a checkout writes)."""
    if _PROC_FD:
        try:
            fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)
        except OSError:  # not there (yet): resolve the part that is
            return os.path.realpath(folder)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return os.path.realpath(folder)
        finally:
            os.close(fd)
    return os.path.realpath(folder)


def confine(root: str, path: str) -> None:
    """Refuse (``PathError`` naming the link) to write at ``path`` when the folder it would
    land in is reached through a symlink leading out of ``root`` (a real path), or into
    its ``.git``/``.mlver`` folders."""
    path = os.path.abspath(path)
    if not _inside(root, path, _resolved(os.path.dirname(path))):
        _refuse(root, path)


def _refuse(root: str, path: str) -> None:
    link, target = _leaving_link(root, path)
    if target.startswith(root + os.sep) and target[len(root) + 1:].split(os.sep)[0] not in (".git", ".mlver"):
        where = to_posix(os.path.relpath(target, root))
        raise PathError(link, f"is a symbolic link to {where}: mlver does not write through links, "
                              "so data of one path never lands in another",
                        hint="replace the link with a real folder (or remove it), then run the command again")
    raise PathError(link, f"is a symbolic link to {target}, outside the repository: mlver does not follow it",
                    hint="replace the link with a real folder (or remove it), then run the command again")


def refuse_leaving(root: str, path: str, *, allowed: tuple[str, ...] = ()) -> None:
    """Refuse (``PathError`` naming the link) a workspace path that, following every link
    on the way and the last component too, lands outside ``root`` (a real path) or in its
    ``.git``/``.mlver`` folders, unless it lands under one of the ``allowed`` folders."""
    path = os.path.abspath(path)
    real = os.path.realpath(path)
    for base in (root, *allowed):
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            if base != root or real == root or real[len(root) + 1:].split(os.sep)[0] not in (".git", ".mlver"):
                return
    link, target = _leaving_link(root, os.path.join(path, "-"))
    raise PathError(link, f"is a symbolic link to {target}, outside the repository: mlver does not follow it",
                    hint="replace the link with the real data (or remove it), then run the command again")


def _inside(root: str, path: str, real: str) -> bool:
    """Whether a write at ``path`` (lexical, absolute), whose folder really is ``real``,
    stays where it says: in the workspace no folder on the way may be a link (not even
    one to another folder of the repository), and mlver's and Git's own folders are
    reached only by their own names."""
    lexical = path[len(root) + 1:].split(os.sep, 1)[0] if path.startswith(root + os.sep) else ""
    if lexical in (".git", ".mlver"):  # mlver's own folders (a cache on another disk is a link)
        return real == root or (real.startswith(root + os.sep) and real[len(root) + 1:].split(os.sep, 1)[0] == lexical)
    return real == os.path.dirname(path)


def open_folder_confined(root: str, folder: str) -> int:
    """An open descriptor of ``folder`` (created as needed) that is really inside ``root``:
    what is then created, renamed or removed relative to it cannot land elsewhere, whatever
    links are swapped in meanwhile. Refused (``PathError``) when it resolves outside."""
    folder = os.path.abspath(folder)
    flags = os.O_RDONLY | os.O_DIRECTORY
    if not _PROC_FD:
        confine(root, os.path.join(folder, "-"))
        os.makedirs(folder, exist_ok=True)
        return os.open(folder, flags)
    try:
        fd = os.open(folder, flags)  # the usual case: one open, then where it really is
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        if _inside(root, folder + os.sep + "-", os.readlink(f"/proc/self/fd/{fd}")):
            return fd
        os.close(fd)
        _refuse(root, os.path.join(folder, "-"))
    if folder != root and not folder.startswith(root + os.sep):
        _refuse(root, os.path.join(folder, "-"))
    # create it one folder at a time, each inside one already checked
    fd = os.open(root, flags)
    try:
        cur = root
        for part in folder[len(root) + 1:].split(os.sep) if folder != root else []:
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(part, flags, dir_fd=fd)  # a link is followed, then checked
            os.close(fd)
            fd = nfd
            cur = os.path.join(cur, part)
            if not _inside(root, cur + os.sep + "-", os.readlink(f"/proc/self/fd/{fd}")):
                _refuse(root, os.path.join(folder, "-"))
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlink_confined(root: str, path: str, *, folder: bool = False) -> None:
    """``os.unlink`` (``os.rmdir`` with ``folder``) of ``path`` inside ``root`` without a
    window for a swapped-in link: the folder is opened, checked where it really is, and the
    name removed relative to that open folder."""
    path = os.path.abspath(path)
    if not _PROC_FD:
        confine(root, path)
        (os.rmdir if folder else os.unlink)(path)
        return
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    try:
        if not _inside(root, path, os.readlink(f"/proc/self/fd/{fd}")):
            _refuse(root, path)
        if folder:
            os.rmdir(os.path.basename(path), dir_fd=fd)
        else:
            os.unlink(os.path.basename(path), dir_fd=fd)
    finally:
        os.close(fd)


def _leaving_link(root: str, path: str) -> tuple[str, str]:
    """The first symlink on the way from ``root`` to ``path`` that leads out of it (its
    repo-relative POSIX path and target), else the first symlink on the way; else
    ``path`` itself and where it resolves."""
    first: tuple[str, str] | None = None
    if path.startswith(root + os.sep):
        parts = path[len(root) + 1:].split(os.sep)
        cur = root
        for i, part in enumerate(parts[:-1]):
            cur = os.path.join(cur, part)
            if os.path.islink(cur):
                real = os.path.realpath(cur)
                if not real.startswith(root + os.sep) or real[len(root) + 1:].split(os.sep)[0] in (".git", ".mlver"):
                    return "/".join(parts[: i + 1]), real
                first = first or ("/".join(parts[: i + 1]), real)
    return first or (to_posix(path), os.path.realpath(os.path.dirname(path)))


WINDOWS = os.name == "nt"


def check_relative(path: str) -> str | None:
    """Problem with a path written in a file (pointer, lock, pipeline), or None. Drive
    letters and backslashes are path syntax on Windows only: elsewhere ``C:x`` and
    ``a\\b`` are ordinary file names."""
    if not path:
        return "empty path"
    if "\0" in path:
        return "path must not contain a NUL byte"
    if path.startswith("/") or (WINDOWS and ((len(path) > 1 and path[1] == ":") or path.startswith("\\"))):
        return "path must be relative, not absolute"
    if ".." in (path.replace("\\", "/") if WINDOWS else path).split("/"):
        return "path must not contain '..'"
    return None


def printable(path: str) -> str:
    """``path`` safe to print on one line: bytes that are not UTF-8 as ``\\xff``, line
    breaks and other control characters as ``\\n``-style escapes."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def name_problem(path: str) -> str | None:
    """Why mlver cannot record the name ``path`` (None: it can): pointers, locks and
    manifests hold names as UTF-8 text, and ``.gitignore`` holds one name a line."""
    if not path.isascii() and not _utf8(path):
        return "is not a UTF-8 name (mlver records names as UTF-8 text)"
    if any(c < " " or c in _BREAKS for c in path):
        return "contains a line break or another control character, which a .gitignore entry cannot hold"
    return None


_BREAKS = "\x7f\x85\u2028\u2029"


def check_names(rels: list[str], top_rel: str) -> None:
    """Refuse (naming the first) file names inside a tracked folder that are not UTF-8:
    one pass over all names, nothing per name in the common ASCII case."""
    names = "\0".join(rels)
    if names.isascii():
        return
    try:
        names.encode("utf-8")
    except UnicodeEncodeError:
        bad = next(r for r in rels if not _utf8(r))
        shown = f"{top_rel}/{bad}" if top_rel else bad
        raise PathError(printable(shown), "is not a UTF-8 name (mlver records names as UTF-8 text)",
                        hint="rename it, or leave it out with a line in .mlverignore") from None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NESTED_REPO_DIRS = (".git", ".mlver")  # left out below a tracked folder: a nested repository's own


class WalkEntry(NamedTuple):
    rel: str  # POSIX path relative to the walked folder
    path: str  # absolute path
    st: os.stat_result


def walk_files(
    top: str, *, ignore: IgnoreSpec | None = None, top_rel: str = "", links_into: str | None = None,
    debris: list[str] | None = None, dangling: list[str] | None = None,
) -> list[WalkEntry]:
    """Every regular file below ``top``, in no particular order; a symlink is refused
    (naming it) unless ignored, or unless it points into ``links_into`` (the cache, when
    checkout used symlinks). ``top_rel`` is ``top``'s path relative to the repo root,
    used to match ignore rules. mlver's own temporary files are skipped; with ``debris``
    given, the folders holding them are appended to it (so one walk also finds what a
    killed run left behind). A link into ``links_into`` whose object is gone is a
    ``DanglingLink`` error, or, with ``dangling`` given, appended to it (its ``rel``) and
    left out.

    This loop is the floor of ``status`` on a large folder: one ``scandir`` per folder,
    one ``lstat`` per file, no per-entry function calls beyond those.
    """
    check = ignore.ignored if ignore else None
    found: list[WalkEntry] = []
    add = found.append
    new = tuple.__new__
    stack = [("", top)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as it:
            for e in it:
                name = e.name
                if name.startswith(TMP_MARK):
                    if debris is not None:
                        debris.append(folder)
                    continue
                if check is not None:
                    rel = prefix + name
                    if check(f"{top_rel}/{rel}" if top_rel else rel, e.is_dir(follow_symlinks=False)):
                        continue
                # Regular files first: they are nearly every entry (d_type answers, no syscall).
                if e.is_file(follow_symlinks=False):
                    add(new(WalkEntry, (prefix + name, e.path, e.stat(follow_symlinks=False))))
                elif e.is_dir(follow_symlinks=False):
                    if name in NESTED_REPO_DIRS:  # another repository's own folder, never data (as DVC)
                        continue
                    stack.append((prefix + name + "/", e.path))
                elif e.is_symlink():
                    rel = prefix + name
                    shown = f"{top_rel}/{rel}" if top_rel else rel
                    if links_into and os.path.realpath(e.path).startswith(links_into + os.sep):
                        try:
                            add(WalkEntry(rel, e.path, os.stat(e.path)))
                        except FileNotFoundError:
                            if dangling is None:
                                raise DanglingLink(shown) from None
                            dangling.append(rel)
                        continue
                    raise PathError(shown, "is a symbolic link inside a tracked folder",
                                    hint="list it in .mlverignore to leave it out")
    return found
