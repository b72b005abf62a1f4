"""The state database is a cache: damaged bytes in it, a file that is not a database, or
a full disk never end a command with an internal error; the command still gives the right
answer (re-hashing what it must) with one warning line."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json


def _db(repo: Path) -> Path:
    return repo / ".mlver" / "tmp" / "state.db"


def _assert_clean(proc: subprocess.CompletedProcess[str], seed: object = "") -> None:
    assert proc.returncode == 0, f"seed {seed}: {proc.stderr}"
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, f"seed {seed}: {proc.stderr}"
    assert "mlver: error" not in proc.stderr, f"seed {seed}: {proc.stderr}"


def _tracked_repo(repo: Path) -> None:
    gen(repo, {f"ds/f{i}.txt": f"file {i}\n" * (i + 1) for i in range(30)})
    gen(repo, {"model.bin": b"\x00\x01" * 5000})
    run(["add", "ds", "model.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    # one edit, so the state database holds rows for both versions
    gen(repo, {"ds/f3.txt": "edited\n"})
    run(["status"], repo)
    gen(repo, {"ds/f3.txt": "file 3\n" * 4})
    run(["status"], repo)


def test_flipped_bytes_in_the_state_database(repo: Path) -> None:
    """30 seeded trials: bytes flipped at random offsets, then status, add or checkout."""
    _tracked_repo(repo)
    db = _db(repo)
    pristine = db.read_bytes()
    assert len(pristine) > 4096 and not Path(str(db) + "-wal").exists()
    pointer = (repo / "model.bin.mlver").read_text()
    warned = 0
    for seed in range(30):
        rng = random.Random(seed)
        for extra in ("-wal", "-shm"):
            Path(str(db) + extra).unlink(missing_ok=True)
        for old in db.parent.glob("state.db.corrupt-*"):
            old.unlink()
        data = bytearray(pristine)
        for _ in range(rng.randint(1, 8)):
            off = rng.randrange(len(data))
            data[off] ^= 1 << rng.randrange(8)
        db.write_bytes(bytes(data))
        command = ("status", "add", "checkout")[seed % 3]
        if command == "status":
            proc = run(["status", "--json"], repo, check=False)
            _assert_clean(proc, seed)
            assert json.loads(proc.stdout)["clean"] is True, f"seed {seed}: {proc.stdout}"
        elif command == "add":
            proc = run(["add", "ds", "model.bin"], repo, check=False)
            _assert_clean(proc, seed)
            assert (repo / "model.bin.mlver").read_text() == pointer and git(["status", "--porcelain"], repo) == ""
        else:
            (repo / "ds" / "f7.txt").unlink()
            os.chmod(repo / "model.bin", 0o644)
            (repo / "model.bin").write_bytes(b"changed")
            proc = run(["checkout", "--force"], repo, check=False)
            _assert_clean(proc, seed)
            assert (repo / "ds" / "f7.txt").read_text() == "file 7\n" * 8, f"seed {seed}"
            assert (repo / "model.bin").read_bytes() == b"\x00\x01" * 5000, f"seed {seed}"
        warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: warning: ")]
        assert len(warnings) <= 1, f"seed {seed}: {proc.stderr}"
        if warnings:
            warned += 1
            assert "state database .mlver/tmp/state.db" in warnings[0], f"seed {seed}: {proc.stderr}"
        # the next command finds a sound database and says nothing about it
        again = run(["status", "--json"], repo, check=False)
        _assert_clean(again, seed)
        assert "state database" not in again.stderr, f"seed {seed}: {again.stderr}"
    assert warned >= 5  # the flips did hit something


def test_a_file_that_is_not_a_database_is_moved_aside(repo: Path) -> None:
    _tracked_repo(repo)
    _db(repo).write_bytes(b"this is not SQLite\n" * 300)
    proc = run(["status", "--json"], repo, check=False)
    _assert_clean(proc)
    assert json.loads(proc.stdout)["clean"] is True
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: warning:")]
    assert len(warning) == 1 and "was damaged" in warning[0] and "state.db.corrupt-" in warning[0]
    aside = list(_db(repo).parent.glob("state.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"this is not SQLite\n" * 300


def test_a_damaged_row_is_not_believed(repo: Path) -> None:
    """A digest changed inside a row (still valid hex, still valid SQLite) is caught by the
    row's check value: status still compares the real bytes."""
    import sqlite3

    _tracked_repo(repo)
    conn = sqlite3.connect(_db(repo))
    conn.execute("UPDATE hashes SET digest = ? WHERE path = 'model.bin'", ("0" * 32,))
    conn.execute("UPDATE dirs SET digest = ?", ("1" * 32,))
    conn.commit()
    conn.close()
    proc = run(["status", "--json"], repo, check=False)
    _assert_clean(proc)
    assert json.loads(proc.stdout)["clean"] is True
    assert "was damaged" in proc.stderr


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("FULL-DISK TESTS SKIPPED: mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"FULL-DISK TESTS SKIPPED: cannot mount a tmpfs here ({proc.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_full_disk(small_disk: Path) -> None:
    repo = small_disk / "repo"
    repo.mkdir()
    git(["init", "-q"], repo)
    run(["init"], repo)
    git(["commit", "-q", "-m", "init"], repo)
    gen(repo, {f"ds/f{i}.txt": f"{i}\n" for i in range(20)})
    gen(repo, {"small.txt": "small\n"})
    run(["add", "ds", "small.txt"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    shutil.rmtree(repo / ".mlver" / "tmp")  # no memo: the read-only commands must write one
    gen(repo, {"big.bin": os.urandom(200_000)})
    gen(repo, {"small.txt": "small, edited: a new object to store " * 2000})
    filler = _fill(small_disk)
    try:
        for args in (["status"], ["list"], ["diff"]):
            proc = run(args, repo, check=False)
            assert proc.returncode == 0, (args, proc.stderr)
            assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
            warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: warning:")]
            assert len(warnings) == 1 and "state database .mlver/tmp/state.db" in warnings[0], (args, proc.stderr)
        changed = json.loads(run(["status", "--json"], repo, check=False).stdout)["outputs"]
        assert [(o["path"], o["state"]) for o in changed] == [("small.txt", "modified")]
        proc = run(["add", "big.bin"], repo, check=False)
        assert proc.returncode == 3, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert errors[0].startswith("mlver: error: no space left on device writing "), proc.stderr
        assert ".mlver" in errors[0]
        assert not (repo / "big.bin.mlver").exists()
        (repo / "ds" / "f1.txt").unlink()
        for args in (["checkout"], ["commit", "small.txt"]):
            proc = run(args, repo, check=False)
            assert proc.returncode in (0, 3), (args, proc.stderr)
            assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
            if proc.returncode == 3:
                errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
                assert len(errors) == 1 and "no space left on device writing" in errors[0], (args, proc.stderr)
        assert "small, edited" not in (repo / "small.txt.mlver").read_text()
    finally:
        filler.unlink()
    # with space again everything converges
    run(["add", "big.bin"], repo)
    run(["commit", "small.txt"], repo)
    run(["checkout"], repo)
    assert (repo / "ds" / "f1.txt").read_text() == "1\n"
    assert run_json(["status", "--json"], repo)["clean"] is True
