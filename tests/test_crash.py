"""Crash safety (SPEC guarantees 2 and 3): ``mlver`` killed with SIGKILL at a failpoint or
from outside at a random moment leaves no object under a wrong name, no torn pointer and
no torn workspace file, and running the same command again repairs everything.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import xxhash
import yaml

from conftest import git, mlver_cmd, run, run_json

MiB = 1 << 20
BIG = 200 * MiB
KILLED = -signal.SIGKILL
POINTER_KEYS = ["version", "path", "kind", "hash", "digest", "size"]


# --- helpers ------------------------------------------------------------------------------

def random_file(path: Path, size: int, rng: random.Random | None = None) -> None:
    """``size`` bytes of random data, written in 1 MiB chunks (no sparse holes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(MiB, left)
            f.write(rng.randbytes(n) if rng else os.urandom(n))
            left -= n


def digest_of(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def objects_dir(repo: Path) -> Path:
    return repo / ".mlver" / "cache" / "files" / "xxh3-128"


def assert_objects_verify(repo: Path) -> dict[str, Path]:
    """Every file stored under ``files/xxh3-128/`` is named by the digest of its bytes
    (manifests carry a ``.manifest`` suffix), temporary files of an interrupted write
    aside; returns name -> path."""
    found: dict[str, Path] = {}
    base = objects_dir(repo)
    if not base.exists():
        return found
    for p in sorted(base.rglob("*")):
        if p.is_dir():
            assert p.parent == base and len(p.name) == 2, f"unexpected folder in the object store: {p}"
            continue
        if p.name.startswith(".mlver-tmp-"):  # a write cut short before its rename: not an object
            continue
        rest = p.name[: -len(".manifest")] if p.name.endswith(".manifest") else p.name
        name = p.parent.name + rest
        assert len(name) == 32 and all(c in "0123456789abcdef" for c in name), f"not an object name: {p}"
        assert digest_of(p) == name, f"object {p} does not hash to its name"
        assert not os.access(p, os.W_OK) or os.geteuid() == 0, f"object {p} is writable"
        found[name] = p
    return found


def read_pointer(path: Path) -> dict:
    """Parse a pointer file strictly (a torn file fails here)."""
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), f"{path}: not a mapping:\n{text}"
    assert list(doc)[: len(POINTER_KEYS)] == POINTER_KEYS, f"{path}: keys {list(doc)}"
    assert doc["version"] == 1 and doc["hash"] == "xxh3-128" and doc["kind"] in ("file", "dir")
    assert isinstance(doc["digest"], str) and len(doc["digest"]) == 32, doc
    assert isinstance(doc["size"], int)
    return doc


def assert_pointer_backed(repo: Path, pointer: Path, objects: dict[str, Path]) -> dict:
    """A pointer that exists parses and names objects that are in the cache (the pointer
    is written only after its data is stored)."""
    doc = read_pointer(pointer)
    if doc["kind"] == "file":
        assert doc["digest"] in objects, f"{pointer} names {doc['digest']}, which is not in the cache"
    else:
        manifest = objects_dir(repo) / doc["digest"][:2] / (doc["digest"][2:] + ".manifest")
        assert manifest.is_file(), f"{pointer}: manifest {doc['digest']} is not in the cache"
        entries = json.loads(manifest.read_bytes())["entries"]  # [[path, digest, size, exec], ...]
        assert len(entries) == doc["files"] and sum(e[2] for e in entries) == doc["size"], pointer
        for _, d, _, _ in entries:
            assert d in objects, f"{pointer}: manifest names {d}, which is not in the cache"
    return doc


def status_doc(repo: Path) -> dict:
    """``mlver status --json`` works (exit 0, valid JSON) and mentions no temporary file."""
    proc = run(["status", "--json"], repo)
    assert ".mlver-tmp-" not in proc.stdout and "/tmp/" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1
    return doc


def workspace_files(top: Path) -> dict[str, str]:
    """POSIX path below ``top`` -> digest, leaving out mlver's temporary files."""
    return {p.relative_to(top).as_posix(): digest_of(p) for p in sorted(top.rglob("*"))
            if p.is_file() and not p.name.startswith(".mlver-tmp-")}


def _rmtree(path: Path) -> None:
    def onerror(func, p, exc):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(p), 0o755)
        if os.path.exists(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        func(p)

    shutil.rmtree(path, onerror=onerror)


@pytest.fixture
def drop_data(tmp_path: Path) -> Iterator[None]:
    """These tests write hundreds of megabytes: remove them when the test ends."""
    yield
    if tmp_path.exists():
        _rmtree(tmp_path)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One 200 MiB file of random bytes (and its digest), copied into each test's repo."""
    d = tmp_path_factory.mktemp("big")
    path = d / "big.bin"
    random_file(path, BIG)
    yield path, digest_of(path)
    _rmtree(d)


def run_killed(args: list[str], cwd: Path, failpoint: str) -> subprocess.CompletedProcess[str]:
    proc = run(args, cwd, check=False, env={"MLVER_FAILPOINT": failpoint})
    assert proc.returncode == KILLED, f"expected SIGKILL at {failpoint}, got {proc.returncode}\n{proc.stderr}"
    return proc


# --- add killed at a failpoint ------------------------------------------------------------

@pytest.mark.parametrize("failpoint,with_old", [
    ("cache-mid-copy:2", False),
    ("cache-mid-copy:2", True),
    ("cache-before-rename", True),
])
def test_add_killed_at_failpoint_then_rerun(repo: Path, big_source: tuple[Path, str], drop_data: None,
                                            failpoint: str, with_old: bool) -> None:
    src, big_digest = big_source
    data = repo / "data" / "big.bin"
    pointer = repo / "data" / "big.bin.mlver"
    old_text = None
    if with_old:
        random_file(data, 3 * MiB)
        old_digest = digest_of(data)
        run(["add", "data/big.bin", "--desc", "the first version"], repo)
        git(["add", "data/big.bin.mlver", "data/.gitignore"], repo)
        git(["commit", "-q", "-m", "v1"], repo)
        old_text = pointer.read_text()
        assert read_pointer(pointer)["digest"] == old_digest
        data.unlink()
    data.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, data)

    run_killed(["add", "data/big.bin"], repo, failpoint)

    objects = assert_objects_verify(repo)
    assert big_digest not in objects  # killed before the rename: nothing stored under the new name
    if with_old:
        assert pointer.read_text() == old_text, "the old pointer must be intact"
        assert set(objects) == {old_digest}
        doc = status_doc(repo)
        assert [(o["path"], o["state"]) for o in doc["outputs"]] == [("data/big.bin", "modified")]
    else:
        assert not pointer.exists(), "no pointer may be written for data that is not stored"
        assert objects == {}
        assert status_doc(repo)["clean"] is True
    leftovers = list((repo / ".mlver" / "cache" / "tmp").glob("*"))
    assert leftovers, "the kill should have left a partial temporary object behind"

    # the same command again repairs everything
    run(["add", "data/big.bin"], repo)
    doc = read_pointer(pointer)
    assert doc["digest"] == big_digest and doc["size"] == BIG and doc["path"] == "big.bin"
    if with_old:
        assert doc["desc"] == "the first version"
    objects = assert_objects_verify(repo)
    assert big_digest in objects
    assert digest_of(objects[big_digest]) == big_digest == digest_of(data)
    assert status_doc(repo)["clean"] is True
    assert "/big.bin" in (repo / "data" / ".gitignore").read_text().splitlines()
    listed = run_json(["list"], repo)["outputs"]
    assert [(o["path"], o["digest"], o["state"]) for o in listed] == [("data/big.bin", big_digest, "ok")]


# --- add killed from outside at a random moment -------------------------------------------

def _check_invariants(repo: Path, pointers: list[Path]) -> None:
    objects = assert_objects_verify(repo)
    for p in pointers:
        if p.exists():
            assert_pointer_backed(repo, p, objects)
    status_doc(repo)


@pytest.mark.parametrize("attempt", range(2))
def test_add_killed_from_outside_at_random_moment(repo: Path, big_source: tuple[Path, str], drop_data: None,
                                                  attempt: int) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    src, big_digest = big_source
    shutil.copyfile(src, repo / "big.bin")
    for i in range(150):
        (repo / "images" / f"{i // 50}").mkdir(parents=True, exist_ok=True)
        (repo / "images" / f"{i // 50}" / f"img{i:03}.bin").write_bytes(rng.randbytes(rng.randint(1, 40_000)))
    expected_images = workspace_files(repo / "images")
    pointers = [repo / "big.bin.mlver", repo / "images.mlver"]

    outcomes = []
    for _ in range(2):  # two kills in a row: the second one meets the first one's debris
        delay = rng.uniform(0.05, 0.5)
        proc = subprocess.Popen([*mlver_cmd(), "add", "big.bin", "images"], cwd=repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # does nothing when it already finished
        finally:
            _, err = proc.communicate(timeout=120)
        outcomes.append((round(delay, 3), proc.returncode))
        assert proc.returncode in (0, KILLED), f"seed {seed}, {outcomes}: {err.decode()}"
        _check_invariants(repo, pointers)

    run(["add", "big.bin", "images"], repo)
    _check_invariants(repo, pointers)
    assert read_pointer(repo / "big.bin.mlver")["digest"] == big_digest, f"seed {seed}, kills {outcomes}"
    img = read_pointer(repo / "images.mlver")
    assert img["kind"] == "dir" and img["files"] == 150, f"seed {seed}, kills {outcomes}"
    assert workspace_files(repo / "images") == expected_images
    assert status_doc(repo)["clean"] is True, f"seed {seed}, kills {outcomes}"
    ignore = (repo / ".gitignore").read_text().splitlines()
    assert "/big.bin" in ignore and "/images" in ignore
    # and the data comes back bit-identical from what was stored
    (repo / "big.bin").unlink()
    _rmtree(repo / "images")
    run(["checkout"], repo)
    assert digest_of(repo / "big.bin") == big_digest
    assert workspace_files(repo / "images") == expected_images


# --- checkout killed at a failpoint -------------------------------------------------------

@pytest.fixture
def two_versions(repo: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """data.bin and images/ committed in two versions; HEAD is v2, the workspace is at
    v1's pointers (after ``git checkout HEAD~1 -- .``) with v2's data still in place.
    Returns (repo, v1 files, v2 files) as path -> digest."""
    rng = random.Random(7)
    random_file(repo / "data.bin", 24 * MiB, rng)
    for i in range(30):
        (repo / "images" / f"img{i:02}.bin").parent.mkdir(exist_ok=True)
        (repo / "images" / f"img{i:02}.bin").write_bytes(rng.randbytes(50_000 + i))
    run(["add", "data.bin", "images"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v1"], repo)
    v1 = {"data.bin": digest_of(repo / "data.bin"),
          **{f"images/{k}": v for k, v in workspace_files(repo / "images").items()}}

    random_file(repo / "data.bin", 24 * MiB, rng)
    for i in range(0, 30, 3):
        (repo / "images" / f"img{i:02}.bin").write_bytes(rng.randbytes(60_000))
    for i in (1, 4):
        (repo / "images" / f"img{i:02}.bin").unlink()
    for i in range(30, 34):
        (repo / "images" / f"img{i:02}.bin").write_bytes(rng.randbytes(1_000))
    run(["commit"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v2"], repo)
    v2 = {"data.bin": digest_of(repo / "data.bin"),
          **{f"images/{k}": v for k, v in workspace_files(repo / "images").items()}}
    assert v1 != v2

    git(["checkout", "-q", "HEAD~1", "--", "."], repo)
    return repo, v1, v2


def test_a_pointer_half_written_by_a_killed_add_is_not_a_pointer(repo: Path) -> None:
    """A kill between writing a pointer's temporary file and its rename leaves
    `.mlver-tmp-PID-TAG-N.NAME.mlver` beside it (seen by this test's random kills): no
    command may read it as a pointer; the first one that lists pointers removes it once
    its process is gone, and leaves a live process's temporary alone."""
    (repo / "a.txt").write_text("a\n")
    run(["add", "a.txt"], repo)
    dead = subprocess.Popen(["true"])
    dead.wait()
    torn = repo / f".mlver-tmp-{dead.pid}-0badf00d-3.images.mlver"
    torn.write_text("path: images\nkind: d")  # cut off mid-write
    live = repo / "sub" / f".mlver-tmp-{os.getpid()}-0badf00d-4.b.txt.mlver"
    live.parent.mkdir()
    live.write_text("")
    doc = run_json(["status"], repo)
    assert doc["clean"] is True and [o["path"] for o in run_json(["list"], repo)["outputs"]] == ["a.txt"]
    assert not torn.exists() and live.exists()
    run(["add", "a.txt"], repo)  # writers list pointers too
    assert live.exists()


@pytest.mark.parametrize("failpoint", ["checkout-before-rename", "checkout-before-rename:4"])
def test_checkout_killed_at_failpoint_then_rerun(two_versions: tuple[Path, dict[str, str], dict[str, str]],
                                                 drop_data: None, failpoint: str) -> None:
    repo, v1, v2 = two_versions
    run_killed(["checkout"], repo, failpoint)

    # every workspace file is one version or the other, never torn
    now = {"data.bin": digest_of(repo / "data.bin"),
           **{f"images/{k}": v for k, v in workspace_files(repo / "images").items()}}
    for path, digest in now.items():
        assert digest in (v1.get(path), v2.get(path)), f"{path} is neither version"
    assert list(repo.rglob(".mlver-tmp-*")), "the kill should have left a temporary file in the workspace"
    assert_objects_verify(repo)
    assert status_doc(repo)["clean"] is False

    run(["checkout"], repo)
    now = {"data.bin": digest_of(repo / "data.bin"),
           **{f"images/{k}": v for k, v in workspace_files(repo / "images").items()}}
    assert now == v1
    assert status_doc(repo)["clean"] is True
    assert_objects_verify(repo)
    # forward again: v2 comes back bit-identical too
    git(["checkout", "-q", "HEAD", "--", "."], repo)
    run(["checkout"], repo)
    now = {"data.bin": digest_of(repo / "data.bin"),
           **{f"images/{k}": v for k, v in workspace_files(repo / "images").items()}}
    assert now == v2
    assert status_doc(repo)["clean"] is True


# --- add interrupted with Ctrl-C ----------------------------------------------------------

def _wait_until_locked_by(repo: Path, proc: subprocess.Popen[bytes]) -> None:
    lock = repo / ".mlver" / "tmp" / "lock"
    give_up = time.monotonic() + 120  # only so that a hung mlver cannot hang the test run
    while time.monotonic() < give_up:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, f"mlver finished before it was seen holding the lock (exit {proc.returncode})"
        time.sleep(0.002)
    raise AssertionError("mlver never took the repository lock")


def test_add_interrupted_with_ctrl_c_exits_130_then_rerun(repo: Path, big_source: tuple[Path, str],
                                                          drop_data: None) -> None:
    src, big_digest = big_source
    shutil.copyfile(src, repo / "big.bin")
    proc = subprocess.Popen([*mlver_cmd(), "add", "big.bin"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until_locked_by(repo, proc)
        proc.send_signal(signal.SIGINT)
    finally:
        out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it finished between the last look and the signal: nothing to check
        pytest.skip("mlver finished before Ctrl-C arrived")
    assert proc.returncode == 130, err.decode()
    # (click ends the terminal's "^C" line with a newline first, hence the blank line)
    assert err.decode().lstrip("\n").splitlines() == ["mlver: error: interrupted"], err.decode()
    assert out == b""
    assert (repo / ".mlver" / "tmp" / "lock").read_text() == ""  # released and emptied
    objects = assert_objects_verify(repo)
    if (repo / "big.bin.mlver").exists():
        assert_pointer_backed(repo, repo / "big.bin.mlver", objects)
    assert list((repo / ".mlver" / "cache" / "tmp").glob("*")) == [], "an interrupted write cleans up after itself"

    run(["add", "big.bin"], repo)
    assert read_pointer(repo / "big.bin.mlver")["digest"] == big_digest
    assert big_digest in assert_objects_verify(repo)
    assert status_doc(repo)["clean"] is True
