"""Packs and the remote inventory (SPEC "Remote layout and packs", issue #12): many small
objects travel in a few packs, are fetched back with ranged reads and verified, and stay
safe under kills, corruption, gc --cloud and concurrent pushes. Real CLI runs in real Git
repositories, against a folder remote and moto's S3 server on loopback."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import gen, git, mlver_cmd, run, run_json

try:
    from test_remote_s3 import BUCKET, Moto, moto  # noqa: F401 - the fixture, for the S3 cases
except (ImportError, pytest.skip.Exception):  # moto or s3fs missing: the S3 cases skip loudly
    Moto = None  # type: ignore[assignment,misc]
try:
    from test_remote_ssh import sshd  # noqa: F401 - the fixture, for the SSH cases
except (ImportError, pytest.skip.Exception):  # sshfs missing: the SSH cases skip loudly
    sshd = None  # type: ignore[assignment]


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small_files(n: int, seed: int, lo: int = 1, hi: int = 4096, folder: str = "data/many") -> dict[str, bytes]:
    rnd = random.Random(seed)
    return {f"{folder}/{i // 500}/{i:05}.bin": rnd.randbytes(rnd.randint(lo, hi)) for i in range(n)}


def commit(repo: Path, msg: str) -> None:
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", msg], repo)


def clone(repo: Path, dest: Path) -> Path:
    git(["clone", "-q", str(repo), str(dest)], dest.parent)
    return dest


class Store:
    """The remote's objects, whichever backend holds them."""

    def __init__(self, kind: str, root: Path | None = None, server: Any = None) -> None:
        self.kind, self.root, self.server = kind, root, server

    def attach(self, repo: Path) -> None:
        if self.kind == "folder":
            run(["remote", "add", "-d", "store", str(self.root)], repo)
        elif self.kind == "ssh":  # the server is this machine: the store is a folder here too
            assert self.root is not None
            self.root.mkdir(exist_ok=True)
            run(["remote", "add", "-d", "store", f"ssh://{self.server.user}@127.0.0.1:{self.server.port}{self.root}"],
                repo)
            # credentials in the user's config (XDG_CONFIG_HOME of this test), so clones have them too
            run(["remote", "modify", "--global", "store", "keyfile", str(self.server.user_key)], repo)
            run(["remote", "modify", "--global", "store", "known_hosts", str(self.server.known_hosts)], repo)
        else:
            run(["remote", "add", "-d", "store", f"s3://{BUCKET}/store"], repo)
            run(["remote", "modify", "store", "endpoint_url", self.server.endpoint], repo)

    def keys(self, prefix: str = "") -> list[str]:
        if self.kind in ("folder", "ssh"):
            assert self.root is not None
            base = self.root / prefix if prefix else self.root
            return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file()) if base.exists() else []
        return [k[len("store/"):] for k in self.server.keys(f"store/{prefix}")]

    def records(self) -> list[str]:
        """The inventory records (``index/names``, their list for http readers, aside)."""
        return [k for k in self.keys("index/") if k.endswith(".json")]

    def read(self, key: str) -> bytes:
        if self.kind in ("folder", "ssh"):
            assert self.root is not None
            return (self.root / key).read_bytes()
        client = self.server.client()
        try:
            return client.get_object(Bucket=BUCKET, Key=f"store/{key}")["Body"].read()
        finally:
            client.close()

    def write(self, key: str, data: bytes) -> None:
        if self.kind in ("folder", "ssh"):
            assert self.root is not None
            p = self.root / key
            os.chmod(p, 0o644)
            p.write_bytes(data)
            return
        client = self.server.client()
        try:
            client.put_object(Bucket=BUCKET, Key=f"store/{key}", Body=data)
        finally:
            client.close()


@pytest.fixture(params=["folder", "s3", "ssh"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "folder":
        yield Store("folder", tmp_path / "store")
        return
    if request.param == "ssh":
        if sshd is None:
            pytest.skip("ssh: sshfs is needed for the SSH cases -- NOT TESTED HERE")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        yield Store("ssh", tmp_path / "ssh-store", request.getfixturevalue("sshd"))
        return
    if Moto is None:
        pytest.skip("s3: moto[server] and s3fs are needed for the S3 cases -- NOT TESTED HERE")
    yield Store("s3", server=request.getfixturevalue("moto"))


def test_many_small_files_travel_in_a_few_packs(repo: Path, tmp_path: Path, store: Store) -> None:
    rnd = random.Random(11)
    big = {f"big/{i}.bin": rnd.randbytes(1_500_000 + i) for i in range(2)}
    gen(repo, {**small_files(5000, 1), **big})
    store.attach(repo)
    run(["add", "data/many", "big"], repo)
    commit(repo, "data")

    res = run_json(["push"], repo)
    assert res["transferred"] == 5000 + 2 + 2 and res["missing"] == [] and res["corrupt"] == []
    keys = store.keys()
    # two large loose files, two manifests, a pack or two with their tables, one record
    assert len(keys) <= 2 + 2 + 12, keys
    assert len(store.records()) == 1 and "index/names" in keys
    assert [k for k in keys if k.endswith(".pack")] and all(k.startswith("packs/") for k in keys if k.endswith(".pack"))
    loose = [k for k in keys if k.startswith("files/")]
    assert len(loose) == 4 and sum(k.endswith(".manifest") for k in loose) == 2

    # a push that sends nothing writes nothing
    res = run_json(["push"], repo)
    assert res["transferred"] == 0 and res["already"] == 5004
    assert store.keys() == keys
    doc = run_json(["status", "-r", "store"], repo)["remote"]
    assert doc["in_sync"] == 5004 and doc["local_only"] == [] and doc["missing"] == []

    other = clone(repo, tmp_path / "other")
    res = run_json(["pull"], other)
    assert res["transferred"] == 5004 and res["missing"] == [] and res["corrupt"] == []
    assert files_of(other / "data") == files_of(repo / "data")
    assert files_of(other / "big") == files_of(repo / "big")
    assert run_json(["fsck", "-r", "store"], other)["corrupt"] == []


def test_mixed_sizes_and_thresholds(repo: Path, tmp_path: Path) -> None:
    store = Store("folder", tmp_path / "store")
    rnd = random.Random(2)
    gen(repo, {f"d/{i:03}.bin": rnd.randbytes(rnd.choice([100, 30_000, 300_000])) for i in range(60)})
    store.attach(repo)
    run(["remote", "modify", "store", "pack_threshold", "64k"], repo)
    run(["remote", "modify", "store", "pack_size", "1m"], repo)
    run(["add", "d"], repo)
    commit(repo, "d")
    run(["push"], repo)
    sizes = [len(v) for v in files_of(repo / "d").values()]
    loose = [k for k in store.keys("files/") if not k.endswith(".manifest")]
    assert len(loose) == sum(s >= 64 << 10 for s in sizes)  # large ones stay loose
    assert store.keys("packs/")  # the rest went packed
    other = clone(repo, tmp_path / "other")
    run(["pull"], other)
    assert files_of(other / "d") == files_of(repo / "d")


def test_packs_false_keeps_a_remote_loose(repo: Path, tmp_path: Path) -> None:
    store = Store("folder", tmp_path / "store")
    gen(repo, small_files(50, 3))
    store.attach(repo)
    run(["remote", "modify", "store", "packs", "false"], repo)
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    keys = store.keys()
    assert len(keys) == 51 and all(k.startswith("files/") for k in keys)


def test_bad_pack_settings_are_refused_when_set(repo: Path, tmp_path: Path) -> None:
    Store("folder", tmp_path / "store").attach(repo)
    for key, value in (("packs", "maybe"), ("pack_size", "big"), ("pack_threshold", "0")):
        proc = run(["remote", "modify", "store", key, value], repo, check=False)
        assert proc.returncode == 2, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
        assert len(errors) == 1 and key in errors[0] and "Traceback" not in proc.stderr


def test_an_old_loose_remote_keeps_working_before_and_after_the_first_packed_push(repo: Path,
                                                                                  tmp_path: Path) -> None:
    store = Store("folder", tmp_path / "store")
    gen(repo, small_files(40, 4, folder="old"))
    store.attach(repo)
    run(["remote", "modify", "store", "packs", "false"], repo)  # what an older mlver wrote
    run(["add", "old"], repo)
    commit(repo, "old data")
    run(["push"], repo)
    assert not store.keys("packs/") and not store.keys("index/")
    run(["remote", "modify", "store", "packs", "true"], repo)
    commit(repo, "packs on")
    first = clone(repo, tmp_path / "first")
    run(["pull"], first)
    assert files_of(first / "old") == files_of(repo / "old")

    gen(repo, small_files(40, 5, folder="new"))
    run(["add", "new"], repo)
    commit(repo, "new data")
    assert run_json(["push"], repo)["transferred"] == 41
    assert store.keys("packs/") and len(store.records()) == 1
    second = clone(repo, tmp_path / "second")
    res = run_json(["pull"], second)
    assert res["missing"] == [] and res["transferred"] == 82
    assert files_of(second / "old") == files_of(repo / "old")
    assert files_of(second / "new") == files_of(repo / "new")


def _flip_in_pack(store: Store) -> None:
    pack = [k for k in store.keys("packs/") if k.endswith(".pack")][0]
    data = bytearray(store.read(pack))
    data[10] ^= 0x01  # inside the pack's first object
    store.write(pack, bytes(data))


def test_a_corrupt_packed_object_is_refused_found_by_fsck_and_healed_by_push(repo: Path, tmp_path: Path,
                                                                            store: Store) -> None:
    gen(repo, small_files(30, 6, lo=100))
    store.attach(repo)
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    _flip_in_pack(store)

    other = clone(repo, tmp_path / "other")
    proc = run(["pull", "--json"], other, check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    [bad] = doc["corrupt"]
    assert bad["path"].startswith("data/many/")
    assert run_json(["fsck"], other)["corrupt"] == []  # nothing bad entered the cache

    proc = run(["fsck", "-r", "store", "--json"], other, check=False)
    assert proc.returncode == 1
    [found] = json.loads(proc.stdout)["corrupt"]
    assert found["digest"] == bad["digest"] and found["where"] == "remote:store" and found["pack"]
    text = run(["fsck", "-r", "store"], other, check=False).stdout
    assert bad["digest"] in text or text == ""  # reported once; marked bad, so skipped from now on

    res = run_json(["push"], repo)  # a clone with a good copy heals the remote
    assert res["transferred"] == 1
    fresh = clone(repo, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["corrupt"] == [] and res["missing"] == []
    assert files_of(fresh / "data") == files_of(repo / "data")
    assert run_json(["fsck", "-r", "store"], fresh)["corrupt"] == []


def test_gc_cloud_keeps_referenced_packed_objects_and_drops_unreferenced(repo: Path, tmp_path: Path,
                                                                        store: Store) -> None:
    v1 = small_files(40, 7, lo=1000, hi=3000)
    gen(repo, v1)
    store.attach(repo)
    run(["add", "data/many"], repo)
    commit(repo, "v1")
    run(["push"], repo)
    [old_pack] = [k for k in store.keys("packs/") if k.endswith(".pack")]
    # v2 keeps 10 of v1's files and replaces 30: v1's pack is mostly unreferenced
    names = sorted(v1)
    for n in names[10:]:
        (repo / n).unlink()
    gen(repo, small_files(30, 8, lo=1000, hi=3000, folder="data/many/v2"))
    run(["add", "data/many"], repo)
    commit(repo, "v2")
    run(["push"], repo)
    run(["config", "gc.grace", "0"], repo)

    plan = run_json(["gc", "--cloud", "--dry-run", "--include-unpushed"], repo)["remote"]
    assert plan["packs"]["repack"] == 1 and plan["objects"] == 31  # 30 files and v1's manifest
    run(["gc", "--cloud", "-f", "--include-unpushed"], repo)
    keys = store.keys()
    assert old_pack not in keys  # rewritten, and (gc.grace 0) removed at once
    assert run_json(["gc", "--cloud", "--dry-run", "--include-unpushed"], repo)["remote"]["objects"] == 0

    fresh = clone(repo, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == [] and res["transferred"] == 41
    assert files_of(fresh / "data") == files_of(repo / "data")
    assert run_json(["fsck", "-r", "store"], fresh)["corrupt"] == []
    # v1's other files left the remote; its kept ones did not
    git(["checkout", "-q", "HEAD~1"], fresh)
    proc = run(["checkout", "--json"], fresh, check=False)
    assert proc.returncode != 0 or json.loads(proc.stdout)["missing"]


@pytest.mark.parametrize("point", ["pack-mid-write:7", "push-before-record", "remote-before-rename:2"])
def test_a_push_killed_mid_pack_leaves_no_half_pack_visible(repo: Path, tmp_path: Path, point: str) -> None:
    store = Store("folder", tmp_path / "store")
    gen(repo, small_files(200, 9, lo=500))
    store.attach(repo)
    run(["add", "data/many"], repo)
    commit(repo, "data")
    proc = run(["push", "-j", "1"], repo, check=False, env={"MLVER_FAILPOINT": point})
    assert proc.returncode == -signal.SIGKILL
    assert store.records() == []  # no record: whatever pack got written is invisible
    other = clone(repo, tmp_path / "other")
    doc = run_json(["status", "-r", "store"], other)["remote"]
    assert doc["in_sync"] == 0
    assert run_json(["fsck", "-r", "store"], repo)["corrupt"] == []
    res = run_json(["push"], repo)
    assert res["transferred"] == 201 and res["missing"] == []
    assert (store.root / "tmp").exists() is False or list((store.root / "tmp").iterdir()) == []  # type: ignore[operator]
    res = run_json(["pull"], other)
    assert res["missing"] == [] and files_of(other / "data") == files_of(repo / "data")


def test_pushes_killed_at_random_instants_converge(repo: Path, tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    store = Store("folder", tmp_path / "store")
    gen(repo, small_files(600, seed, lo=500, hi=8000))
    store.attach(repo)
    run(["remote", "modify", "store", "pack_size", "256k"], repo)
    run(["add", "data/many"], repo)
    commit(repo, "data")
    for _ in range(20):  # each kill meets the debris of the ones before
        proc = subprocess.Popen([*mlver_cmd(), "push", "-j", "2"], cwd=repo, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.2, 1.2))  # a random instant, not a timing assertion
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert run_json(["fsck", "-r", "store"], repo)["corrupt"] == [], f"seed {seed}"
    res = run_json(["push"], repo)
    assert res["transferred"] + res["already"] == 601 and res["missing"] == [], f"seed {seed}"
    assert run_json(["push"], repo)["transferred"] == 0
    other = clone(repo, tmp_path / "other")
    run(["pull"], other)
    assert files_of(other / "data") == files_of(repo / "data"), f"seed {seed}"


def _wait_paused(proc: subprocess.Popen, flag: Path) -> None:
    deadline = time.monotonic() + 240  # a bound for a hung test, not a timing assertion
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the push never reached its pause"
        time.sleep(0.05)


def test_push_uploads_again_what_a_teammates_gc_dropped_from_a_pack_while_it_ran(repo: Path,
                                                                                tmp_path: Path) -> None:
    origin, store = tmp_path / "origin.git", Store("folder", tmp_path / "store")
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    store.attach(repo)
    commit(repo, "remote")
    git(["push", "-q", "origin", "HEAD:main"], repo)
    teammate = clone(origin, tmp_path / "teammate")
    run(["config", "gc.grace", "0"], teammate)  # an aggressive teammate

    # A: a folder committed but not yet on Git's origin, pushed once (packed); a second
    # push finds it there (skipped), pauses before its end, and B's gc drops the pack
    gen(repo, small_files(60, 10, lo=200))
    run(["add", "data/many"], repo)
    commit(repo, "new data")
    run(["push"], repo)
    assert store.keys("packs/")
    release = tmp_path / "release"
    env = dict(os.environ, MLVER_PAUSEPOINT=f"push-before-confirm:{release}")
    push = subprocess.Popen([*mlver_cmd(), "push", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_paused(push, Path(f"{release}.paused"))
        run(["gc", "--cloud", "-f"], teammate)
        assert not [k for k in store.keys("packs/") if k.endswith(".pack")]  # B collected A's pack
    finally:
        release.touch()
        out, err = push.communicate(timeout=240)
    assert push.returncode == 0, err
    res = json.loads(out)
    assert res["missing"] == [] and res["transferred"] >= 60

    git(["push", "-q", "origin", "HEAD:main"], repo)
    fresh = clone(origin, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == []
    assert files_of(fresh / "data") == files_of(repo / "data")


def test_two_clones_push_at_once_and_gc_runs_meanwhile_nothing_is_lost(repo: Path, tmp_path: Path) -> None:
    origin, store = tmp_path / "origin.git", Store("folder", tmp_path / "store")
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    store.attach(repo)
    commit(repo, "remote")
    git(["push", "-q", "origin", "HEAD:main"], repo)
    a, b = clone(origin, tmp_path / "a"), clone(origin, tmp_path / "b")
    gen(a, small_files(300, 12, folder="from_a"))
    gen(b, small_files(300, 13, folder="from_b"))
    for c, name in ((a, "from_a"), (b, "from_b")):
        run(["add", name], c)
        commit(c, name)
    gcer = clone(origin, tmp_path / "gcer")  # a third teammate, who knows neither commit
    run(["config", "gc.grace", "0"], gcer)
    releases = {c: tmp_path / f"release-{c.name}" for c in (a, b)}
    procs = {c: subprocess.Popen([*mlver_cmd(), "push", "--json"], cwd=c, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, MLVER_PAUSEPOINT=f"push-before-confirm:{releases[c]}"))
             for c in (a, b)}
    try:
        for c, p in procs.items():
            _wait_paused(p, Path(f"{releases[c]}.paused"))
        # a gc that knows nothing of either commit runs while both pushes are in flight
        run(["gc", "--cloud", "-f"], gcer)
        assert not [k for k in store.keys("packs/") if k.endswith(".pack")]
    finally:
        for r in releases.values():
            r.touch()
        outs = {c: p.communicate(timeout=240) for c, p in procs.items()}
    for c, p in procs.items():
        assert p.returncode == 0, outs[c][1]
    git(["push", "-q", "origin", "HEAD:main"], a)
    git(["push", "-q", "origin", "HEAD:side"], b)
    fresh = clone(origin, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == []
    assert files_of(fresh / "from_a") == files_of(a / "from_a")
    git(["checkout", "-q", "side"], fresh)
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == []
    assert files_of(fresh / "from_b") == files_of(b / "from_b")


def test_get_from_another_repository_reads_packed_objects(repo: Path, tmp_path: Path) -> None:
    store = Store("folder", tmp_path / "store")
    files = small_files(40, 14, lo=100)
    gen(repo, files)
    store.attach(repo)
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    assert store.keys("packs/") and not [k for k in store.keys("files/") if not k.endswith(".manifest")]
    shutil.rmtree(repo / ".mlver" / "cache")  # so the objects can only come from the remote
    user = tmp_path / "user"
    user.mkdir()
    name = sorted(files)[7]
    run(["get", "--repo", str(repo), name, "-o", "one.bin"], user)
    assert (user / "one.bin").read_bytes() == files[name]
    run(["get", "--repo", str(repo), "data/many", "-o", "all"], user)
    assert files_of(user / "all") == files_of(repo / "data/many")


def test_fsck_sample_checks_that_many_packed_objects(repo: Path, tmp_path: Path) -> None:
    Store("folder", tmp_path / "store").attach(repo)
    gen(repo, small_files(40, 15))
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    full = run_json(["fsck", "-r", "store"], repo)["checked"]
    assert run_json(["fsck", "-r", "store", "--sample", "5"], repo)["checked"] == full - 40 + 5
    proc = run(["fsck", "--sample", "5"], repo, check=False)
    assert proc.returncode == 2 and "--sample needs" in proc.stderr


def test_gc_cloud_folds_many_inventory_records_into_one(repo: Path, tmp_path: Path) -> None:
    import xxhash

    store = Store("folder", tmp_path / "store")
    store.attach(repo)
    gen(repo, small_files(40, 16, lo=10, hi=500))
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    [record] = store.records()
    doc = json.loads(store.read(record))
    assert store.root is not None
    for i in range(33):  # what 33 more pushes of the same packs would have left: one record each
        data = json.dumps({**doc, "written": doc["written"] + i + 1}, separators=(",", ":")).encode()
        (store.root / "index" / f"{xxhash.xxh3_128_hexdigest(data)}.json").write_bytes(data)
    plan = run_json(["gc", "--cloud", "--dry-run"], repo)["remote"]["packs"]
    assert plan["records"] == 34 and plan["compact"] is True
    run(["gc", "--cloud", "-f"], repo)
    assert len(store.records()) == 1
    assert store.read("index/names").decode().split() == [r[len("index/"):-len(".json")] for r in store.records()]
    assert run_json(["push"], repo)["transferred"] == 0  # the folded record says what is there
    fresh = clone(repo, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["transferred"] == 41
    assert files_of(fresh / "data") == files_of(repo / "data")


def test_a_gc_that_knows_a_commit_rescues_its_objects_from_a_pack_another_gc_marked(repo: Path,
                                                                                   tmp_path: Path) -> None:
    origin, store = tmp_path / "origin.git", Store("folder", tmp_path / "store")
    git(["init", "-q", "--bare", str(origin)], tmp_path)
    git(["remote", "add", "origin", str(origin)], repo)
    store.attach(repo)
    commit(repo, "remote")
    git(["push", "-q", "origin", "HEAD:main"], repo)
    stale = clone(origin, tmp_path / "stale")  # a teammate who never fetches
    gen(repo, small_files(40, 17, lo=100))
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    [original] = [k for k in store.keys("packs/") if k.endswith(".pack")]
    git(["push", "-q", "origin", "HEAD:main"], repo)
    for c in (repo, stale):
        run(["config", "gc.grace", "2s"], c)
    time.sleep(2.5)  # the pack is older than gc.grace (not a timing assertion)
    run(["gc", "--cloud", "-f"], stale)  # knows nothing of "data": marks the pack
    plan = run_json(["gc", "--cloud", "--dry-run"], repo)["remote"]["packs"]
    assert plan["rescue"] == 40
    run(["gc", "--cloud", "-f"], repo)  # knows "data": copies its objects out of the marked pack
    time.sleep(2.5)  # the mark expires
    run(["gc", "--cloud", "-f"], stale)  # removes the marked pack (and, loose, the folder's manifest)
    [rescued] = [k for k in store.keys("packs/") if k.endswith(".pack")]
    assert rescued != original
    table = json.loads(store.read(rescued[: -len(".pack")] + ".idx"))["objects"]
    assert len(table) == 40  # every file survived the pack's removal
    # (stale has marked the new pack too: a push sends it all again, as it must)
    assert run_json(["push"], repo)["missing"] == []
    fresh = clone(origin, tmp_path / "fresh")
    res = run_json(["pull"], fresh)
    assert res["missing"] == [] and res["corrupt"] == []
    assert files_of(fresh / "data") == files_of(repo / "data")


def _http_server(root: Path) -> tuple[Any, list[int]]:
    """An http server of the folder ``root`` with byte ranges (as nginx or S3 website
    hosting give), on loopback; and the list of body sizes it sent."""
    import http.server
    import threading

    sent: list[int] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = Path(self.translate_path(self.path))
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                first, _, last = rng[len("bytes="):].partition("-")
                start, end = int(first), min(int(last) + 1 if last else len(data), len(data))
                body = data[start:end]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(body)
            sent.append(len(body))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, sent


def test_a_packed_remote_served_over_http_is_pulled_through_index_names(repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="http remotes need aiohttp (the [http] extra)")
    store = Store("folder", tmp_path / "store")
    store.attach(repo)
    gen(repo, small_files(300, 21, lo=100, hi=3000))
    run(["add", "data/many"], repo)
    commit(repo, "data")
    run(["push"], repo)
    assert store.keys("packs/") and len(store.records()) == 1
    server, sent = _http_server(tmp_path / "store")
    try:
        other = clone(repo, tmp_path / "other")
        run(["remote", "add", "-d", "-f", "web", f"http://127.0.0.1:{server.server_port}"], other)
        res = run_json(["pull", "-r", "web"], other)
        assert res["missing"] == [] and res["corrupt"] == [] and res["transferred"] == 301
        assert files_of(other / "data") == files_of(repo / "data")
        pack_bytes = sum((tmp_path / "store" / k).stat().st_size for k in store.keys("packs/") if k.endswith(".pack"))
        assert sum(sent) < pack_bytes * 1.5  # ranged reads of the packs, not whole files again and again
        doc = run_json(["status", "-r", "web"], other)["remote"]  # no listing over http: inventory and HEADs
        assert doc["in_sync"] == 301 and doc["local_only"] == [] and doc["missing"] == [], doc
        # without index/names (a remote pushed before it existed) the packed objects are not found: said so
        (tmp_path / "store" / "index" / "names").unlink()
        fresh = clone(repo, tmp_path / "fresh")
        run(["remote", "add", "-d", "-f", "web", f"http://127.0.0.1:{server.server_port}"], fresh)
        proc = run(["pull", "-r", "web"], fresh, check=False)
        assert proc.returncode == 3 and "300 object(s) are not on remote 'web'" in proc.stderr, proc.stderr
    finally:
        server.shutdown()
        server.server_close()
