"""Benchmark of mlver.api and `mlver ls` (issue "#11"): prints Markdown rows.

1. Reading a tracked 2 GiB file at HEAD through ``mlver.api.open`` from the local cache
   (verified), against the floor ``cat`` + xxh3 of the cache object (one pass reading and
   hashing it in 4 MiB blocks).
2. The same file in a clone that never pulled, streamed from a folder remote, against
   ``cp`` of the remote's object.
3. ``mlver ls -R`` of a 20,000-file tracked folder at an old revision against
   ``dvc ls -R`` of the same folder in a DVC project (DVC in its own venv).

usage: python bench/api.py [WORKDIR] [REPS]   (mlver and git on PATH; DVC: $DVC or
/opt/dvcenv/bin/dvc). Warm page cache; medians of REPS runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

GIB = 1 << 30
BLOCK = 4 << 20
FILES = 20_000


def sh(args: list[str], cwd: str, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


def timed(fn, reps: int) -> float:  # noqa: ANN001
    fn()  # warm
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpu_timed(args: list[str], cwd: str, reps: int) -> tuple[float, float]:
    """(median wall seconds, median user+system CPU seconds) of a command: on a shared,
    loaded machine the CPU time is the steadier measure."""
    import resource

    sh(args, cwd)
    walls, cpus = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        sh(args, cwd)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def project(path: str, remote: str) -> None:
    os.makedirs(path)
    sh(["git", "init", "-q"], path)
    sh(["git", "config", "user.email", "b@example.com"], path)
    sh(["git", "config", "user.name", "bench"], path)
    sh(["mlver", "init", "-q"], path)
    sh(["mlver", "remote", "add", "-d", "store", remote], path)


def main() -> None:
    work = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mlver-bench-api")
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    dvc = os.environ.get("DVC", "/opt/dvcenv/bin/dvc")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    remote = os.path.join(work, "remote")
    repo = os.path.join(work, "repo")
    project(repo, remote)
    block = os.urandom(BLOCK)
    with open(os.path.join(repo, "big.bin"), "wb") as f:
        for i in range(GIB * 2 // BLOCK):
            f.write(i.to_bytes(8, "little") + block[8:])
    sh(["mlver", "add", "big.bin"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "big"], repo)
    sh(["mlver", "push"], repo)
    clone = os.path.join(work, "clone")
    sh(["git", "clone", "-q", repo, clone], work)

    import mlver.api
    from mlver.hashing import new_hasher
    from mlver.repo import Repo

    r = Repo(repo)
    digest = open(os.path.join(repo, "big.bin.mlver")).read().split("digest: ")[1].split()[0]
    obj = r.cache.path(digest)
    robj = os.path.join(remote, "files", "xxh3-128", digest[:2], digest[2:])

    def floor_cat_xxh3() -> None:
        h = new_hasher()
        with open(obj, "rb", buffering=0) as f:
            while chunk := f.read(BLOCK):
                h.update(chunk)
        assert h.hexdigest() == digest

    def api_read(where: str) -> None:
        with mlver.api.open("big.bin", repo=where, rev="HEAD") as f:
            while f.read(BLOCK):
                pass

    def read_remote_xxh3() -> None:
        h = new_hasher()
        with open(robj, "rb", buffering=0) as f:
            while chunk := f.read(BLOCK):
                h.update(chunk)

    def cp_remote() -> None:
        shutil.copyfile(robj, os.path.join(work, "copy.bin"))
        os.unlink(os.path.join(work, "copy.bin"))

    rows = []
    floor = timed(floor_cat_xxh3, reps)
    t = timed(lambda: api_read(repo), reps)
    rows.append(("api.open 2 GiB at HEAD, local cache (verified)", t, "cat + xxh3", floor))
    t = timed(lambda: api_read(clone), reps)
    floor = timed(cp_remote, reps)
    rows.append(("api.open 2 GiB, never-pulled clone, folder remote (verified)", t, "cp from remote", floor))
    floor = timed(read_remote_xxh3, reps)
    rows.append(("api.open 2 GiB, never-pulled clone, folder remote (verified)", t, "cat + xxh3 of the remote object",
                 floor))

    # 20,000-file folder, listed at the older of two revisions
    many = os.path.join(work, "many")
    project(many, remote + "-many")
    dvcp = os.path.join(work, "dvc")
    os.makedirs(dvcp)
    for root in (many, dvcp):
        for i in range(FILES):
            d = os.path.join(root, "data", "images", f"{i % 100:02d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{i:05d}.bin"), "wb") as f:
                f.write(i.to_bytes(4, "little") * 8)
    sh(["mlver", "add", "data/images"], many)
    sh(["git", "add", "-A"], many)
    sh(["git", "commit", "-q", "-m", "v1"], many)
    sh(["git", "init", "-q"], dvcp)
    sh(["git", "config", "user.email", "b@example.com"], dvcp)
    sh(["git", "config", "user.name", "bench"], dvcp)
    sh([dvc, "init", "-q"], dvcp)
    sh([dvc, "add", "-q", "data/images"], dvcp)
    sh(["git", "add", "-A"], dvcp)
    sh(["git", "commit", "-q", "-m", "v1"], dvcp)
    for root, tool in ((many, ["mlver", "add", "data/images"]), (dvcp, [dvc, "add", "-q", "data/images"])):
        with open(os.path.join(root, "data", "images", "00", "00000.bin"), "wb") as f:
            f.write(b"changed")
        sh(tool, root)
        sh(["git", "commit", "-q", "-am", "v2"], root)
    n_mlver = len(sh(["mlver", "ls", "-R", "data/images", "--rev", "HEAD~1"], many).stdout.splitlines())
    n_dvc = len(sh([dvc, "ls", "-R", ".", "data/images", "--rev", "HEAD~1"], dvcp).stdout.splitlines())
    assert n_mlver == FILES and n_dvc >= FILES, (n_mlver, n_dvc)
    t, tc = cpu_timed(["mlver", "ls", "-R", "data/images", "--rev", "HEAD~1"], many, reps)
    d, dc = cpu_timed([dvc, "ls", "-R", ".", "data/images", "--rev", "HEAD~1"], dvcp, reps)
    rows.append(("`mlver ls -R` 20,000 files at HEAD~1, wall", t, "`dvc ls -R`", d))
    rows.append(("`mlver ls -R` 20,000 files at HEAD~1, CPU", tc, "`dvc ls -R`", dc))

    print("| what | mlver s | compared with | s | ratio |")
    print("|---|---|---|---|---|")
    for what, a, name, b in rows:
        print(f"| {what} | {a:.2f} | {name} | {b:.2f} | {a / b:.2f}× |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
