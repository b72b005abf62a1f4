"""gc scopes (SPEC "gc scope") through the real CLI, on the cache and on a folder remote."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import gen, git, run, run_json


def digest_of(repo: Path, pointer: str) -> str:
    text = (repo / pointer).read_text()
    return [ln.split()[1] for ln in text.splitlines() if ln.startswith("digest:")][0]


def cached(repo: Path, digest: str) -> bool:
    return (repo / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]).exists()


def two_branches(repo: Path) -> tuple[str, str]:
    """main has a.txt v1; branch exp has a.txt v2 (only there); the workspace is main."""
    gen(repo, {"a.txt": "one\n"})
    run(["add", "a.txt"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "v1"], repo)
    v1 = digest_of(repo, "a.txt.mlver")
    git(["checkout", "-q", "-b", "exp"], repo)
    gen(repo, {"a.txt": "two\n"})
    run(["add", "a.txt"], repo)
    git(["commit", "-q", "-am", "v2"], repo)
    v2 = digest_of(repo, "a.txt.mlver")
    git(["checkout", "-q", "main"], repo)
    run(["checkout"], repo)
    return v1, v2


def test_default_keeps_other_branches_workspace_flag_removes(repo: Path) -> None:
    v1, v2 = two_branches(repo)
    gen(repo, {"scratch.txt": "never committed anywhere\n"})
    run(["add", "scratch.txt"], repo)
    (repo / "scratch.txt.mlver").unlink()  # an object nothing references any more
    plan = run_json(["gc", "--dry-run"], repo)
    assert plan == {"version": 1, "objects": 1, "bytes": len("never committed anywhere\n"),
                    "kept_unpushed": {"objects": 0, "bytes": 0}}

    proc = run(["gc"], repo, check=False)  # not a terminal: -f is required
    assert proc.returncode == 2 and "-f" in proc.stderr
    run(["gc", "-f"], repo)
    assert cached(repo, v1) and cached(repo, v2)

    # v2 is committed (branch exp) and there is no remote: it is its last copy
    plan = run_json(["gc", "--workspace", "--dry-run"], repo)
    assert plan["objects"] == 0 and plan["kept_unpushed"] == {"objects": 1, "bytes": len("two\n")}
    run(["gc", "--workspace", "-f"], repo)
    assert cached(repo, v1) and cached(repo, v2)
    assert run_json(["gc", "--workspace", "--include-unpushed", "--dry-run"], repo)["objects"] == 1
    run(["gc", "--workspace", "--include-unpushed", "-f"], repo)
    assert cached(repo, v1) and not cached(repo, v2)
    assert (repo / "a.txt").read_text() == "one\n"


def test_scope_flags_and_stash_and_tags(repo: Path) -> None:
    """The scopes themselves (--include-unpushed: without a remote everything committed
    is also kept as its last copy, see tests/test_gc_safety.py)."""
    v1, v2 = two_branches(repo)
    unpushed = ["--include-unpushed", "--dry-run"]
    # exp is referenced by a tag only after the branch is deleted
    git(["tag", "keep", "exp"], repo)
    git(["branch", "-q", "-D", "exp"], repo)
    assert run_json(["gc", *unpushed], repo)["objects"] == 0
    assert run_json(["gc", "--all-tags", *unpushed], repo)["objects"] == 0
    assert run_json(["gc", "--all-branches", *unpushed], repo)["objects"] == 1
    plan = run_json(["gc", "--all-branches", "--dry-run"], repo)  # the tag's commit is reachable: kept
    assert plan["objects"] == 0 and plan["kept_unpushed"]["objects"] == 1
    git(["tag", "-d", "keep"], repo)
    # an uncommitted change that was stashed is kept by the default scope
    gen(repo, {"a.txt": "three\n"})
    run(["add", "a.txt"], repo)
    v3 = digest_of(repo, "a.txt.mlver")
    git(["stash", "-q"], repo)
    run(["checkout", "-f"], repo)
    plan = run_json(["gc", "--dry-run"], repo)
    assert plan["objects"] == 1  # v2: no ref reaches it any more
    run(["gc", "-f"], repo)
    assert cached(repo, v3) and cached(repo, v1) and not cached(repo, v2)
    # --all-commits keeps every commit reachable from a ref (the stash's too)
    assert run_json(["gc", "--all-commits", *unpushed], repo)["objects"] == 0
    # the stash is reachable history: -w keeps its data while no remote holds it
    plan = run_json(["gc", "-w", "--dry-run"], repo)
    assert plan["objects"] == 0 and plan["kept_unpushed"]["objects"] == 1
    assert run_json(["gc", "-w", *unpushed], repo)["objects"] == 1


def test_gc_cloud_on_folder_remote(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    v1, v2 = two_branches(repo)
    run(["push", "--all-branches"], repo)
    remote_v2 = store / "files" / "xxh3-128" / v2[:2] / v2[2:]
    assert remote_v2.exists()
    nothing = {"objects": 0, "bytes": 0}
    plan = run_json(["gc", "--cloud", "--dry-run"], repo)
    assert plan["remote"] == {"name": "store", "objects": 0, "bytes": 0, "kept_unpushed": nothing,
                              "kept_recent": nothing}
    # just pushed: younger than gc.grace (1 day by default), so kept on the remote
    doc = run_json(["gc", "-w", "--cloud", "--dry-run"], repo)
    assert doc["remote"]["objects"] == 0 and doc["remote"]["kept_recent"] == {"objects": 1, "bytes": len("two\n")}
    run(["config", "gc.grace", "0"], repo)
    proc = run(["gc", "-w", "--cloud", "--dry-run"], repo)
    assert "git fetch" in proc.stderr
    assert f"remote:store\tfiles/xxh3-128/{v2[:2]}/{v2[2:]}" in proc.stdout
    doc = json.loads(run(["gc", "-w", "--cloud", "--dry-run", "--json"], repo).stdout)
    assert doc["remote"]["objects"] == 1 and doc["remote"]["bytes"] == len("two\n")
    # v2 (branch exp) leaves the remote only because the cache keeps it
    assert doc["objects"] == 0 and doc["kept_unpushed"] == {"objects": 1, "bytes": len("two\n")}
    run(["gc", "-w", "-c", "-f"], repo)
    assert not remote_v2.exists() and cached(repo, v2)
    assert (store / "files" / "xxh3-128" / v1[:2] / v1[2:]).exists()
    # now the cache holds its only copy: a later -w keeps it
    run(["gc", "-w", "-f"], repo)
    assert cached(repo, v2)


def test_gc_asks_on_a_terminal(repo: Path) -> None:
    pexpect = __import__("pytest").importorskip("pexpect")
    from conftest import mlver_cmd

    v1, v2 = two_branches(repo)
    gen(repo, {"scratch.txt": "overwritten\n"})
    run(["add", "scratch.txt"], repo)
    scratch = digest_of(repo, "scratch.txt.mlver")
    (repo / "scratch.txt.mlver").unlink()  # referenced by no commit: follows the scope
    cmd = mlver_cmd()
    for answer, kept in (("n", True), ("y", False)):
        child = pexpect.spawn(cmd[0], [*cmd[1:], "gc", "--workspace"], cwd=str(repo), encoding="utf-8", timeout=60)
        # the prompt says what stays because no remote holds it (v2, branch exp)
        child.expect(r"kept: not on any remote: 1 object\(s\) \(4 B\)")
        child.expect(r"Delete 1 object\(s\) \(12 B\) from the cache\?")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert cached(repo, scratch) is kept
        assert cached(repo, v2)
    assert cached(repo, v1)


def test_gc_cloud_sweeps_old_upload_temporaries_even_with_nothing_to_delete(repo: Path, tmp_path: Path) -> None:
    import os
    import time

    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"a.bin": b"a"})
    run(["add", "a.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "a"], repo)
    run(["push"], repo)
    (store / "tmp").mkdir(exist_ok=True)
    old, fresh = store / "tmp" / "killed-upload", store / "tmp" / "running-upload"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    three_days_ago = time.time() - 3 * 24 * 3600
    os.utime(old, (three_days_ago, three_days_ago))
    proc = run(["gc", "--cloud", "-f"], repo)
    assert "Nothing to delete." in proc.stderr
    assert not old.exists() and fresh.exists()  # a day-old temporary goes, a recent one stays
