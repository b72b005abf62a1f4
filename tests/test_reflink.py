"""The default ``cache.type`` (``reflink,copy``) on a filesystem that really clones: an
XFS image made with ``mkfs.xfs -m reflink=1`` and mounted through a loop device (root
only). Shared extents are read with FIEMAP, free space with statvfs; timings belong in
``bench/reflink.sh``, not here."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from conftest import git, require, run, run_json

MiB = 1 << 20
IMAGE_BYTES = 6 << 30  # sparse: only what the tests write takes disk space


def _sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True)


@pytest.fixture(scope="session")
def xfs_mount() -> Iterator[Path]:
    """A fresh XFS filesystem with reflink support, mounted for the whole session."""
    why = None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        why = "not root (mount -o loop needs root)"
    elif shutil.which("mkfs.xfs") is None:
        why = "mkfs.xfs not found (apt-get install xfsprogs)"
    if why:
        require("xfs", f"REFLINK TESTS NOT RUN: {why}; the default cache.type reflink,copy is untested on a cloning filesystem")
    base = Path(tempfile.mkdtemp(prefix="mlver-xfs-"))
    image, mnt = base / "xfs.img", base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    made = _sh("mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image))
    mounted = made.returncode == 0 and _sh("mount", "-o", "loop", str(image), str(mnt))
    if not mounted or mounted.returncode != 0:
        err = (made.stderr if made.returncode else mounted.stderr if mounted else "").strip()  # type: ignore[union-attr]
        shutil.rmtree(base, ignore_errors=True)
        last = (err.splitlines() or ["no message"])[-1]
        require("xfs", f"REFLINK TESTS NOT RUN: could not make and mount an XFS loop image ({last}); "
                       "the default cache.type reflink,copy is untested on a cloning filesystem")
    try:
        yield mnt
    finally:
        if _sh("umount", str(mnt)).returncode != 0:
            _sh("umount", "-l", str(mnt))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def xrepo(xfs_mount: Path) -> Iterator[Path]:
    """A fresh Git repository with mlver initialised, on the XFS mount (cache included)."""
    root = xfs_mount / f"repo-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    git(["init", "-q"], root)
    run(["init"], root)
    git(["commit", "-q", "-m", "init mlver"], root)
    try:
        yield root
    finally:
        shutil.rmtree(root)


# --- helpers --------------------------------------------------------------------------

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_EXTENT = struct.Struct("=QQQ16xI12x")  # fe_logical, fe_physical, fe_length, fe_flags
_HEAD = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count


def extents(path: Path) -> list[tuple[int, int, int, int]]:
    """(logical, physical, length, flags) of every extent of ``path``, through FIEMAP."""
    out: list[tuple[int, int, int, int]] = []
    start, batch = 0, 256
    with open(path, "rb") as f:
        while True:
            buf = bytearray(_HEAD.pack(start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, batch, 0)
                            + bytes(_EXTENT.size * batch))
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
            n = _HEAD.unpack_from(buf)[3]
            got = [_EXTENT.unpack_from(buf, _HEAD.size + i * _EXTENT.size) for i in range(n)]
            out += got
            if not got or got[-1][3] & FIEMAP_EXTENT_LAST:
                return out
            start = got[-1][0] + got[-1][2]


def assert_shares_all_extents(a: Path, b: Path) -> None:
    """``a`` and ``b`` are clones: the same physical extents, every one marked shared."""
    ea, eb = extents(a), extents(b)
    assert ea, f"{a} has no extents (sparse or empty?)"
    assert [e[:3] for e in ea] == [e[:3] for e in eb], f"{a} and {b} do not share their extents"
    assert all(e[3] & FIEMAP_EXTENT_SHARED for e in ea + eb), "extents not marked shared"


def used_bytes(path: Path) -> int:
    os.sync()  # delayed allocation: count blocks once they are really allocated
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def xxh3(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(16 * MiB):
            h.update(chunk)
    return h.hexdigest()


def write_big(path: Path, size: int) -> None:
    """``size`` bytes of incompressible data, written for real (no holes, no fallocate):
    one random 16 MiB block, each copy stamped with its index so no two blocks match."""
    block = bytearray(os.urandom(16 * MiB))
    with open(path, "wb") as f:
        for i in range(size // len(block)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)
    os.sync()


def obj_path(repo: Path, digest: str) -> Path:
    return repo / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]


def pointer_digest(repo: Path, rel: str) -> str:
    [entry] = [o for o in run_json(["list"], repo)["outputs"] if o["path"] == rel]
    return entry["digest"]


def assert_quiet(proc: subprocess.CompletedProcess[str]) -> None:
    """Nothing alarming: no error, warning or word about link types on stderr."""
    low = proc.stderr.lower()
    for word in ("error", "warning", "reflink", "link type", "traceback", "fall"):
        assert word not in low, proc.stderr


# --- tests ----------------------------------------------------------------------------

def test_add_and_checkout_of_2gib_file_share_extents(xrepo: Path) -> None:
    big = xrepo / "big.bin"
    write_big(big, 2 << 30)
    want = xxh3(big)

    before = used_bytes(xrepo)
    run(["add", "big.bin"], xrepo)
    grown = used_bytes(xrepo) - before
    digest = pointer_digest(xrepo, "big.bin")
    obj = obj_path(xrepo, digest)
    assert digest == want
    assert grown < 64 * MiB, f"add wrote {grown} bytes: a second copy, not a clone"
    assert_shares_all_extents(big, obj)
    assert obj.stat().st_mode & 0o777 == 0o444
    assert big.stat().st_mode & 0o200, "the workspace file stays editable"

    git(["add", "big.bin.mlver", ".gitignore"], xrepo)
    git(["commit", "-q", "-m", "big"], xrepo)
    big.unlink()
    before = used_bytes(xrepo)
    proc = run(["checkout"], xrepo)
    grown = used_bytes(xrepo) - before
    assert_quiet(proc)
    assert grown < 64 * MiB, f"checkout wrote {grown} bytes: a second copy, not a clone"
    assert_shares_all_extents(big, obj)
    assert big.stat().st_mode & 0o777 == 0o644
    assert xxh3(big) == want
    assert run_json(["status"], xrepo)["clean"] is True

    # editing the clone in place copies only the touched blocks; the object keeps its bytes
    with open(big, "r+b") as f:
        f.seek(1 << 30)
        f.write(b"edited in place" * 1000)
    os.sync()
    assert xxh3(obj) == digest
    assert xxh3(big) != digest
    assert [o["state"] for o in run_json(["status"], xrepo)["outputs"]] == ["modified"]
    report = run_json(["fsck"], xrepo)
    assert report["checked"] == 1 and report["corrupt"] == []


def test_add_hashes_settled_and_racy_files_correctly(xrepo: Path) -> None:
    """A file whose timestamps are within the racy window (here: an mtime in the future)
    is hashed through its clone; one left alone for a while through the source file.
    Both name the bytes that were stored, and both are clones."""
    racy, settled = xrepo / "racy.bin", xrepo / "settled.bin"
    write_big(settled, 64 * MiB)
    write_big(racy, 64 * MiB)
    future = time.time() + 3600
    os.utime(racy, (future, future))
    time.sleep(0.3)  # past the 100 ms racy window of ns timestamps (not a timing assertion)
    run(["add", "racy.bin", "settled.bin"], xrepo)
    for f in (racy, settled):
        digest = pointer_digest(xrepo, f.name)
        assert digest == xxh3(f) == xxh3(obj_path(xrepo, digest))
        assert_shares_all_extents(f, obj_path(xrepo, digest))
        assert obj_path(xrepo, digest).stat().st_mode & 0o777 == 0o444
    assert run_json(["fsck"], xrepo)["corrupt"] == []


def test_add_killed_after_the_clone_is_repaired_by_running_it_again(xrepo: Path) -> None:
    big = xrepo / "big.bin"
    write_big(big, 256 * MiB)
    want = xxh3(big)
    proc = run(["add", "big.bin"], xrepo, check=False, env={"MLVER_FAILPOINT": "cache-before-rename"})
    assert proc.returncode == -9, proc.stderr
    assert xxh3(big) == want  # the workspace file is untouched
    assert not obj_path(xrepo, want).exists()
    assert not (xrepo / "big.bin.mlver").exists()

    run(["add", "big.bin"], xrepo)
    assert pointer_digest(xrepo, "big.bin") == want == xxh3(obj_path(xrepo, want))
    assert_shares_all_extents(big, obj_path(xrepo, want))
    assert os.listdir(xrepo / ".mlver" / "cache" / "tmp") == []  # the dead run's clone is swept
    assert run_json(["fsck"], xrepo)["corrupt"] == []


def test_folder_of_20000_small_files_is_cloned(xrepo: Path) -> None:
    data = xrepo / "many"
    total = 0
    for d in range(100):
        (data / f"d{d:02}").mkdir(parents=True)
        for i in range(200):
            body = os.urandom(4096 + (d * 200 + i) * 37 % 12288)
            (data / f"d{d:02}" / f"f{i:03}.bin").write_bytes(body)
            total += len(body)
    files = sorted(p for p in data.rglob("*.bin"))
    sample = files[::997]
    want = {p: xxh3(p) for p in sample}

    before = used_bytes(xrepo)
    run(["add", "many"], xrepo)
    grown = used_bytes(xrepo) - before
    assert grown < total // 4, f"add of {total} bytes in 20,000 files used {grown} more"
    for p in sample:
        assert_shares_all_extents(p, obj_path(xrepo, want[p]))

    git(["add", "many.mlver", ".gitignore"], xrepo)
    git(["commit", "-q", "-m", "many"], xrepo)
    shutil.rmtree(data)
    before = used_bytes(xrepo)
    proc = run(["checkout"], xrepo)
    grown = used_bytes(xrepo) - before
    assert_quiet(proc)
    assert grown < total // 4, f"checkout of {total} bytes in 20,000 files used {grown} more"
    assert sum(1 for _ in data.rglob("*.bin")) == 20000
    for p in sample:
        assert xxh3(p) == want[p]
        assert_shares_all_extents(p, obj_path(xrepo, want[p]))
    assert run_json(["status"], xrepo)["clean"] is True


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm (another filesystem)")
def test_cache_on_another_filesystem_copies_quietly(xrepo: Path) -> None:
    shm = Path(tempfile.mkdtemp(prefix="mlver-test-cache-", dir="/dev/shm"))
    try:
        assert os.stat(shm).st_dev != os.stat(xrepo).st_dev
        run(["config", "cache.dir", str(shm)], xrepo)
        write_big(xrepo / "f.bin", 32 * MiB)
        (xrepo / "d").mkdir()
        for i in range(50):
            (xrepo / "d" / f"{i}.txt").write_text(f"file {i}\n" * (i + 1))
        want = xxh3(xrepo / "f.bin")
        proc = run(["add", "f.bin", "d"], xrepo)
        assert_quiet(proc)
        obj = shm / "files" / "xxh3-128" / want[:2] / want[2:]
        assert pointer_digest(xrepo, "f.bin") == want == xxh3(obj)
        assert obj.stat().st_mode & 0o777 == 0o444
        assert obj.stat().st_ino != (xrepo / "f.bin").stat().st_ino  # a copy, not a link

        git(["add", "f.bin.mlver", "d.mlver", ".gitignore"], xrepo)
        git(["commit", "-q", "-m", "data"], xrepo)
        (xrepo / "f.bin").unlink()
        shutil.rmtree(xrepo / "d")
        proc = run(["checkout"], xrepo)
        assert_quiet(proc)
        assert xxh3(xrepo / "f.bin") == want
        assert (xrepo / "d" / "7.txt").read_text() == "file 7\n" * 8
        assert (xrepo / "f.bin").stat().st_mode & 0o777 == 0o644
        with open(xrepo / "f.bin", "r+b") as f:  # an independent copy: the object is safe
            f.write(b"changed")
        assert xxh3(obj) == want
        assert run_json(["fsck"], xrepo)["corrupt"] == []
        assert run_json(["doctor"], xrepo)["link_types"]["reflink"] is False
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_doctor_reports_reflink_working_on_xfs(xrepo: Path) -> None:
    report = run_json(["doctor"], xrepo)
    assert report["link_types"]["reflink"] is True
    assert report["configured_link_types"] == ["reflink", "copy"]
