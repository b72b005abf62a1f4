"""Folder remotes through the real CLI: round trips via `git clone`, partial and repeated
pushes, corrupt remote objects, unreachable remotes, and crash safety (failpoints and a
SIGKILL from outside at a random moment)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from conftest import gen, git, mlver_cmd, run, run_json


def digests(root: Path, rel: str) -> dict[str, str]:
    """Every file below root/rel -> sha256 (an independent hash, not mlver's)."""
    top = root / rel
    if top.is_file():
        return {rel: hashlib.sha256(top.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def remote_objects(store: Path) -> list[Path]:
    return sorted(p for p in (store / "files").rglob("*") if p.is_file()) if (store / "files").exists() else []


def make_data(repo: Path, n: int = 12, *, seed: int = 1) -> None:
    rnd = random.Random(seed)
    files: dict[str, str | bytes] = {f"data/images/{i:03}.bin": rnd.randbytes(rnd.randint(1, 5000)) for i in range(n)}
    files["data/images/sub/readme.txt"] = "nested\n"
    files["model.bin"] = rnd.randbytes(300_000)
    gen(repo, files)


def setup_remote(repo: Path, store: Path) -> None:
    run(["remote", "add", "-d", "store", str(store)], repo)
    run(["add", "data/images", "model.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)


def clone(repo: Path, dest: Path) -> Path:
    git(["clone", "-q", str(repo), str(dest)], repo.parent)
    return dest


def test_round_trip_through_git_clone(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    first = run_json(["push"], repo)
    assert first["transferred"] == 15  # 13 files, the folder's manifest, model.bin
    assert first["missing"] == [] and first["already"] == 0
    second = run_json(["push"], repo)
    assert second["transferred"] == 0 and second["bytes"] == 0 and second["already"] == 15

    other = clone(repo, tmp_path / "other")
    assert not (other / "model.bin").exists()
    pulled = run_json(["pull"], other)
    assert pulled["transferred"] == 15
    assert sorted(pulled["checkout"]["added"])[-1] == "model.bin"
    assert digests(other, "data") == digests(repo, "data")
    assert digests(other, "model.bin") == digests(repo, "model.bin")
    assert run_json(["status"], other)["clean"] is True
    remote_state = run_json(["status", "-r", "store"], other)["remote"]
    assert remote_state["local_only"] == [] and remote_state["missing"] == [] and remote_state["remote_only"] == []
    said = run(["status", "-r", "store"], other).stdout  # in sync: said so, not silence
    assert f"Remote 'store': all {remote_state['in_sync']} object(s) in sync." in said and remote_state["in_sync"] > 0
    # pulling again moves nothing
    assert run_json(["pull"], other)["transferred"] == 0


def test_partial_push_and_status_cloud(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    res = run_json(["push", "model.bin"], repo)
    assert res["transferred"] == 1
    assert len(remote_objects(store)) == 1

    st = run_json(["status", "--cloud"], repo)
    assert st["clean"] is False
    local_only = {i["path"] for i in st["remote"]["local_only"]}
    assert "data/images/sub/readme.txt" in local_only and "model.bin" not in local_only

    res = run_json(["push", "data/images.mlver"], repo)
    assert res["transferred"] == 14 and res["already"] == 0
    assert run_json(["push"], repo)["transferred"] == 0

    # a clone that fetched only one target has only that
    other = clone(repo, tmp_path / "other")
    run(["pull", "model.bin"], other)
    assert (other / "model.bin").read_bytes() == (repo / "model.bin").read_bytes()
    assert not (other / "data" / "images").exists()
    st = run_json(["status", "-r", "store"], other)["remote"]
    assert {i["path"] for i in st["remote_only"]} >= {"data/images", "data/images/000.bin"}


def test_status_remote_trusts_a_folders_manifest_and_push_confirms(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    assert run_json(["push"], repo)["transferred"] == 15
    state = run_json(["status", "-r", "store"], repo)["remote"]
    assert state["in_sync"] == 15 and state["local_only"] == []

    # without the folder's manifest on the remote, the folder shows as local only and its
    # files are found by listing the remote
    manifest = [p for p in remote_objects(store) if p.name.endswith(".manifest")]
    assert len(manifest) == 1
    manifest[0].unlink()
    state = run_json(["status", "-r", "store"], repo)["remote"]
    assert [i["path"] for i in state["local_only"]] == ["data/images"] and state["in_sync"] == 14
    assert run_json(["push"], repo)["transferred"] == 1

    # a file object gone while its manifest stays (a damaged remote): status trusts the
    # manifest, as DVC does; push confirms against the remote and sends it again
    lost = next(p for p in remote_objects(store) if p.read_bytes() == (repo / "data/images/003.bin").read_bytes())
    os.chmod(lost, 0o644)
    lost.unlink()
    assert run_json(["status", "-r", "store"], repo)["remote"]["local_only"] == []
    again = run_json(["push"], repo)
    assert again["transferred"] == 1 and again["already"] == 14
    assert lost.read_bytes() == (repo / "data/images/003.bin").read_bytes()


def test_folder_with_a_file_missing_from_the_cache_is_not_vouched_for(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    lost = digests_of_cache_objects(repo, (repo / "data/images/005.bin").read_bytes())
    os.chmod(lost, 0o644)
    lost.unlink()
    proc = run(["push", "--json"], repo, check=False)
    assert proc.returncode == 3
    # the folder's other files went up, its manifest did not: it would vouch for a file
    # the remote does not have
    assert not [p for p in remote_objects(store) if p.name.endswith(".manifest")]
    state = run_json(["status", "-r", "store"], repo)["remote"]
    assert [i["path"] for i in state["missing"]] == ["data/images/005.bin"]
    assert "data/images" in [i["path"] for i in state["local_only"]]
    # checkout of the folder, already in place, still says an object is missing
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "data/images/005.bin" in proc.stderr


def digests_of_cache_objects(repo: Path, content: bytes) -> Path:
    """The cache object holding ``content``."""
    return next(p for p in (repo / ".mlver" / "cache" / "files").rglob("*") if p.is_file() and p.read_bytes() == content)


def test_missing_objects_are_listed_exit_3(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    store.mkdir()  # an empty remote (a missing folder is an error of its own)
    setup_remote(repo, store)
    other = clone(repo, tmp_path / "other")
    # nothing was pushed: the clone's fetch lists what the remote lacks
    proc = run(["fetch"], other, check=False)
    assert proc.returncode == 3
    assert "not on remote 'store'" in proc.stderr
    assert "model.bin" in proc.stderr and "data/images" in proc.stderr
    assert "up to date" not in proc.stderr
    # pull: one error block naming each missing object once (checkout does not repeat them)
    proc = run(["pull"], other, check=False)
    assert proc.returncode == 3
    assert proc.stderr.count("mlver: error:") == 1 and proc.stderr.count("model.bin") == 1
    assert not (other / "model.bin").exists()
    # and the clone cannot push what it does not have
    proc = run(["push"], other, check=False)
    assert proc.returncode == 3
    assert "not in the cache" in proc.stderr and "model.bin" in proc.stderr


def test_rev_scopes_push_other_branches(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"a.txt": "version one\n"})
    run(["add", "a.txt"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "one"], repo)
    git(["tag", "v1"], repo)
    git(["checkout", "-q", "-b", "exp"], repo)
    gen(repo, {"a.txt": "version two\n"})
    run(["add", "a.txt"], repo)
    git(["commit", "-q", "-am", "two"], repo)
    git(["checkout", "-q", "main"], repo)
    run(["checkout"], repo)
    assert (repo / "a.txt").read_text() == "version one\n"

    assert run_json(["push"], repo)["transferred"] == 1  # the workspace only
    assert run_json(["push", "--all-branches"], repo)["transferred"] == 1  # exp's version
    assert run_json(["push", "--all-tags", "--all-commits"], repo)["transferred"] == 0

    other = clone(repo, tmp_path / "other")
    res = run_json(["fetch", "--rev", "origin/exp"], other)
    assert res["transferred"] == 2  # the workspace's a.txt and exp's
    git(["checkout", "-q", "exp"], other)
    run(["checkout"], other)
    assert (other / "a.txt").read_text() == "version two\n"


def test_corrupt_remote_object_refused_by_pull(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    run(["push"], repo)
    ptr = (repo / "model.bin.mlver").read_text()
    digest = [ln.split()[1] for ln in ptr.splitlines() if ln.startswith("digest:")][0]
    obj = store / "files" / "xxh3-128" / digest[:2] / digest[2:]
    data = bytearray(obj.read_bytes())
    data[100] ^= 0xFF
    obj.write_bytes(bytes(data))

    other = clone(repo, tmp_path / "other")
    proc = run(["pull"], other, check=False)
    assert proc.returncode == 3
    assert "corrupt" in proc.stderr and "model.bin" in proc.stderr and "store" in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing corrupt entered the cache, and nothing was placed for it
    cache_obj = other / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]
    assert not cache_obj.exists()
    assert not (other / "model.bin").exists()
    assert digests(other, "data") == digests(repo, "data")  # the rest came through

    # fsck on the remote reports it (exit 1)
    proc = run(["fsck", "-r", "store", "--json"], other, check=False)
    assert proc.returncode == 1
    import json

    doc = json.loads(proc.stdout)
    assert doc["corrupt"] == [{"digest": digest, "hash": "xxh3-128", "where": "remote:store"}]
    # ... and moves it to the remote's quarantine, so a push from the clone that has a
    # good copy sends it again, as pull's hint says
    assert not obj.exists() and (store / "quarantine" / digest).read_bytes() == bytes(data)
    assert run_json(["fsck", "-r", "store"], other)["corrupt"] == []
    proc = run(["push"], repo)
    assert "1 object(s) pushed" in proc.stderr
    run(["pull"], other)
    assert (other / "model.bin").read_bytes() == (repo / "model.bin").read_bytes()


def test_fsck_finds_flipped_byte_in_cache(repo: Path, tmp_path: Path) -> None:
    make_data(repo)
    store = tmp_path / "store"
    setup_remote(repo, store)
    run(["push"], repo)
    ptr = (repo / "model.bin.mlver").read_text()
    digest = [ln.split()[1] for ln in ptr.splitlines() if ln.startswith("digest:")][0]
    obj = repo / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    data = bytearray(obj.read_bytes())
    data[7] ^= 0x01
    obj.write_bytes(bytes(data))

    proc = run(["fsck", "--json"], repo, check=False)
    assert proc.returncode == 1
    import json

    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["checked"] == 15
    assert doc["corrupt"] == [{"digest": digest, "hash": "xxh3-128", "where": "cache"}]
    assert not obj.exists()
    assert (repo / ".mlver" / "cache" / "quarantine" / digest).exists()
    # clean now, and the remote copy is good
    assert run_json(["fsck", "-r", "store"], repo)["corrupt"] == []
    # pull brings a good copy back into the cache
    res = run_json(["fetch"], repo)
    assert res["transferred"] == 1
    assert obj.exists()
    assert run_json(["fsck"], repo)["corrupt"] == []


def test_unreachable_remote_one_line_error(repo: Path, tmp_path: Path) -> None:
    make_data(repo, 2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote folder should be\n")
    setup_remote(repo, blocker / "store")
    proc = run(["push"], repo, check=False)
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(lines) == 1 and "remote 'store'" in lines[0]
    assert "Traceback" not in proc.stderr

    run(["remote", "add", "-f", "-d", "store", "ssh://nobody@127.0.0.1:1/srv/store"], repo)
    proc = run(["push"], repo, check=False)
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(lines) == 1 and "remote 'store'" in lines[0] and "unreachable" in lines[0]
    assert "Traceback" not in proc.stderr


def test_read_error_on_a_folder_remote_is_one_line_naming_the_remote(repo: Path, tmp_path: Path) -> None:
    make_data(repo, 2)
    store = tmp_path / "store"
    setup_remote(repo, store)
    run(["push"], repo)
    # an object whose reads fail with an I/O error (as on a failing NFS mount): a link to
    # /proc/self/mem, which lists as a file and answers every read at offset 0 with EIO
    obj = next(p for p in remote_objects(store) if p.read_bytes() == (repo / "model.bin").read_bytes())
    os.chmod(obj, 0o644)
    obj.unlink()
    obj.symlink_to("/proc/self/mem")
    other = clone(repo, tmp_path / "other")
    proc = run(["pull"], other, check=False)
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(lines) == 1 and "remote 'store'" in lines[0] and obj.name in lines[0]
    assert "Traceback" not in proc.stderr


def test_interrupted_push_and_pull_failpoints(repo: Path, tmp_path: Path) -> None:
    make_data(repo, 20)
    store = tmp_path / "store"
    setup_remote(repo, store)
    run(["remote", "modify", "store", "packs", "false"], repo)  # kills between loose uploads (packs: test_packs.py)
    for point in ("remote-before-rename:5", "remote-after-upload:9"):
        proc = run(["push", "-j", "1"], repo, check=False, env={"MLVER_FAILPOINT": point})
        assert proc.returncode == -signal.SIGKILL
    # every object that is there is whole
    assert run_json(["fsck", "-r", "store"], repo)["corrupt"] == []
    partial = len(remote_objects(store))
    assert 0 < partial < 23
    res = run_json(["push"], repo)
    assert res["transferred"] == 23 - partial and res["already"] == partial

    other = clone(repo, tmp_path / "other")
    for point in ("cache-before-rename:4", "remote-after-download:7"):
        proc = run(["pull", "-j", "1"], other, check=False, env={"MLVER_FAILPOINT": point})
        assert proc.returncode == -signal.SIGKILL
    run(["pull"], other)
    assert digests(other, "data") == digests(repo, "data")
    assert run_json(["fsck"], other)["corrupt"] == []


def test_push_killed_from_outside_at_random_moment(repo: Path, tmp_path: Path) -> None:
    rnd = random.Random()
    files: dict[str, str | bytes] = {f"data/many/{i:04}.bin": os.urandom(rnd.randint(10_000, 60_000)) for i in range(300)}
    gen(repo, files)
    store = tmp_path / "store"
    store.mkdir()  # the kill may come before push creates it
    run(["remote", "add", "-d", "store", str(store)], repo)
    run(["add", "data/many"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "many"], repo)

    proc = subprocess.Popen([*mlver_cmd(), "push", "-j", "2"], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rnd.uniform(0.2, 1.2))  # a random moment, not a timing assertion
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert run_json(["fsck", "-r", "store"], repo)["corrupt"] == []
    res = run_json(["push"], repo)
    assert res["transferred"] + res["already"] == 301
    assert list((store / "tmp").glob("*")) == []  # the killed run's temporaries are gone
    assert run_json(["push"], repo)["transferred"] == 0

    other = clone(repo, tmp_path / "other")
    run(["pull"], other)
    assert digests(other, "data") == digests(repo, "data")


def test_run_cache_travels_with_push_and_pull(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"in.txt": "x\n"})
    run(["stage", "add", "-n", "double", "-d", "in.txt", "-o", "out.txt", "--",
         "cat in.txt in.txt > out.txt && echo ran >> ran.log"], repo)
    run(["repro"], repo)
    gen(repo, {"in.txt": "y\n"})
    run(["repro"], repo)  # a second run-cache entry, for y
    gen(repo, {"in.txt": "x\n"})
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "pipeline"], repo)

    res = run_json(["push", "--run-cache"], repo)
    assert res["run_cache"] == 2
    assert len([p for p in (store / "runs").rglob("*") if p.is_file()]) == 2
    assert run_json(["push", "--run-cache"], repo)["run_cache"] == 0

    other = clone(repo, tmp_path / "other")
    res = run_json(["pull", "--run-cache"], other)
    assert res["run_cache"] == 2 and res["missing"] == []
    assert (other / "out.txt").read_text() == "x\nx\n"
    # y's outputs come from the fetched run cache: the command does not run here
    runs_before = (other / "ran.log").read_text()
    gen(other, {"in.txt": "y\n"})
    run(["repro"], other)
    assert (other / "out.txt").read_text() == "y\ny\n"
    assert (other / "ran.log").read_text() == runs_before
