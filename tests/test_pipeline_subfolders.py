"""Several pipeline files: an ``mlver.yaml`` in a subfolder is a pipeline of its own
(paths relative to it, its lock beside it), its stages are named ``sub/mlver.yaml:NAME``
(a bare NAME works where it is unique), and repro, status, dag, stage list, commit,
push/pull and gc see every file (SPEC "Pipeline language")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

TOP = """\
stages:
  prepare:
    cmd: tr a-z A-Z < raw.txt > data/clean.txt
    deps: [raw.txt]
    outs: [data/clean.txt]
"""

SUB = """\
vars:
  - params.yaml
stages:
  prepare:
    cmd: cp ../data/clean.txt copy.txt
    deps: [../data/clean.txt]
    outs: [copy.txt]
  train:
    cmd: echo "${train.epochs} $(cat copy.txt)" > model.txt
    deps: [copy.txt]
    outs: [model.txt]
metrics:
  - scores.json
"""


@pytest.fixture
def project(repo: Path) -> Path:
    gen(repo, {"mlver.yaml": TOP, "raw.txt": "hello\n", "data/.keep": "",
               "models/mlver.yaml": SUB, "models/params.yaml": "train:\n  epochs: 3\n",
               "models/scores.json": '{"acc": 0.5}\n'})
    return repo


def said(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def _lock(p: Path) -> str:
    return p.read_text()


def test_repro_runs_every_pipeline_file_and_writes_a_lock_beside_each(project: Path) -> None:
    res = run(["repro"], project)
    assert (project / "models/model.txt").read_text() == "3 HELLO\n"
    top, sub = _lock(project / "mlver.lock"), _lock(project / "models/mlver.lock")
    assert "prepare:" in top and "train" not in top
    # the subfolder's lock: short names, paths relative to its folder
    assert "  train:\n" in sub and "path: model.txt" in sub and "path: ../data/clean.txt" in sub
    assert "models/mlver.lock" in res.stderr  # the git-add hint names both locks
    status = run_json(["status", "--json"], project)
    names = [s["name"] for s in status["stages"]]
    assert names == ["prepare", "models/mlver.yaml:prepare", "models/mlver.yaml:train"]
    assert all(not s["changed"] for s in status["stages"])
    assert run(["repro"], project).stderr.strip().endswith("Data and pipelines are up to date.")
    # the subfolder's top-level metrics and its params are the project's, named from the top
    shown = run_json(["metrics", "show", "--json"], project)
    assert "models/scores.json" in str(shown)


def test_names_bare_where_unique_with_the_file_where_they_collide(project: Path) -> None:
    run(["repro"], project)
    (project / "models/params.yaml").write_text("train:\n  epochs: 4\n")
    dry = run(["repro", "--dry-run"], project).stdout
    assert "Would run stage 'models/mlver.yaml:train'" in dry and "Stage 'prepare' is up to date" in dry
    run(["repro", "train"], project)  # unique bare name
    assert (project / "models/model.txt").read_text() == "4 HELLO\n"
    (project / "raw.txt").write_text("bye\n")
    run(["repro", "-s", "prepare"], project)  # the top file's stage, not the subfolder's
    assert (project / "data/clean.txt").read_text() == "BYE\n"
    assert (project / "models/copy.txt").read_text() == "HELLO\n"
    run(["repro", "-s", "models/mlver.yaml:prepare"], project)
    assert (project / "models/copy.txt").read_text() == "BYE\n"
    listed = run_json(["stage", "list", "--json"], project)
    assert [s["name"] for s in listed["stages"]] == ["prepare", "models/mlver.yaml:prepare", "models/mlver.yaml:train"]
    train = listed["stages"][2]
    assert train["deps"] == ["models/copy.txt"] and train["outs"] == ["models/model.txt"]
    edges = run_json(["dag", "--json"], project)
    assert {"from": "prepare", "to": "models/mlver.yaml:prepare"} in edges["edges"] or \
        ["prepare", "models/mlver.yaml:prepare"] in edges["edges"]


def test_a_bare_name_in_two_subfolder_files_is_ambiguous(repo: Path) -> None:
    stage = "stages:\n  eval:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n"
    gen(repo, {"a/mlver.yaml": stage, "b/mlver.yaml": stage})
    proc = run(["repro", "eval"], repo, check=False)
    assert proc.returncode != 0
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert line and "ambiguous" in line[0] and "a/mlver.yaml" in line[0] and "b/mlver.yaml" in line[0]
    assert not (repo / "a/out.txt").exists() and not (repo / "b/out.txt").exists()
    run(["repro", "a/mlver.yaml:eval"], repo)
    assert (repo / "a/out.txt").exists() and not (repo / "b/out.txt").exists()
    run(["repro", "b/mlver.yaml"], repo)  # a pipeline file names all of its stages
    assert (repo / "b/out.txt").exists()


def test_an_error_in_a_subfolder_file_names_that_file_and_line(repo: Path) -> None:
    gen(repo, {"mlver.yaml": TOP, "raw.txt": "x\n", "sub/mlver.yaml": "stages:\n  s:\n    cmd: echo ${nope}\n"})
    proc = run(["status"], repo, check=False)
    assert proc.returncode != 0
    assert "sub/mlver.yaml:3" in proc.stderr and "nope" in proc.stderr


def test_push_pull_and_gc_keep_subfolder_outputs(project: Path, tmp_path: Path) -> None:
    run(["repro"], project)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "two pipelines"], project)
    first = (project / "models/model.txt").read_bytes()
    (project / "models/params.yaml").write_text("train:\n  epochs: 9\n")
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "more epochs"], project)
    run(["push", "--all-commits"], project)
    # gc's default scope (HEAD, branches, tags) keeps what the subfolder lock of HEAD
    # records; the old model is only in HEAD~1's subfolder lock
    run(["gc", "-f"], project)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(project), str(clone)], tmp_path)
    run(["pull"], clone)
    assert (clone / "models/model.txt").read_text() == "9 HELLO\n"
    assert run_json(["status", "--json"], clone)["stages"][-1]["changed"] is False
    git(["checkout", "-q", "HEAD~1"], clone)
    run(["pull"], clone)
    assert (clone / "models/model.txt").read_bytes() == first
    # and `gc --all-commits` in the first clone keeps the old model's object
    run(["gc", "--all-commits", "-f"], project)
    git(["checkout", "-q", "HEAD~1"], project)
    run(["checkout"], project)
    assert (project / "models/model.txt").read_bytes() == first


def test_commit_records_a_subfolder_stage(project: Path) -> None:
    run(["repro"], project)
    (project / "models/model.txt").chmod(0o644)
    run(["unprotect", "models/model.txt"], project)
    (project / "models/model.txt").write_text("hand-tuned\n")
    run(["commit", "train"], project)
    assert "path: model.txt" in _lock(project / "models/mlver.lock")
    assert run_json(["status", "--json"], project)["stages"][-1]["changed"] is False


def test_repro_in_a_subfolder_runs_that_pipeline_file(project: Path) -> None:
    """As DVC: from a folder holding its own mlver.yaml, a bare `repro` runs that file's
    stages and what they depend on; -P/--all-pipelines runs every file."""
    sub = project / "models"
    run(["repro", "-s", "prepare"], project)
    gen(project, {"other/mlver.yaml": "stages:\n  o:\n    cmd: echo o > o.txt\n    outs: [o.txt]\n"})
    run(["repro"], sub)
    assert (sub / "model.txt").exists() and not (project / "other/o.txt").exists()
    run(["repro", "-P"], sub)
    assert (project / "other/o.txt").exists()


def test_a_bare_name_in_a_subfolder_names_that_files_stage(project: Path) -> None:
    """As `dvc repro NAME` there: both files have a `prepare`; from models/ the bare name
    is models/mlver.yaml's, `mlver.yaml:prepare` the top one's, and a name only the top
    file has still works; at the top the bare name is the top file's."""
    sub = project / "models"
    run(["repro", "-s", "prepare"], project)
    assert (project / "data/clean.txt").exists() and not (sub / "copy.txt").exists()
    out = said(run(["repro", "-s", "prepare"], sub))
    assert "models/mlver.yaml:prepare" in out and (sub / "copy.txt").read_text() == "HELLO\n"
    out = said(run(["repro", "-s", "--force", "mlver.yaml:prepare"], sub))
    assert "Running stage 'prepare'" in out and "models/mlver.yaml" not in out
    gen(project, {"mlver.yaml": TOP + "  top_only:\n    cmd: echo t > t.txt\n    outs: [t.txt]\n"})
    run(["repro", "-s", "top_only"], sub)
    assert (project / "t.txt").read_text() == "t\n"
    out = said(run(["repro", "-s", "--force", "-P", "prepare"], sub))  # every file: the name's top meaning
    assert "Running stage 'prepare'" in out


def test_stage_add_in_a_subfolder_with_its_own_file_writes_there(project: Path) -> None:
    sub = project / "models"
    proc = run(["stage", "add", "-n", "report", "-d", "model.txt", "-o", "report.txt", "--", "cat model.txt > report.txt"],
               sub)
    assert "models/mlver.yaml" in proc.stderr or "mlver.yaml" in proc.stderr
    text = (sub / "mlver.yaml").read_text()
    assert "report:" in text and "- model.txt" in text and "report" not in (project / "mlver.yaml").read_text()
    run(["repro", "report"], project)
    assert (sub / "report.txt").read_text() == "3 HELLO\n"


def test_yaml_merge_keys_override_merged_fields(repo: Path) -> None:
    gen(repo, {"in.txt": "x\n", "mlver.yaml": (
        "stages:\n  a: &s\n    cmd: cat in.txt > a.txt\n    deps: [in.txt]\n    outs: [a.txt]\n"
        "  b:\n    <<: *s\n    outs: [b.txt]\n    cmd: cat in.txt > b.txt\n")})
    stages = run_json(["stage", "list", "--json"], repo)["stages"]
    assert [(s["name"], s["deps"], s["outs"]) for s in stages] == [("a", ["in.txt"], ["a.txt"]), ("b", ["in.txt"], ["b.txt"])]
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: x\n    cmd: y\n"})
    proc = run(["stage", "list"], repo, check=False)
    assert proc.returncode == 3 and "mlver.yaml:4" in proc.stderr and "duplicate key 'cmd'" in proc.stderr


def test_checkout_rev_brings_back_a_subfolder_stage_output(project: Path) -> None:
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "epochs 3"], project)
    (project / "models/params.yaml").write_text("train:\n  epochs: 7\n")
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "epochs 7"], project)
    run(["checkout", "--rev", "HEAD~1", "models/model.txt"], project)
    assert (project / "models/model.txt").read_text() == "3 HELLO\n"
    assert "models/mlver.lock" in git(["status", "--porcelain"], project)
    proc = run(["checkout", "--rev", "HEAD~1", "nothing/here.txt"], project, check=False)
    assert proc.returncode == 3 and "nothing/here.txt" in proc.stderr


def test_params_and_metrics_of_a_subfolder_pipeline_at_other_revisions(project: Path) -> None:
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "epochs 3"], project)
    (project / "models/params.yaml").write_text("train:\n  epochs: 5\n")
    (project / "models/scores.json").write_text('{"acc": 0.25}\n')
    diff = run_json(["params", "diff", "--json"], project)
    assert diff["changes"]["models/params.yaml"]["train.epochs"]["old"] == 3
    assert diff["changes"]["models/params.yaml"]["train.epochs"]["new"] == 5
    mdiff = run_json(["metrics", "diff", "--json"], project)
    assert mdiff["changes"]["models/scores.json"]["acc"]["old"] == 0.5
    shown = run_json(["metrics", "show", "-n", "1", "--json"], project)
    assert any(r["metrics"].get("models/scores.json") == {"acc": 0.5} for r in shown["revisions"])


def test_mlverignore_hides_a_pipeline_file_that_is_only_an_example(project: Path) -> None:
    gen(project, {"docs/example/mlver.yaml": "stages:\n  s:\n    cmd: echo ${undefined}\n"})
    assert run(["status"], project, check=False).returncode == 3  # a pipeline like any other: broken
    gen(project, {".mlverignore": "docs/\n"})
    names = [s["name"] for s in run_json(["stage", "list", "--json"], project)["stages"]]
    assert names == ["prepare", "models/mlver.yaml:prepare", "models/mlver.yaml:train"]


def test_a_subfolder_stage_name_is_a_target_of_checkout_push_and_fetch(project: Path, tmp_path: Path) -> None:
    """A bare name unique to a subfolder's pipeline (`train`) names its stage for checkout,
    checkout --rev, push and fetch as it does for repro; in that subfolder a bare name is
    first that file's stage (`prepare` there is models/mlver.yaml's, at the top the top's)."""
    run(["remote", "add", "-d", "r", str(tmp_path / "remote")], project)
    (tmp_path / "remote").mkdir()
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-q", "-m", "run"], project)
    (project / "models/model.txt").unlink()
    run(["checkout", "train"], project)
    assert (project / "models/model.txt").read_text() == "3 HELLO\n"
    assert "1 object(s) pushed" in said(run(["push", "train"], project))
    run(["fetch", "train"], project)
    gen(project, {"models/model.txt": "edited\n"})
    run(["checkout", "--rev", "HEAD", "--force", "train"], project)
    assert (project / "models/model.txt").read_text() == "3 HELLO\n"
    for f in ("models/copy.txt", "data/clean.txt"):
        (project / f).unlink()
    run(["checkout", "prepare"], project / "models")
    assert (project / "models/copy.txt").exists() and not (project / "data/clean.txt").exists()
    run(["checkout", "prepare"], project)
    assert (project / "data/clean.txt").read_text() == "HELLO\n"
