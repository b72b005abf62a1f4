"""Experiments across Git history: exp show, metrics show -n, plots, checkout --rev,
get --rev and get --repo, in real repositories whose history the tests build."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import gen, git, run, run_json

TRAIN = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
open("model.bin", "w").write(f"model lr={p['lr']} epochs={p['epochs']}\\n")
acc = round(1 - p["lr"] * 3 / p["epochs"], 4)
json.dump({"acc": acc, "loss": round(p["lr"] * 2, 4)}, open("metrics.json", "w"))
with open("steps.csv", "w") as f:
    f.write("epoch,loss\\n")
    for e in range(1, p["epochs"] + 1):
        f.write(f"{e},{round(p['lr'] * 10 / e, 4)}\\n")
"""

PIPELINE = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train]
    outs:
    - model.bin
    - steps.csv:
        cache: false
    metrics: [metrics.json]
"""

LRS = [0.1, 0.05, 0.02]


def commit_all(root: Path, message: str) -> str:
    git(["add", "-A"], root)
    git(["commit", "-q", "-m", message], root)
    return git(["rev-parse", "HEAD"], root).strip()


def build_history(root: Path) -> list[str]:
    """Three experiment commits (lr 0.1 tagged v1, 0.05, 0.02), newest last."""
    gen(root, {"train.py": TRAIN, "mlver.yaml": PIPELINE})
    shas = []
    for i, lr in enumerate(LRS):
        gen(root, {"params.yaml": f"train:\n  lr: {lr}\n  epochs: 4\n"})
        run(["repro", "-q"], root)
        shas.append(commit_all(root, f"lr {lr}"))
        if i == 0:
            git(["tag", "v1"], root)
    return shas


def acc(lr: float) -> float:
    return round(1 - lr * 3 / 4, 4)


@pytest.fixture
def history(repo: Path) -> tuple[Path, list[str]]:
    return repo, build_history(repo)


def test_exp_show_json_rows_and_values(history: tuple[Path, list[str]]) -> None:
    root, shas = history
    gen(root, {"params.yaml": "train:\n  lr: 0.3\n  epochs: 4\n"})  # uncommitted edit
    doc = run_json(["exp", "show", "-n", "3"], root)
    assert doc["version"] == 1
    rows = doc["rows"]
    assert [r["rev"] for r in rows] == ["workspace", *reversed(shas)]  # -n counts commits only
    ws = rows[0]
    assert ws["params"] == {"params.yaml": {"train.epochs": 4, "train.lr": 0.3}}
    assert ws["metrics"] == {"metrics.json": {"acc": acc(0.02), "loss": 0.04}}  # not re-run yet
    assert set(ws) == {"rev", "refs", "date", "subject", "params", "metrics"}
    for row, lr in zip(rows[1:], reversed(LRS)):
        assert row["params"]["params.yaml"]["train.lr"] == lr
        assert row["metrics"]["metrics.json"]["acc"] == acc(lr)
        assert row["subject"] == f"lr {lr}"
        assert re.match(r"\d{4}-\d\d-\d\dT", row["date"])
    assert rows[1]["refs"] == ["main"]
    assert rows[3]["refs"] == ["v1"]
    assert len(run_json(["exp", "show"], root)["rows"]) == 5  # default: up to 10 commits (4 exist)


def test_exp_show_sort_csv_md_and_terminal(history: tuple[Path, list[str]]) -> None:
    root, shas = history
    rows = run_json(["exp", "show", "-n", "3", "--sort-by", "train.lr"], root)["rows"]
    assert rows[0]["rev"] == "workspace"
    assert [r["params"]["params.yaml"]["train.lr"] for r in rows[1:]] == sorted(LRS)
    rows = run_json(["exp", "show", "-n", "3", "--sort-by", "metrics.json:acc", "--sort-order", "desc"], root)["rows"]
    assert [r["metrics"]["metrics.json"]["acc"] for r in rows[1:]] == sorted((acc(x) for x in LRS), reverse=True)
    bad = run(["exp", "show", "--sort-by", "nope"], root, check=False)
    assert bad.returncode == 2 and "no parameter or metric 'nope'" in bad.stderr

    out = run(["exp", "show", "-n", "3", "--csv"], root).stdout
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["Rev", "Refs", "Date", "Subject", "train.epochs", "train.lr", "acc", "loss"]
    assert table[1][0] == "workspace"
    assert table[2][:2] == [shas[-1], "main"] and table[2][5:7] == ["0.02", str(acc(0.02))]

    md = run(["exp", "show", "-n", "2", "--md"], root).stdout.splitlines()
    assert md[0].startswith("| Rev | Refs |") and md[1].startswith("|---|")
    assert md[3].startswith(f"| {shas[-1][:7]} | main |")

    text = run(["exp", "show", "-n", "3"], root, env={"COLUMNS": "60"}).stdout
    assert shas[0][:7] in text and "0.9625" in text  # a narrow terminal does not cut values


def test_metrics_show_history(history: tuple[Path, list[str]]) -> None:
    root, shas = history
    doc = run_json(["metrics", "show", "-n", "2"], root)
    assert [r["rev"] for r in doc["revisions"]] == ["workspace", shas[2], shas[1]]
    assert doc["revisions"][2]["metrics"] == {"metrics.json": {"acc": acc(0.05), "loss": 0.1}}


def test_plots_html_is_self_contained(history: tuple[Path, list[str]]) -> None:
    root, shas = history
    res = run_json(["plots", "-o", "report.html"], root)
    assert res["metrics"] == ["acc", "loss"] and res["points"] == 4 and res["steps"] == 1
    page = (root / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    for lr in LRS:
        assert str(acc(lr)) in page
    assert shas[0][:7] in page and "train.lr" in page  # the params that changed
    assert "steps.csv" in page  # per-step series overlaid
    # SPEC's plots shape beside the report's own fields: a chart per metric, one point per revision
    charts = {c["name"]: c for c in res["plots"]}
    assert {"acc", "loss"} <= set(charts) and all(c["template"] == "linear" for c in charts.values())
    acc_revs = charts["acc"]["revisions"]
    assert [r["rev"] for r in acc_revs] == [r["rev"] for r in res["revisions"]]
    assert [r["points"] for r in acc_revs] == [[]] + [[{"acc": acc(lr)}] for lr in LRS]  # the first commit has none
    [step_chart] = [c for c in res["plots"] if c["name"].startswith("steps.csv:")]
    step_revs = step_chart["revisions"]
    assert step_revs and all(r["rev"] in shas or r["rev"] == "workspace" for r in step_revs)
    assert all(len(pt) == 2 for r in step_revs for pt in r["points"]) and step_revs[0]["points"]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script src" not in page and "@import" not in page and "url(" not in page
    only = run_json(["plots", "acc", "-n", "2", "-o", "acc.html"], root)
    assert only["metrics"] == ["acc"] and only["points"] == 2
    assert run(["plots", "train.lr"], root, check=False).returncode == 2  # a parameter is not a metric


def test_checkout_rev_and_get_rev_of_an_old_version(history: tuple[Path, list[str]]) -> None:
    root, shas = history
    run(["get", "--rev", "v1", "model.bin", "-o", "old-model.bin"], root)
    assert (root / "old-model.bin").read_text() == "model lr=0.1 epochs=4\n"
    assert (root / "model.bin").read_text() == "model lr=0.02 epochs=4\n"  # the workspace is untouched
    assert git(["rev-parse", "HEAD"], root).strip() == shas[-1]
    again = run(["get", "--rev", "v1", "model.bin", "-o", "old-model.bin"], root, check=False)
    assert again.returncode == 3 and "already exists" in again.stderr
    run(["get", "--rev", shas[1], "model.bin", "-o", "old-model.bin", "--force"], root)
    assert (root / "old-model.bin").read_text() == "model lr=0.05 epochs=4\n"
    run(["get", "--rev", "v1", "steps.csv", "-o", "old-steps.csv"], root)  # a file Git tracks
    assert (root / "old-steps.csv").read_text().splitlines()[1] == "1,1.0"

    run(["checkout", "--rev", "v1", "train"], root)
    assert (root / "model.bin").read_text() == "model lr=0.1 epochs=4\n"
    assert git(["rev-parse", "HEAD"], root).strip() == shas[-1]


def test_checkout_rev_of_a_stage_output_brings_that_stages_record_only(repo: Path) -> None:
    """`checkout --rev OLD a.txt` brings back the run of stage a that made it: its record of
    OLD (deps, and every output of that run, a2.txt and its Git-kept metrics too), so
    `status` says stage a changed and `repro` makes it current; stage b's record and files
    stay. A metrics file is a target too, and a stage renamed since is the same stage."""
    gen(repo, {"k": "1", "mlver.yaml": "stages:\n  a:\n    cmd: cat k k > a.txt; cat k > a2.txt; cp k m.json\n"
                                         "    deps: [k]\n    outs: [a.txt, a2.txt]\n    metrics: [m.json]\n"
                                         "  b:\n    cmd: cat k k k > b.txt\n    deps: [k]\n    outs: [b.txt]\n"})
    run(["repro"], repo)
    old = commit_all(repo, "v1")
    gen(repo, {"k": "2"})
    run(["repro"], repo)
    commit_all(repo, "v2")
    lock_before = yaml.safe_load((repo / "mlver.lock").read_text())
    lock_old = yaml.safe_load(git(["show", f"{old}:mlver.lock"], repo))
    run(["checkout", "--rev", old[:7], "a.txt"], repo)
    assert [(repo / f).read_text() for f in ("a.txt", "a2.txt", "m.json", "b.txt")] == ["11", "1", "1", "222"]
    lock = yaml.safe_load((repo / "mlver.lock").read_text())
    assert lock["stages"]["a"] == lock_old["stages"]["a"] and lock["stages"]["b"] == lock_before["stages"]["b"]
    stages = {s["name"]: s["changed"] for s in run_json(["status"], repo)["stages"]}
    assert stages == {"a": True, "b": False}
    run(["checkout"], repo)  # the lock and the files agree: nothing moves
    assert (repo / "a.txt").read_text() == "11" and (repo / "b.txt").read_text() == "222"
    run(["checkout", "--rev", "HEAD", "m.json"], repo)  # a metrics file kept in Git names its stage's run
    assert [(repo / f).read_text() for f in ("a.txt", "a2.txt", "m.json")] == ["22", "2", "2"]
    assert yaml.safe_load((repo / "mlver.lock").read_text()) == lock_before
    assert git(["status", "--short"], repo) == ""
    # renamed since: the stage that makes a.txt now gets the record; a stage that makes it
    # no longer is refused, naming `mlver get`
    gen(repo, {"mlver.yaml": (repo / "mlver.yaml").read_text().replace("  a:\n", "  make:\n")})
    run(["repro"], repo)
    commit_all(repo, "renamed")
    run(["checkout", "--rev", old, "a.txt"], repo)
    lock = yaml.safe_load((repo / "mlver.lock").read_text())
    assert set(lock["stages"]) == {"make", "b"} and lock["stages"]["make"]["outs"] == lock_old["stages"]["a"]["outs"]
    assert (repo / "a.txt").read_text() == "11"
    gen(repo, {"mlver.yaml": "stages:\n  b:\n    cmd: cat k k k > b.txt\n    deps: [k]\n    outs: [b.txt]\n"})
    proc = run(["checkout", "--rev", old, "a.txt"], repo, check=False)
    assert proc.returncode == 3 and "which no stage of the pipeline makes now" in proc.stderr, proc.stderr
    assert "mlver get --rev" in proc.stderr


def test_get_a_folder_and_a_file_inside_it(repo: Path) -> None:
    gen(repo, {"data/images/a.txt": "a1\n", "data/images/sub/b.txt": "b1\n"})
    run(["add", "data/images"], repo)
    first = commit_all(repo, "images v1")
    gen(repo, {"data/images/a.txt": "a2\n"})
    run(["add", "data/images"], repo)
    commit_all(repo, "images v2")
    out = repo.parent / "out"
    run(["get", "--rev", first, "data/images", "-o", str(out / "imgs")], repo)
    assert (out / "imgs" / "a.txt").read_text() == "a1\n"
    assert (out / "imgs" / "sub" / "b.txt").read_text() == "b1\n"
    run(["get", "data/images/a.txt", "-o", str(out / "a.txt")], repo)
    assert (out / "a.txt").read_text() == "a2\n"
    missing = run(["get", "data/nothing"], repo, check=False)
    assert missing.returncode == 3 and "not tracked" in missing.stderr


def test_get_out_may_not_be_tracked_data_nor_git_or_mlver_folders(repo: Path) -> None:
    """`get -o` onto tracked data would overwrite an uncached edit even with --force
    (guarantee 1): refused, pointing to `checkout --rev`; so are .git/ and .mlver/."""
    gen(repo, {"d.txt": "one\n"})
    run(["add", "d.txt"], repo)
    commit_all(repo, "one")
    gen(repo, {"d.txt": "two\n"})
    run(["commit", "d.txt"], repo)
    gen(repo, {"d.txt": "precious, not cached\n"})
    config = (repo / ".mlver/config").read_bytes()
    for out, words in (("d.txt", "checkout --rev"), (".git/hooks/pre-commit", "Git's own folder"),
                       (".mlver/config", "mlver's own folder")):
        proc = run(["get", "--rev", "HEAD", "d.txt", "-o", out, "--force"], repo, check=False)
        assert proc.returncode == 3 and words in proc.stderr, proc.stderr
    assert (repo / "d.txt").read_text() == "precious, not cached\n"
    assert (repo / ".mlver/config").read_bytes() == config and not (repo / ".git/hooks/pre-commit").exists()
    run(["get", "--rev", "HEAD", "d.txt", "-o", "old.txt"], repo)
    assert (repo / "old.txt").read_text() == "one\n"


def test_get_from_a_project_on_this_machine_without_a_remote(repo: Path, tmp_path: Path) -> None:
    """As `dvc get`: the source project's cache serves what it never pushed; without it
    the error says the source has no remote (not to pull here)."""
    gen(repo, {"f.txt": "hello\n", "d/a": "1\n", "d/b/c": "2\n"})
    run(["add", "f.txt", "d"], repo)
    commit_all(repo, "data")
    out = tmp_path / "out"
    out.mkdir()
    assert run_json(["get", "--repo", str(repo), "f.txt"], out)["fetched"] == 0
    run(["get", "--repo", str(repo), "d"], out)
    assert (out / "f.txt").read_text() == "hello\n" and (out / "d/b/c").read_text() == "2\n"
    assert sorted(p.name for p in out.iterdir()) == ["d", "f.txt"]  # no cache left here
    # a relative folder remote of the source resolves against the source, given as file:// too
    run(["remote", "add", "-d", "store", "../store"], repo)
    commit_all(repo, "remote")
    run(["push"], repo)
    shutil.rmtree(repo / ".mlver" / "cache")
    res = run_json(["get", "--repo", f"file://{repo}", "f.txt", "-o", "h.txt"], out)
    assert res["fetched"] == 1 and (out / "h.txt").read_text() == "hello\n"
    run(["remote", "remove", "store"], repo)
    commit_all(repo, "no remote")
    proc = run(["get", "--repo", str(repo), "f.txt", "-o", "g.txt"], out, check=False)
    assert proc.returncode == 3 and "has no remote" in proc.stderr and "mlver pull" not in proc.stderr
    assert not (out / "g.txt").exists()


def test_get_from_another_repository_with_a_folder_remote(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, shas = history
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], root)
    commit_all(root, "add the remote")
    run(["push", "--all-commits"], root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_json(["get", "--repo", str(root), "model.bin"], elsewhere)  # from the source's own cache
    assert res["fetched"] == 0 and res["rev"] == git(["rev-parse", "HEAD"], root).strip()
    assert (elsewhere / "model.bin").read_text() == "model lr=0.02 epochs=4\n"
    shutil.rmtree(root / ".mlver" / "cache")  # now only the remote has the data
    res = run_json(["get", "--repo", str(root), "--rev", "v1", "model.bin", "-o", "v1.bin"], elsewhere)
    assert res["fetched"] == 1 and (elsewhere / "v1.bin").read_text() == "model lr=0.1 epochs=4\n"
    # a branch of the source that is not checked out there
    git(["branch", "older", shas[1]], root)
    run(["get", "--repo", str(root), "--rev", "older", "model.bin", "-o", "older.bin"], elsewhere)
    assert (elsewhere / "older.bin").read_text() == "model lr=0.05 epochs=4\n"
    assert not (elsewhere / ".mlver").exists()
    # inside another project the objects land in that project's cache
    other = tmp_path / "other"
    other.mkdir()
    git(["init", "-q"], other)
    run(["init"], other)
    run(["get", "--repo", str(root), "--rev", shas[1], "model.bin"], other)
    assert (other / "model.bin").read_text() == "model lr=0.05 epochs=4\n"
    assert any((other / ".mlver" / "cache").rglob("*"))


def test_unreadable_params_file_and_non_finite_metrics(repo: Path) -> None:
    gen(repo, {"params.yaml": "a: 1\n", "other.json": '{"b": 2}', "m.json": '{"m": NaN, "i": Infinity, "ok": 1}',
               "mlver.yaml": "stages:\n  s:\n    cmd: echo\n    params:\n    - a\n    - other.json: [b]\n"
                             "    metrics: [m.json]\n"})
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "i1"], repo)
    head = git(["rev-parse", "HEAD"], repo).strip()
    # the workspace's other.json is broken: params diff stops on it (as repro and status
    # do), exp show skips only its own values with a warning
    gen(repo, {"other.json": '{"b": ', "m.json": '{"m": 1.5, "i": 2, "ok": 1}'})
    proc = run(["params", "diff", "--json"], repo, check=False)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.startswith("mlver: error: other.json:1: invalid JSON"), proc.stderr
    [ws, h] = run_json(["exp", "show", "-n", "1"], repo)["rows"]
    assert ws["params"] == {"params.yaml": {"a": 1}} and h["params"] == {"other.json": {"b": 2}, "params.yaml": {"a": 1}}
    # NaN and infinities are null in every JSON document (strict JSON a script can parse)
    assert h["metrics"]["m.json"] == {"i": None, "m": None, "ok": 1}
    for cmd in (["metrics", "diff", "--json"], ["metrics", "show", "--json"], ["exp", "show", "--json"]):
        out = run(cmd, repo).stdout
        assert "NaN" not in out and "Infinity" not in out
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{cmd} wrote {c}"))
    # and charts leave them out
    run(["plots", "-o", "r.html"], repo)
    assert "nan" not in (repo / "r.html").read_text().lower().replace("nan)", "")
    # an unreadable file at a commit is named with the commit
    gen(repo, {"other.json": '{"b": 3}'})
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "i2"], repo)
    git(["checkout", "-q", head, "--", "other.json"], repo)
    gen(repo, {"other.json": '{"b": '})
    git(["commit", "-q", "-am", "broken"], repo)
    proc = run(["params", "diff", "HEAD~1", "HEAD"], repo)
    assert f"{git(['rev-parse', 'HEAD'], repo).strip()[:7]}:other.json" in proc.stderr


def test_exp_show_deps_gives_each_dependency_digest_per_commit(repo: Path) -> None:
    """`exp show --deps`: a column per stage dependency with the digest the lock of that
    commit recorded (JSON: digest and hash; table: 8 digits; CSV: full); --drop hides them."""
    import hashlib

    import xxhash

    gen(repo, {"train.py": TRAIN, "mlver.yaml": PIPELINE, "params.yaml": "train:\n  lr: 0.1\n  epochs: 4\n"})
    run(["repro", "-q"], repo)
    first = commit_all(repo, "one")
    gen(repo, {"train.py": TRAIN + "# a comment changes the script's digest\n"})
    run(["repro", "-q"], repo)
    second = commit_all(repo, "two")
    doc = run_json(["exp", "show", "--deps"], repo)
    rows = {r["rev"]: r for r in doc["rows"]}
    want_new = xxhash.xxh3_128_hexdigest((repo / "train.py").read_bytes())
    want_old = xxhash.xxh3_128_hexdigest(TRAIN.encode())
    assert rows[second]["deps"] == {"train.py": {"digest": want_new, "hash": "xxh3-128"}}
    assert rows[first]["deps"] == {"train.py": {"digest": want_old, "hash": "xxh3-128"}}
    assert rows["workspace"]["deps"] == rows[second]["deps"]
    assert "deps" not in run_json(["exp", "show"], repo)["rows"][1]  # only when asked
    table = run(["exp", "show", "--deps"], repo, env={"COLUMNS": "200"}).stdout
    assert want_new[:8] in table and want_old[:8] in table and want_new not in table
    csv_text = run(["exp", "show", "--deps", "--csv"], repo).stdout
    assert want_new in csv_text and want_old in csv_text
    dropped = run(["exp", "show", "--deps", "--drop", "^deps:"], repo, env={"COLUMNS": "200"}).stdout
    assert want_new[:8] not in dropped
