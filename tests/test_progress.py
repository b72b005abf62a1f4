"""Progress bars: drawn on stderr when it is a terminal (here a pseudo-terminal), never
when stderr is a pipe, and never on stdout (which carries data)."""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import git, mlver_cmd, run

MiB = 1 << 20
BAR = "━"  # rich's bar character
ESC = "\x1b["


def run_on_pty(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run mlver with stderr on a pseudo-terminal and stdout on a pipe; returns
    (exit code, stdout, everything written to the terminal)."""
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    try:
        proc = subprocess.Popen([*mlver_cmd(), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, "no output from mlver on the terminal for 60 s"
            try:
                data = os.read(master, 65536)
            except OSError as e:  # Linux: EIO once the last writer has closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    except BaseException:
        proc.kill()
        raise
    finally:
        os.close(master)
        out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def many_files(repo: Path) -> Path:
    for i in range(300):
        p = repo / "images" / f"{i % 7}" / f"img{i:03}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"image {i}\n" * (i % 5 + 1))
    return repo


@pytest.fixture
def big_file(repo: Path) -> Path:
    with open(repo / "model.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    return repo


def assert_bar(term: str, words: str) -> None:
    assert BAR in term, f"no progress bar on the terminal:\n{term!r}"
    assert words in term, f"{words!r} not on the terminal:\n{term!r}"
    assert "Traceback" not in term


def assert_no_bar(text: str) -> None:
    assert BAR not in text and ESC not in text and "\r" not in text, repr(text)


def test_bar_for_many_files_on_a_terminal(many_files: Path) -> None:
    code, out, term = run_on_pty(["add", "images"], many_files)
    assert code == 0, term
    assert_bar(term, "adding images")
    assert re.search(r"\d+(\.\d+)?/(300|\d+\.\d+ kB)", term), term  # done out of the total (files or bytes)
    assert "Added images" in term
    assert_no_bar(out)


def test_bar_for_a_big_file_on_a_terminal(big_file: Path) -> None:
    code, out, term = run_on_pty(["add", "model.bin"], big_file)
    assert code == 0, term
    assert_bar(term, "adding model.bin")
    assert re.search(r"/6[67]\.\d MB|/64\.0 MiB", term), term  # bytes done out of the 64 MiB total
    assert_no_bar(out)


def test_bar_for_checkout_and_status_on_a_terminal(many_files: Path) -> None:
    run(["add", "images"], many_files)
    git(["add", "-A"], many_files)
    git(["commit", "-q", "-m", "images"], many_files)
    shutil.rmtree(many_files / "images")
    code, out, term = run_on_pty(["checkout"], many_files)
    assert code == 0, term
    assert_bar(term, "checkout images")
    assert out.strip() == "300 added, 0 modified, 0 deleted"  # the data report stays plain on stdout
    assert_no_bar(out)

    (many_files / ".mlver" / "tmp" / "state.db").unlink()  # forget every digest: status re-hashes
    code, out, term = run_on_pty(["status"], many_files)
    assert code == 0, term
    assert_bar(term, "hashing")
    assert out == "Data and pipelines are up to date.\n"


def test_no_bar_with_quiet_on_a_terminal(many_files: Path) -> None:
    code, out, term = run_on_pty(["-q", "add", "images"], many_files)
    assert code == 0, term
    assert_no_bar(term)


def test_no_bar_when_stderr_is_a_pipe(many_files: Path) -> None:
    with open(many_files / "model.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    proc = run(["add", "images", "model.bin"], many_files)
    assert_no_bar(proc.stderr)
    assert_no_bar(proc.stdout)
    assert "Added images" in proc.stderr and "Added model.bin" in proc.stderr


def test_no_bar_below_the_thresholds_on_a_terminal(repo: Path) -> None:
    (repo / "small.csv").write_text("a,b\n1,2\n")
    code, out, term = run_on_pty(["add", "small.csv"], repo)
    assert code == 0, term
    assert BAR not in term
    assert "Added small.csv" in term
