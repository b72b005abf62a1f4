"""Experiments in the workspace: ``exp run -S``, ``exp save``, ``exp show`` rows,
``exp apply / branch / remove / diff / list / push / pull``, gc's scope, and every error
path, in real Git repositories through the installed ``mlver``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import gen, git, run, run_json

TRAIN = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
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

PARAMS = "# the parameters\ntrain:\n  lr: 0.1  # learning rate\n  epochs: 4\n"


def acc(lr: float, epochs: int = 4) -> float:
    return round(1 - lr / epochs, 4)


@pytest.fixture
def project(repo: Path) -> Path:
    gen(repo, {"train.py": TRAIN, "mlver.yaml": PIPELINE, "params.yaml": PARAMS})
    run(["repro", "-q"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "baseline"], repo)
    return repo


def git_state(root: Path) -> tuple[str, str, str]:
    """HEAD's commit, the branch it names, and the index's entries."""
    return (git(["rev-parse", "HEAD"], root), git(["symbolic-ref", "HEAD"], root), git(["ls-files", "-s"], root))


def show_file(root: Path, rev: str, path: str) -> str:
    return git(["show", f"{rev}:{path}"], root)


def exp_rows(root: Path, *args: str) -> list[dict]:
    return [r for r in run_json(["exp", "show", *args], root)["rows"] if "experiment" in r]


def test_exp_run_sets_the_param_and_records_a_commit_without_moving_head(project: Path) -> None:
    before = git_state(project)
    base = before[0].strip()
    gen(project, {"train.py": TRAIN + "# a code edit\n"})  # an uncommitted code edit goes in too
    doc = run_json(["exp", "run", "-S", "train.lr=0.2", "-n", "lr2"], project)
    assert git_state(project) == before  # HEAD, the branch, the index
    ref = f"refs/exps/{base[:7]}/lr2"
    assert doc["ref"] == ref and doc["name"] == "lr2" and doc["baseline"] == base
    sha = git(["rev-parse", ref], project).strip()
    assert git(["rev-parse", f"{sha}^"], project).strip() == base
    params = show_file(project, sha, "params.yaml")
    assert params == PARAMS.replace("lr: 0.1", "lr: 0.2")  # the comments and layout survive
    assert "# a code edit" in show_file(project, sha, "train.py")
    assert "acc" in show_file(project, sha, "metrics.json")
    assert "train.lr: 0.2" in show_file(project, sha, "mlver.lock")
    # the workspace keeps the results, as after repro
    assert (project / "params.yaml").read_text() == params
    assert (project / "model.bin").read_text() == "model lr=0.2 epochs=4\n"
    [row] = exp_rows(project)
    assert row["experiment"] == "lr2" and row["baseline"] == base and row["status"] == "success"
    assert row["rev"] == sha
    assert row["params"] == {"params.yaml": {"train.epochs": 4, "train.lr": 0.2}}
    assert row["metrics"] == {"metrics.json": {"acc": acc(0.2)}}
    rows = run_json(["exp", "show"], project)["rows"]
    assert [r["rev"] for r in rows[:3]] == ["workspace", base, sha]  # under its baseline
    assert "experiment" not in rows[1]


def test_generated_names_and_exp_list(project: Path) -> None:
    a = run_json(["exp", "run", "-S", "train.lr=0.3"], project)
    b = run_json(["exp", "run", "-S", "train.lr=0.4"], project)
    assert a["name"] != b["name"] and "-" in a["name"]
    listed = run_json(["exp", "list"], project)["experiments"]
    assert sorted(e["name"] for e in listed) == sorted([a["name"], b["name"]])
    out = run(["exp", "list", "--names-only"], project).stdout.split()
    assert sorted(out) == sorted([a["name"], b["name"]])


def test_temp_leaves_every_workspace_file_alone(project: Path) -> None:
    files = [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts and ".mlver" not in p.parts]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    state = git_state(project)
    run(["exp", "run", "--temp", "-S", "train.lr=0.25", "-n", "t1"], project)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert git_state(project) == state
    [row] = exp_rows(project)
    assert row["experiment"] == "t1" and row["metrics"] == {"metrics.json": {"acc": acc(0.25)}}
    assert git(["worktree", "list", "--porcelain"], project).count("worktree ") == 1  # the scratch one is gone


def test_json_and_toml_params_keep_their_layout(repo: Path) -> None:
    js = '{\n  "model": {\n    "depth": 3,\n    "name": "x"\n  }\n}\n'
    toml = '# settings\n[opt]\nlr = 0.1  # rate\nbeta = 0.9\n'
    script = ("import json, tomllib\n"
              "d = json.load(open('p.json'))['model']['depth']\n"
              "lr = tomllib.load(open('p.toml', 'rb'))['opt']['lr']\n"
              "json.dump({'score': d * lr}, open('m.json', 'w'))\n")
    gen(repo, {"t.py": script, "p.json": js, "p.toml": toml, "mlver.yaml":
               "stages:\n  s:\n    cmd: python t.py\n    deps: [t.py]\n    params:\n    - p.json: [model]\n"
               "    - p.toml: [opt]\n    metrics: [m.json]\n"})
    run(["repro", "-q"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    run(["exp", "run", "-S", "p.json:model.depth=5", "-S", "p.toml:opt.lr=0.5", "-n", "j"], repo)
    assert (repo / "p.json").read_text() == js.replace('"depth": 3', '"depth": 5')
    assert (repo / "p.toml").read_text() == toml.replace("lr = 0.1", "lr = 0.5")
    assert json.loads((repo / "m.json").read_text()) == {"score": 2.5}
    run(["exp", "run", "-S", "p.toml:opt.eps=0.001", "--set-new", "-n", "k"], repo)
    assert "eps = 0.001" in (repo / "p.toml").read_text() and "# rate" in (repo / "p.toml").read_text()


def test_list_values_and_set_new(project: Path) -> None:
    run(["exp", "run", "-S", "train.layers=[64,32]", "--set-new", "-n", "layers"], project)
    text = (project / "params.yaml").read_text()
    assert "layers: [64, 32]" in text and "# learning rate" in text
    # a new key inside a flow mapping goes inside its braces; the comments stay
    gen(project, {"params.yaml": text + "extra: {a: 1}  # flow\n"})
    run(["exp", "run", "-S", "extra.b=2", "--set-new", "-n", "flow"], project)
    text = (project / "params.yaml").read_text()
    assert "extra: {a: 1, b: 2}  # flow" in text and "# learning rate" in text
    # a string that YAML 1.2 (which params files are read with) would take for a number is quoted
    run(["exp", "run", "-S", 'train.tag="1e-3"', "--set-new", "-n", "str"], project)
    assert "tag: '1e-3'" in (project / "params.yaml").read_text()
    rows = {r["experiment"]: r for r in exp_rows(project)}
    assert rows["layers"]["params"]["params.yaml"]["train.lr"] == 0.1
    assert rows["str"]["params"]["params.yaml"]["train.tag"] == "1e-3"


@pytest.mark.parametrize("args, code, message", [
    (["-S", "train.lr"], 2, "expected [FILE:]KEY=VALUE"),
    (["-S", "=3"], 2, "expected [FILE:]KEY=VALUE"),
    (["-S", "train.nope=1"], 2, "no key 'train.nope' in params.yaml"),
    (["-S", "train.lr=0.1,0.2"], 2, "needs --queue"),
    (["-S", "missing.yaml:a=1"], 2, "params file 'missing.yaml' does not exist"),
    (["-S", "../outside.yaml:a=1", "--set-new"], 3, "outside"),
    (["-S", "train.lr=[1"], 2, "not valid YAML"),
    (["-n", "bad name"], 2, "not a valid experiment name"),
    (["-n", "-y"], 2, "not a valid experiment name"),  # it would read as an option wherever it is named
    (["-S", "train.lr.x=1", "--set-new"], 2, "'train.lr' is 0.1, not a mapping"),  # the value would be lost
    (["--queue", "--temp"], 2, "choose one of --queue and --temp"),
])
def test_exp_run_errors(project: Path, args: list[str], code: int, message: str) -> None:
    before = (project / "params.yaml").read_bytes()
    proc = run(["exp", "run", *args], project, check=False)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("mlver: error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (project / "params.yaml").read_bytes() == before  # nothing written
    assert git(["for-each-ref", "refs/exps"], project) == ""
    assert not (project.parent / "outside.yaml").exists()


def test_exp_save_records_changed_tracked_data(project: Path, tmp_path: Path) -> None:
    """`exp save` saves the workspace as it is: tracked data changed since its `mlver add`
    is stored and the experiment's pointer names it (as `dvc exp save` commits it); the
    workspace's pointer, HEAD and the index stay."""
    gen(project, {"data/raw.csv": "a,b\n1,2\n"})
    run(["add", "data/raw.csv"], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "data"], project)
    pointer_before = (project / "data/raw.csv.mlver").read_text()
    gen(project, {"data/raw.csv": "a,b\n1,2\n3,4\n"})
    state = git_state(project)
    saved = run_json(["exp", "save", "-n", "edited"], project)
    assert saved["recorded"] == ["data/raw.csv.mlver"] and git_state(project) == state
    assert (project / "data/raw.csv.mlver").read_text() == pointer_before
    assert show_file(project, "refs/exps/" + saved["baseline"][:7] + "/edited", "data/raw.csv.mlver") != pointer_before
    # the saved version comes back from the cache after the workspace moves on
    gen(project, {"data/raw.csv": "something else\n"})
    run(["exp", "apply", "edited", "-f"], project)
    assert (project / "data/raw.csv").read_text() == "a,b\n1,2\n3,4\n"
    assert run(["exp", "save", "-n", "clean"], project).returncode == 0  # nothing changed: nothing recorded
    assert "recorded" not in run_json(["exp", "save", "-n", "clean2"], project)


def test_sorting_keeps_experiments_under_their_baseline(project: Path) -> None:
    for lr, name in ((0.3, "a"), (0.02, "b")):
        run(["exp", "run", "--temp", "-S", f"train.lr={lr}", "-n", name], project)
    gen(project, {"params.yaml": PARAMS.replace("lr: 0.1", "lr: 0.2")})
    run(["repro", "-q"], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "lr 0.2"], project)
    run(["exp", "run", "--temp", "-S", "train.lr=0.01", "-n", "c"], project)
    for order in ("asc", "desc"):
        rows = run_json(["exp", "show", "--sort-by", "train.lr", "--sort-order", order], project)["rows"][1:]
        commit = None
        for r in rows:  # each experiment follows its own baseline commit
            if "experiment" in r:
                assert r["baseline"] == commit, (order, [(x.get("experiment"), x["rev"][:7]) for x in rows])
            else:
                commit = r["rev"]
        lrs = [r["params"]["params.yaml"]["train.lr"] for r in rows
               if "experiment" in r and r["baseline"] == rows[0]["rev"]]
        assert lrs == sorted(lrs, reverse=order == "desc")


def test_a_taken_name_is_refused_before_running(project: Path) -> None:
    run(["exp", "run", "-S", "train.lr=0.2", "-n", "same"], project)
    proc = run(["exp", "run", "-S", "train.lr=0.3", "-n", "same"], project, check=False)
    assert proc.returncode == 3 and "experiment 'same' already exists" in proc.stderr
    assert "lr: 0.2" in (project / "params.yaml").read_text()  # the second run did not start


def test_a_failing_stage_records_no_experiment(project: Path) -> None:
    gen(project, {"train.py": "import sys; sys.exit(5)\n"})
    proc = run(["exp", "run", "-S", "train.lr=0.2"], project, check=False)
    assert proc.returncode == 3 and "code 5" in proc.stderr
    assert git(["for-each-ref", "refs/exps"], project) == ""
    proc = run(["exp", "run", "-S", "train.lr=0.3", "--json"], project, check=False)  # the JSON says so too
    assert proc.returncode == 3 and json.loads(proc.stdout)["failed"]["exit_code"] == 5


def test_exp_save_apply_branch_diff_remove(project: Path) -> None:
    base = git(["rev-parse", "HEAD"], project).strip()
    run(["exp", "run", "-S", "train.lr=0.2", "-n", "two"], project)
    # back to the baseline by hand, then save an unrun edit as an experiment
    git(["checkout", "--", "params.yaml", "mlver.lock", "metrics.json"], project)
    run(["checkout", "-q"], project)
    assert (project / "model.bin").read_text() == "model lr=0.1 epochs=4\n"
    state = git_state(project)
    saved = run_json(["exp", "save", "-n", "saved"], project)
    assert saved["baseline"] == base and git_state(project) == state

    diff = run_json(["exp", "diff", "saved", "two"], project)
    assert diff["params"]["params.yaml"]["train.lr"]["old"] == 0.1
    assert diff["params"]["params.yaml"]["train.lr"]["new"] == 0.2
    assert diff["metrics"]["metrics.json"]["acc"]["new"] == acc(0.2)
    one = run_json(["exp", "diff", "two"], project)  # against its baseline
    assert one["a"] == base and one["params"]["params.yaml"]["train.lr"]["new"] == 0.2
    assert "train.lr" in run(["exp", "diff", "saved", "two"], project).stdout

    res = run_json(["exp", "apply", "two"], project)
    assert git_state(project) == state  # HEAD and the index stay
    assert "params.yaml" in res["files"]
    assert (project / "params.yaml").read_text() == PARAMS.replace("lr: 0.1", "lr: 0.2")
    assert (project / "model.bin").read_text() == "model lr=0.2 epochs=4\n"  # data from the cache
    assert run(["status", "--check"], project, check=False).returncode == 0

    run(["exp", "branch", "two", "keep-two"], project)
    assert git(["rev-parse", "keep-two"], project) == git(["rev-parse", f"refs/exps/{base[:7]}/two"], project)
    assert git_state(project) == state
    proc = run(["exp", "branch", "two", "keep-two"], project, check=False)
    assert proc.returncode == 3 and "already exists" in proc.stderr
    proc = run(["exp", "branch", "two", "bad..name"], project, check=False)  # a usage error, said before anything
    assert proc.returncode == 2 and "not a valid branch name" in proc.stderr
    run(["exp", "branch", "two", "team/keep-two"], project)  # a slash is a valid branch name

    run(["exp", "remove", "two"], project)
    assert [r["experiment"] for r in exp_rows(project)] == ["saved"]
    run(["exp", "remove", "--all"], project)
    assert exp_rows(project) == []
    assert git(["rev-parse", "keep-two"], project)  # the branch stays


def test_apply_refuses_to_overwrite_uncommitted_edits(project: Path) -> None:
    run(["exp", "run", "-S", "train.lr=0.2", "-n", "two"], project)
    gen(project, {"params.yaml": PARAMS.replace("epochs: 4", "epochs: 9")})
    proc = run(["exp", "apply", "two"], project, check=False)
    assert proc.returncode == 3 and "uncommitted edits" in proc.stderr and "params.yaml" in proc.stderr
    assert "epochs: 9" in (project / "params.yaml").read_text()
    run(["exp", "apply", "two", "--force"], project)
    assert "lr: 0.2" in (project / "params.yaml").read_text()


def test_apply_fetches_data_the_cache_lacks(project: Path, tmp_path: Path) -> None:
    """An experiment whose outputs are on the remote but not in this cache (run on Dask,
    or its objects collected here) is applied whole: its data comes from the remote."""
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], project)
    run(["exp", "run", "-S", "train.lr=0.3", "-n", "far"], project)
    run(["push"], project)
    model = yaml.safe_load((project / "mlver.lock").read_text())["stages"]["train"]["outs"][0]
    git(["checkout", "--", "params.yaml", "mlver.lock", "metrics.json"], project)
    run(["checkout", "-q"], project)
    digest = model["digest"] if ":" not in model["digest"] else model["digest"].split(":", 1)[1]
    [obj] = [p for p in (project / ".mlver" / "cache").rglob(digest[2:]) if p.parent.name == digest[:2]]
    obj.chmod(0o644)
    obj.unlink()
    res = run_json(["exp", "apply", "far"], project)
    assert (project / "model.bin").read_text() == "model lr=0.3 epochs=4\n" and res["kept"] == []


@pytest.mark.parametrize("args", [["apply", "nope"], ["branch", "nope", "b"], ["remove", "nope"],
                                  ["diff", "nope", "HEAD"]])
def test_unknown_experiment_names(project: Path, args: list[str]) -> None:
    proc = run(["exp", *args], project, check=False)
    assert proc.returncode == 3 and "'nope'" in proc.stderr and proc.stderr.startswith("mlver: error: ")


def test_push_and_pull_between_two_clones(project: Path, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    store = tmp_path / "store"
    git(["init", "-q", "--bare", str(bare)], tmp_path)
    run(["remote", "add", "-d", "store", str(store)], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "remote"], project)
    git(["remote", "add", "origin", str(bare)], project)
    git(["push", "-q", "origin", "main"], project)
    run(["push", "-q"], project)
    run(["exp", "run", "-S", "train.lr=0.2", "-n", "shared"], project)
    run(["exp", "run", "-S", "train.lr=0.3", "-n", "mine"], project)
    out = run(["exp", "push", "origin", "shared"], project).stdout
    assert "shared" in out and "mine" not in out
    assert [e["name"] for e in run_json(["exp", "list", "origin"], project)["experiments"]] == ["shared"]

    mate = tmp_path / "mate"
    git(["clone", "-q", str(bare), str(mate)], tmp_path)
    run(["pull", "-q"], mate)
    assert [e["name"] for e in run_json(["exp", "list", "origin"], mate)["experiments"]] == ["shared"]
    run(["exp", "pull", "origin", "shared"], mate)
    [row] = exp_rows(mate)
    assert row["experiment"] == "shared" and row["metrics"] == {"metrics.json": {"acc": acc(0.2)}}
    run(["exp", "apply", "shared"], mate)
    assert (mate / "model.bin").read_text() == "model lr=0.2 epochs=4\n"  # its data came from the store
    proc = run(["exp", "pull", "origin", "nope"], mate, check=False)
    assert proc.returncode == 3 and "no experiment named 'nope'" in proc.stderr
    proc = run(["exp", "push", "nowhere", "shared"], mate, check=False)
    assert proc.returncode == 3 and proc.stderr.startswith("mlver: error: ")

    # a teammate's `gc --cloud` (which never fetched the experiment: `git fetch` does not
    # bring refs/exps) keeps its data on the remote: gc fetches shared experiments first
    third = tmp_path / "third"
    git(["clone", "-q", str(bare), str(third)], tmp_path)
    run(["config", "gc.grace", "0"], third)
    model = _model_object(project, f"refs/exps/{git(['rev-parse', 'HEAD'], project)[:7]}/shared")
    on_store = store / model.relative_to(project / ".mlver" / "cache")
    assert on_store.exists()
    proc = run(["gc", "--cloud", "-f"], third)
    assert "fetched 1 experiment ref(s)" in proc.stderr, proc.stderr
    assert on_store.exists()
    other = tmp_path / "fourth"
    git(["clone", "-q", str(bare), str(other)], tmp_path)
    run(["exp", "pull", "origin", "shared"], other)
    run(["exp", "apply", "shared"], other)
    assert (other / "model.bin").read_text() == "model lr=0.2 epochs=4\n"


def _model_object(root: Path, rev: str) -> Path:
    lock = show_file(root, rev, "mlver.lock")
    digest = lock.split("path: model.bin")[1].split("digest: ")[1].split()[0]
    return root / ".mlver" / "cache" / "files" / "xxh3-128" / digest[:2] / digest[2:]


def test_gc_keeps_experiment_objects_unless_the_scope_drops_them(project: Path) -> None:
    run(["exp", "run", "--no-run-cache", "-S", "train.lr=0.2", "-n", "two"], project)  # the run cache keeps its own
    obj = _model_object(project, "refs/exps/" + git(["rev-parse", "HEAD"], project).strip()[:7] + "/two")
    git(["checkout", "--", "params.yaml", "mlver.lock", "metrics.json"], project)
    run(["checkout", "-q"], project)
    assert obj.exists()
    run(["gc", "-f"], project)
    assert obj.exists()  # the default scope keeps refs/exps
    run(["gc", "-w", "--all-experiments", "-f", "--include-unpushed"], project)
    assert obj.exists()
    run(["gc", "-w", "-f"], project)
    assert obj.exists()  # the last copy of committed data, on no remote
    run(["gc", "-w", "-f", "--include-unpushed"], project)
    assert not obj.exists()


def test_exp_show_options(project: Path) -> None:
    run(["exp", "run", "-S", "train.lr=0.2", "-n", "two"], project)
    gen(project, {"x.txt": "x"})
    git(["add", "x.txt"], project)
    git(["commit", "-q", "-m", "second"], project)
    first = git(["rev-parse", "HEAD~1"], project).strip()
    rows = run_json(["exp", "show", "--rev", "HEAD~1"], project)["rows"]
    assert [r.get("experiment") for r in rows[:3]] == [None, None, "two"] and rows[1]["rev"] == first
    assert len(run_json(["exp", "show", "-A"], project)["rows"]) == 5  # workspace, 3 commits, 1 experiment
    only = run_json(["exp", "show", "--only-changed", "--drop", "epochs"], project)["rows"]
    assert all("train.epochs" not in r["params"].get("params.yaml", {}) for r in only)
    proc = run(["exp", "show", "--rev", "nope"], project, check=False)
    assert proc.returncode == 2 and "unknown revision" in proc.stderr
    table = run(["exp", "show", "-n", "2"], project).stdout
    assert "two" in table
    assert os.linesep in table


def test_text_csv_and_markdown_name_the_experiments(project: Path) -> None:
    import csv
    import io

    run(["exp", "run", "-S", "train.lr=0.2", "-n", "two"], project)
    run(["exp", "run", "--queue", "-S", "train.lr=0.3", "-n", "later"], project)
    table = list(csv.reader(io.StringIO(run(["exp", "show", "--csv"], project).stdout)))
    assert table[0][:4] == ["Rev", "Refs", "Date", "Subject"]
    named = {r[1]: r for r in table[1:] if r[1] in ("two", "later")}
    assert set(named) == {"two", "later"} and named["later"][3].startswith("[queued] ")
    md = run(["exp", "show", "--md"], project).stdout
    assert "two" in md and "[queued]" in md
    assert "two" in run(["exp", "list"], project).stdout
    status = run(["queue", "status"], project).stdout
    assert "later" in status and "queued" in status and "train.lr=0.3" in status
    diff = run(["exp", "diff", "two", "later", "--md"], project).stdout
    assert diff.startswith("| Kind |") and "train.lr" in diff


def test_values_are_typed_as_the_params_files_are_read(repo: Path) -> None:
    # YAML 1.2, as mlver and DVC read params files: 1e-3 a float, yes a string, 010 ten
    gen(repo, {"params.yaml": "train:\n  lr: 0.1\n  name: base\n", "p.json": '{"a": {"b": 1}}\n',
               "mlver.yaml": "stages:\n  s:\n    cmd: cat params.yaml p.json > out.txt\n"
                             "    params: [train, {p.json: [a]}]\n    outs: [out.txt]\n"})
    run(["repro", "-q"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    run(["exp", "run", "-q", "-S", "train.lr=1e-3", "-S", "train.name=yes", "-S", "p.json:a.b=010", "-n", "typed"],
        repo)
    [row] = exp_rows(repo)
    assert row["params"]["params.yaml"]["train.lr"] == 0.001
    assert row["params"]["params.yaml"]["train.name"] == "yes"
    assert json.loads((repo / "p.json").read_text()) == {"a": {"b": 10}}
    run(["exp", "run", "-q", "-S", "p.json:a.b=1e-3"], repo)
    assert json.loads((repo / "p.json").read_text()) == {"a": {"b": 0.001}}
    proc = run(["exp", "run", "--queue", "-S", "train.lr=1e-3,1e-2"], repo)
    assert "train.lr=0.001" in proc.stdout and "train.lr=0.01" in proc.stdout


def test_a_symlinked_params_file_is_written_through_and_one_leaving_is_refused(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"conf/params.yaml": "train:\n  lr: 1\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: cat conf/params.yaml > o.txt\n    params: [train]\n"
                             "    outs: [o.txt]\n"})
    os.symlink("conf/params.yaml", repo / "params.yaml")
    run(["repro", "-q"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    run(["exp", "run", "-q", "-S", "train.lr=2", "-n", "two"], repo)
    assert os.readlink(repo / "params.yaml") == "conf/params.yaml"  # the link stays a link
    assert (repo / "conf/params.yaml").read_text() == "train:\n  lr: 2\n"
    assert (repo / "o.txt").read_text() == "train:\n  lr: 2\n"  # the stage ran with the value recorded
    [row] = exp_rows(repo)  # values at a commit follow the link in its tree
    assert row["params"]["params.yaml"]["train.lr"] == 2
    outside = tmp_path / "outside.yaml"
    outside.write_text("a: 1\n")
    os.symlink(outside, repo / "linked.yaml")
    for args in (["-S", "linked.yaml:a=2"], ["--queue", "-S", "linked.yaml:a=2,3"]):
        proc = run(["exp", "run", *args], repo, check=False)
        assert proc.returncode == 3 and "outside the repository" in proc.stderr, proc.stderr
    assert outside.read_text() == "a: 1\n" and os.path.islink(repo / "linked.yaml")


def test_an_experiment_name_is_a_revision_everywhere(project: Path) -> None:
    """As in DVC: `metrics diff`, `params diff`, `checkout --rev`, `get --rev` and
    mlver.api take an experiment's name where they take a revision (Git's names first)."""
    import subprocess
    import sys

    run(["exp", "run", "-q", "-S", "train.lr=0.2", "-n", "lr02"], project)
    git(["checkout", "-q", "--", "params.yaml", "mlver.lock"], project)  # the workspace back at HEAD
    run(["checkout"], project)
    assert (project / "model.bin").read_text() == "model lr=0.1 epochs=4\n"
    diff = run_json(["metrics", "diff", "HEAD", "lr02"], project)["changes"]
    assert diff["metrics.json"]["acc"]["new"] == acc(0.2)
    params = run_json(["params", "diff", "HEAD", "lr02"], project)["changes"]
    assert params["params.yaml"]["train.lr"]["new"] == 0.2
    run(["get", "--rev", "lr02", "model.bin", "-o", "exp-model.bin"], project)
    assert (project / "exp-model.bin").read_text() == "model lr=0.2 epochs=4\n"
    code = "import mlver.api as a, sys; sys.stdout.write(a.read('model.bin', rev='lr02', mode='r'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "model lr=0.2 epochs=4\n", out.stderr
    run(["checkout", "--rev", "lr02", "model.bin"], project)
    assert (project / "model.bin").read_text() == "model lr=0.2 epochs=4\n"
    proc = run(["checkout", "--rev", "no-such-rev", "model.bin"], project, check=False)
    assert proc.returncode == 3 and "unknown revision 'no-such-rev'" in proc.stderr


def test_changed_tracked_input_data_is_recorded_before_the_experiment(repo: Path) -> None:
    """As `dvc exp run`: a new export of tracked data a stage depends on is stored and
    its pointer rewritten first, so the experiment names the data it ran on (and
    reproduces), and a queued run runs on it too."""
    gen(repo, {"data/raw.csv": "1,2,3\n", "params.yaml": "k: 1\n",
               "count.py": "import json\nn = len(open('data/raw.csv').read())\n"
                           "json.dump({'n': n}, open('m.json', 'w'))\nopen('n.txt', 'w').write(str(n))\n",
               "mlver.yaml": "stages:\n  count:\n    cmd: python count.py\n    deps: [count.py, data/raw.csv]\n"
                             "    params: [k]\n    outs: [n.txt]\n    metrics: [{m.json: {cache: false}}]\n"})
    run(["add", "data/raw.csv"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    gen(repo, {"data/raw.csv": "1,2,3,4,5,6,7,8,9\n"})  # the data scientist gets a new export
    run(["exp", "run", "-q", "-n", "e1"], repo)
    ref = git(["for-each-ref", "--format=%(refname)", "refs/exps/*/e1"], repo).strip()
    assert json.loads(show_file(repo, ref, "m.json")) == {"n": 18}
    pointer = show_file(repo, ref, "data/raw.csv.mlver")
    lock = show_file(repo, ref, "mlver.lock")
    digest = pointer.split("digest: ")[1].split()[0]
    assert digest in lock  # pointer and lock name the same data
    assert run(["repro", "--verify", "--rev", ref], repo).returncode == 0
    gen(repo, {"data/raw.csv": "1,2,3,4\n"})
    pointer_before = (repo / "data/raw.csv.mlver").read_bytes()
    run(["exp", "run", "--queue", "-q", "-n", "e2", "-S", "k=2"], repo)
    run(["queue", "start"], repo)
    ref2 = git(["for-each-ref", "--format=%(refname)", "refs/exps/*/e2"], repo).strip()
    assert json.loads(show_file(repo, ref2, "m.json")) == {"n": 8}
    assert (repo / "data/raw.csv.mlver").read_bytes() == pointer_before  # a queued run leaves the workspace be
    digest2 = show_file(repo, ref2, "data/raw.csv.mlver").split("digest: ")[1].split()[0]
    assert digest2 in show_file(repo, ref2, "mlver.lock")
    assert run(["repro", "--verify", "--rev", ref2], repo).returncode == 0


def test_setting_a_key_reached_through_a_yaml_alias_is_refused(repo: Path) -> None:
    """`eval: *defaults` shares train's mapping: `-S eval.lr=...` would change train.lr too
    (it edited the anchor silently); refused, nothing written."""
    text = "train: &d\n  lr: 0.1\neval: *d\n"
    gen(repo, {"params.yaml": text, "mlver.yaml": "stages:\n  s:\n    cmd: cat params.yaml > o.txt\n"
                                                   "    params: [train, eval]\n    outs: [o.txt]\n"})
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    proc = run(["exp", "run", "-S", "eval.lr=0.9"], repo, check=False)
    assert proc.returncode == 2 and "YAML alias" in proc.stderr, proc.stderr
    assert (repo / "params.yaml").read_text() == text


def test_setting_a_key_that_holds_an_anchor_others_alias_is_refused(repo: Path) -> None:
    """`train: &d` aliased by `eval: *d`: `-S train.lr=...` would change eval.lr too (it did,
    silently); refused, nothing written. An anchor nothing aliases is set as usual."""
    text = "train: &d\n  lr: 0.1\n  bs: &b 8\neval: *d\nbatch: *b\nlone: &l\n  x: 1\n"
    gen(repo, {"params.yaml": text, "mlver.yaml": "stages:\n  s:\n    cmd: cat params.yaml > o.txt\n"
                                                   "    params: [train, eval, lone]\n    outs: [o.txt]\n"})
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    for key in ("train.lr=0.9", "train.bs=16", "batch=4"):
        proc = run(["exp", "run", "-S", key], repo, check=False)
        assert proc.returncode == 2 and "YAML a" in proc.stderr, (key, proc.stderr)
        assert (repo / "params.yaml").read_text() == text
    run(["exp", "run", "-q", "-S", "lone.x=2"], repo)
    assert (repo / "params.yaml").read_text() == text.replace("x: 1", "x: 2")


def test_setting_a_key_below_a_yaml_merge_key_is_refused_where_it_would_drop_siblings(repo: Path) -> None:
    """`train: {<<: *d}`: `-S train.opt.name=adam` would write a partial `opt:` under train
    that replaces d's whole `opt` (its momentum lost): refused. A leaf the merge brings
    (`train.lr`) is overridden under train, as YAML's merge means, d unchanged."""
    text = "defaults: &d\n  lr: 0.1\n  opt:\n    name: sgd\n    momentum: 0.9\ntrain:\n  <<: *d\n  epochs: 3\n"
    gen(repo, {"params.yaml": text, "mlver.yaml": "stages:\n  s:\n    cmd: cat params.yaml > o.txt\n"
                                                   "    params: [train]\n    outs: [o.txt]\n"})
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    proc = run(["exp", "run", "-S", "train.opt.name=adam"], repo, check=False)
    assert proc.returncode == 2 and "merge key" in proc.stderr, proc.stderr
    assert (repo / "params.yaml").read_text() == text
    run(["exp", "run", "-q", "-S", "train.lr=9"], repo)
    doc = yaml.safe_load((repo / "params.yaml").read_text())
    assert doc["train"] == {"lr": 9, "opt": {"name": "sgd", "momentum": 0.9}, "epochs": 3}
    assert doc["defaults"]["lr"] == 0.1


def test_exp_diff_of_a_name_two_baselines_share_says_it_is_ambiguous(project: Path) -> None:
    run(["exp", "run", "-q", "-S", "train.lr=0.2", "-n", "twin"], project)
    git(["commit", "-q", "-am", "next baseline"], project)
    run(["exp", "run", "-q", "-S", "train.lr=0.3", "-n", "twin"], project)
    git(["commit", "-q", "--allow-empty", "-m", "a third"], project)  # HEAD is neither baseline
    for args in (["exp", "diff", "twin", "HEAD"], ["exp", "apply", "twin"]):
        proc = run(args, project, check=False)
        assert proc.returncode == 2 and "is ambiguous" in proc.stderr, (args, proc.stderr)


def new_acc(root: Path, rev: str) -> float:
    """acc at ``rev``, read from `metrics diff REV HEAD` (HEAD's metrics are the baseline's)."""
    doc = run_json(["metrics", "diff", "--all", rev, "HEAD"], root)
    return doc["changes"]["metrics.json"]["acc"]["old"]


def test_a_name_two_baselines_share_is_ambiguous_everywhere_a_revision_is_taken(project: Path) -> None:
    """Outside `exp` too (metrics, get/checkout --rev) the name is refused as ambiguous rather
    than 'unknown revision'; BASE/NAME picks one, and on a baseline the bare name is HEAD's."""
    first = git(["rev-parse", "HEAD"], project).strip()
    run(["exp", "run", "-q", "-S", "train.lr=0.2", "-n", "twin"], project)
    git(["commit", "-q", "--allow-empty", "-m", "next baseline"], project)
    second = git(["rev-parse", "HEAD"], project).strip()
    run(["exp", "run", "-q", "-S", "train.lr=0.3", "-n", "twin"], project)
    # on the second baseline, the bare name is its experiment
    assert new_acc(project, "twin") == acc(0.3)
    git(["commit", "-q", "--allow-empty", "-m", "a third"], project)  # HEAD is neither baseline
    for args in (["metrics", "diff", "twin", "HEAD"], ["params", "diff", "twin"],
                 ["get", "model.bin", "--rev", "twin", "-o", "m.bin"],
                 ["checkout", "--rev", "twin", "model.bin"]):
        proc = run(args, project, check=False)
        assert proc.returncode == 2 and "is ambiguous" in proc.stderr, (args, proc.stderr)
        assert f"{first[:7]}/twin" in proc.stderr and f"{second[:7]}/twin" in proc.stderr
    assert not (project / "m.bin").exists()
    for base, lr in ((first[:7], 0.2), (second[:9], 0.3), ("HEAD~1", 0.3)):
        assert new_acc(project, f"{base}/twin") == acc(lr), base
    run(["get", "model.bin", "--rev", f"{first[:7]}/twin", "-o", "m.bin"], project)
    assert (project / "m.bin").read_text() == "model lr=0.2 epochs=4\n"
    assert run(["exp", "diff", f"{first[:7]}/twin", f"{second[:7]}/twin"], project).returncode == 0


def test_a_deleted_data_dependency_stops_repro_and_every_kind_of_exp_run(repo: Path) -> None:
    """Tracked input data deleted from the workspace: `repro` refuses, and so do `exp run`,
    `--temp` and `--queue` (they ran quietly on the recorded version); the hint names the
    way back: `checkout` when the cache has it, `pull` when it does not."""
    gen(repo, {"raw.csv": "1,2\n", "params.yaml": "x: 1\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: wc -c raw.csv > o.txt\n    deps: [raw.csv]\n"
                             "    params: [x]\n    outs: [o.txt]\n"})
    run(["add", "raw.csv"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    (repo / "raw.csv").unlink()
    refs = git(["for-each-ref", "refs/exps/"], repo)
    for args in (["repro"], ["exp", "run", "-S", "x=2"], ["exp", "run", "--temp", "-S", "x=3"],
                 ["exp", "run", "--queue", "-S", "x=4"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "raw.csv: is a dependency of stage 's' and does not exist" in proc.stderr
        assert "`mlver checkout raw.csv`" in proc.stderr
    assert git(["for-each-ref", "refs/exps/"], repo) == refs  # nothing saved, nothing queued
    assert (repo / "params.yaml").read_text() == "x: 1\n"
    shutil.rmtree(repo / ".mlver" / "cache")
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3 and "`mlver pull raw.csv`" in proc.stderr


def test_a_deleted_file_of_a_tracked_folder_stops_repro_before_the_folder_is_recorded(repo: Path) -> None:
    """The stage depends on one file of a tracked folder: with the file deleted, `repro`
    (and its dry run) stop before anything is written; the folder's pointer still names the
    file, so the hint's `mlver checkout` brings it back. A stage that does not read it runs."""
    gen(repo, {"imgs/1.txt": "1\n", "imgs/2.txt": "2\n", "k.txt": "k\n",
               "mlver.yaml": "stages:\n  img:\n    cmd: cat imgs/2.txt > img.txt\n    deps: [imgs/2.txt]\n"
                             "    outs: [img.txt]\n  other:\n    cmd: cat k.txt > other.txt\n    deps: [k.txt]\n"
                             "    outs: [other.txt]\n"})
    run(["add", "imgs"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    pointer = (repo / "imgs.mlver").read_bytes()
    (repo / "imgs/2.txt").unlink()
    for args in (["repro"], ["repro", "--dry-run"], ["repro", "img"], ["exp", "run", "--temp", "img"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3 and "imgs/2.txt: is a dependency of stage 'img'" in proc.stderr, (args, proc.stderr)
        assert "`mlver checkout imgs/2.txt`" in proc.stderr
        assert (repo / "imgs.mlver").read_bytes() == pointer
    gen(repo, {"k.txt": "k2\n"})
    run(["repro", "other"], repo)  # its stage does not read the deleted file
    run(["exp", "run", "-q", "--temp", "other"], repo)
    assert (repo / "other.txt").read_text() == "k2\n"
    run(["checkout", "imgs/2.txt"], repo)
    assert (repo / "imgs/2.txt").read_text() == "2\n"
