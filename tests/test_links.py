"""Link types between the cache and the workspace, the real fallback, and unprotect."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

import pytest

from conftest import gen, run, run_json


def setup_data(repo: Path) -> None:
    gen(repo, {"big.bin": os.urandom(100_000), "ds/a": "a", "ds/sub/b": "b"})


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "copy"])
def test_link_type_round_trip(repo: Path, kind: str) -> None:
    run(["config", "cache.type", kind], repo)
    setup_data(repo)
    payload = (repo / "big.bin").read_bytes()
    proc = run(["add", "big.bin", "ds"], repo)
    if kind in ("hardlink", "symlink"):
        assert proc.stderr.count("read-only") == 1  # said once
    os.unlink(repo / "big.bin")
    shutil.rmtree(repo / "ds")
    run(["checkout"], repo)
    f = repo / "big.bin"
    assert f.read_bytes() == payload and (repo / "ds/sub/b").read_text() == "b"
    if kind == "symlink":
        assert f.is_symlink() and ".mlver/cache" in os.readlink(f)
    elif kind == "hardlink":
        assert f.stat().st_nlink == 2 and not f.stat().st_mode & stat.S_IWUSR
    else:
        assert not f.is_symlink() and f.stat().st_nlink == 1 and f.stat().st_mode & stat.S_IWUSR
    assert run_json(["status"], repo)["clean"] is True


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_unprotect_gives_editable_copy_and_cache_survives(repo: Path, kind: str) -> None:
    run(["config", "cache.type", kind], repo)
    gen(repo, {"m.bin": b"original"})
    run(["add", "m.bin"], repo)
    run(["unprotect", "m.bin"], repo)
    f = repo / "m.bin"
    assert not f.is_symlink() and f.stat().st_nlink == 1 and f.stat().st_mode & stat.S_IWUSR
    f.write_bytes(b"edited")
    assert run_json(["status"], repo)["outputs"][0]["state"] == "modified"
    run(["checkout", "--force"], repo)
    assert f.read_bytes() == b"original"  # the cache object was never touched


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_remove_keeps_linked_data_as_copies_through_gc(repo: Path, kind: str) -> None:
    run(["config", "cache.type", kind], repo)
    gen(repo, {"k.bin": b"keep me", "kd/a": "a", "kd/s/b": "b"})
    run(["add", "k.bin", "kd"], repo)
    run(["remove", "k.bin.mlver", "kd.mlver"], repo)
    for f in (repo / "k.bin", repo / "kd/a", repo / "kd/s/b"):
        assert not f.is_symlink() and f.stat().st_nlink == 1 and f.stat().st_mode & stat.S_IWUSR
    run(["gc", "-f", "--workspace"], repo)
    assert (repo / "k.bin").read_bytes() == b"keep me" and (repo / "kd/s/b").read_text() == "b"


def test_reflink_falls_back_to_copy_by_default(repo: Path) -> None:
    setup_data(repo)
    run(["add", "big.bin"], repo)
    os.unlink(repo / "big.bin")
    run(["checkout"], repo)
    f = repo / "big.bin"
    assert not f.is_symlink() and f.stat().st_nlink == 1 and f.stat().st_mode & stat.S_IWUSR


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm (another filesystem)")
def test_hardlink_fails_across_filesystems_and_copy_takes_over(repo: Path) -> None:
    shm = Path("/dev/shm") / f"mlver-test-{uuid.uuid4().hex}"
    if os.stat("/dev/shm").st_dev == os.stat(repo).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the test folder")
    try:
        run(["config", "cache.dir", str(shm)], repo)
        run(["config", "cache.type", "hardlink,copy"], repo)
        setup_data(repo)
        payload = (repo / "big.bin").read_bytes()
        run(["add", "big.bin", "ds"], repo)
        assert any(shm.rglob("files/xxh3-128/*/*"))
        os.unlink(repo / "big.bin")
        shutil.rmtree(repo / "ds")
        proc = run(["checkout"], repo)
        assert "read-only" not in proc.stderr  # copy was used, so nothing is linked
        f = repo / "big.bin"
        assert f.read_bytes() == payload and f.stat().st_nlink == 1
        assert run_json(["status"], repo)["clean"] is True
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_relink_switches_existing_copies_to_links(repo: Path) -> None:
    setup_data(repo)
    run(["add", "big.bin"], repo)
    run(["config", "cache.type", "hardlink"], repo)
    run(["checkout", "--relink"], repo)
    assert (repo / "big.bin").stat().st_nlink == 2


def test_shared_cache_dir_between_clones(repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    run(["config", "cache.dir", str(shared)], repo)
    gen(repo, {"d.bin": b"shared bytes"})
    run(["add", "d.bin"], repo)
    assert any(shared.rglob("files/xxh3-128/*/*"))
    doc = run_json(["doctor"], repo)
    assert doc["cache_dir"] == str(shared) and doc["cache_objects"] == 1
