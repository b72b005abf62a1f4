"""Pipelines through the real CLI: a two-stage pipeline whose scripts log every real
execution to runs.log, so each test counts what ran."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import xxhash

from conftest import gen, git, run, run_json

PY = shlex.quote(sys.executable)

PREPARE = """\
import os, sys, yaml
split = yaml.safe_load(open("params.yaml"))["prepare"]["split"]
rows = open("data/raw.txt").read().splitlines()
os.makedirs("data/prepared", exist_ok=True)
open("data/prepared/train.txt", "w").write("\\n".join(rows[:split]) + "\\n")
open("data/prepared/test.txt", "w").write("\\n".join(rows[split:]) + "\\n")
open("runs.log", "a").write("prepare\\n")
"""

TRAIN = """\
import json, sys, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
if p["lr"] < 0:
    sys.exit(3)
n = len(open("data/prepared/train.txt").read().splitlines())
open("model.pkl", "wb").write(f"weights lr={p['lr']} epochs={p['epochs']} n={n}".encode() + bytes(range(256)))
json.dump({"acc": round(0.5 + p["lr"], 4), "n": n}, open("metrics.json", "w"))
open("runs.log", "a").write("train\\n")
"""

PIPELINE = f"""\
stages:
  prepare:
    cmd: {PY} src/prepare.py
    deps: [src/prepare.py, data/raw.txt]
    params: [prepare.split]
    outs: [data/prepared]
  train:
    cmd: {PY} src/train.py
    deps: [src/train.py, data/prepared]
    params: [train]
    outs: [model.pkl]
    metrics: [metrics.json]
"""

PARAMS = "prepare:\n  split: 3\ntrain:\n  lr: 0.1\n  epochs: 10\n"


def runs(root: Path) -> list[str]:
    """Stages that really executed since the last call."""
    log = root / "runs.log"
    if not log.exists():
        return []
    lines = log.read_text().split()
    log.unlink()
    return lines


def set_params(root: Path, *, split: int = 3, lr: float = 0.1, epochs: int = 10) -> None:
    gen(root, {"params.yaml": f"prepare:\n  split: {split}\ntrain:\n  lr: {lr}\n  epochs: {epochs}\n"})


@pytest.fixture
def pipe(repo: Path) -> Path:
    gen(repo, {"src/prepare.py": PREPARE, "src/train.py": TRAIN, "data/raw.txt": "a\nb\nc\nd\ne\n",
               "params.yaml": PARAMS, "mlver.yaml": PIPELINE, ".gitignore": "runs.log\n"})
    return repo


def lock_stage(root: Path, name: str) -> dict:
    import yaml

    return yaml.safe_load((root / "mlver.lock").read_text())["stages"].get(name)


def digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def test_first_repro_runs_all_then_nothing(pipe: Path) -> None:
    proc = run(["repro"], pipe)
    assert runs(pipe) == ["prepare", "train"]
    assert "Running stage 'prepare'" in proc.stderr and "Running stage 'train'" in proc.stderr
    model = (pipe / "model.pkl").read_bytes()
    text = (pipe / "mlver.lock").read_text()
    assert text.startswith("# mlver lock: written by mlver; commit it together with mlver.yaml\n"
                           "version: 1\nhash: xxh3-128\nstages:\n  prepare:\n    cmd: ")
    assert text.index("  prepare:") < text.index("  train:")
    assert (f"    outs:\n    - path: model.pkl\n      kind: file\n      digest: {digest(model)}\n"
            f"      size: {len(model)}\n    metrics:\n    - path: metrics.json\n") in text
    assert "    params:\n      params.yaml:\n        train.epochs: 10\n        train.lr: 0.1\n" in text
    train = lock_stage(pipe, "train")
    assert [d["path"] for d in train["deps"]] == ["data/prepared", "src/train.py"]  # sorted by path
    assert train["deps"][0]["kind"] == "dir" and train["deps"][0]["files"] == 2
    # outputs are cached like `mlver add` data and kept out of Git; metrics stay in Git
    obj = pipe / ".mlver/cache/files/xxh3-128" / digest(model)[:2] / digest(model)[2:]
    assert obj.read_bytes() == model
    assert "/model.pkl" in (pipe / ".gitignore").read_text().splitlines()
    assert (pipe / "data/.gitignore").read_text() == "/prepared\n"
    assert "metrics.json" not in (pipe / ".gitignore").read_text()

    proc = run(["repro"], pipe)
    assert runs(pipe) == []
    assert "Data and pipelines are up to date." in proc.stderr
    st = run_json(["status"], pipe)
    assert st["clean"] is True
    assert st["stages"] == [{"name": "prepare", "changed": False, "reasons": []},
                            {"name": "train", "changed": False, "reasons": []}]
    listed = {o["path"]: o for o in run_json(["list"], pipe)["outputs"]}
    assert listed["model.pkl"]["state"] == "ok" and listed["data/prepared"]["kind"] == "dir"


def test_param_change_reruns_only_train_and_run_cache_restores(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    model_1 = (pipe / "model.pkl").read_bytes()
    metrics_1 = (pipe / "metrics.json").read_bytes()
    lock_1 = (pipe / "mlver.lock").read_text()

    set_params(pipe, lr=0.2)
    st = run_json(["status"], pipe)
    assert st["stages"][1] == {"name": "train", "changed": True, "reasons": ["param changed: params.yaml:train.lr"]}
    assert run(["status", "--check"], pipe, check=False).returncode == 1
    run(["repro"], pipe)
    assert runs(pipe) == ["train"]
    assert (pipe / "model.pkl").read_bytes() != model_1

    # back to yesterday's parameters: restored from the run cache, nothing executes
    set_params(pipe, lr=0.1)
    proc = run(["repro"], pipe)
    assert runs(pipe) == []
    assert "Restored stage 'train' from the run cache" in proc.stderr
    assert (pipe / "model.pkl").read_bytes() == model_1
    assert (pipe / "metrics.json").read_bytes() == metrics_1
    assert (pipe / "mlver.lock").read_text() == lock_1
    assert run_json(["status"], pipe)["clean"] is True

    # --no-run-cache neither reads nor writes it
    set_params(pipe, lr=0.2)
    run(["repro"], pipe)
    runs(pipe)
    set_params(pipe, lr=0.1)
    run(["repro", "--no-run-cache"], pipe)
    assert runs(pipe) == ["train"]
    set_params(pipe, lr=0.3)
    run(["repro", "--no-run-cache"], pipe)
    set_params(pipe, lr=0.2)
    run(["repro"], pipe)
    assert runs(pipe) == ["train"]  # 0.3 ran; 0.2 came back from the cache
    set_params(pipe, lr=0.3)
    run(["repro"], pipe)
    assert runs(pipe) == ["train"]  # 0.3 was never saved


def test_prepare_dep_change_reruns_both(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    gen(pipe, {"data/raw.txt": "a\nb\nc\nd\ne\nf\ng\n"})
    st = run_json(["status"], pipe)
    assert st["stages"][0]["reasons"] == ["dep changed: data/raw.txt"]
    run(["repro"], pipe)
    assert runs(pipe) == ["prepare", "train"]
    # a change that leaves prepare's output identical stops there
    gen(pipe, {"src/prepare.py": PREPARE + "# a comment\n"})
    run(["repro"], pipe)
    assert runs(pipe) == ["prepare"]


def test_dry_run_force_and_downstream(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    lock = (pipe / "mlver.lock").read_text()
    gen(pipe, {"data/raw.txt": "z\ny\nx\nw\n"})
    proc = run(["repro", "--dry-run"], pipe)
    assert runs(pipe) == [] and (pipe / "mlver.lock").read_text() == lock
    assert "Would run stage 'prepare':\n    dep changed: data/raw.txt\n" in proc.stdout
    assert "Would run stage 'train':\n    upstream stage will change: prepare\n" in proc.stdout
    plan = run_json(["repro", "--dry-run"], pipe)
    assert [(s["name"], s["action"]) for s in plan["stages"]] == [("prepare", "run"), ("train", "run")]

    run(["repro", "prepare"], pipe)  # only the target (and what it depends on)
    assert runs(pipe) == ["prepare"]
    run(["repro", "--downstream", "prepare"], pipe)
    assert runs(pipe) == ["train"]

    run(["repro", "--force"], pipe)  # everything, run cache or not
    assert runs(pipe) == ["prepare", "train"]
    run(["repro", "--force", "--downstream", "train"], pipe)  # like DVC: --force covers upstream stages too
    assert runs(pipe) == ["train"]
    proc = run(["repro", "nope"], pipe, check=False)
    assert proc.returncode == 3 and "no stage 'nope'" in proc.stderr


def test_failing_stage_keeps_last_good_lock(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    good_train = lock_stage(pipe, "train")
    gen(pipe, {"data/raw.txt": "q\nr\ns\nt\n"})
    set_params(pipe, lr=-1.0)
    proc = run(["repro"], pipe, check=False)
    assert proc.returncode == 3
    assert "mlver: error: stage 'train' failed: command exited with code 3" in proc.stderr
    assert runs(pipe) == ["prepare"]
    assert lock_stage(pipe, "train") == good_train  # last good state
    assert lock_stage(pipe, "prepare")["deps"][0]["digest"] == digest(b"q\nr\ns\nt\n")  # earlier stage recorded
    assert run_json(["status"], pipe)["stages"][1]["changed"] is True
    # the previous model is still in the cache: checkout brings it back
    run(["checkout", "model.pkl"], pipe)
    assert digest((pipe / "model.pkl").read_bytes()) == good_train["outs"][0]["digest"]


def test_dependency_edited_while_stage_runs_is_not_recorded(repo: Path) -> None:
    script = "open('input.txt', 'a').write('more\\n'); open('out.txt', 'w').write('x')\n"
    gen(repo, {"touch.py": script, "input.txt": "start\n",
               "mlver.yaml": f"stages:\n  grow:\n    cmd: {PY} touch.py\n    deps: [input.txt, touch.py]\n"
                             "    outs: [out.txt]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3
    assert "stage 'grow': input.txt changed while the command was running" in proc.stderr
    assert not (repo / "mlver.lock").exists() or lock_stage(repo, "grow") is None


def test_hand_edited_output_stays_recoverable(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    edited = b"my hand-tuned weights"
    gen(pipe, {"model.pkl": edited})
    assert run_json(["status"], pipe)["stages"][1]["reasons"] == ["out changed: model.pkl"]
    set_params(pipe, epochs=11)
    proc = run(["repro"], pipe)
    assert runs(pipe) == ["train"]
    assert "model.pkl was edited" in proc.stderr and digest(edited) in proc.stderr
    obj = pipe / ".mlver/cache/files/xxh3-128" / digest(edited)[:2] / digest(edited)[2:]
    assert obj.read_bytes() == edited


def test_commit_stage_records_workspace_outputs(pipe: Path) -> None:
    run(["repro"], pipe)
    runs(pipe)
    gen(pipe, {"model.pkl": b"weights I trust"})
    run(["commit", "train"], pipe)
    assert runs(pipe) == []
    assert lock_stage(pipe, "train")["outs"][0]["digest"] == digest(b"weights I trust")
    assert run_json(["status"], pipe)["clean"] is True
    # checkout and diff see stage outputs through the lock
    git(["add", "-A"], pipe)
    git(["commit", "-q", "-m", "pipeline"], pipe)
    (pipe / "model.pkl").unlink()
    import shutil

    shutil.rmtree(pipe / "data/prepared")
    out = run(["checkout"], pipe).stdout
    assert "A       model.pkl" in out and "A       data/prepared/train.txt" in out
    assert (pipe / "model.pkl").read_bytes() == b"weights I trust"
    gen(pipe, {"model.pkl": b"v2"})
    run(["commit", "train"], pipe)
    assert [m["path"] for m in run_json(["diff"], pipe)["modified"]] == ["model.pkl"]


def test_stage_without_deps_always_runs_and_persist(repo: Path) -> None:
    gen(repo, {"tick.py": "open('log.txt', 'a').write('tick\\n'); open('runs.log', 'a').write('tick\\n')\n",
               "mlver.yaml": f"stages:\n  tick:\n    cmd: {PY} tick.py\n    outs:\n    - log.txt:\n"
                             "        persist: true\n"})
    run(["repro"], repo)
    run(["repro"], repo)
    assert runs(repo) == ["tick", "tick"]
    assert (repo / "log.txt").read_text() == "tick\ntick\n"  # persist: not removed before the run
    st = run_json(["status"], repo)
    assert st["stages"] == [{"name": "tick", "changed": True, "reasons": ["always runs: the stage has no dependencies"]}]


def test_wdir_toml_json_params_and_uncached_output(repo: Path) -> None:
    script = """\
import json, tomllib
depth = tomllib.load(open("cfg.toml", "rb"))["model"]["depth"]
rate = json.load(open("opt.json"))["opt"]["lr"]
open("../out/report.txt", "w").write(f"{depth} {rate} " + open("../data/in.txt").read())
open("summary.json", "w").write(json.dumps({"depth": depth}))
open("../runs.log", "a").write("fit\\n")
"""
    gen(repo, {"job/fit.py": script, "job/cfg.toml": "[model]\ndepth = 4\nname = \"tree\"\n",
               "job/opt.json": '{"opt": {"lr": 0.5, "momentum": 0.9}}', "data/in.txt": "hello\n", "out/.keep": "",
               "mlver.yaml": f"""stages:
  fit:
    cmd: {PY} fit.py
    wdir: job
    deps: [fit.py, ../data/in.txt]
    params:
    - cfg.toml: [model.depth]
    - opt.json: [opt]
    outs:
    - ../out/report.txt
    - summary.json:
        cache: false
"""})
    run(["repro"], repo)
    assert runs(repo) == ["fit"]
    assert (repo / "out/report.txt").read_text() == "4 0.5 hello\n"
    fit = lock_stage(repo, "fit")
    assert fit["params"] == {"job/cfg.toml": {"model.depth": 4}, "job/opt.json": {"opt.lr": 0.5, "opt.momentum": 0.9}}
    assert [d["path"] for d in fit["deps"]] == ["data/in.txt", "job/fit.py"]
    assert [(o["path"], o.get("cache", True)) for o in fit["outs"]] == [("job/summary.json", False),
                                                                         ("out/report.txt", True)]
    assert "summary.json" not in (repo / "job/.gitignore").read_text() if (repo / "job/.gitignore").exists() else True
    assert "/report.txt" in (repo / "out/.gitignore").read_text()
    assert [o["path"] for o in run_json(["list"], repo)["outputs"]] == ["out/report.txt"]

    gen(repo, {"job/cfg.toml": "[model]\ndepth = 4\nname = \"forest\"\n"})  # a key the stage does not use
    run(["repro"], repo)
    assert runs(repo) == []
    gen(repo, {"job/cfg.toml": "[model]\ndepth = 5\nname = \"forest\"\n"})
    assert run_json(["status"], repo)["stages"][0]["reasons"] == ["param changed: job/cfg.toml:model.depth"]
    gen(repo, {"job/opt.json": '{"opt": {"lr": 0.25, "momentum": 0.9}}'})
    run(["repro"], repo)
    assert runs(repo) == ["fit"]
    assert (repo / "out/report.txt").read_text() == "5 0.25 hello\n"
    # the uncached output comes back from the run cache too
    gen(repo, {"job/cfg.toml": "[model]\ndepth = 4\n", "job/opt.json": '{"opt": {"lr": 0.5, "momentum": 0.9}}'})
    run(["repro"], repo)
    assert runs(repo) == []
    assert json.loads((repo / "job/summary.json").read_text()) == {"depth": 4}
    assert os.access(repo / "job/summary.json", os.W_OK)


def test_list_valued_params_settle_and_other_stages_still_record(repo: Path) -> None:
    gen(repo, {"params.yaml": "layers: [64, 32]\nlr: 0.1\nopt:\n  sizes: [1, 2]\n  mix: {a: [1, 2.0]}\n",
               "p.json": '{"grid": [[1, 2], [3]]}', "dep.txt": "x\n"})
    run(["stage", "add", "-n", "a", "-d", "dep.txt", "-p", "layers", "-p", "opt", "-o", "a.txt", "--",
         f"{PY} -c \"open('a.txt', 'w').write('a')\""], repo)
    run(["stage", "add", "-n", "g", "-d", "dep.txt", "-p", "p.json:grid", "-o", "g.txt", "--",
         f"{PY} -c \"open('g.txt', 'w').write('g')\""], repo)
    run(["repro"], repo)
    assert run_json(["status"], repo)["clean"] is True  # lists read back from the lock compare equal
    assert run(["status", "--check"], repo).returncode == 0
    # another stage recorded after them: the lock, holding lists, is written again
    run(["stage", "add", "-n", "b", "-d", "dep.txt", "-p", "lr", "-o", "b.txt", "--",
         f"{PY} -c \"open('b.txt', 'w').write('b')\""], repo)
    run(["repro", "b"], repo)
    assert lock_stage(repo, "a")["params"]["params.yaml"] == {"layers": [64, 32], "opt.mix.a": [1, 2.0],
                                                             "opt.sizes": [1, 2]}
    assert lock_stage(repo, "g")["params"]["p.json"] == {"grid": [[1, 2], [3]]}
    assert run_json(["status"], repo)["clean"] is True
    # a changed element (even 2.0 -> 2) is a change
    gen(repo, {"params.yaml": "layers: [64, 32]\nlr: 0.1\nopt:\n  sizes: [1, 2]\n  mix: {a: [1, 2]}\n"})
    [a] = [s for s in run_json(["status"], repo)["stages"] if s["changed"]]
    assert a["name"] == "a" and a["reasons"] == ["param changed: params.yaml:opt.mix.a"]


def test_failed_stage_is_in_the_json_and_its_leftover_is_not_called_an_edit(repo: Path) -> None:
    gen(repo, {"dep.txt": "x\n", "ok.py": "open('ok.txt', 'w').write('ok')\n",
               "bad.py": "import sys; open('f.out', 'w').write('partial'); sys.exit(7)\n"})
    run(["stage", "add", "-n", "ok", "-d", "dep.txt", "-o", "ok.txt", "--", f"{PY} ok.py"], repo)
    run(["stage", "add", "-n", "bad", "-d", "ok.txt", "-o", "f.out", "--", f"{PY} bad.py"], repo)
    proc = run(["repro", "--json"], repo, check=False)
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["ran"] == ["ok"]
    assert doc["failed"]["stage"] == "bad" and doc["failed"]["exit_code"] == 7
    assert "code 7" in doc["failed"]["message"] and "code 7" in proc.stderr
    assert lock_stage(repo, "ok") is not None and lock_stage(repo, "bad") is None
    proc = run(["repro", "bad"], repo, check=False)  # the failed run's f.out was never recorded
    assert proc.returncode == 3
    assert "f.out is not from a recorded run of stage 'bad'" in proc.stderr and "was edited" not in proc.stderr
    ok = json.loads(run(["repro", "--json"], repo, check=False).stdout)
    assert ok["failed"]["stage"] == "bad" and ok["skipped"] == ["ok"]


def test_cached_output_tracked_by_git_is_refused_and_left_alone(repo: Path) -> None:
    gen(repo, {"src/train.py": "print('mine')\n", "metrics.json": '{"acc": 1}'})
    git(["add", "src/train.py", "metrics.json"], repo)
    git(["commit", "-q", "-m", "code"], repo)
    proc = run(["stage", "add", "-n", "g", "-o", "src/train.py", "--", "echo"], repo, check=False)
    assert proc.returncode == 3 and "src/train.py: is an output of stage 'g' and is tracked by Git" in proc.stderr
    assert "git rm -r --cached src/train.py" in proc.stderr
    assert not (repo / "mlver.yaml").exists()
    # written by hand: repro refuses before running or removing anything
    gen(repo, {"mlver.yaml": "stages:\n  g:\n    cmd: echo ran > ran.txt\n    outs: [src]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3 and "src: is an output of stage 'g' and is tracked by Git" in proc.stderr
    assert (repo / "src/train.py").read_text() == "print('mine')\n" and not (repo / "ran.txt").exists()
    assert git(["status", "--porcelain", "src"], repo) == ""
    # an uncached output (metrics kept in Git) may be tracked
    gen(repo, {"mlver.yaml": f"stages:\n  m:\n    cmd: {PY} -c \"open('metrics.json', 'w').write('{{}}')\"\n"
                             "    metrics: [metrics.json]\n"})
    run(["repro"], repo)
    assert (repo / "metrics.json").read_text() == "{}"


def test_status_and_commit_name_stages_without_outputs_yet(pipe: Path) -> None:
    # before any run: a stage name is a target, not "not tracked, add it"
    doc = run_json(["status", "train"], pipe)
    assert [(s["name"], s["reasons"]) for s in doc["stages"]] == [("train", ["never run"])]
    assert run(["status", "--check", "train"], pipe, check=False).returncode == 1
    run(["repro"], pipe)
    runs(pipe)
    assert run(["status", "--check", "train"], pipe).returncode == 0
    # only a dependency changed: commit refuses the stale stage; --force records it and
    # says so (and hints git add)
    gen(pipe, {"src/train.py": TRAIN + "# a comment\n"})
    proc = run(["commit", "train"], pipe, check=False)
    assert proc.returncode == 3 and "stage 'train' is not up to date: dep changed: src/train.py" in proc.stderr
    proc = run(["commit", "--force", "train"], pipe)
    assert "Recorded stage 'train' in mlver.lock" in proc.stderr and "Nothing to record" not in proc.stderr
    assert "without running it (--force)" in proc.stderr
    assert "mlver.lock" in proc.stderr.split("git add", 1)[1]
    assert lock_stage(pipe, "train")["deps"][1]["digest"] == digest((TRAIN + "# a comment\n").encode())
    assert runs(pipe) == [] and run_json(["status"], pipe)["clean"] is True
    assert "Nothing to record" in run(["commit", "train"], pipe).stderr


def test_output_moving_between_git_and_the_cache(repo: Path) -> None:
    uncached = f"stages:\n  s:\n    cmd: {PY} -c \"open('out.txt', 'w').write(open('in.txt').read())\"\n" \
               "    deps: [in.txt]\n    outs:\n    - out.txt:\n        cache: false\n"
    cached = f"stages:\n  s:\n    cmd: {PY} -c \"open('out.txt', 'w').write(open('in.txt').read() * 2)\"\n" \
             "    deps: [in.txt]\n    outs: [out.txt]\n"
    gen(repo, {"in.txt": "1\n", "mlver.yaml": uncached})
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "out in git"], repo)
    gen(repo, {"mlver.yaml": cached})
    git(["rm", "-q", "--cached", "out.txt"], repo)
    run(["repro"], repo)
    assert "/out.txt" in (repo / ".gitignore").read_text().splitlines()
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "out cached"], repo)
    # back to the commit where Git owns out.txt: nothing to report
    git(["checkout", "-q", "HEAD~1"], repo)
    proc = run(["checkout"], repo)
    assert proc.returncode == 0 and "pointer is gone" not in proc.stderr
    assert (repo / "out.txt").read_text() == "1\n"
    git(["checkout", "-q", "-"], repo)
    run(["checkout"], repo)
    assert (repo / "out.txt").read_text() == "1\n1\n"
    # the output stops being cached: its .gitignore entry goes, so it can be committed
    gen(repo, {"mlver.yaml": uncached})
    proc = run(["repro"], repo)
    assert not (repo / ".gitignore").exists() or "/out.txt" not in (repo / ".gitignore").read_text().splitlines()
    git(["add", "out.txt"], repo)  # not refused as ignored


def test_stage_with_a_persist_output_is_not_restored_from_the_run_cache(repo: Path) -> None:
    step = "import os; os.makedirs('ck', exist_ok=True); open('ck/log', 'a').write('x'); " \
           "open('o.txt', 'w').write(open('in.txt').read()); open('runs.log', 'a').write('s\\n')"
    gen(repo, {"in.txt": "1", "step.py": step,
               "mlver.yaml": f"stages:\n  s:\n    cmd: {PY} step.py\n    deps: [in.txt, step.py]\n"
                             "    outs:\n    - o.txt\n    - ck:\n        persist: true\n"})
    run(["repro"], repo)
    gen(repo, {"in.txt": "2"})
    run(["repro"], repo)
    gen(repo, {"in.txt": "1"})  # inputs seen before: still runs, the checkpoint keeps growing
    proc = run(["repro"], repo)
    assert "run cache" not in proc.stderr and runs(repo) == ["s", "s", "s"]
    assert (repo / "ck/log").read_text() == "xxx" and (repo / "o.txt").read_text() == "1"


def test_repro_json_stdout_is_the_document_alone(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages:\n  s:\n    cmd: echo HELLO-FROM-CMD; echo > o\n    outs: [o]\n"})
    proc = run(["repro", "--json"], repo)
    doc = json.loads(proc.stdout)
    assert doc["ran"] == ["s"] and "HELLO-FROM-CMD" in proc.stderr


def test_an_output_the_command_makes_as_a_link_out_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("outside bytes\n")
    gen(repo, {"mlver.yaml": f"stages:\n  s:\n    cmd: ln -s {outside} o\n    outs: [o]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert errors and "is a symbolic link" in proc.stderr and " o" in proc.stderr
    assert not (repo / "mlver.lock").exists() or "path: o" not in (repo / "mlver.lock").read_text()


def test_status_reports_a_removed_params_key_as_a_change(repo: Path) -> None:
    gen(repo, {"params.yaml": "a: 1\nd: 1\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: echo > o\n    params: [a, d]\n    outs: [o]\n"})
    run(["repro"], repo)
    (repo / "params.yaml").write_text("a: 2\n")
    stages = run_json(["status", "--json"], repo)["stages"]
    assert stages[0]["changed"] is True
    assert "param changed: params.yaml:a" in stages[0]["reasons"]
    assert "param removed: params.yaml:d" in stages[0]["reasons"]
    assert run(["repro", "--dry-run"], repo).returncode == 0
    proc = run(["repro"], repo, check=False)  # a run cannot use a key that is gone: one clear error
    assert proc.returncode == 3 and "params key 'd' not found" in proc.stderr


def test_a_nan_parameter_is_recorded_and_settles(repo: Path) -> None:
    gen(repo, {"params.yaml": "a: .nan\n", "mlver.yaml": "stages:\n  s:\n    cmd: echo hi > o\n    params: [a]\n    outs: [o]\n"})
    run(["repro"], repo)
    assert run_json(["status", "--json"], repo)["stages"][0]["changed"] is False
    assert "Data and pipelines are up to date." in run(["repro"], repo).stderr


def test_params_of_every_yaml_type_are_recorded_shown_and_settle(repo: Path) -> None:
    """Dates, timestamps, ``!!binary`` and ``!!set`` in a params file: the lock reads back
    (a multi-line ``!!binary`` once broke it), the stage settles, and the tables and JSON
    documents show them (dates as ISO 8601, bytes as base64, a set as a sorted list)."""
    gen(repo, {"params.yaml": "t:\n  day: 2024-01-31\n  at: 2024-01-31 10:00:00\n  key: !!binary "
                              + "QUJD" * 40 + "\n  tags: !!set {b, a}\n  mixed: [2024-02-01, 1]\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: echo hi > o\n    params: [t]\n    outs: [o]\n"})
    run(["repro"], repo)
    assert run_json(["status", "--json"], repo)["stages"][0]["changed"] is False
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "typed params"], repo)
    shown = run_json(["exp", "show", "--json"], repo)
    params = json.dumps(shown)
    for value in ('"2024-01-31"', '"2024-01-31T10:00:00"', '"' + "QUJD" * 40 + '"', '["a", "b"]', '["2024-02-01", 1]'):
        assert value in params, value
    gen(repo, {"params.yaml": (repo / "params.yaml").read_text().replace("2024-01-31\n", "2024-02-29\n")})
    diff = run_json(["params", "diff", "--json"], repo)["changes"]["params.yaml"]
    assert diff["t.day"]["old"] == "2024-01-31" and diff["t.day"]["new"] == "2024-02-29"
    table = run(["params", "diff"], repo).stdout
    assert "2024-02-29" in table
    assert "Data and pipelines are up to date." not in run(["repro"], repo).stderr
    assert run_json(["status", "--json"], repo)["stages"][0]["changed"] is False


def test_repro_records_changed_tracked_input_data_first(repo: Path) -> None:
    """As DVC ("Verifying data sources"): a new export of `mlver add`-ed data a stage
    reads is stored and its pointer rewritten before the stage runs, so the lock never
    names input bytes that nothing stores, and the hint lists the pointer too."""
    gen(repo, {"data/raw.csv": "1,2,3\n", "mlver.yaml": "stages:\n  count:\n    cmd: wc -c < data/raw.csv > n.txt\n"
                                                         "    deps: [data/raw.csv]\n    outs: [n.txt]\n"})
    run(["add", "data/raw.csv"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    gen(repo, {"data/raw.csv": "1,2,3,4,5,6,7,8,9\n"})
    proc = run(["repro"], repo)
    assert "data/raw.csv.mlver" in proc.stderr  # in the `git add` hint
    pointer = (repo / "data/raw.csv.mlver").read_text()
    digest = pointer.split("digest: ")[1].split()[0]
    assert digest in (repo / "mlver.lock").read_text()
    assert (repo / ".mlver/cache/files/xxh3-128" / digest[:2] / digest[2:]).exists()
    assert run_json(["status"], repo)["clean"]


def test_repro_refuses_a_tracked_input_replaced_by_a_link_out_of_the_repository(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"data/in.txt": "hello\n", "mlver.yaml": "stages:\n  s:\n    cmd: cat data/in.txt > out.txt\n"
                                                        "    deps: [data/in.txt]\n    outs: [out.txt]\n"})
    run(["add", "data/in.txt"], repo)
    run(["repro"], repo)
    pointer = (repo / "data/in.txt.mlver").read_text()
    (tmp_path / "outside.txt").write_text("outside\n")
    (repo / "data/in.txt").unlink()
    (repo / "data/in.txt").symlink_to(tmp_path / "outside.txt")
    for args in (["repro"], ["commit", "data/in.txt"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3 and "is a symbolic link" in proc.stderr, proc.stderr
    assert (repo / "data/in.txt.mlver").read_text() == pointer and (repo / "out.txt").read_text() == "hello\n"
