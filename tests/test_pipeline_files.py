"""mlver.yaml validation, `stage add`, `dag`, `params diff`, `metrics show/diff`, and the
run-cache layout other commands rely on."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

PY = shlex.quote(sys.executable)


@pytest.mark.parametrize("yaml_text, where, message", [
    ("stages:\n  a:\n    cmd: echo\n    outz: [x]\n", "mlver.yaml:4", "stage 'a': unknown field 'outz'"),
    ("stages:\n  a:\n    cmd: echo\n    deps: [y]\n    outs: [x]\n  b:\n    cmd: echo\n    deps: [x]\n    outs: [y]\n",
     "mlver.yaml:2", "stages form a cycle: a -> b -> a"),
    ("stages:\n  a:\n    cmd: echo\n    outs: [x]\n  b:\n    cmd: echo\n    outs:\n    - x\n",
     "mlver.yaml:8", "stage 'b': output 'x' is also an output of stage 'a'"),
    ("stages:\n  a:\n    cmd: echo\n    outs: [data]\n  b:\n    cmd: echo\n    outs:\n    - data/sub\n",
     "mlver.yaml:8", "stage 'b': output 'data/sub' is inside output 'data' of stage 'a'"),
    ("stages:\n  a:\n    cmd: echo\n    deps:\n    - ../outside.txt\n", "mlver.yaml:5",
     "stage 'a': dependency '../outside.txt' leaves the repository"),
    ("stages:\n  a:\n    cmd: echo\n    outs: [/tmp/x]\n", "mlver.yaml:4", "stage 'a': output '/tmp/x' leaves"),
    ("stages:\n  a:\n    cmd: echo\n    params: [train.lr]\n", "mlver.yaml:4",
     "stage 'a': params file 'params.yaml' does not exist"),
    ("stages:\n  a:\n    cmd: echo\n    deps: [p.yaml]\n    params:\n    - p.yaml: [train.lr, train.nope]\n",
     "mlver.yaml:6", "stage 'a': params key 'train.nope' not found in p.yaml"),
    ("stages:\n  a:\n    cmd: echo\n  a:\n    cmd: echo\n", "mlver.yaml:4", "duplicate key 'a'"),
    ("stages:\n  a:\n    deps: [x]\n", "mlver.yaml:2", "stage 'a': missing 'cmd'"),
    ("stages:\n  a:\n    cmd: [echo\n", "mlver.yaml:3", "not closed"),  # the line the `[` opens on
    ("stages:\n  a:\n    cmd: echo\n    deps:\n    - p.yaml\n    - ./p.yaml\n", "mlver.yaml:6",
     "stage 'a': 'p.yaml' is listed twice as a dependency"),
    ("stages:\n  a:\n    cmd: echo\n    outs: ['']\n", "mlver.yaml:4", "stage 'a': an empty output path"),
    # DVC's schema refuses these too (checked against dvc 3): they ran, or were silently empty
    ("stages:\n  a:\n    cmd: 5\n", "mlver.yaml:3", "stage 'a': 'cmd' must be a string"),
    ("stages:\n  a:\n    cmd: echo\n    wdir:\n", "mlver.yaml:4", "stage 'a': 'wdir' must be a string"),
    ("stages:\n  a:\n    cmd: echo\n    deps:\n", "mlver.yaml:4", "stage 'a': 'deps' is empty"),
    ("stages:\n  a:\n    cmd: echo\n    outs:\n", "mlver.yaml:4", "stage 'a': 'outs' is empty"),
    ("stages:\n  a:\n    cmd: echo\n    deps: [5]\n", "mlver.yaml:4",
     "stage 'a': each dependency must be a path (a string), not 5"),
    ("stages:\n  a:\n    cmd: echo\n    desc: [1]\n", "mlver.yaml:4", "stage 'a': 'desc' must be a string"),
    ("stages:\n  a:\n    cmd: echo\n    params:\n    - p.yaml: train.lr\n", "mlver.yaml:5",
     "keys of params file 'p.yaml' must be a list of names"),
    ("stages:\n  a:\n    cmd: echo\n    plots:\n    - l.csv:\n        cache: false\n        y: 5\n", "mlver.yaml:7",
     "plot 'l.csv': 'y' must be a field name"),
    ("stages:\n  a:\n    cmd: echo\n    plots:\n    - l.csv:\n        colour: red\n", "mlver.yaml:6",
     "plot 'l.csv': unknown field 'colour'"),
    ("plots:\n  - mine:\n      y: {l.csv: loss}\n      colour: red\n", "mlver.yaml:4",
     "plot 'mine': unknown field 'colour'"),
    ("plots:\n  - l.csv:\n      template: nope\n", "mlver.yaml:3", "plot 'l.csv': unknown template 'nope'"),
    ("plots:\n  - l.csv:\n      x: [a, b]\n", "mlver.yaml:3", "plot 'l.csv': 'x' must be a field name"),
])
def test_invalid_pipeline_names_file_line_and_stage(repo: Path, yaml_text: str, where: str, message: str) -> None:
    gen(repo, {"mlver.yaml": yaml_text, "p.yaml": "train:\n  lr: 1\n"})
    for args in (["repro"], ["status"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.startswith(f"mlver: error: {where}: "), proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_output_tracked_by_pointer_and_symlink_escape(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"data/raw.csv": "1,2\n"})
    run(["add", "data"], repo)
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: echo\n    outs: [data/raw.csv]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3
    assert "mlver.yaml:4: stage 'a': output 'data/raw.csv' is already tracked by data.mlver" in proc.stderr
    (tmp_path / "elsewhere").mkdir()
    (repo / "link").symlink_to(tmp_path / "elsewhere")
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: echo\n    deps: [link/x.txt]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3 and "mlver.yaml:4: stage 'a': link/x.txt: is outside the repository" in proc.stderr


def test_stage_add_appends_and_keeps_comments(repo: Path) -> None:
    run(["stage", "add", "-n", "prepare", "-d", "src/prep.py", "-d", "data/raw", "-p", "prepare.split,prepare.seed",
         "-o", "data/prepared", "--", "python", "src/prep.py", "data/raw", "data/prepared"], repo)
    text = (repo / "mlver.yaml").read_text()
    assert text == ("stages:\n  prepare:\n    cmd: python src/prep.py data/raw data/prepared\n"
                    "    deps:\n    - src/prep.py\n    - data/raw\n"
                    "    params:\n    - prepare.split\n    - prepare.seed\n    outs:\n    - data/prepared\n")
    (repo / "mlver.yaml").write_text("# my pipeline\n" + text)
    run(["stage", "add", "-n", "train", "-d", "data/prepared", "-p", "train", "-p", "extra.toml:model.depth",
         "-o", "model.pkl", "-O", "notes.txt", "-M", "metrics.json", "-w", ".", "--",
         "python train.py --out 'model.pkl'"], repo)
    text = (repo / "mlver.yaml").read_text()
    assert text.startswith("# my pipeline\nstages:\n  prepare:\n")
    assert text.endswith("  train:\n    cmd: \"python train.py --out 'model.pkl'\"\n    deps:\n    - data/prepared\n"
                         "    params:\n    - train\n    - extra.toml:\n      - model.depth\n"
                         "    outs:\n    - model.pkl\n    - notes.txt:\n        cache: false\n"
                         "    metrics:\n    - metrics.json\n")
    dag = run_json(["dag"], repo)
    assert dag == {"version": 1, "stages": [
        {"name": "prepare", "cmd": "python src/prep.py data/raw data/prepared",
         "deps": ["src/prep.py", "data/raw"], "outs": ["data/prepared"]},
        {"name": "train", "cmd": "python train.py --out 'model.pkl'", "deps": ["data/prepared"],
         "outs": ["model.pkl", "notes.txt", "metrics.json"]}], "edges": [["prepare", "train"]]}
    proc = run(["stage", "add", "-n", "train", "--", "true"], repo, check=False)
    assert proc.returncode == 3 and "stage 'train' already exists" in proc.stderr
    proc = run(["stage", "add", "-n", "bad", "-o", "model.pkl", "--", "true"], repo, check=False)
    assert proc.returncode == 3 and "output 'model.pkl' is also an output of stage 'train'" in proc.stderr
    assert "bad:" not in (repo / "mlver.yaml").read_text()


def test_stage_add_force_replaces_the_stage_in_place(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "# top\nstages:\n  a:\n    cmd: echo a > x\n    outs: [x]\n  # about b\n"
                             "  b:\n    cmd: echo b\n    deps: [x]\n  c:\n    cmd: echo c\n"})
    proc = run(["stage", "add", "-n", "b", "-d", "x", "-o", "y", "--", "cat x > y"], repo, check=False)
    assert proc.returncode == 3 and "`mlver stage add -f`" in proc.stderr
    res = run(["stage", "add", "-f", "-n", "b", "-d", "x", "-o", "y", "--", "cat x > y"], repo)
    assert "Replaced stage 'b'" in res.stderr
    assert (repo / "mlver.yaml").read_text() == (
        "# top\nstages:\n  a:\n    cmd: echo a > x\n    outs: [x]\n  # about b\n"
        "  b:\n    cmd: \"cat x > y\"\n    deps:\n    - x\n    outs:\n    - y\n  c:\n    cmd: echo c\n")
    # the first stage: the comment written above the next stage stays with it
    run(["stage", "add", "-f", "-n", "a", "-o", "x", "--", "echo A > x"], repo)
    assert (repo / "mlver.yaml").read_text().startswith(
        "# top\nstages:\n  a:\n    cmd: \"echo A > x\"\n    outs:\n    - x\n  # about b\n  b:\n")
    # the last stage: its block runs to the end of the file, a closing comment stays
    (repo / "mlver.yaml").write_text((repo / "mlver.yaml").read_text() + "\n# the end\n")
    run(["stage", "add", "--force", "-n", "c", "-d", "y", "--", "echo C"], repo)
    assert (repo / "mlver.yaml").read_text().endswith("  c:\n    cmd: echo C\n    deps:\n    - y\n\n# the end\n")
    assert [s["name"] for s in run_json(["dag"], repo)["stages"]] == ["a", "b", "c"]
    # a replacement that would break the pipeline is refused and changes nothing
    before = (repo / "mlver.yaml").read_text()
    proc = run(["stage", "add", "-f", "-n", "c", "-o", "x", "--", "true"], repo, check=False)
    assert proc.returncode == 3 and "also an output of stage 'a'" in proc.stderr
    assert (repo / "mlver.yaml").read_text() == before


def test_output_folder_holding_a_pointer_is_refused_before_anything_is_removed(repo: Path) -> None:
    gen(repo, {"data/raw/a.csv": "a\n", "data/raw/b.csv": "b\n"})
    run(["add", "data/raw/a.csv"], repo)
    proc = run(["stage", "add", "-n", "s", "-o", "data/raw", "--", "true"], repo, check=False)
    assert proc.returncode == 3
    assert "output 'data/raw' of stage 's' holds the pointer file data/raw/a.csv.mlver" in proc.stderr
    assert not (repo / "mlver.yaml").exists()
    # written by hand: repro refuses before the stage's outputs are removed
    gen(repo, {"mlver.yaml": "stages:\n  s:\n    cmd: echo x > data/raw/b.csv\n    outs: [data/raw]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3
    assert "mlver.yaml:4: stage 's': output 'data/raw' holds the pointer file data/raw/a.csv.mlver" in proc.stderr
    assert (repo / "data/raw/a.csv.mlver").is_file() and (repo / "data/raw/a.csv").read_text() == "a\n"
    assert (repo / "data/raw/b.csv").read_text() == "b\n"


def test_dag_text_and_mermaid(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: echo\n    outs: [x]\n  b:\n    cmd: echo\n    deps: [x]\n"
                             "    outs: [y]\n  c:\n    cmd: echo\n    deps: [x, y]\n"})
    out = run(["dag"], repo).stdout
    assert out.splitlines()[0] == "a" and "b" in out and "c" in out
    assert run(["dag", "--mermaid"], repo).stdout == (
        'flowchart TD\n    s0["a"]\n    s1["b"]\n    s2["c"]\n    s0 --> s1\n    s0 --> s2\n    s1 --> s2\n')
    # `dag TARGET`, as `dvc dag TARGET`: the target and what it depends on
    one = run_json(["dag", "b"], repo)
    assert [s["name"] for s in one["stages"]] == ["a", "b"] and one["edges"] == [["a", "b"]]
    proc = run(["dag", "nope"], repo, check=False)
    assert proc.returncode == 3 and "no stage 'nope'" in proc.stderr
    assert "Would run stage 'a'" in run(["repro", "--dry"], repo).stdout  # DVC's spelling of --dry-run


METRICS_STAGE = f"""\
stages:
  score:
    cmd: {PY} score.py
    deps: [score.py]
    params: [train.lr, train.layers]
    metrics: [eval/metrics.json]
"""
SCORE = ("import json, yaml\np = yaml.safe_load(open('params.yaml'))['train']\n"
         "json.dump({'acc': p['lr'] * 2, 'loss': {'train': 1.5}, 'name': 'm'}, open('eval/metrics.json', 'w'))\n")


def test_params_and_metrics_across_revisions(repo: Path) -> None:
    gen(repo, {"mlver.yaml": METRICS_STAGE, "score.py": SCORE, "eval/.keep": "",
               "params.yaml": "train:\n  lr: 0.25\n  layers: [64, 32]\n  unused: 1\n"})
    run(["repro"], repo)
    assert run_json(["metrics", "show"], repo) == {"version": 1, "revisions": [
        {"rev": "workspace", "metrics": {"eval/metrics.json": {"acc": 0.5, "loss.train": 1.5, "name": "m"}}}]}
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "first"], repo)
    first = git(["rev-parse", "HEAD"], repo).strip()

    gen(repo, {"params.yaml": "train:\n  lr: 0.5\n  layers: [64, 32]\n  unused: 2\n"})
    assert run_json(["params", "diff"], repo) == {"version": 1, "changes": {
        "params.yaml": {"train.lr": {"old": 0.25, "new": 0.5, "diff": 0.25}}}}
    run(["repro"], repo)
    assert run_json(["metrics", "diff"], repo) == {"version": 1, "changes": {
        "eval/metrics.json": {"acc": {"old": 0.5, "new": 1.0, "diff": 0.5}}}}
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "second"], repo)
    second = git(["rev-parse", "HEAD"], repo).strip()

    assert run_json(["params", "diff", first, second], repo)["changes"] == {
        "params.yaml": {"train.lr": {"old": 0.25, "new": 0.5, "diff": 0.25}}}
    assert run_json(["metrics", "diff", first], repo)["changes"]["eval/metrics.json"]["acc"]["new"] == 1.0
    assert run_json(["params", "diff", "HEAD~1", "HEAD"], repo) == run_json(["params", "diff", first, second], repo)
    shown = run_json(["metrics", "show", "-n", "5"], repo)
    assert [r["rev"] for r in shown["revisions"]][:3] == ["workspace", second, first]
    assert len(shown["revisions"]) == 4  # the workspace, then every commit (three exist)
    by_rev = {r["rev"]: r["metrics"] for r in shown["revisions"]}
    assert by_rev[first]["eval/metrics.json"]["acc"] == 0.5 and by_rev[second]["eval/metrics.json"]["acc"] == 1.0
    all_revs = [r["rev"] for r in run_json(["metrics", "show", "--all-commits"], repo)["revisions"]]
    assert first in all_revs and second in all_revs

    md = run(["params", "diff", first, second, "--md"], repo).stdout
    assert md.splitlines()[0] == f"| Path | Param | {first} | {second} | Change |"
    assert "| params.yaml | train.lr | 0.25 | 0.5 | 0.25 |" in md
    table = run(["metrics", "diff", first], repo).stdout
    assert "acc" in table and "0.5" in table
    assert "No param changes." in run(["params", "diff"], repo).stdout
    allp = run_json(["params", "diff", "--all"], repo)["changes"]["params.yaml"]
    assert allp["train.layers"] == {"old": [64, 32], "new": [64, 32], "diff": None}
    proc = run(["params", "diff", "no-such-rev"], repo, check=False)
    assert proc.returncode == 3 and "unknown revision 'no-such-rev'" in proc.stderr


def test_run_cache_layout_and_referenced_objects(repo: Path) -> None:
    gen(repo, {"mk.py": "import os\nos.makedirs('out', exist_ok=True)\nopen('out/a.bin', 'wb').write(b'A' * 10)\n"
                        "open('m.json', 'w').write('{\"x\": 1}')\n",
               "mlver.yaml": f"stages:\n  mk:\n    cmd: {PY} mk.py\n    deps: [mk.py]\n    outs: [out]\n"
                             "    metrics: [m.json]\n"})
    run(["repro"], repo)
    entries = list((repo / ".mlver/cache/runs/xxh3-128").glob("*/*"))
    assert len(entries) == 1 and len(entries[0].parent.name) == 2 and len(entries[0].name) == 30
    doc = json.loads(entries[0].read_text())
    assert doc["stage"] == "mk" and [o["path"] for o in doc["outs"]] == ["out"]
    assert doc["metrics"][0]["cache"] is False
    code = ("import json\nfrom mlver.repo import Repo\nfrom mlver.pipeline.runcache import referenced_objects\n"
            "r = Repo('.')\nprint(json.dumps(sorted([o.relpath for o in referenced_objects(r)])))\n")
    import subprocess

    refs = json.loads(subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                                     check=True).stdout)
    assert len(refs) == 3  # the folder's manifest, its one file, the metrics copy
    assert sum(r.endswith(".manifest") for r in refs) == 1
    for r in refs:
        assert (repo / ".mlver/cache" / r).is_file()


def test_corrupt_lock_is_a_clear_error(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n",
               "mlver.lock": "version: 1\nhash: xxh3-128\nstages:\n  a:\n    cmd: echo\n    outs:\n"
                             "    - path: a.txt\n      kind: file\n      digest: nothex\n      size: 1\n"})
    for args in (["status"], ["list"], ["repro"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3
        assert "mlver: error: mlver.lock:7: stage 'a': 'a.txt': digest must be 32 lower-case hex digits" in proc.stderr
