"""The experiment queue: ``exp run --queue`` grids, ``queue start -j N`` in scratch
worktrees sharing the cache, failed entries with exit code and log, the queue commands,
concurrent experiments writing the same outputs, and ``queue start --dask`` on a real
Dask scheduler with two workers on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import gen, git, mlver_cmd, run, run_json

TRAIN = """\
import json, sys, time, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
if p["lr"] == 0.3 and p["epochs"] == 4:
    print("refusing lr 0.3 with 4 epochs", file=sys.stderr)
    sys.exit(7)
time.sleep(float(p.get("sleep", 0)))
open("model.bin", "w").write(f"model lr={p['lr']} epochs={p['epochs']}\\n")
json.dump({"acc": round(1 - p["lr"] / p["epochs"], 4)}, open("metrics.json", "w"))
"""

PIPELINE = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train]
    outs: [model.bin]
    metrics: [metrics.json]
"""


@pytest.fixture
def project(repo: Path) -> Path:
    gen(repo, {"train.py": TRAIN, "mlver.yaml": PIPELINE, "params.yaml": "train:\n  lr: 0.1\n  epochs: 2\n"})
    run(["repro", "-q"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "baseline"], repo)
    return repo


def git_state(root: Path) -> tuple[str, str, str]:
    return (git(["rev-parse", "HEAD"], root), git(["symbolic-ref", "HEAD"], root), git(["ls-files", "-s"], root))


def lock_digest(root: Path, rev: str, path: str) -> str:
    lock = git(["show", f"{rev}:mlver.lock"], root)
    return lock.split(f"path: {path}")[1].split("digest: ")[1].split()[0]


def statuses(root: Path) -> dict[str, dict]:
    return {e["name"]: e for e in run_json(["queue", "status"], root)["experiments"]}


def test_a_grid_of_six_runs_two_at_a_time_like_repro_by_hand(project: Path) -> None:
    before = git_state(project)
    ws = {p: p.read_bytes() for p in (project / "params.yaml", project / "model.bin", project / "mlver.lock")}
    queued = run_json(["exp", "run", "--queue", "-S", "train.lr=0.1,0.2,0.4", "-S", "train.epochs=2,4"],
                      project)["queued"]
    assert len(queued) == 6 and len({e["name"] for e in queued}) == 6
    assert {e["status"] for e in statuses(project).values()} == {"queued"}
    assert {r["status"] for r in run_json(["exp", "show"], project)["rows"] if "experiment" in r} == {"queued"}
    run(["queue", "start", "-j", "2"], project)
    assert git_state(project) == before
    assert {p: p.read_bytes() for p in ws} == ws  # the workspace was not touched
    done = statuses(project)
    assert {e["status"] for e in done.values()} == {"success"} and {e["exit_code"] for e in done.values()} == {0}
    rows = {r["experiment"]: r for r in run_json(["exp", "show"], project)["rows"] if "experiment" in r}
    assert set(rows) == set(done) and {r["status"] for r in rows.values()} == {"success"}
    # each combination by hand, with repro: the same outputs, bit for bit
    for name, row in rows.items():
        p = row["params"]["params.yaml"]
        gen(project, {"params.yaml": f"train:\n  lr: {p['train.lr']}\n  epochs: {p['train.epochs']}\n"})
        run(["repro", "-q", "--no-run-cache"], project)
        assert json.loads((project / "metrics.json").read_text()) == row["metrics"]["metrics.json"]
        sha = row["rev"]
        here = (project / "mlver.lock").read_text()
        assert here.split("path: model.bin")[1].split("digest: ")[1].split()[0] == lock_digest(project, sha, "model.bin")
    assert run(["fsck"], project).returncode == 0
    assert git(["worktree", "list", "--porcelain"], project).count("worktree ") == 1


def test_a_failed_experiment_is_recorded_and_the_others_finish(project: Path) -> None:
    run(["exp", "run", "--queue", "-S", "train.lr=0.2,0.3", "-S", "train.epochs=2,4"], project)
    proc = run(["exp", "run", "--run-all", "-j", "2"], project, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "1 of 4 experiment(s) failed" in proc.stderr and "mlver: error:" in proc.stderr
    done = statuses(project)
    failed = [e for e in done.values() if e["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["exit_code"] == 7  # the stage command's own exit code
    assert sorted(e["status"] for e in done.values()) == ["failed", "success", "success", "success"]
    log = run(["queue", "logs", failed[0]["name"]], project).stdout
    assert "refusing lr 0.3 with 4 epochs" in log and "code 7" in log
    rows = [r for r in run_json(["exp", "show"], project)["rows"] if "experiment" in r]
    assert sorted(r["status"] for r in rows) == ["failed", "success", "success", "success"]
    assert len(git(["for-each-ref", "refs/exps/" + done[failed[0]["name"]]["baseline"][:7]], project).splitlines()) == 3


def test_two_queue_starts_at_once_run_each_experiment_once(project: Path) -> None:
    run(["exp", "run", "--queue", "-S", "train.lr=0.11,0.12,0.13", "-S", "train.sleep=0.5", "--set-new"], project)
    runners = [subprocess.Popen([*mlver_cmd(), "queue", "start", "-j", "1", "--json"], cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ran: list[str] = []
    for p in runners:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        ran += [e["name"] for e in json.loads(out)["experiments"]]
    done = statuses(project)
    assert sorted(ran) == sorted(done)  # each of the three ran in exactly one runner
    assert len(done) == 3 and {e["status"] for e in done.values()} == {"success"}
    for e in done.values():  # and the experiment kept is the commit its runner made
        assert git(["rev-parse", f"refs/exps/{e['baseline'][:7]}/{e['name']}"], project).strip() == e["result"]


def test_exp_remove_of_a_queue_run_or_temp_experiment_removes_it_at_once(project: Path) -> None:
    run(["exp", "run", "--queue", "-S", "train.lr=0.4,0.5"], project)
    run(["queue", "start"], project)
    run(["exp", "run", "--temp", "-S", "train.lr=0.15", "-n", "t1"], project)
    names = sorted(n for n in statuses(project) if n != "t1")  # a --temp run keeps a record too
    assert len(names) == 2
    proc = run(["exp", "remove", names[0], "t1"], project)
    assert names[0] in proc.stdout and "t1" in proc.stdout
    refs = git(["for-each-ref", "--format=%(refname)", "refs/exps"], project)
    assert names[0] not in refs and "/t1" not in refs and names[1] in refs
    assert names[0] not in statuses(project) and "t1" not in statuses(project)
    listed = run(["exp", "list"], project).stdout
    assert names[0] not in listed and "t1" not in listed and names[1] in listed


def test_queue_snapshots_code_at_queue_time_and_the_commands(project: Path) -> None:
    gen(project, {"train.py": TRAIN.replace("model lr=", "v2 lr=")})
    run(["exp", "run", "--queue", "-S", "train.lr=0.2", "-n", "v2"], project)
    gen(project, {"train.py": TRAIN})  # edited back before the queue runs
    run(["exp", "run", "--queue", "-S", "train.lr=0.4", "-n", "other"], project)
    run(["exp", "run", "--queue", "-n", "gone"], project)
    assert [e["name"] for e in run_json(["queue", "list"], project)["experiments"]] == ["v2", "other", "gone"]
    proc = run(["queue", "logs", "v2"], project, check=False)
    assert proc.returncode == 3 and "no log yet" in proc.stderr
    run(["queue", "remove", "gone"], project)
    proc = run(["queue", "remove", "gone"], project, check=False)
    assert proc.returncode == 3 and "no queued experiment named 'gone'" in proc.stderr
    run(["queue", "start", "v2"], project)
    sha = git(["rev-parse", f"refs/exps/{git(['rev-parse', 'HEAD'], project)[:7]}/v2"], project).strip()
    assert "v2 lr=" in git(["show", f"{sha}:train.py"], project)
    assert statuses(project)["other"]["status"] == "queued"
    run(["queue", "clear"], project)
    assert run_json(["queue", "list"], project)["experiments"] == []
    assert "queue" not in git(["for-each-ref", "refs/exps"], project)
    run(["exp", "run", "--queue", "-n", "q1"], project)
    said = run(["exp", "remove", "--queue"], project)
    assert run_json(["queue", "list"], project)["experiments"] == []
    assert "Removed 1 queue entry: q1" in said.stdout + said.stderr and "experiment(s)" not in said.stdout + said.stderr
    proc = run(["queue", "logs", "nope"], project, check=False)
    assert proc.returncode == 3 and proc.stderr.startswith("mlver: error: ")
    proc = run(["exp", "run", "--run-all", "-S", "a=1"], project, check=False)
    assert proc.returncode == 2


def test_two_experiments_writing_the_same_outputs_at_once_corrupt_nothing(project: Path) -> None:
    run(["exp", "run", "--queue", "-S", "train.lr=0.2,0.4", "-S", "train.sleep=1", "--set-new"], project)
    run(["queue", "start", "-j", "2"], project)
    assert run(["fsck"], project).returncode == 0
    rows = [r for r in run_json(["exp", "show"], project)["rows"] if "experiment" in r]
    assert len(rows) == 2
    from mlver.hashing import digest_file  # the installed package's own hash

    for r in rows:
        digest = lock_digest(project, r["rev"], "model.bin")
        obj = project / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]
        assert digest_file(str(obj))[0] == digest
        lr = r["params"]["params.yaml"]["train.lr"]
        assert obj.read_text() == f"model lr={lr} epochs=2\n"


def test_a_crashed_runner_leaves_entries_that_run_again(project: Path) -> None:
    run(["exp", "run", "--queue", "-S", "train.lr=0.2", "-n", "crash"], project)
    entry = project / ".mlver" / "tmp" / "queue" / "crash.json"
    doc = json.loads(entry.read_text())
    doc.update(status="running", runner={"pid": 999999, "host": os.uname().nodename})  # a runner that died
    entry.write_text(json.dumps(doc))
    assert statuses(project)["crash"]["status"] == "queued"
    run(["queue", "start"], project)
    assert statuses(project)["crash"]["status"] == "success"


# --- Dask -----------------------------------------------------------------------------------

def _dask_bin() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "dask")
    if not os.path.exists(path):
        pytest.skip("DASK NOT INSTALLED: pip install 'mlver[dask]'")
    return path


@pytest.fixture
def cluster(tmp_path: Path):
    """A dask scheduler and two workers on 127.0.0.1, each worker with its own HOME and
    scratch folder (TMPDIR), in its own process group."""
    dask = _dask_bin()
    sched_file = tmp_path / "scheduler.json"
    procs = []
    env = dict(os.environ)
    sched = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                              "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env, start_new_session=True, cwd=tmp_path)
    procs.append(sched)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "the dask scheduler did not start"
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            home = tmp_path / f"worker{i}"
            (home / "tmp").mkdir(parents=True)
            (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
            wenv = {**env, "HOME": str(home), "TMPDIR": str(home / "tmp"), "XDG_CONFIG_HOME": str(home / ".config")}
            w = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                  "--local-directory", str(home / "dask"), "--name", f"w{i}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=wenv, cwd=home,
                                 start_new_session=True)
            procs.append(w)
            workers.append((w, home))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


@pytest.fixture
def shared_project(project: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(["init", "-q", "--bare", str(bare)], tmp_path)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "remote"], project)
    git(["remote", "add", "origin", str(bare)], project)
    git(["push", "-q", "origin", "main"], project)
    run(["push", "-q"], project)
    return project


def test_dask_runs_the_queue_and_survives_a_killed_worker(shared_project: Path, cluster) -> None:
    address, workers = cluster
    root = shared_project
    run(["exp", "run", "--queue", "-S", "train.lr=0.2,0.4", "-S", "train.epochs=2,8", "-S", "train.sleep=2",
         "--set-new"], root)
    killer_done = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for w, home in workers:
                if any((home / "tmp").glob("mlver-exp-*")):
                    os.killpg(w.pid, signal.SIGKILL)
                    killer_done.append(home.name)
                    return
            time.sleep(0.1)

    import threading

    t = threading.Thread(target=kill_a_busy_worker)
    t.start()
    proc = run(["queue", "start", "--dask", address, "-j", "4", "--json"], root, check=False)
    t.join()
    assert killer_done, "no worker was seen running a task"
    assert proc.returncode == 0, proc.stderr
    done = statuses(root)
    assert {e["status"] for e in done.values()} == {"success"} and len(done) == 4
    origin = git(["remote", "get-url", "origin"], root).strip()  # the snapshots the workers read are cleaned up
    assert "refs/mlver-queue/" not in git(["ls-remote", origin], root)
    rows = [r for r in run_json(["exp", "show"], root)["rows"] if "experiment" in r]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"success"}
    for r in rows:
        p = r["params"]["params.yaml"]
        assert r["metrics"]["metrics.json"] == {"acc": round(1 - p["train.lr"] / p["train.epochs"], 4)}
    # the same digests as a local run of one combination
    one = rows[0]
    p = one["params"]["params.yaml"]
    run(["exp", "run", "--temp", "-S", f"train.lr={p['train.lr']}", "-S", f"train.epochs={p['train.epochs']}",
         "-S", "train.sleep=2", "--set-new", "-n", "local", "--no-run-cache"], root)
    local = [r for r in run_json(["exp", "show"], root)["rows"] if r.get("experiment") == "local"][0]
    assert lock_digest(root, local["rev"], "model.bin") == lock_digest(root, one["rev"], "model.bin")
    # the workers pushed the outputs to the mlver remote: a fresh clone gets them
    mate = root.parent / "mate"
    git(["clone", "-q", str(root.parent / "origin.git"), str(mate)], root.parent)
    run(["exp", "pull", "origin", one["experiment"]], mate)
    run(["exp", "apply", one["experiment"]], mate)
    assert (mate / "model.bin").read_text() == f"model lr={p['train.lr']} epochs={p['train.epochs']}\n"


def test_dask_preconditions_fail_up_front(project: Path) -> None:
    pytest.importorskip("distributed")
    run(["exp", "run", "--queue", "-S", "train.lr=0.2"], project)
    proc = run(["queue", "start", "--dask", "tcp://127.0.0.1:9"], project, check=False)
    assert proc.returncode == 3 and "Git remote named 'origin'" in proc.stderr
    git(["remote", "add", "origin", str(project)], project)
    proc = run(["queue", "start", "--dask", "tcp://127.0.0.1:9"], project, check=False)
    assert proc.returncode == 3 and "default mlver remote" in proc.stderr
    run(["remote", "add", "-d", "store", str(project.parent / "store")], project)
    proc = run(["queue", "start", "--dask", "tcp://127.0.0.1:9"], project, check=False)
    assert proc.returncode == 3 and "cannot reach the Dask scheduler" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    assert not (project.parent / "store").exists()  # nothing was pushed before the scheduler answered
    assert {e["status"] for e in statuses(project).values()} == {"queued"}
    for bad in ("foo", "http://x:y", ""):  # not an address: a usage error, not "a bug in mlver"
        proc = run(["queue", "start", "--dask", bad], project, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "bug" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2
    assert {e["status"] for e in statuses(project).values()} == {"queued"}


def test_a_runner_killed_mid_run_is_repaired_by_running_the_queue_again(project: Path) -> None:
    from conftest import mlver_cmd

    run(["exp", "run", "--queue", "-S", "train.lr=0.2,0.4", "-S", "train.sleep=8", "--set-new"], project)
    runner = subprocess.Popen([*mlver_cmd(), "queue", "start", "-j", "2"], cwd=project, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    tmp = project / ".mlver" / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(tmp.glob("exp-run-*"))) < 2:
        time.sleep(0.1)
    assert {e["status"] for e in statuses(project).values()} == {"running"}
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and the stage commands it started
    runner.wait(timeout=30)
    assert {e["status"] for e in statuses(project).values()} == {"queued"}  # its pid is gone
    assert len(list(tmp.glob("exp-run-*"))) == 2  # left behind, until the next start sweeps them
    run(["queue", "start", "-j", "2"], project, timeout=200)
    assert {e["status"] for e in statuses(project).values()} == {"success"}
    assert list(tmp.glob("exp-run-*")) == []
    assert git(["worktree", "list", "--porcelain"], project).count("worktree ") == 1
    assert run(["fsck"], project).returncode == 0


def test_ctrl_c_during_exp_run_temp_leaves_no_queue_entry(project: Path) -> None:
    """SPEC's guarantee: a run interrupted at any instant is repaired by running the same
    command again. An interrupted `--temp` run must not leave its entry queued (the name
    would be taken, and the next `queue start` would run it quietly)."""
    args = ["exp", "run", "--temp", "-S", "train.lr=0.3", "-S", "train.sleep=30", "--set-new", "-n", "tempsig"]
    proc = subprocess.Popen([*mlver_cmd(), *args], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    tmp = project / ".mlver" / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp.glob("exp-run-*")):
        time.sleep(0.1)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert statuses(project) == {}
    assert git(["for-each-ref", "refs/exps"], project) == ""
    run([*args[:5], "-S", "train.sleep=0", "--set-new", "-n", "tempsig"], project, timeout=200)  # the same, again
    assert any(r.get("experiment") == "tempsig" for r in run_json(["exp", "show"], project)["rows"])

