"""The pipeline language of DVC 3 in mlver.yaml: vars, ${} interpolation, foreach and
matrix, cmd lists, frozen, always_changed, top-level params/metrics/plots/artifacts/checks,
`stage list` and `artifacts list` — driven through the installed mlver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

PIPELINE = """\
vars:
  - config/vars.yaml:greeting
  - suffix: txt
stages:
  prepare:
    cmd: cat data.txt data.txt > prepared.${suffix} && echo ${prep.factor} >> prepared.${suffix}
    deps: [data.txt]
    outs:
    - prepared.${suffix}
  train:
    foreach: ${models}
    do:
      cmd: echo ${greeting} ${key} ${item.size} > models-${key}.txt
      deps:
      - prepared.${suffix}
      outs:
      - models-${key}.txt
  sweep:
    matrix:
      seed: ${seeds}
      opt: [a, b]
    cmd: echo ${item.seed} ${item.opt} > sweep-${item.seed}-${item.opt}.txt
    deps: [data.txt]
    outs:
    - sweep-${item.seed}-${item.opt}.txt
  frozen_stage:
    cmd: echo frozen > frozen.txt
    deps: [data.txt]
    outs: [frozen.txt]
    frozen: true
  always:
    desc: counts its runs
    meta: {owner: team}
    cmd:
    - echo one >> always.log
    - echo two >> always.log
    always_changed: true
    outs:
    - always.log:
        cache: false
        persist: true
params:
  - extra.yaml
metrics:
  - metrics.json
plots:
  - sweep.csv
  - loss:
      x: step
      y: loss
artifacts:
  model:
    path: models-big.txt
    type: model
    desc: the big one
    labels: [nlp]
checks:
  - metric: metrics.json:acc
    min: 0.5
"""

PARAMS = """\
prep:
  factor: 3
models:
  small:
    size: 2
  big:
    size: 5
seeds: [1, 2]
"""


@pytest.fixture
def project(repo: Path) -> Path:
    gen(repo, {"mlver.yaml": PIPELINE, "params.yaml": PARAMS, "config/vars.yaml": "greeting: hi\nunused: 1\n",
               "data.txt": "raw\n", "extra.yaml": "lr: 0.5\n", "metrics.json": '{"acc": 0.9}\n'})
    git(["add", "-A"], repo)
    git(["commit", "-qm", "pipeline"], repo)
    gen(repo, {"frozen.txt": "put here by hand\n"})  # a frozen stage's output is there (DVC fails without it)
    return repo


GENERATED = ["prepare", "train@small", "train@big", "sweep@1-a", "sweep@1-b", "sweep@2-a", "sweep@2-b",
             "frozen_stage", "always"]


def test_generated_stages_run_once_and_interpolate(project: Path) -> None:
    listed = run_json(["stage", "list"], project)
    assert [s["name"] for s in listed["stages"]] == GENERATED
    by_name = {s["name"]: s for s in listed["stages"]}
    assert by_name["train@big"]["cmd"] == "echo hi big 5 > models-big.txt"
    assert by_name["train@big"]["deps"] == ["prepared.txt"] and by_name["train@big"]["outs"] == ["models-big.txt"]
    assert by_name["frozen_stage"]["frozen"] is True and by_name["always"]["desc"] == "counts its runs"
    assert by_name["always"]["cmd"] == "echo one >> always.log\necho two >> always.log"

    dry = run_json(["repro", "--dry-run"], project)
    actions = {s["name"]: s["action"] for s in dry["stages"]}
    assert actions["frozen_stage"] == "frozen" and actions["prepare"] == "run"

    first = run_json(["repro"], project)
    assert sorted(first["ran"]) == sorted(n for n in GENERATED if n != "frozen_stage")
    assert (project / "prepared.txt").read_text() == "raw\nraw\n3\n"
    assert (project / "models-big.txt").read_text() == "hi big 5\n"
    assert (project / "sweep-2-b.txt").read_text() == "2 b\n"
    assert (project / "frozen.txt").read_text() == "put here by hand\n"  # frozen: never run
    assert (project / "always.log").read_text() == "one\ntwo\n"  # a list of commands, in order
    lock = (project / "mlver.lock").read_text()
    assert "echo hi small 2 > models-small.txt" in lock and "train@big:" in lock

    second = run_json(["repro"], project)
    assert second["ran"] == ["always"]  # always_changed runs every time; nothing else
    assert (project / "always.log").read_text() == "one\ntwo\none\ntwo\n"
    shown = run(["repro", "always"], project).stderr  # each command of the list echoed, as DVC does
    assert "> echo one >> always.log\n> echo two >> always.log\n" in shown, shown
    # each as it starts: a command after a failing one is never echoed, and the failing one is named
    gen(project, {"mlver.yaml": "stages:\n  f:\n    cmd:\n    - echo first-out\n    - sh -c 'echo second-out; exit 4'\n"
                                "    - echo third-out\n"})
    proc = run(["repro", "f"], project, check=False)
    assert proc.returncode == 3 and "> echo third-out" not in proc.stderr, proc.stderr
    assert "`sh -c 'echo second-out; exit 4'` exited with code 4" in proc.stderr
    assert proc.stderr.index("> echo first-out") < proc.stderr.index("> sh -c")


def test_one_foreach_item_parameter_reruns_only_that_item(project: Path) -> None:
    run(["repro"], project)
    (project / "params.yaml").write_text(PARAMS.replace("size: 5", "size: 7"))
    status = run_json(["status"], project)
    changed = {s["name"]: s["reasons"] for s in status["stages"] if s["changed"] and s["name"] != "frozen_stage"}
    assert set(changed) == {"train@big", "always"}, changed
    assert any("models.big.size" in r for r in changed["train@big"]), changed
    res = run_json(["repro"], project)
    assert sorted(res["ran"]) == ["always", "train@big"]
    assert (project / "models-big.txt").read_text() == "hi big 7\n"
    # a value read through ${} in a plain stage is a dependency too
    (project / "params.yaml").write_text(PARAMS.replace("size: 5", "size: 7").replace("factor: 3", "factor: 4"))
    res = run_json(["repro"], project)
    assert "prepare" in res["ran"] and "train@small" in res["ran"]  # downstream of prepared.txt


def test_a_new_or_edited_list_item_runs_only_its_own_stages(project: Path) -> None:
    """`matrix`/`foreach` over a list from params.yaml: each generated stage depends on its
    own item (through its command and paths), not on the whole list, as in DVC: adding a
    seed runs the new seed's stages only, editing one runs that one's."""
    run(["repro"], project)
    (project / "params.yaml").write_text(PARAMS.replace("seeds: [1, 2]", "seeds: [1, 2, 3]"))
    res = run_json(["repro"], project)
    assert sorted(r for r in res["ran"] if r.startswith("sweep")) == ["sweep@3-a", "sweep@3-b"], res["ran"]
    (project / "params.yaml").write_text(PARAMS.replace("seeds: [1, 2]", "seeds: [1, 4, 3]"))
    status = {s["name"] for s in run_json(["status"], project)["stages"] if s["changed"]}
    assert {n for n in status if n.startswith("sweep")} == {"sweep@4-a", "sweep@4-b"}, status
    res = run_json(["repro"], project)
    assert sorted(r for r in res["ran"] if r.startswith("sweep")) == ["sweep@4-a", "sweep@4-b"], res["ran"]
    assert (project / "sweep-4-b.txt").read_text() == "4 b\n"


def test_frozen_stage_reports_changes_and_never_runs(project: Path) -> None:
    run(["repro"], project)
    (project / "data.txt").write_text("new\n")
    status = run_json(["status"], project)
    frozen = next(s for s in status["stages"] if s["name"] == "frozen_stage")
    assert frozen["changed"] and frozen["reasons"][0].startswith("frozen")
    res = run_json(["repro"], project)
    assert "frozen_stage" not in res["ran"] and "frozen_stage" in res["skipped"]
    assert (project / "frozen.txt").read_text() == "put here by hand\n"  # never run, recorded as it was


def test_a_frozen_stage_never_run_is_recorded_as_it_is_or_stops_without_its_outputs(repo: Path) -> None:
    """DVC's "verifying outputs in frozen stage": a frozen stage with no lock entry gets its
    outputs recorded (cached, ignored, in the lock), so status is clean; without them the
    run stops, naming them."""
    gen(repo, {"s.sh": "s\n", "mlver.yaml": "stages:\n  ice:\n    cmd: echo ice > ice.txt\n    deps: [s.sh]\n"
                                            "    frozen: true\n    outs: [ice.txt]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3 and "ice.txt does not exist" in proc.stderr and not (repo / "mlver.lock").exists()
    gen(repo, {"ice.txt": "by hand\n"})
    run(["repro"], repo)
    assert (repo / "ice.txt").read_text() == "by hand\n" and "/ice.txt" in (repo / ".gitignore").read_text()
    assert run_json(["status"], repo)["clean"] is True and "ice" in (repo / "mlver.lock").read_text()


def test_repro_by_definition_name_runs_every_generated_stage(project: Path) -> None:
    res = run_json(["repro", "train"], project)
    assert sorted(res["ran"]) == ["prepare", "train@big", "train@small"]
    res = run_json(["repro", "-f", "sweep@1-b"], project)
    assert res["ran"] == ["sweep@1-b"]


def test_top_level_params_metrics_and_artifacts(project: Path) -> None:
    shown = run_json(["metrics", "show"], project)
    assert shown["revisions"][0]["metrics"]["metrics.json"] == {"acc": 0.9}
    table = run_json(["exp", "show"], project)
    assert table["rows"][0]["params"]["extra.yaml"] == {"lr": 0.5}
    (project / "extra.yaml").write_text("lr: 0.25\n")
    diff = run_json(["params", "diff"], project)
    assert diff["changes"]["extra.yaml"]["lr"]["old"] == 0.5 and diff["changes"]["extra.yaml"]["lr"]["new"] == 0.25
    arts = run_json(["artifacts", "list"], project)
    assert arts["artifacts"] == [{"name": "model", "path": "models-big.txt", "type": "model", "desc": "the big one",
                                  "labels": ["nlp"], "meta": None}]


def test_history_reads_templated_pipelines(project: Path) -> None:
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "ran"], project)
    (project / "params.yaml").write_text(PARAMS.replace("size: 5", "size: 9"))
    run(["repro"], project)
    git(["commit", "-qam", "bigger"], project)
    rows = run_json(["exp", "show", "-n", "2"], project)["rows"]
    sizes = [r["params"].get("params.yaml", {}).get("models.big.size") for r in rows]
    assert sizes == [9, 9, 5], sizes


@pytest.mark.parametrize("text, line, message", [
    ("stages:\n  a:\n    cmd: echo ${nope}\n", 3, "unknown variable 'nope'"),
    ("stages:\n  a:\n    cmd: echo ${models.huge.size}\n", 3, "unknown variable 'models.huge'"),
    ("stages:\n  a:\n    foreach: ${prep.factor}\n    do:\n      cmd: echo\n", 3,
     "'foreach' must be a list or a mapping, not int"),
    ("stages:\n  a:\n    foreach: [x, x]\n    do:\n      cmd: echo ${item}\n", 2, "stage 'a@x' is defined twice"),
    ("stages:\n  a:\n    matrix:\n      k: 3\n    cmd: echo\n", 4, "matrix 'k' must be a non-empty list"),
    ("stages:\n  a:\n    foreach: [1]\n    cmd: echo\n", 4, "'cmd' belongs inside 'do:'"),
    ("vars:\n  - missing.yaml\nstages: {}\n", 2, "vars file 'missing.yaml' does not exist"),
    ("vars:\n  - prep: {factor: 9}\nstages: {}\n", 2, "cannot redefine 'prep.factor'"),
    ("stages:\n  a:\n    cmd: echo\n    outs:\n    - ${models}\n", 5, "each output must be a path (a string), not a mapping"),
    ("wat: 1\nstages: {}\n", 1, "unknown field 'wat'"),
    ("stages:\n  a:\n    cmd: echo\n    deps:\n    - s3://bucket/raw.csv\n", 5, "is a URL"),  # not s3:/bucket/...
    ("stages:\n  a:\n    cmd: echo\n    outs:\n    - o_${models.big}.txt\n", 5, "cannot interpolate a mapping"),
    ("stages:\n  a:\n    cmd: echo\n    deps:\n    - d_${seeds}.txt\n", 5, "cannot interpolate a list"),
    ("stages:\n  a:\n    cmd: echo\n    frozen: yes please\n", 4, "'frozen' must be true or false"),
    ("stages:\n  a:\n    cmd: echo ${${seeds}}\n", 3, "nested"),
    ("stages:\n  a:\n    cmd: echo ${seeds\n", 3, "without its closing"),
    ("stages:\n  a:\n    matrix:\n" + "".join(f"      k{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(10))
     + "    cmd: echo\n", 3, "would generate 10000000000 stages"),
    ("stages:\n  a:\n    cmd:\n    - echo\n    - 5\n", 3, "each command of a 'cmd' list must be a string"),
    ("stages:\n  a:\n    cmd: echo\n    deps: [x]\n    outs: [y]\n  b:\n    foreach: [1]\n    do:\n"
     "      cmd: echo\n      deps: [y]\n      outs: [x]\n", 2, "cycle"),
])
def test_template_errors_name_file_and_line(repo: Path, text: str, line: int, message: str) -> None:
    gen(repo, {"mlver.yaml": text, "params.yaml": PARAMS})
    proc = run(["repro", "--dry-run"], repo, check=False)
    assert proc.returncode == 3, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"mlver.yaml:{line}:" in errors[0] and message in errors[0], errors[0]


def test_escape_and_typed_values(repo: Path) -> None:
    gen(repo, {"params.yaml": "flag: true\nlayers: [64, 32]\nopts: {lr: 0.1, fast: true}\n", "mlver.yaml": (
        "stages:\n  a:\n    cmd: echo \\${HOME} ${flag} ${layers} ${opts} > out.txt\n    outs: [out.txt]\n")})
    res = run_json(["stage", "list"], repo)
    assert res["stages"][0]["cmd"] == "echo ${HOME} true 64 32 --lr 0.1 --fast > out.txt"
    run(["repro"], repo)
    assert (repo / "out.txt").read_text() == f"{Path.home()} true 64 32 --lr 0.1 --fast\n"
    lock = (repo / "mlver.lock").read_text()
    assert "params.yaml:" in lock and "flag: true" in lock and "layers:" in lock  # interpolated = params deps


def test_single_item_and_keep_going(repo: Path) -> None:
    gen(repo, {"data.txt": "x\n", "mlver.yaml": (
        "stages:\n"
        "  a:\n    cmd: cp data.txt a.txt\n    deps: [data.txt]\n    outs: [a.txt]\n"
        "  bad:\n    cmd: exit 7\n    deps: [data.txt]\n    outs: [bad.txt]\n"
        "  after_bad:\n    cmd: cp bad.txt c.txt\n    deps: [bad.txt]\n    outs: [c.txt]\n"
        "  b:\n    cmd: cp a.txt b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")})
    proc = run(["repro", "-k", "--json"], repo, check=False)
    assert proc.returncode == 3
    res = json.loads(proc.stdout)
    assert sorted(res["ran"]) == ["a", "b"] and res["blocked"] == ["after_bad"]
    assert [f["stage"] for f in res["failures"]] == ["bad"] and res["failures"][0]["exit_code"] == 7
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "'bad' (exit 7)" in errors[0] and "after_bad" in errors[0], proc.stderr
    assert (repo / "b.txt").read_text() == "x\n"
    # without -k the run stops at the failure
    (repo / "data.txt").write_text("y\n")
    proc = run(["repro", "--json"], repo, check=False)
    assert proc.returncode == 3 and json.loads(proc.stdout)["failed"]["stage"] == "bad"
    # -s: only the named stage, not what it depends on
    (repo / "data.txt").write_text("z\n")
    res = run_json(["repro", "-s", "-f", "b"], repo)
    assert res["ran"] == ["b"] and (repo / "a.txt").read_text() == "y\n"  # a did not re-run
    assert (repo / "b.txt").read_text() == "y\n"
    assert run(["repro", "-s", "--downstream", "b"], repo, check=False).returncode == 2


def test_allow_missing_and_pull(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"data.txt": "x\n", "mlver.yaml": (
        "stages:\n  a:\n    cmd: cp data.txt a.txt\n    deps: [data.txt]\n    outs: [a.txt]\n")})
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    run(["repro"], repo)
    run(["push"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "ran"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    # the clone has neither the output nor its object: --allow-missing trusts the remote
    res = run_json(["repro", "--allow-missing"], clone)
    assert res["ran"] == [] and res["allowed_missing"] == ["a"] and not (clone / "a.txt").exists()
    # a plain repro would re-run it; --pull fetches it instead
    res = run_json(["repro", "--pull"], clone)
    assert res["ran"] == [] and (clone / "a.txt").read_text() == "x\n"
    # with the object nowhere, --allow-missing runs the stage
    (clone / "a.txt").unlink()
    (clone / "data.txt").write_text("y\n")
    res = run_json(["repro", "--allow-missing"], clone)
    assert res["ran"] == ["a"]


def test_allow_missing_skips_a_chain_whose_data_is_only_recorded(repo: Path, tmp_path: Path) -> None:
    """As DVC: in a fresh clone, a downstream stage whose dependency is missing but
    recorded (and stored) is not run either; --dry-run says the same as the run."""
    gen(repo, {"in.txt": "hello\n", "mlver.yaml": (
        "stages:\n  a:\n    cmd: cat in.txt > a.txt\n    deps: [in.txt]\n    outs: [a.txt]\n"
        "  b:\n    cmd: cat a.txt a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")})
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    run(["repro"], repo)
    run(["push"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "ran"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    dry = run_json(["repro", "--allow-missing", "--dry-run"], clone)
    assert [p["action"] for p in dry["stages"]] == ["skip", "skip"]
    assert "Would run" not in run(["repro", "--allow-missing", "--dry-run"], clone).stdout
    res = run_json(["repro", "--allow-missing"], clone)
    assert res["ran"] == [] and res["allowed_missing"] == ["a", "b"]
    assert not (clone / "a.txt").exists() and not (clone / "b.txt").exists()
    # a changed input still runs what it changes
    (clone / "in.txt").write_text("bye\n")
    res = run_json(["repro", "--allow-missing"], clone)
    assert res["ran"] == ["a", "b"] and (clone / "b.txt").read_text() == "bye\nbye\n"


def test_repro_pull_fetches_added_dependencies_too(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"data.csv": "a,b\n1,2\n", "mlver.yaml": (
        "stages:\n  a:\n    cmd: cp data.csv a.txt\n    deps: [data.csv]\n    outs: [a.txt]\n")})
    run(["add", "data.csv"], repo)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    run(["repro"], repo)
    run(["push"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "ran"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    res = run_json(["repro", "--pull"], clone)
    assert res["ran"] == [] and (clone / "data.csv").read_text() == "a,b\n1,2\n"
    assert (clone / "a.txt").read_text() == "a,b\n1,2\n"


def test_metrics_inside_a_folder_output_read_through_manifests_from_the_remote(repo: Path, tmp_path: Path) -> None:
    import shutil

    gen(repo, {"acc.txt": "0.5\n",
               "evaluate.sh": 'mkdir -p eval\necho "{\\"acc\\": $(cat acc.txt)}" > eval/metrics.json\necho p > eval/p.csv\n',
               "mlver.yaml": (
        "stages:\n  evaluate:\n"
        "    cmd: sh evaluate.sh\n"
        "    deps: [acc.txt, evaluate.sh]\n    outs: [eval]\n    metrics: [eval/metrics.json]\n"
        "metrics:\n  - eval/metrics.json\n")})
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    for acc in ("0.5", "0.6", "0.7"):
        (repo / "acc.txt").write_text(acc + "\n")
        run(["repro"], repo)
        git(["add", "-A"], repo)
        git(["commit", "-qm", f"acc {acc}"], repo)
        run(["push"], repo)
    assert "eval/metrics.json" not in git(["ls-files"], repo)  # inside the cached folder, not in Git
    shutil.rmtree(repo / "eval")
    shutil.rmtree(repo / ".mlver" / "cache")
    shown = run_json(["metrics", "show", "-n", "3"], repo)["revisions"]
    values = [r["metrics"].get("eval/metrics.json", {}).get("acc") for r in shown]
    assert values[-3:] == [0.7, 0.6, 0.5], shown
    rows = run_json(["exp", "show", "-n", "3"], repo)["rows"]
    assert [r["metrics"].get("eval/metrics.json", {}).get("acc") for r in rows[1:]] == [0.7, 0.6, 0.5]
    # with the data nowhere, the values are absent and every command says why
    run(["remote", "remove", "store"], repo)
    proc = run(["metrics", "diff", "HEAD~2", "HEAD"], repo)
    assert "eval/metrics.json" in proc.stderr and "neither in the cache nor on the default remote" in proc.stderr
    assert "mlver fetch --rev" in proc.stderr
    assert "neither in the cache" in run(["metrics", "show", "-n", "2"], repo).stderr


def test_output_push_false_and_own_remote(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"data.txt": "x\n", "mlver.yaml": (
        "stages:\n  a:\n    cmd: echo s > shared.txt && echo l > local.txt && echo o > special.txt\n"
        "    deps: [data.txt]\n    outs:\n    - shared.txt\n    - local.txt:\n        push: false\n"
        "    - special.txt:\n        remote: other\n        desc: goes elsewhere\n")})
    (repo / "data.txt").write_text("shared\n")
    run(["remote", "add", "-d", "main", str(tmp_path / "main")], repo)
    run(["remote", "add", "other", str(tmp_path / "other")], repo)
    run(["repro"], repo)
    proc = run(["push", "--json"], repo)
    pushed = json.loads(proc.stdout)
    assert pushed["transferred"] == 2  # shared.txt to main, special.txt to other, local.txt nowhere
    assert "1 object(s) pushed to 'main', 1 to 'other'" in proc.stderr
    main_objects = sorted(p.name for p in (tmp_path / "main").rglob("*") if p.is_file())
    other_objects = sorted(p.name for p in (tmp_path / "other").rglob("*") if p.is_file())
    assert len(main_objects) == 1 and len(other_objects) == 1, (main_objects, other_objects)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "ran"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    proc = run(["pull", "--json"], clone, check=False)
    assert (clone / "shared.txt").read_text() == "s\n" and (clone / "special.txt").read_text() == "o\n"
    assert not (clone / "local.txt").exists()
    assert json.loads(proc.stdout)["missing"] == []  # push: false data is not looked for on a remote
    assert proc.returncode == 0, proc.stderr  # nor is its absence a failure: repro makes it
    assert "never pushed" in proc.stderr and "local.txt" in proc.stderr
    assert run(["checkout"], clone, check=False).returncode == 0


def test_get_accepts_an_artifact_name(project: Path, tmp_path: Path) -> None:
    run(["repro"], project)
    git(["add", "-A"], project)
    git(["commit", "-qm", "ran"], project)
    res = run_json(["get", "model", "-o", str(tmp_path / "got.txt")], project)
    assert res["path"] == "models-big.txt"
    assert (tmp_path / "got.txt").read_text() == "hi big 5\n"
    proc = run(["get", "nomodel", "-o", str(tmp_path / "x")], project, check=False)
    assert proc.returncode == 3 and "nomodel" in proc.stderr and not (tmp_path / "x").exists()


def test_templating_fuzz_never_escapes_the_error_type() -> None:
    """Seeded fuzzer over the templating parser, in-process: any generated mlver.yaml
    parses or raises a FormatError naming mlver.yaml; nothing else escapes."""
    import random

    from mlver.errors import FormatError
    from mlver.pipeline.model import parse_pipeline

    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    docs = {"params.yaml": {"a": {"b": [1, {"c": True}], "d": "x"}, "m": {"k1": {"v": 1}, "k2": {"v": 2}},
                            "l": [1, 2, 3], "n": None}}
    pieces = ["${a.b}", "${a.b[1].c}", "${a.b[9]}", "${m}", "${l}", "${n}", "${", "}", "\\\\${x}", "${ a.d }",
              "${item}", "${key}", "${item.v}", "${a..b}", "${[0]}", "${l[-1]}", "x", " ", "${m.k1.v}", "@", ":"]
    keys = ["cmd", "deps", "outs", "params", "metrics", "wdir", "foreach", "matrix", "do", "vars", "frozen"]
    for i in range(400):
        lines = ["vars:", f"  - {rnd.choice(['params.yaml:a', 'p: 1', 'nope.yaml', '${l}'])}", "stages:"]
        for s in range(rnd.randint(1, 3)):
            lines.append(f"  s{s}:")
            for key in rnd.sample(keys, rnd.randint(1, 5)):
                value = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 4)))
                if key in ("deps", "outs", "metrics"):
                    lines += [f"    {key}:", f"    - {json.dumps(value)}"]
                elif key == "do":
                    lines += ["    do:", f"      cmd: {json.dumps(value)}"]
                elif key == "matrix":
                    lines += ["    matrix:", f"      x: {rnd.choice(['[1, 2]', '${l}', '3', '${m}'])}"]
                else:
                    lines.append(f"    {key}: {json.dumps(value) if rnd.random() < 0.8 else value}")
        text = "\n".join(lines) + "\n"
        try:
            parse_pipeline(text, "mlver.yaml", docs.get)
        except FormatError as e:
            assert e.message.startswith("mlver.yaml"), f"seed {seed} case {i}: {e.message}\n{text}"
        except Exception as e:  # noqa: BLE001 - the point of the fuzzer
            raise AssertionError(f"seed {seed} case {i}: {type(e).__name__}: {e}\n{text}") from e


def test_mapping_flags_as_dvc_writes_them_and_params_only_stages_settle(repo: Path) -> None:
    gen(repo, {"params.yaml": "o:\n  k: [1, 2]\n  f: false\n  t: true\n  s: a b\n  nest:\n    q: 1\nacc: 1\n",
               "mlver.yaml": "stages:\n  a:\n    cmd: echo ${o} > x.txt\n    outs: [x.txt]\n"
                             "  b:\n    cmd: echo ${acc} > y.txt\n    outs: [y.txt]\n"})
    assert run_json(["stage", "list"], repo)["stages"][0]["cmd"] == "echo --k 1 2 --t --s 'a b' --nest.q 1 > x.txt"
    run(["repro"], repo)
    assert (repo / "x.txt").read_text() == "--k 1 2 --t --s a b --nest.q 1\n"
    # a stage whose only inputs are params is settled once run (as in DVC), not "always runs"
    status = {s["name"]: s for s in run_json(["status"], repo)["stages"]}
    assert status["b"]["changed"] is False and status["a"]["changed"] is False, status
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("acc: 1", "acc: 2"))
    assert run_json(["repro"], repo)["ran"] == ["b"]
