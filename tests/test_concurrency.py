"""One writer at a time (SPEC guarantee 5): concurrent writers serialise on the
repository lock, a lock left by a dead process clears itself, and a live holder is named
in a one-line error when the wait runs out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import xxhash

from conftest import mlver_cmd, run, run_json

MiB = 1 << 20
KILLED = -signal.SIGKILL


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))


def digest_of(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def lock_info(repo: Path) -> dict | None:
    try:
        text = (repo / ".mlver" / "tmp" / "lock").read_text()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def wait_for_lock_holder(repo: Path, proc: subprocess.Popen[bytes]) -> dict:
    """Poll the lock file until it records ``proc`` as the holder (fails if ``proc`` ends first)."""
    give_up = time.monotonic() + 120  # only so that a hung mlver cannot hang the test run
    while time.monotonic() < give_up:
        info = lock_info(repo)
        if info and info.get("pid") == proc.pid:
            return info
        assert proc.poll() is None, f"mlver finished before it was seen holding the lock (exit {proc.returncode})"
        time.sleep(0.002)
    raise AssertionError("mlver never took the repository lock")


def pointer_digest(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("digest: "):
            return line.split(": ", 1)[1]
    raise AssertionError(f"no digest in {path}")


@pytest.fixture
def drop_data(tmp_path: Path) -> Iterator[None]:
    yield

    def onerror(func, p, exc):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(p), 0o755)
        os.chmod(p, stat.S_IRWXU)
        func(p)

    if tmp_path.exists():
        shutil.rmtree(tmp_path, onerror=onerror)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; none outlives it (a stopped one is continued, then killed)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
        p.communicate()


def test_two_concurrent_adds_both_end_with_correct_pointers(repo: Path, drop_data: None,
                                                           procs: list[subprocess.Popen[bytes]]) -> None:
    data = repo / "data"
    data.mkdir()
    random_file(data / "big.bin", 160 * MiB)
    (data / "small.csv").write_text("a,b\n1,2\n")
    big_digest, small_digest = digest_of(data / "big.bin"), digest_of(data / "small.csv")

    first = subprocess.Popen([*mlver_cmd(), "add", "data/big.bin"], cwd=repo,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(first)
    wait_for_lock_holder(repo, first)
    second = subprocess.Popen([*mlver_cmd(), "add", "data/small.csv"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(second)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1.decode()
    assert second.returncode == 0, err2.decode()

    assert pointer_digest(data / "big.bin.mlver") == big_digest
    assert pointer_digest(data / "small.csv.mlver") == small_digest
    # both wrote the same .gitignore: with one writer at a time neither entry is lost
    ignore = (data / ".gitignore").read_text().splitlines()
    assert "/big.bin" in ignore and "/small.csv" in ignore
    listed = {o["path"]: (o["digest"], o["state"]) for o in run_json(["list"], repo)["outputs"]}
    assert listed == {"data/big.bin": (big_digest, "ok"), "data/small.csv": (small_digest, "ok")}
    assert run_json(["status"], repo)["clean"] is True
    assert lock_info(repo) is None  # released and emptied


def test_lock_of_a_dead_process_is_cleared(repo: Path, drop_data: None) -> None:
    random_file(repo / "big.bin", 64 * MiB)
    (repo / "small.csv").write_text("x\n")
    killed = run(["add", "big.bin"], repo, check=False, env={"MLVER_FAILPOINT": "cache-mid-copy:2"})
    assert killed.returncode == KILLED, killed.stderr
    info = lock_info(repo)
    assert info is not None and info["command"] == "add", "the killed add should have left its lock record"

    # No waiting allowed at all: the next writer gets the lock at once or fails.
    run(["config", "core.lock_timeout", "0"], repo)
    run(["add", "small.csv"], repo)
    run(["add", "big.bin"], repo)
    assert pointer_digest(repo / "big.bin.mlver") == digest_of(repo / "big.bin")
    assert run_json(["status"], repo)["clean"] is True


def test_live_holder_is_named_when_the_wait_runs_out(repo: Path, drop_data: None,
                                                    procs: list[subprocess.Popen[bytes]]) -> None:
    random_file(repo / "big.bin", 160 * MiB)
    (repo / "small.csv").write_text("x\n")
    run(["config", "core.lock_timeout", "1"], repo)
    assert run(["config", "core.lock_timeout"], repo).stdout.strip() == "1"

    holder = subprocess.Popen([*mlver_cmd(), "add", "big.bin"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(holder)
    wait_for_lock_holder(repo, holder)
    holder.send_signal(signal.SIGSTOP)  # alive, holding the lock, going nowhere
    try:
        proc = run(["add", "small.csv"], repo, check=False)
        status = run(["status", "--json"], repo, check=False)  # read-only: takes no lock
    finally:
        holder.send_signal(signal.SIGCONT)
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err.decode()

    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("mlver: error: "), proc.stderr
    assert f"pid {holder.pid}" in lines[0], proc.stderr
    assert "mlver add" in lines[0], proc.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), proc.stderr
    assert not (repo / "small.csv.mlver").exists()
    assert status.returncode == 0, status.stderr

    # once the holder is done, the same command goes through
    run(["add", "small.csv"], repo)
    assert pointer_digest(repo / "big.bin.mlver") == digest_of(repo / "big.bin")
    assert run_json(["status"], repo)["clean"] is True
