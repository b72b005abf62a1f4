"""``repro --verify``: an old commit re-run in a scratch Git worktree, reported per
output; the workspace, index and branches stay exactly as they were."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import gen, git, run, run_json

PREPARE = """\
import sys
rows = open("data/raw.csv").read().splitlines()
open("prepared.csv", "w").write("\\n".join(r.upper() for r in rows) + "\\n")
"""
TRAIN = """\
import json, random, sys, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
n = len(open("prepared.csv").read().splitlines())
noise = random.random() if "--random" in sys.argv else 0.0
open("model.bin", "w").write(f"model {p['lr']} {n} {noise}\\n")
json.dump({"acc": round(0.5 + p["lr"] + noise, 6), "rows": n}, open("metrics.json", "w"))
"""


def pipeline(random: bool = False) -> str:
    flag = " --random" if random else ""
    return f"""\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [prepared.csv]
  train:
    cmd: python train.py{flag}
    deps: [train.py, prepared.csv]
    params: [train.lr]
    outs: [model.bin]
    metrics: [metrics.json]
"""


def commit_all(root: Path, message: str) -> str:
    git(["add", "-A"], root)
    git(["commit", "-q", "-m", message], root)
    return git(["rev-parse", "HEAD"], root).strip()


def make_project(root: Path, *, random: bool = False) -> str:
    gen(root, {"data/raw.csv": "a\nb\nc\n", "prepare.py": PREPARE, "train.py": TRAIN,
               "params.yaml": "train:\n  lr: 0.1\n", "mlver.yaml": pipeline(random)})
    run(["add", "data/raw.csv"], root)
    run(["repro", "-q"], root)
    return commit_all(root, "experiment")


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file outside .git and .mlver/tmp: content and mtime_ns."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" and not (d == "tmp" and dirpath.endswith(".mlver"))]
        for f in filenames:
            p = Path(dirpath) / f
            files[str(p.relative_to(root))] = (p.read_bytes(), p.lstat().st_mtime_ns)
    return files


def git_state(root: Path) -> tuple[str, str, str, str]:
    return (git(["status", "--porcelain", "--untracked-files=all"], root), git(["rev-parse", "HEAD"], root),
            git(["for-each-ref"], root), git(["ls-files", "-s"], root))


def test_verify_deterministic_pipeline_reproduces(repo: Path) -> None:
    sha = make_project(repo)
    doc = run_json(["repro", "--verify"], repo)
    assert doc["version"] == 1 and doc["rev"] == sha and doc["reproduced"] is True
    got = {(o["stage"], o["path"]): o for o in doc["outputs"]}
    assert set(got) == {("prepare", "prepared.csv"), ("train", "model.bin"), ("train", "metrics.json")}
    for o in got.values():
        assert o["status"] == "reproduced" and o["expected"] == o["actual"] and len(o["expected"]) == 32
        assert set(o) == {"stage", "path", "status", "expected", "actual", "hash", "message"}
    assert git(["worktree", "list", "--porcelain"], repo).count("worktree ") == 1  # the scratch one is gone
    assert not [p for p in (repo / ".mlver" / "tmp").iterdir() if p.name.startswith("verify-")]
    text = run(["repro", "--verify", "train"], repo)
    assert "reproduced train:model.bin" in text.stdout and "all 3 output(s) reproduced" in text.stderr


def test_verify_random_pipeline_differs(repo: Path) -> None:
    make_project(repo, random=True)
    proc = run(["repro", "--verify", "--json"], repo, check=False)
    assert proc.returncode == 1, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["reproduced"] is False
    by_path = {o["path"]: o for o in doc["outputs"]}
    assert by_path["prepared.csv"]["status"] == "reproduced"
    for path in ("model.bin", "metrics.json"):
        assert by_path[path]["status"] == "differs"
        assert by_path[path]["expected"] != by_path[path]["actual"]
    values = by_path["metrics.json"]["values"]
    assert set(values) == {"acc"} and values["acc"]["old"] != values["acc"]["new"]
    text = run(["repro", "--verify"], repo, check=False)
    assert text.returncode == 1
    assert "differs    train:model.bin" in text.stdout and "acc: " in text.stdout


def test_verify_missing_input_everywhere_is_an_error(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    store = tmp_path / "store"
    store.mkdir()  # an empty remote (a missing folder would be an error of its own)
    run(["remote", "add", "-d", "store", str(store)], repo)  # the data was never pushed
    shutil.rmtree(repo / ".mlver" / "cache")
    proc = run(["repro", "--verify", "--json"], repo, check=False)
    assert proc.returncode == 3, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert {o["status"] for o in doc["outputs"]} == {"error"}
    prepare = next(o for o in doc["outputs"] if o["path"] == "prepared.csv")
    assert "data/raw.csv" in prepare["message"] and "remote" in prepare["message"]
    train = next(o for o in doc["outputs"] if o["path"] == "model.bin")
    assert "prepare" in train["message"]
    # the table, and one error line naming the input (not a traceback, not silence)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlver: error:")]
    assert errors == ["mlver: error: 3 output(s) at " + doc["rev"][:7] + " could not be verified: input "
                      "data/raw.csv: object " + prepare["message"].split("object ", 1)[1]], proc.stderr
    assert "Traceback" not in proc.stderr
    text = run(["repro", "--verify"], repo, check=False)
    assert text.returncode == 3
    assert "error      prepare:prepared.csv  input data/raw.csv: " in text.stdout
    errors = [line for line in text.stderr.splitlines() if line.startswith("mlver: error:")]
    assert len(errors) == 1 and "input data/raw.csv: " in errors[0] and "remote 'store'" in errors[0]
    assert "hint: push it from a clone that has it" in text.stderr
    assert git(["worktree", "list", "--porcelain"], repo).count("worktree ") == 1


def test_verify_fetches_missing_inputs_from_the_default_remote(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    commit_all(repo, "remote")
    run(["push"], repo)
    shutil.rmtree(repo / ".mlver" / "cache")
    assert run_json(["repro", "--verify"], repo)["reproduced"] is True


def test_verify_old_rev_leaves_the_workspace_untouched(repo: Path) -> None:
    first = make_project(repo)
    gen(repo, {"params.yaml": "train:\n  lr: 0.2\n"})
    run(["repro", "-q"], repo)
    second = commit_all(repo, "lr 0.2")
    # uncommitted work in progress: edited code, params, data and an untracked file
    gen(repo, {"train.py": TRAIN + "# wip\n", "params.yaml": "train:\n  lr: 0.7\n", "notes.txt": "wip\n"})
    os.chmod(repo / "data" / "raw.csv", 0o644)
    (repo / "data" / "raw.csv").write_text("edited\n")
    git(["add", "notes.txt"], repo)  # something staged, too
    before, state = snapshot(repo), git_state(repo)

    doc = run_json(["repro", "--verify", "--rev", "HEAD~1"], repo)
    assert doc["rev"] == first and doc["reproduced"] is True
    metrics = next(o for o in doc["outputs"] if o["path"] == "metrics.json")
    assert metrics["status"] == "reproduced"

    assert snapshot(repo) == before  # byte for byte, same mtime_ns
    assert git_state(repo) == state
    assert git(["rev-parse", "HEAD"], repo).strip() == second
    assert git(["symbolic-ref", "HEAD"], repo).strip() == "refs/heads/main"

    kept = run_json(["repro", "--verify", "--rev", first, "--keep", "prepare"], repo)
    wt = Path(kept["worktree"])
    assert (wt / "prepared.csv").read_text() == "A\nB\nC\n"
    assert [o["stage"] for o in kept["outputs"]] == ["prepare"]
    assert snapshot(repo) == before and git_state(repo)[1:] == state[1:]
    git(["worktree", "remove", "--force", str(wt)], repo)


def test_verify_failing_command_and_usage(repo: Path) -> None:
    make_project(repo)
    gen(repo, {"train.py": "import sys\nsys.exit(4)\n"})
    commit_all(repo, "broken training")
    proc = run(["repro", "--verify", "--json"], repo, check=False)
    assert proc.returncode == 3
    import json

    doc = json.loads(proc.stdout)
    model = next(o for o in doc["outputs"] if o["path"] == "model.bin")
    assert model["status"] == "error" and "exited with code 4" in model["message"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlver: error:")]
    assert len(errors) == 1 and "train:model.bin: stage 'train' failed: command exited with code 4" in errors[0]
    assert next(o for o in doc["outputs"] if o["path"] == "prepared.csv")["status"] == "reproduced"
    assert run(["repro", "--verify", "--force"], repo, check=False).returncode == 2
    assert run(["repro", "--rev", "HEAD"], repo, check=False).returncode == 2
    unknown = run(["repro", "--verify", "--rev", "nope"], repo, check=False)
    assert unknown.returncode == 3 and "unknown revision" in unknown.stderr
