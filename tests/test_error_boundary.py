"""One error boundary (STYLE "one exception tree, one boundary", SPEC guarantee 4):
whatever a command could not do ends in exactly one ``mlver: error:`` line written by
``cli.main``, the lists and hints under it, and the exit code the error carries; a bug
is an internal error with exit 4; ``-v`` is a parsed option, not a word anywhere in argv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import xxhash

from conftest import gen, git, run

EXIT_DIFF, EXIT_ERROR, EXIT_INTERNAL = 1, 3, 4


def _one_error(proc: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """Exit ``code``, exactly one ``mlver: error:`` line, no traceback; stderr's lines."""
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == code, shown
    lines = proc.stderr.splitlines()
    assert sum(ln.startswith("mlver: error:") for ln in lines) == 1, shown
    assert "mlver: error:" not in proc.stdout, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    return lines


def _object(repo: Path, data: bytes) -> Path:
    d = xxhash.xxh3_128_hexdigest(data)
    return repo / ".mlver/cache/files/xxh3-128" / d[:2] / d[2:]


def test_checkout_with_kept_orphaned_and_missing_data_says_so_in_one_error(repo: Path) -> None:
    run(["commit", "-m", "base"], repo)
    git(["checkout", "-q", "-b", "feature"], repo)
    gen(repo, {"orphan.bin": b"orig"})
    run(["add", "orphan.bin"], repo)
    run(["commit", "-m", "feature data"], repo)
    gen(repo, {"orphan.bin": b"local edit of data whose pointer goes away"})
    git(["checkout", "-q", "main"], repo)
    gen(repo, {"kept.csv": "v1", "gone.bin": b"gone"})
    run(["add", "kept.csv", "gone.bin"], repo)
    gen(repo, {"kept.csv": "my precious edit"})
    obj = _object(repo, b"gone")
    os.chmod(obj, 0o644)
    obj.unlink()
    os.unlink(repo / "gone.bin")

    lines = _one_error(run(["checkout"], repo, check=False), EXIT_ERROR)
    assert lines[0] == ("mlver: error: kept local changes that are not in the cache (use --force to replace "
                        "them, or `mlver commit` to record them):")
    assert lines[1] == "    kept.csv"
    assert "kept data whose pointer is gone: its content is not in the cache, or changed since mlver " \
           "placed it:" in lines
    assert "    orphan.bin" in lines and "not in the cache, so not checked out:" in lines
    assert "    gone.bin" in lines
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert hints == ["hint: delete it if nothing needs it, or track it again with `mlver add`",
                     "hint: run `mlver pull` to fetch them from a remote"]
    assert lines[-2:] == hints  # hints come last, after every list
    # nothing was lost
    assert (repo / "kept.csv").read_text() == "my precious edit"
    assert (repo / "orphan.bin").read_bytes() == b"local edit of data whose pointer goes away"
    assert not (repo / "gone.bin").exists()


def test_pull_lists_what_the_remote_lacks_and_what_checkout_kept_under_one_error(repo: Path,
                                                                                  tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"pushed.csv": "pushed v1", "local.bin": b"never pushed"})
    run(["add", "pushed.csv"], repo)
    run(["push"], repo)
    run(["add", "local.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    gen(clone, {"pushed.csv": "an edit in the clone"})

    proc = run(["pull"], clone, check=False)
    lines = _one_error(proc, EXIT_ERROR)
    assert lines[0] == "1 object(s) fetched from 'store' (9 B), 0 already there"
    assert lines[1] == "mlver: error: 1 object(s) are not on remote 'store', so not fetched:"
    assert any(ln.startswith("    local.bin (") for ln in lines)
    assert "kept local changes that are not in the cache (use --force to replace them, or `mlver commit` " \
           "to record them):" in lines
    assert "    pushed.csv" in lines
    assert proc.stderr.count("local.bin") == 1  # checkout does not name it again
    assert (clone / "pushed.csv").read_text() == "an edit in the clone"
    assert not (clone / "local.bin").exists()


def test_push_of_objects_missing_from_the_cache_is_one_error(repo: Path, tmp_path: Path) -> None:
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    gen(repo, {"a.bin": b"gone before the push"})
    run(["add", "a.bin"], repo)
    obj = _object(repo, b"gone before the push")
    os.chmod(obj, 0o644)
    obj.unlink()
    proc = run(["push", "--json"], repo, check=False)
    lines = _one_error(proc, EXIT_ERROR)
    assert lines[-1] == "hint: fetch them first (`mlver fetch`), or re-create them"
    assert "mlver: error: 1 object(s) are not in the cache, so not pushed:" in lines
    assert '"missing"' in proc.stdout  # the JSON document is still printed, on stdout


def test_pre_commit_hook_with_stale_data_exits_1_with_one_error(repo: Path) -> None:
    gen(repo, {"a.csv": "v1"})
    run(["add", "a.csv"], repo)
    git(["add", "a.csv.mlver"], repo)
    gen(repo, {"a.csv": "edited, not recorded"})
    lines = _one_error(run(["hook", "pre-commit"], repo, check=False), EXIT_DIFF)
    assert lines[0] == "mlver: error: tracked data differs from the pointers or lock being committed:"
    assert "    a.csv" in lines
    assert lines[-1].startswith("hint: run `mlver commit`")


def test_a_bug_is_an_internal_error_with_exit_4_and_a_request_to_report_it(repo: Path) -> None:
    gen(repo, {"a.csv": "data"})
    env = {"MLVER_FAILPOINT": "cache-before-rename:raise"}
    lines = _one_error(run(["add", "a.csv"], repo, check=False, env=env), EXIT_INTERNAL)
    assert lines[0] == "mlver: error: internal error: FailpointBug: failpoint cache-before-rename reached"
    assert lines[1:] == ["hint: this is a bug in mlver: run the command again with -v and report it with "
                         "the traceback"]
    assert (repo / "a.csv").read_text() == "data" and not (repo / "a.csv.mlver").exists()
    # -v, before or after the command name, shows the traceback
    for args in (["-v", "add", "a.csv"], ["add", "a.csv", "--verbose"]):
        proc = run(args, repo, check=False, env=env)
        assert proc.returncode == EXIT_INTERNAL
        assert "Traceback (most recent call last)" in proc.stderr
        assert proc.stderr.count("mlver: error: internal error: FailpointBug") == 1
        assert proc.stderr.rstrip().splitlines()[-1] == \
            "hint: this is a bug in mlver: please report it with the traceback above"


def test_v_inside_a_stage_command_does_not_turn_on_tracebacks(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages: [not, a, mapping\n"})
    proc = run(["stage", "add", "-n", "train", "--", "python", "-v", "train.py"], repo, check=False)
    lines = _one_error(proc, EXIT_ERROR)
    assert lines[0].startswith("mlver: error: mlver.yaml")
    # the same error with a real -v shows where it was raised
    proc = run(["-v", "stage", "add", "-n", "train", "--", "python", "-v", "train.py"], repo, check=False)
    assert proc.returncode == EXIT_ERROR and "Traceback (most recent call last)" in proc.stderr
    assert (repo / "mlver.yaml").read_text() == "stages: [not, a, mapping\n"


def test_sigterm_during_a_stage_stops_it_records_nothing_and_says_so(repo: Path) -> None:
    """A CI runner cancelling (SIGTERM) ends mlver as Ctrl-C does: the stage's command is
    stopped and not recorded, one line says so, exit 143, the lock is free again."""
    import signal
    import time

    from conftest import mlver_cmd

    gen(repo, {"mlver.yaml": "stages:\n  slow:\n    cmd: touch started && sleep 3 && echo s > s.txt\n"
                             "    outs: [s.txt]\n"})
    proc = subprocess.Popen([*mlver_cmd(), "repro"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not (repo / "started").exists() and time.monotonic() < deadline:  # the stage's command is running
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "mlver: error: terminated" and "Traceback" not in err
    time.sleep(3.5)  # longer than the command would have taken
    assert not (repo / "s.txt").exists() and not (repo / "mlver.lock").exists()
    assert run(["status"], repo).returncode == 0  # the lock was released


def test_a_reader_that_stops_early_is_not_an_error(repo: Path) -> None:
    """`mlver doctor | head -1`: the reader closed the pipe, the command did its work; it
    exits 0 (click turns it into exit 1, which means "differences found") and says nothing."""
    from conftest import mlver_cmd

    for args in (["doctor"], ["list"], ["status", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # every write fails with EPIPE
        try:
            proc = subprocess.run([*mlver_cmd(), *args], cwd=repo, stdout=write_end, stderr=subprocess.PIPE,
                                  text=True, timeout=120)
        finally:
            os.close(write_end)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr and "error" not in proc.stderr, (args, proc)
