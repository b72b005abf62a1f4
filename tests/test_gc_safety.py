"""gc never deletes the last copy of committed data, never trusts a damaged manifest, and
never collects what a push in flight relies on (SPEC "gc scope"; issue 11 item 3). Real
CLI runs in real Git repositories, folder remotes, and real concurrent processes."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import time
from pathlib import Path

from conftest import gen, git, mlver_cmd, run, run_json

HASH = "xxh3-128"


def digest_of(repo: Path, pointer: str) -> str:
    text = (repo / pointer).read_text()
    return [ln.split()[1] for ln in text.splitlines() if ln.startswith("digest:")][0]


def cache_path(repo: Path, digest: str, manifest: bool = False) -> Path:
    return repo / ".mlver" / "cache" / "files" / HASH / digest[:2] / (digest[2:] + (".manifest" if manifest else ""))


def store_path(store: Path, digest: str, manifest: bool = False) -> Path:
    return store / "files" / HASH / digest[:2] / (digest[2:] + (".manifest" if manifest else ""))


def manifest_files(repo: Path, folder_pointer: str) -> list[str]:
    doc = json.loads(cache_path(repo, digest_of(repo, folder_pointer), True).read_bytes())
    return [e[1] for e in doc["entries"]]


def one_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def commit_all(repo: Path, message: str) -> None:
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", message], repo)


def branch_with_folder(repo: Path, branch: str = "other") -> tuple[str, list[str]]:
    """A branch whose folder ``d`` (3 files) exists nowhere else; the workspace is back on
    main, which does not have ``d``. Returns (manifest digest, file digests)."""
    git(["checkout", "-q", "-b", branch], repo)
    gen(repo, {"d/x.bin": b"x" * 1000, "d/y.bin": b"y" * 2000, "d/sub/z.bin": b"z" * 3000})
    run(["add", "d"], repo)
    commit_all(repo, f"data on {branch}")
    manifest, files = digest_of(repo, "d.mlver"), manifest_files(repo, "d.mlver")
    git(["checkout", "-q", "main"], repo)
    run(["checkout"], repo)
    return manifest, files


# --- the last-copy rule ---------------------------------------------------------------

def test_gc_w_keeps_the_only_copy_of_another_branch_until_the_remote_holds_it(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    commit_all(repo, "remote")
    manifest, files = branch_with_folder(repo)
    size = 1000 + 2000 + 3000 + cache_path(repo, manifest, True).stat().st_size

    # never pushed: kept whatever the scope, and said so (text, JSON, the real run)
    plan = run_json(["gc", "-w", "--dry-run"], repo)
    assert plan["objects"] == 0 and plan["kept_unpushed"] == {"objects": 4, "bytes": size}
    proc = run(["gc", "-w", "--dry-run"], repo)
    kept = [ln for ln in proc.stdout.splitlines() if ln.startswith("kept: not on any remote\tcache\t")]
    assert len(kept) == 4 and any(ln.endswith("\td/sub/z.bin") for ln in kept)
    assert "kept: not on any remote: 4 object(s)" in proc.stderr
    proc = run(["gc", "-w", "-f"], repo)
    assert "kept: not on any remote: 4 object(s)" in proc.stderr
    assert cache_path(repo, manifest, True).exists() and all(cache_path(repo, f).exists() for f in files)

    # pushed: the remote holds every object, so -w may now delete them from the cache —
    # except one a teammate's gc --cloud removed from the remote since (checked now)
    run(["push", "--all-branches"], repo)
    store_path(store, files[0]).unlink()
    plan = run_json(["gc", "-w", "--dry-run"], repo)
    assert plan["objects"] == 3
    assert plan["kept_unpushed"] == {"objects": 1, "bytes": cache_path(repo, files[0]).stat().st_size}
    run(["gc", "-w", "-f"], repo)
    assert cache_path(repo, files[0]).exists()
    assert not cache_path(repo, manifest, True).exists()
    assert not any(cache_path(repo, f).exists() for f in files[1:])

    # and what went is really on the remote: a fresh checkout of the branch gets it all
    git(["checkout", "-q", "other"], repo)
    run(["pull"], repo)
    assert (repo / "d" / "sub" / "z.bin").read_bytes() == b"z" * 3000


def test_no_remote_keeps_every_committed_object_include_unpushed_deletes(repo: Path) -> None:
    manifest, files = branch_with_folder(repo)
    # history, not only tips: v1 of a file on main, overwritten by a later commit
    gen(repo, {"a.txt": "v1\n"})
    run(["add", "a.txt"], repo)
    commit_all(repo, "v1")
    v1 = digest_of(repo, "a.txt.mlver")
    gen(repo, {"a.txt": "v2\n"})
    run(["add", "a.txt"], repo)
    commit_all(repo, "v2")
    # an overwritten version that no commit records follows the scope as before
    gen(repo, {"a.txt": "uncommitted\n"})
    run(["add", "a.txt"], repo)
    scratch = digest_of(repo, "a.txt.mlver")
    git(["checkout", "-q", "--", "a.txt.mlver"], repo)
    run(["checkout", "-f"], repo)

    scopes: list[list[str]] = [[], ["-w"], ["-a"], ["-T"], ["-A"]]
    for scope in scopes:
        plan = run_json(["gc", *scope, "--dry-run"], repo)
        assert plan["objects"] == 1, scope  # only the uncommitted version
    for scope in scopes:
        run(["gc", *scope, "-f"], repo)
        assert cache_path(repo, v1).exists() and cache_path(repo, manifest, True).exists()
        assert all(cache_path(repo, f).exists() for f in files)
    assert not cache_path(repo, scratch).exists()

    plan = run_json(["gc", "-w", "--include-unpushed", "--dry-run"], repo)
    assert plan["objects"] == 5 and plan["kept_unpushed"] == {"objects": 0, "bytes": 0}
    run(["gc", "-w", "--include-unpushed", "-f"], repo)
    assert not cache_path(repo, v1).exists() and not cache_path(repo, manifest, True).exists()
    assert (repo / "a.txt").read_text() == "v2\n"


def test_many_commits_sharing_a_pointer(repo: Path) -> None:
    """A long history where most commits share the same pointer blob: every version is
    found (the walk reads each distinct pointer blob once)."""
    versions = []
    for i in range(5):
        gen(repo, {"m.bin": f"model {i}\n"})
        run(["add", "m.bin"], repo)
        commit_all(repo, f"model {i}")
        versions.append(digest_of(repo, "m.bin.mlver"))
        for j in range(40):  # commits that change something else
            gen(repo, {"notes.txt": f"{i}.{j}\n"})
            commit_all(repo, f"notes {i}.{j}")
    plan = run_json(["gc", "-w", "--dry-run"], repo)
    assert plan["objects"] == 0 and plan["kept_unpushed"]["objects"] == 4
    assert run_json(["gc", "-w", "--include-unpushed", "--dry-run"], repo)["objects"] == 4


def test_cloud_committed_object_leaves_the_remote_only_while_the_cache_keeps_it(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    run(["config", "gc.grace", "0"], repo)
    commit_all(repo, "remote")
    manifest, files = branch_with_folder(repo)
    run(["push", "--all-branches"], repo)
    # a clone that never fetched the branch's data holds none of it in its cache
    other = tmp_path / "other"
    git(["clone", "-q", str(repo), str(other)], tmp_path)
    plan = run_json(["gc", "-w", "--cloud", "--dry-run"], other)  # origin/other is reachable there
    assert plan["remote"]["objects"] == 0 and plan["remote"]["kept_unpushed"]["objects"] == 4
    run(["gc", "-w", "--cloud", "-f"], other)
    assert store_path(store, manifest, True).exists() and all(store_path(store, f).exists() for f in files)
    # here the cache has it: it leaves the remote and stays in the cache
    run(["gc", "-w", "--cloud", "-f"], repo)
    assert not store_path(store, manifest, True).exists()
    assert cache_path(repo, manifest, True).exists() and all(cache_path(repo, f).exists() for f in files)
    # --include-unpushed: the scope alone decides
    run(["gc", "-w", "--include-unpushed", "-f"], repo)
    assert not cache_path(repo, manifest, True).exists()


# --- damaged manifests ------------------------------------------------------------------

def _flip_a_hex_digit(path: Path) -> None:
    data = path.read_bytes()
    doc = json.loads(data)
    digest = doc["entries"][0][1]
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    os.chmod(path, 0o644)
    path.write_bytes(data.replace(digest.encode(), flipped.encode()))
    json.loads(path.read_bytes())  # still valid JSON, still a well-formed manifest


def test_gc_refuses_a_damaged_manifest_before_deleting_anything(repo: Path) -> None:
    manifest, files = branch_with_folder(repo, "old")
    gen(repo, {"junk.txt": "referenced by nothing\n"})
    run(["add", "junk.txt"], repo)
    junk = digest_of(repo, "junk.txt.mlver")
    (repo / "junk.txt.mlver").unlink()
    _flip_a_hex_digit(cache_path(repo, manifest, True))
    before = sorted(p.name for p in (repo / ".mlver" / "cache" / "files").rglob("*"))
    for args in (["gc", "-f"], ["gc", "-w", "-f"], ["gc", "-a", "--dry-run"]):
        line = one_error(run(args, repo, check=False), 3)
        assert manifest in line, line
    assert all(cache_path(repo, f).exists() for f in files)
    assert cache_path(repo, junk).exists()
    assert sorted(p.name for p in (repo / ".mlver" / "cache" / "files").rglob("*")) == before


# --- gc.grace and a push racing a teammate's gc --cloud ---------------------------------

def test_gc_cloud_deletes_only_objects_older_than_grace(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    commit_all(repo, "remote")
    gen(repo, {"young.txt": "pushed a moment ago\n", "old.txt": "pushed two days ago\n"})
    run(["add", "young.txt", "old.txt"], repo)
    young, old = digest_of(repo, "young.txt.mlver"), digest_of(repo, "old.txt.mlver")
    run(["push"], repo)
    (repo / "young.txt.mlver").unlink()  # never committed: only the scope and the grace decide
    (repo / "old.txt.mlver").unlink()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(store_path(store, old), (two_days_ago, two_days_ago))

    plan = run_json(["gc", "--cloud", "--dry-run"], repo)
    assert plan["remote"]["objects"] == 1 and plan["remote"]["kept_recent"]["objects"] == 1
    proc = run(["gc", "--cloud", "-f"], repo)
    assert "kept: younger than gc.grace: 1 object(s)" in proc.stderr
    assert store_path(store, young).exists() and not store_path(store, old).exists()
    assert not cache_path(repo, young).exists()  # the cache is not subject to the grace

    run(["config", "gc.grace", "2h"], repo)
    run(["gc", "--cloud", "-f"], repo)
    assert store_path(store, young).exists()
    run(["config", "gc.grace", "0"], repo)
    run(["gc", "--cloud", "-f"], repo)
    assert not store_path(store, young).exists()


def test_gc_grace_is_validated(repo: Path) -> None:
    line = one_error(run(["config", "gc.grace", "soon"], repo, check=False), 2)
    assert "gc.grace" in line and "1d" in line
    for good in ("1d", "2h", "30m", "45s", "0", "1w"):
        run(["config", "gc.grace", good], repo)
    config = repo / ".mlver" / "config"
    config.write_text(config.read_text().replace("grace = 1w", "grace = later"))
    line = one_error(run(["gc", "-f"], repo, check=False), 3)
    assert "gc.grace" in line and "config" in line


def test_push_reuploads_what_a_teammates_gc_removed_while_it_ran(repo: Path, tmp_path: Path) -> None:
    origin, store = tmp_path / "origin.git", tmp_path / "store"
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"base.txt": "shared\n"})
    run(["add", "base.txt"], repo)
    commit_all(repo, "base")
    run(["push"], repo)
    git(["push", "-q", "origin", "main"], repo)
    teammate = tmp_path / "teammate"
    git(["clone", "-q", str(origin), str(teammate)], tmp_path)
    run(["config", "gc.grace", "0"], teammate)  # an aggressive teammate

    # A: a new folder version, committed but not yet on Git's origin; its objects are
    # pushed once, then a second push finds them there (skipped) and pauses before its end
    gen(repo, {"d/a.bin": b"a" * 5000, "d/b.bin": b"b" * 6000, "m.bin": b"model" * 100})
    run(["add", "d", "m.bin"], repo)
    commit_all(repo, "new data")
    run(["push"], repo)
    manifest, files, model = digest_of(repo, "d.mlver"), manifest_files(repo, "d.mlver"), digest_of(repo, "m.bin.mlver")
    ours = [store_path(store, manifest, True), store_path(store, model), *(store_path(store, f) for f in files)]
    assert all(p.exists() for p in ours)

    release = tmp_path / "release"
    env = dict(os.environ, MLVER_PAUSEPOINT=f"push-before-confirm:{release}")
    push = subprocess.Popen([*mlver_cmd(), "push", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240  # a bound for a hung test, not a timing assertion
        while not Path(f"{release}.paused").exists():
            assert push.poll() is None, push.communicate()
            assert time.monotonic() < deadline, "push never reached its confirmation"
            time.sleep(0.05)
        # B knows nothing of A's commit: its gc --cloud collects A's objects
        proc = run(["gc", "--cloud", "-f"], teammate)
        assert "from remote 'store'" in proc.stderr
        assert not any(p.exists() for p in ours)
    finally:
        release.touch()
        out, err = push.communicate(timeout=240)
    assert push.returncode == 0, err
    res = json.loads(out)
    assert res["transferred"] == 4 and res["already"] == 1 and res["missing"] == []  # base.txt stayed
    assert all(p.exists() for p in ours)

    git(["push", "-q", "origin", "main"], repo)
    fresh = tmp_path / "fresh"
    git(["clone", "-q", str(origin), str(fresh)], tmp_path)
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == []
    assert (fresh / "d" / "b.bin").read_bytes() == b"b" * 6000
    assert (fresh / "m.bin").read_bytes() == b"model" * 100
    assert (fresh / "base.txt").read_text() == "shared\n"


def test_pause_failpoint_is_inert_without_its_step(repo: Path, tmp_path: Path) -> None:
    """A pause set for another step never stops a command."""
    env = {"MLVER_PAUSEPOINT": f"no-such-step:{tmp_path / 'never'}"}
    run(["status"], repo, env=env, timeout=120)
    assert not (tmp_path / "never.paused").exists()


RUN_STAGE = ("stages:\n  train:\n    cmd: python3 -c \"import sys; open('model.txt', 'w').write(open('p.yaml').read() * 100)\"\n"
             "    params: [{p.yaml: [lr]}]\n    outs: [model.txt]\n")


def test_run_cache_objects_are_kept_unless_no_run_cache(repo: Path) -> None:
    """An uncommitted run's output lives only in the run cache: gc keeps it (the run
    cache restores it), `gc --no-run-cache` collects it and the entry naming it, and the
    next repro of those params runs the command again."""
    gen(repo, {"p.yaml": "lr: 1\n", "mlver.yaml": RUN_STAGE})
    run(["repro"], repo)
    assert len([p for p in (repo / ".mlver" / "cache" / "runs").rglob("*") if p.is_file()]) == 1
    commit_all(repo, "lr 1")
    gen(repo, {"p.yaml": "lr: 2\n"})
    run(["repro"], repo)
    lr2 = (repo / "model.txt").read_bytes()
    git(["checkout", "-q", "--", "p.yaml", "mlver.lock"], repo)
    run(["checkout"], repo)
    assert run_json(["gc", "--dry-run", "--json"], repo)["objects"] == 0  # the run cache keeps lr 2's model
    plan = run_json(["gc", "--dry-run", "--no-run-cache", "--json"], repo)
    assert plan["objects"] == 1 and plan["bytes"] == len(lr2)
    proc = run(["gc", "-f", "--no-run-cache"], repo)
    assert "Deleted 1 object(s)" in proc.stderr and "1 run-cache entry" in proc.stderr
    entries = [p for p in (repo / ".mlver" / "cache" / "runs").rglob("*") if p.is_file()]
    assert len(entries) == 1  # lr 1's entry stays: its model is committed, so kept
    gen(repo, {"p.yaml": "lr: 2\n"})
    proc = run(["repro"], repo)
    assert "Running stage 'train'" in proc.stderr  # not restored: its output was collected
    assert (repo / "model.txt").read_bytes() == lr2
    gen(repo, {"p.yaml": "lr: 1\n"})
    assert "Restored stage 'train' from the run cache" in run(["repro"], repo).stderr  # lr 1 is committed: kept


def test_a_cache_shared_by_clones_keeps_what_each_clone_references(tmp_path: Path) -> None:
    """`cache.dir` shared by two clones: gc in one (even -A -f, even --include-unpushed)
    keeps what the other's commits and workspace reference; a clone that is gone stops
    counting; a registration from another machine stops gc, naming it."""
    shared = tmp_path / "shared"
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    git(["init", "-q"], a)
    run(["init"], a)
    run(["config", "cache.dir", str(shared)], a)
    gen(a, {"a.txt": "a1\n"})
    run(["add", "a.txt"], a)
    git(["add", "-A"], a)
    git(["commit", "-q", "-m", "a1"], a)
    git(["clone", "-q", str(a), str(b)], tmp_path)
    gen(b, {"b.txt": "b1\n"})
    run(["add", "b.txt"], b)
    git(["add", "-A"], b)
    git(["commit", "-q", "-m", "b1"], b)
    gen(b, {"b.txt": "b2\n"})
    run(["commit", "-m", "b2"], b)  # b1 is now only in B's history, and only in the shared cache
    for args in (["gc", "-A", "-f"], ["gc", "-f", "--workspace", "--include-unpushed"]):
        proc = run(args, a)
        assert "sharing this cache" in proc.stderr + proc.stdout and str(b) in proc.stderr + proc.stdout
    assert run_json(["gc", "--dry-run", "--json"], a)["shared_with"] == [str(b)]
    git(["checkout", "-q", "HEAD~1"], b)
    run(["checkout"], b)
    assert (b / "b.txt").read_text() == "b1\n"
    # another machine's project using this cache: gc cannot see its refs, so it stops
    entry = shared / "projects" / "0123456789abcdef"
    entry.write_text(json.dumps({"root": "/elsewhere/project", "host": "another-host"}))
    proc = run(["gc", "-f", "-A"], a, check=False)
    assert proc.returncode == 3 and "another-host" in proc.stderr and str(entry) in proc.stderr, proc.stderr
    entry.unlink()
    # a clone moved elsewhere: gc cannot tell moved from deleted, so it stops, naming it
    moved = tmp_path / "B-moved"
    b.rename(moved)
    proc = run(["gc", "-f", "-A"], a, check=False)
    assert proc.returncode == 3 and "not there any more" in proc.stderr and str(b) in proc.stderr, proc.stderr
    assert f"remove {shared / 'projects'}" in proc.stderr  # the way out names the entry
    run(["checkout"], moved)  # a writing command there records its new place, in the same entry
    roots = sorted(json.loads(p.read_text())["root"] for p in (shared / "projects").iterdir())
    assert roots == sorted([str(a), str(moved)]), roots
    # a copy of a clone (`cp -r`) starts with the same id: its first command takes a new one,
    # so the original stays registered
    copy = tmp_path / "B-copy"
    shutil.copytree(moved, copy, symlinks=True)
    run(["checkout"], copy)
    roots = sorted(json.loads(p.read_text())["root"] for p in (shared / "projects").iterdir())
    assert roots == sorted([str(a), str(moved), str(copy)]), roots
    shutil.rmtree(copy)
    [copy_entry] = [p for p in (shared / "projects").iterdir() if json.loads(p.read_text())["root"] == str(copy)]
    copy_entry.unlink()  # the hint's way out for a deleted clone
    run(["gc", "-f", "--workspace", "--include-unpushed"], a)
    git(["checkout", "-q", "-"], moved)  # back to b2, then b1 again: both still in the cache
    run(["checkout"], moved)
    assert (moved / "b.txt").read_text() == "b2\n"
    git(["checkout", "-q", "-"], moved)
    run(["checkout"], moved)
    assert (moved / "b.txt").read_text() == "b1\n"
    assert run_json(["gc", "--dry-run", "--json"], a)["shared_with"] == [str(moved)]
    # experiment runs and `repro --verify` use scratch worktrees in .mlver/tmp: never recorded
    assert all(".mlver/tmp" not in json.loads(p.read_text())["root"] for p in (shared / "projects").iterdir())
    assert run(["checkout"], a).returncode == 0 and (a / "a.txt").read_text() == "a1\n"


def test_a_malformed_pointer_in_history_is_skipped_with_a_warning(repo: Path, tmp_path: Path) -> None:
    """History cannot be mended: a commit's unreadable pointer names no data, so gc and
    `push -A` pass over it with one warning naming it, and the rest of the protection
    holds (the last copy of other committed data stays)."""
    gen(repo, {"a.txt": "1\n"})
    run(["add", "a.txt"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "a"], repo)
    good = (repo / "a.txt.mlver").read_text()
    (repo / "a.txt.mlver").write_text(good + "digest: [\n")
    git(["commit", "-q", "-am", "broken"], repo)
    (repo / "a.txt.mlver").write_text(good)
    gen(repo, {"a.txt": "2\n"})
    run(["add", "a.txt"], repo)
    git(["commit", "-q", "-am", "fixed"], repo)
    proc = run(["gc", "-f", "--workspace"], repo)
    assert "skipped a commit's record that cannot be read" in proc.stderr and "a.txt.mlver" in proc.stderr
    assert "kept: not on any remote: 1 object(s)" in proc.stderr  # version 1, committed, on no remote
    git(["checkout", "-q", "HEAD~2"], repo)
    run(["checkout"], repo)
    assert (repo / "a.txt").read_text() == "1\n"
    git(["checkout", "-q", "-"], repo)
    run(["checkout"], repo)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    proc = run(["push", "-A"], repo)
    assert "skipped a commit's record" in proc.stderr and "2 object(s) pushed" in proc.stderr + proc.stdout


def test_gc_cloud_stops_when_a_git_remote_cannot_be_asked_for_shared_experiments(repo: Path, tmp_path: Path) -> None:
    """gc --cloud must know the experiments teammates shared on each Git remote: one it
    cannot reach stops it with one line naming it, and nothing is deleted."""
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"a.txt": "1\n"})
    run(["add", "a.txt"], repo)
    run(["push"], repo)
    gen(repo, {"a.txt": "2\n"})
    run(["add", "a.txt"], repo)  # version 1 is now unreferenced: gc would take it
    run(["config", "gc.grace", "0"], repo)
    git(["remote", "add", "origin", str(tmp_path / "no-such-origin.git")], repo)
    before = sorted(p for p in store.rglob("*") if p.is_file())
    proc = run(["gc", "--cloud", "-f", "--workspace", "--all-experiments"], repo, check=False)
    assert proc.returncode == 3 and "'origin'" in proc.stderr and "experiments" in proc.stderr, proc.stderr
    assert "does not appear to be a git repository" in proc.stderr  # git's cause, not its advice
    assert sorted(p for p in store.rglob("*") if p.is_file()) == before
