"""Progress bars: drawn on stderr when it is a terminal (here a pseudo-terminal), never
when stderr is a pipe, and never on stdout (which carries data)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import drain_pty, git, mlver_cmd, run
from mlver.state import racy

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
    screen = drain_pty(master, proc)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), screen.decode("utf-8", "replace")


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
    assert re.search(r"\d+(\.\d+)?( B| KiB)?/(300|\d+\.\d KiB)", term), term  # done out of the total (files or bytes)
    assert "Added images" in term
    assert_no_bar(out)


def test_bar_for_a_big_file_on_a_terminal(big_file: Path) -> None:
    code, out, term = run_on_pty(["add", "model.bin"], big_file)
    assert code == 0, term
    assert_bar(term, "adding model.bin")
    assert re.search(r"/64\.0 MiB", term), term  # bytes done out of the 64 MiB total
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


# --- bytes move as they are hashed, copied and sent; one unit system ---------------------

SIZE_ON_BAR = re.compile(r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB)/200\.0 MiB")
UNIT = {"B": 1, "KiB": 1 << 10, "MiB": MiB, "GiB": 1 << 30}
DECIMAL = re.compile(r"\d (kB|MB|GB)\b")


@pytest.fixture
def huge_file(repo: Path) -> Path:
    with open(repo / "model.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(MiB))
    return repo


def bytes_on_bar(term: str) -> list[float]:
    """Every 'done' amount the bar showed out of the 200 MiB total, in bytes."""
    return [float(n) * UNIT[u] for n, u in SIZE_ON_BAR.findall(term)]


def assert_moves(term: str) -> None:
    shown = bytes_on_bar(term)
    between = {v for v in shown if 0 < v < 200 * MiB}
    assert len(between) >= 3, f"the bar did not move through the file: {sorted(set(shown))}\n{term!r}"
    assert DECIMAL.search(term) is None, term


def test_a_single_big_file_moves_the_bar_as_it_is_added_and_checked_out(huge_file: Path) -> None:
    code, out, term = run_on_pty(["add", "model.bin"], huge_file)
    assert code == 0, term
    assert_bar(term, "adding model.bin")
    assert_moves(term)
    run(["config", "cache.type", "copy"], huge_file)  # a copy moves bytes (a link would not)
    (huge_file / "model.bin").unlink()
    code, out, term = run_on_pty(["checkout"], huge_file)
    assert code == 0, term
    assert_bar(term, "checkout model.bin")
    assert_moves(term)
    assert out.strip() == "A       model.bin"


def test_push_and_pull_move_the_bar_in_binary_units_as_the_summary(huge_file: Path, tmp_path: Path) -> None:
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], huge_file)
    run(["add", "model.bin"], huge_file)
    code, out, term = run_on_pty(["push"], huge_file)
    assert code == 0, term
    assert_bar(term, "push to store")
    assert_moves(term)
    assert re.search(r"\d+(\.\d)? (B|KiB|MiB|GiB)/s", term), term  # the speed, binary too
    assert "1 object(s) pushed to 'store' (200.0 MiB), 0 already there" in term
    # pull into a fresh cache: the download moves the bar too
    shutil.rmtree(huge_file / ".mlver" / "cache")
    (huge_file / "model.bin").unlink()
    code, out, term = run_on_pty(["pull"], huge_file)
    assert code == 0, term
    assert_bar(term, "fetch from store")
    assert_moves(term)
    assert "1 object(s) fetched from 'store' (200.0 MiB), 0 already there" in term


def test_commit_with_nothing_to_record_draws_no_bar(big_file: Path) -> None:
    # A file written a moment before `add` reads it is racy (Git's rule): its remembered
    # digest is not trusted and commit reads it again, by design. This test is about a
    # settled file, so wait out the window first (an installed, byte-compiled mlver
    # starts fast enough to read the file within it).
    while racy(os.stat(big_file / "model.bin"), time.time_ns()):
        time.sleep(0.05)
    run(["add", "model.bin"], big_file)
    code, out, term = run_on_pty(["commit"], big_file)
    assert code == 0, term
    assert "Nothing to record: data matches the pointers." in term
    assert_no_bar(term.replace("\r\n", "\n"))  # the terminal's own line ends are not a bar's
