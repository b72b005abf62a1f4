"""``mlver import-dvc`` on real DVC 3 projects built by the real ``dvc`` CLI (its own
virtualenv): a tracked file and folder, a templated pipeline (vars, foreach, matrix,
top-level metrics and plots), a folder output holding its metrics, a committed params
change, a ``dvc import`` from a second DVC repository, and a local DVC remote holding
everything pushed. Also: History reads the DVC commits, and doctor's trap warnings.

The end-to-end checks (status clean, repro no-op, pull from the DVC remote) need md5
digests throughout mlver (``mlver.hashing.qualify``); until that is on the branch they
skip loudly ("md5-digests")."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import gen, git, require, run, run_json

DVC_YAML = """\
# the pipeline: comments survive the import
vars:
  - params.yaml
stages:
  prep:
    foreach: ${models}
    do:
      cmd: mkdir -p out && echo ${item} > out/${item}.txt
      deps: [data/raw.csv]
      outs: ["out/${item}.txt"]
  sweep:
    matrix:
      opt: [adam, sgd]
      n: [1, 2]
    cmd: mkdir -p sw && echo ${item.opt}${item.n} > sw/${item.opt}-${item.n}.txt
    deps: [data/raw.csv]
    outs: ["sw/${item.opt}-${item.n}.txt"]
  train:
    cmd: python3 train.py ${train.lr}
    deps: [data/images, train.py]
    params: [train.lr]
    outs:
      - model.pkl:
          desc: the model
    metrics:
      - eval/metrics.json:
          cache: false
    plots:
      - eval/loss.csv:
          cache: false
  evaluate:
    cmd: python3 evaluate.py
    deps: [model.pkl, evaluate.py]
    params: [train]
    outs: [res]
metrics:
  - res/m.json
plots:
  - eval/loss.csv
"""

TRAIN = """\
import json, os, sys
lr = float(sys.argv[1])
os.makedirs("eval", exist_ok=True)
json.dump({"acc": round(0.5 + lr, 3), "lr": lr}, open("eval/metrics.json", "w"))
open("eval/loss.csv", "w").write("step,loss\\n0,1.0\\n1,%s\\n" % (1 - lr))
open("model.pkl", "w").write("model %s" % lr)
"""

EVALUATE = """\
import json, os
os.makedirs("res", exist_ok=True)
json.dump({"f1": len(open("model.pkl").read()) / 10}, open("res/m.json", "w"))
open("res/x.txt", "w").write("x")
"""


def _dvc(dvc: str, args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE": "1"}
    proc = subprocess.run([dvc, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert proc.returncode == 0, f"dvc {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc


def _commit(cwd: Path, message: str) -> str:
    git(["add", "-A"], cwd)
    git(["commit", "-q", "-m", message], cwd)
    return git(["rev-parse", "HEAD"], cwd).strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, dvc_bin: str) -> Path:
    """base/{proj, remote, other, other-remote}: the DVC project, three commits (v1, a
    params change v2, a `dvc import` v3), everything pushed to its local DVC remote."""
    base = tmp_path_factory.mktemp("dvcbase")
    home = tmp_path_factory.mktemp("dvchome")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = T\n\temail = t@example.com\n")
    with pytest.MonkeyPatch.context() as mp:  # a module fixture runs outside the per-test environment
        for key, value in (("HOME", str(home)), ("GIT_CONFIG_NOSYSTEM", "1"),
                           ("XDG_CONFIG_HOME", str(home / ".config"))):
            mp.setenv(key, value)
        _build(base, dvc_bin)
    return base


def _build(base: Path, dvc_bin: str) -> None:
    other = base / "other"
    other.mkdir()
    git(["init", "-q"], other)
    _dvc(dvc_bin, ["init", "-q"], other)
    _dvc(dvc_bin, ["remote", "add", "-d", "up", "../other-remote"], other)
    gen(other, {"data/ext.csv": "id,v\n1,2\n"})
    _dvc(dvc_bin, ["add", "-q", "data/ext.csv"], other)
    _commit(other, "other data")
    _dvc(dvc_bin, ["push", "-q"], other)

    proj = base / "proj"
    proj.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc_bin, ["init", "-q"], proj)
    _dvc(dvc_bin, ["remote", "add", "-d", "store", "../remote"], proj)  # relative: DVC keeps it relative to .dvc/
    gen(proj, {"data/raw.csv": "a,b\n1,2\n", "data/images/a.txt": "image a\n", "data/images/b.txt": "image b\n",
               "params.yaml": "train:\n  lr: 0.1\n  epochs: 3\nmodels: [small, big]\n",
               "train.py": TRAIN, "evaluate.py": EVALUATE, "dvc.yaml": DVC_YAML,
               "src/loader.py": "import dvc.api\n\ndef load():\n    return dvc.api.read('data/raw.csv')\n"})
    _dvc(dvc_bin, ["add", "-q", "data/raw.csv", "data/images"], proj)
    _dvc(dvc_bin, ["repro", "-q"], proj)
    _commit(proj, "v1")
    gen(proj, {"params.yaml": "train:\n  lr: 0.2\n  epochs: 3\nmodels: [small, big]\n"})
    _dvc(dvc_bin, ["repro", "-q"], proj)
    _commit(proj, "v2: lr 0.2")
    _dvc(dvc_bin, ["import", "-q", "../other", "data/ext.csv", "-o", "data/ext.csv"], proj)
    _commit(proj, "v3: import ext.csv")
    _dvc(dvc_bin, ["push", "-q", "--all-commits"], proj)


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built DVC project (and its remotes), for one test."""
    base = tmp_path / "base"
    shutil.copytree(built, base, symlinks=True)
    return base / "proj"


def _snapshot(root: Path) -> dict[str, Any]:
    """Every file and folder below ``root`` (.git included): mode and bytes."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(d) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_mode, p.read_bytes())
    return out


def _objects(remote: Path) -> list[str]:
    return sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())


def _md5_digests() -> None:
    """The lead's digest contract (``md5:<hex>`` throughout mlver) is needed to use the
    imported project end to end."""
    import mlver.hashing

    if not hasattr(mlver.hashing, "qualify"):
        require("md5-digests", "md5 digests are not on this branch yet (mlver.hashing.qualify)")


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(doc, dict):
        return {prefix: doc}
    out: dict[str, Any] = {}
    for k, v in doc.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return {k.rstrip("."): v for k, v in out.items()}


# --- the DVC files, read (mlver.pipeline.dvcfiles) ---------------------------------------------------

def test_dvc_lock_becomes_stage_locks_with_metrics_moved(project: Path) -> None:
    from mlver.pipeline.dvcfiles import Declared, parse_dvc_lock

    text = (project / "dvc.lock").read_text()
    declared = {"train": Declared(".", {"eval/metrics.json": (True, False), "eval/loss.csv": (False, False),
                                        "model.pkl": (False, True)})}
    conv = parse_dvc_lock(text, "dvc.lock", declared=declared)
    assert sorted(conv.stages) == sorted(["prep@small", "prep@big", "sweep@adam-1", "sweep@adam-2", "sweep@sgd-1",
                                          "sweep@sgd-2", "train", "evaluate"])
    train = conv.stages["train"]
    assert train.cmd == "python3 train.py 0.2"
    assert train.params == {"params.yaml": {"train.lr": 0.2}}
    assert [(m.path, m.cache) for m in train.metrics] == [("eval/metrics.json", False)]
    assert sorted((o.path, o.cache) for o in train.outs) == [("eval/loss.csv", False), ("model.pkl", True)]
    images = next(d for d in train.deps if d.path == "data/images")
    dvc_file = (project / "data/images.dvc").read_text()
    assert images.kind == "dir" and images.files == 2 and images.digest.startswith("md5:")
    assert f"md5: {images.digest.split(':')[1]}.dir" in dvc_file  # the same digest DVC wrote, `.dir` stripped


def test_dvc_files_and_config_are_read(project: Path) -> None:
    from mlver.pipeline.dvcfiles import parse_dvc_config, parse_dvc_file, remote_url_for_mlver

    raw = parse_dvc_file((project / "data/raw.csv.dvc").read_text(), "data/raw.csv.dvc")
    assert [(o.path, o.kind, o.size) for o in raw.outs] == [("raw.csv", "file", 8)]
    ext = parse_dvc_file((project / "data/ext.csv.dvc").read_text(), "data/ext.csv.dvc")
    assert ext.imported is not None and ext.imported.path == "data/ext.csv"
    assert ext.imported.url == "../other" and len(ext.imported.rev_lock or "") == 40
    config = parse_dvc_config((project / ".dvc/config").read_text(), ".dvc/config")
    assert config.default == "store"
    assert [(r.name, remote_url_for_mlver(r.url)) for r in config.remotes] == [("store", "../remote")]


def test_legacy_and_malformed_dvc_files_are_named() -> None:
    from mlver.pipeline.dvcfiles import parse_dvc_file, parse_dvc_lock
    from mlver.errors import FormatError

    # DVC 2 wrote no `hash: md5`: its digests are md5-dos2unix, a digest of their own
    legacy = parse_dvc_file("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 3\n  path: old.csv\n", "old.csv.dvc")
    assert [o.digest for o in legacy.outs] == ["md5-dos2unix:0123456789abcdef0123456789abcdef"]
    lock = parse_dvc_lock("schema: '2.0'\nstages:\n  s:\n    cmd: echo\n    outs:\n    - path: o\n"
                          "      md5: 0123456789abcdef0123456789abcdef\n      size: 1\n", "dvc.lock")
    assert [e.digest for e in lock.stages["s"].outs] == ["md5-dos2unix:0123456789abcdef0123456789abcdef"]
    with pytest.raises(FormatError, match=r"old.csv.dvc:2: 'old.csv': unknown hash 'sha1'"):
        parse_dvc_file("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  hash: sha1\n  path: old.csv\n", "old.csv.dvc")
    with pytest.raises(FormatError, match=r"dvc.lock:1: unsupported dvc.lock schema"):
        parse_dvc_lock("s:\n  cmd: echo\n", "dvc.lock")


def test_converted_lock_is_the_lock_mlver_writes_for_the_same_project(project: Path, tmp_path: Path) -> None:
    """Stages, commands, params (DVC's nested sections as mlver's leaves, foreach sources
    mlver tracks), paths, kinds, sizes and metrics are what mlver itself records; only
    the digests' algorithm differs."""
    run(["import-dvc"], project)
    native = tmp_path / "native"
    native.mkdir()
    git(["init", "-q"], native)
    run(["init"], native)
    for rel in ("mlver.yaml", "params.yaml", "train.py", "evaluate.py", "data/raw.csv", "data/ext.csv"):
        gen(native, {rel: (project / rel).read_bytes()})
    shutil.copytree(project / "data/images", native / "data/images")
    run(["add", "data/raw.csv", "data/images", "data/ext.csv"], native)
    run(["repro"], native)

    def shape(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ln.lstrip().startswith(("digest:", "hash:", "#"))]

    assert shape((project / "mlver.lock").read_text()) == shape((native / "mlver.lock").read_text())
    for pointer in ("data/raw.csv.mlver", "data/images.mlver"):
        assert shape((project / pointer).read_text()) == shape((native / pointer).read_text())
    for gitignore in (".gitignore", "data/.gitignore", "out/.gitignore", "sw/.gitignore"):
        assert sorted((project / gitignore).read_text().split()) == sorted((native / gitignore).read_text().split())
    assert "        train.epochs: 3\n" in (project / "mlver.lock").read_text()


# --- the command -------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_changes_nothing(project: Path) -> None:
    before = _snapshot(project.parent)
    proc = run(["import-dvc", "--dry-run"], project)
    assert _snapshot(project.parent) == before
    out = proc.stdout
    for line in ("write data/raw.csv.mlver  (from data/raw.csv.dvc)", "write data/images.mlver  (from data/images.dvc)",
                 "write mlver.yaml  (from dvc.yaml)", "write mlver.lock  (from dvc.lock)",
                 "remote store (default): ../remote"):
        assert line in out, out
    assert "git rm" in out and "Dry run: nothing was changed." in proc.stderr
    doc = run_json(["import-dvc", "--dry-run"], project)
    assert _snapshot(project.parent) == before
    assert doc["dry_run"] is True and doc["stages"] == 8
    assert sorted(doc["pointers"]) == ["data/ext.csv", "data/images", "data/raw.csv"]
    assert doc["objects"]["planned"] == len(_objects(project / ".dvc/cache/files"))
    assert [i["path"] for i in doc["imported"]] == ["data/ext.csv"]
    assert any(u["where"] == "src/loader.py:1" and "mlver.api" in u["todo"] for u in doc["unconverted"])


def test_import_converts_stages_and_commits_nothing(project: Path, dvc_bin: str) -> None:
    gen(project, {".pre-commit-config.yaml": "repos:\n  - repo: https://github.com/iterative/dvc\n    rev: 3.0.0\n"
                                             "    hooks:\n      - id: dvc-pre-commit\n"})
    _commit(project, "DVC's pre-commit hooks")
    _dvc(dvc_bin, ["install"], project)  # DVC's Git hooks: they would fail once .dvc/ is gone
    head = git(["rev-parse", "HEAD"], project)
    dvc_yaml = (project / "dvc.yaml").read_text()
    cached = len(_objects(project / ".dvc/cache/files"))
    git(["update-ref", "refs/exps/ab/cdef0123456789abcdef0123456789abcdef01/old-exp", "HEAD"], project)
    git(["update-ref", "refs/exps/exec/EXEC_HEAD", "HEAD"], project)  # DVC's own bookkeeping
    proc = run(["import-dvc"], project)
    assert git(["rev-parse", "HEAD"], project) == head  # nothing committed
    assert "the next `mlver push` uploads it" in proc.stdout
    assert "DVC experiment(s) in refs/exps" in proc.stdout
    assert ".git/hooks/pre-commit: DVC's pre-commit Git hook (`dvc install`)" in proc.stdout
    assert ".pre-commit-config.yaml: DVC's hooks in the pre-commit framework's config" in proc.stdout
    # DVC's experiment refs (refs/exps/ab/cdef.../NAME) are listed under their baseline by name
    rows = run_json(["exp", "show", "-n", "2"], project)["rows"]
    assert [(r["experiment"], r["baseline"]) for r in rows if r.get("experiment")] == [
        ("old-exp", git(["rev-parse", "HEAD~1"], project).strip())]
    # applying one would put DVC's files back over the import: refused up front, nothing written
    before = git(["status", "--porcelain", "--untracked-files=all"], project)
    bad = run(["exp", "apply", "old-exp"], project, check=False)
    assert bad.returncode == 3 and "is a DVC experiment from before `mlver import-dvc`" in bad.stderr, bad.stderr
    assert git(["status", "--porcelain", "--untracked-files=all"], project) == before
    assert not (project / ".dvc").exists() and not (project / "dvc.yaml").exists()
    assert (project / "mlver.yaml").read_text() == dvc_yaml  # a copy, comments kept
    staged = git(["diff", "--cached", "--name-status"], project)
    for path in ("data/raw.csv.mlver", "data/images.mlver", "data/ext.csv.mlver", "mlver.yaml", "mlver.lock",
                 ".mlver/config"):
        assert f"{path}\n" in staged, staged
    for path in ("data/raw.csv.dvc", "dvc.lock", ".dvc/config"):
        assert f"D\t{path}\n" in staged, staged
    status = git(["status", "--porcelain", "--untracked-files=all"], project).splitlines()
    assert [ln for ln in status if not ln.startswith(("A ", "D ", "M ", "R "))] == []  # everything staged
    ext = (project / "data/ext.csv.mlver").read_text()
    assert "desc: imported from ../other data/ext.csv at " in ext
    config = configparser.ConfigParser()
    config.read(project / ".mlver/config")
    assert config['remote "store"']["url"] == "../remote" and config["core"]["remote"] == "store"
    files = [p for p in (project / ".mlver/cache").rglob("*") if p.is_file()]
    assert len(files) == cached  # every DVC object, linked (no re-hash)
    assert all(p.stat().st_nlink >= 1 for p in files)


@pytest.mark.parametrize("failpoint", ["import-dvc-written", "import-dvc-staged"])
def test_a_killed_import_is_finished_by_running_it_again(project: Path, built: Path, tmp_path: Path,
                                                         failpoint: str) -> None:
    killed = run(["import-dvc"], project, check=False, env={"MLVER_FAILPOINT": failpoint})
    assert killed.returncode == -9
    run(["import-dvc"], project)
    clean = tmp_path / "clean"
    shutil.copytree(built, clean, symlinks=True)
    run(["import-dvc"], clean / "proj")

    def result(root: Path) -> dict[str, Any]:
        staged = git(["diff", "--cached", "--name-status"], root)
        files = {p: (root / p).read_bytes() for p in git(["diff", "--cached", "--name-only", "--diff-filter=AM"],
                                                         root).split()}
        return {"staged": staged, "files": files, "dvc": (root / ".dvc").exists(),
                "untracked": git(["status", "--porcelain", "--untracked-files=all"], root).count("??")}

    assert result(project) == result(clean / "proj")
    assert run_json(["status"], project)["clean"] is True


def test_not_a_dvc_project_is_a_usage_error(tmp_path: Path) -> None:
    git(["init", "-q"], tmp_path)
    proc = run(["import-dvc"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith("mlver: error: ") and "is not a DVC project" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / ".mlver").exists()


def test_a_colliding_mlver_file_is_refused_before_anything_is_written(project: Path) -> None:
    gen(project, {"mlver.yaml": "stages: {}\n"})
    before = _snapshot(project.parent)
    proc = run(["import-dvc"], project, check=False)
    assert proc.returncode == 3
    assert "mlver: error: mlver.yaml already exists" in proc.stderr
    assert _snapshot(project.parent) == before


def test_an_unreadable_dvc_lock_is_refused_naming_its_line(project: Path) -> None:
    gen(project, {"dvc.lock": "schema: '2.0'\nstages:\n  train:\n    cmd: [unclosed\n"})
    before = _snapshot(project.parent)
    proc = run(["import-dvc"], project, check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("mlver: error: dvc.lock:") and "invalid YAML" in proc.stderr
    assert _snapshot(project.parent) == before


@pytest.mark.parametrize("data", ["data/images", "res"])  # a .dvc file's output, a stage's output
def test_data_behind_a_link_out_of_the_repository_is_refused(project: Path, tmp_path: Path, data: str) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(project / data, outside)
    shutil.rmtree(project / data)
    (project / data).symlink_to(outside)
    before, canary = _snapshot(project.parent), _snapshot(outside)
    proc = run(["import-dvc"], project, check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"mlver: error: {data}: is a symbolic link to {outside}, outside the repository")
    assert _snapshot(project.parent) == before and _snapshot(outside) == canary


def test_unsupported_fields_are_kept_as_comments_and_listed(project: Path, dvc_bin: str) -> None:
    """A field mlver has no use for is commented out and listed (top-level `datasets`); an
    output's model-registry annotations (`type`, `labels`, `meta`) stay as they are."""
    text = (project / "dvc.yaml").read_text().replace(
        "      - model.pkl:\n          desc: the model\n",
        "      - model.pkl:\n          desc: the model\n          type: model\n          labels:\n          - best\n")
    text = "datasets:\n  - name: d\n    type: dvc\n    url: .\n    path: x\n" + text
    gen(project, {"dvc.yaml": text})
    _dvc(dvc_bin, ["status"], project)  # DVC reads it
    doc = run_json(["import-dvc", "--dry-run"], project)
    fields = {u["what"]: u["where"] for u in doc["unconverted"]}
    assert fields["field 'datasets' (top level)"] == "dvc.yaml:1", fields
    assert not any("'type'" in f or "'labels'" in f for f in fields), fields
    run(["import-dvc"], project)
    converted = (project / "mlver.yaml").read_text()
    assert "# mlver import-dvc: not supported by mlver, kept as a comment: datasets:\n" in converted
    assert "#   - name: d" in converted or "# - name: d" in converted
    assert "          type: model\n          labels:\n          - best\n" in converted
    assert run_json(["stage", "list"], project)["stages"]  # mlver reads the result


def test_keep_dvc_leaves_dvc_working(project: Path, dvc_bin: str) -> None:
    run(["import-dvc", "--keep-dvc"], project)
    assert (project / "dvc.yaml").exists() and (project / ".dvc/config").exists()
    assert (project / "data/raw.csv.dvc").exists() and (project / "data/raw.csv.mlver").exists()
    status = _dvc(dvc_bin, ["status"], project)
    assert "up to date" in status.stdout, status.stdout
    config = configparser.ConfigParser()
    config.read(project / ".mlver/config")
    assert config['remote "store"']["packs"] == "false"
    # later, the switch: the files the first import wrote are in place, so it only removes DVC's
    git(["commit", "-q", "-m", "mlver beside DVC"], project)
    proc = run(["import-dvc"], project)
    assert "wrote" not in proc.stdout and not (project / ".dvc").exists() and not (project / "dvc.yaml").exists()
    assert "D\tdvc.lock" in git(["diff", "--cached", "--name-status"], project)


def test_a_subfolder_pipeline_with_wdir_is_converted_beside_it(tmp_path: Path, dvc_bin: str) -> None:
    git(["init", "-q"], tmp_path)
    _dvc(dvc_bin, ["init", "-q"], tmp_path)
    gen(tmp_path, {"sub/w/p.yaml": "x: 1\nopt:\n  name: adam\n", "shared.txt": "above the wdir\n", "sub/dvc.yaml": (
        "stages:\n  s:\n    wdir: w\n    cmd: cp p.yaml o.txt\n    deps: [p.yaml, ../../shared.txt]\n"
        "    params: [{p.yaml: [x, opt]}]\n    outs: [o.txt]\n")})
    _dvc(dvc_bin, ["repro", "-q", "sub/dvc.yaml"], tmp_path)
    _commit(tmp_path, "a pipeline in sub/")
    run(["import-dvc"], tmp_path)
    lock = (tmp_path / "sub/mlver.lock").read_text()
    assert "    - path: ../shared.txt\n" in lock  # relative to sub/, through the stage's wdir
    assert "    - path: w/o.txt\n" in lock and "      w/p.yaml:\n        opt.name: adam\n        x: 1\n" in lock
    assert (tmp_path / "sub/mlver.yaml").exists() and not (tmp_path / "sub/dvc.yaml").exists()
    assert run_json(["status"], tmp_path)["clean"] is True
    assert run_json(["repro", "-P"], tmp_path)["ran"] == []
    head = [r for r in run_json(["exp", "show", "-n", "1"], tmp_path)["rows"] if r["rev"] != "workspace"]
    assert head[0]["params"] == {"sub/w/p.yaml": {"opt.name": "adam", "x": 1}}  # read from sub/dvc.yaml at HEAD


def test_malformed_dvc_files_are_named(project: Path) -> None:
    config = (project / ".dvc/config").read_text()
    originals = {rel: (project / rel).read_text() for rel in ("data/raw.csv.dvc", "dvc.lock")}
    gen(project, {".dvc/config": "[core\nremote = store\n"})
    proc = run(["import-dvc", "--dry-run"], project, check=False)
    assert proc.returncode == 3 and proc.stderr.startswith("mlver: error: .dvc/config: not a DVC config file")
    gen(project, {".dvc/config": config,
                  "data/raw.csv.dvc": "outs:\n- md5: nothex\n  size: 3\n  hash: md5\n  path: raw.csv\n"})
    before = _snapshot(project.parent)
    proc = run(["import-dvc"], project, check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("mlver: error: data/raw.csv.dvc:2: 'raw.csv': md5 must be 32 lower-case hex digits")
    assert _snapshot(project.parent) == before
    md5 = "0123456789abcdef0123456789abcdef"
    for rel, text, shown in (
            ("data/raw.csv.dvc", f"outs:\n- md5: {md5}\n  hash: md5\n  path: ../../outside.csv\n",
             "data/raw.csv.dvc: '../../outside.csv' leaves the repository"),
            ("dvc.lock", f"schema: '2.0'\nstages:\n  train:\n    cmd: x\n    deps:\n    - path: ../secret\n"
                         f"      hash: md5\n      md5: {md5}\n      size: 1\n",
             "dvc.lock: stage 'train': '../secret' leaves the repository")):
        gen(project, {**originals, rel: text})
        proc = run(["import-dvc"], project, check=False)
        assert proc.returncode == 3 and proc.stderr.startswith(f"mlver: error: {shown}"), proc.stderr


def test_credentials_go_to_the_local_config(tmp_path: Path, dvc_bin: str) -> None:
    git(["init", "-q"], tmp_path)
    _dvc(dvc_bin, ["init", "-q"], tmp_path)
    _dvc(dvc_bin, ["remote", "add", "-d", "s3r", "s3://bucket/store"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "s3r", "endpointurl", "http://127.0.0.1:9000"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "s3r", "region", "eu-west-1"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "--local", "s3r", "access_key_id", "AKIDEXAMPLE"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "--local", "s3r", "secret_access_key", "s3cret"], tmp_path)
    _dvc(dvc_bin, ["remote", "add", "web", "https://example.com/store"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "--local", "web", "password", "pw"], tmp_path)
    _dvc(dvc_bin, ["remote", "modify", "web", "ask_password", "true"], tmp_path)
    _dvc(dvc_bin, ["remote", "default", "--local", "web"], tmp_path)  # this machine's choice, not the team's
    _commit(tmp_path, "dvc remotes")
    doc = run_json(["import-dvc"], tmp_path)
    committed = (tmp_path / ".mlver/config").read_text()
    local = (tmp_path / ".mlver/config.local").read_text()
    assert "s3cret" not in committed and "AKIDEXAMPLE" not in committed and "pw" not in committed.split()
    assert "endpoint_url = http://127.0.0.1:9000" in committed and "region = eu-west-1" in committed
    assert "secret_access_key = s3cret" in local and "access_key_id = AKIDEXAMPLE" in local
    assert "password = pw" in local
    assert ".mlver/config.local" not in git(["diff", "--cached", "--name-only"], tmp_path)
    assert any(u["what"] == "option 'ask_password' of remote 'web'" for u in doc["unconverted"])
    assert "remote = s3r" in committed and "remote = web" in local
    listed = {r["name"]: r for r in run_json(["remote", "list"], tmp_path)["remotes"]}
    assert listed["web"]["default"] is True and listed["web"]["url"] == "https://example.com/store"


def test_digests_dvc_verified_are_not_read_again(project: Path, tmp_path: Path, dvc_bin: str) -> None:
    """The import fills mlver's state memo from DVC's state database for files whose
    (inode, mtime, size) still match it; a file changed since is hashed, and found changed."""
    _md5_digests()
    site = tmp_path / "dvc-site"
    _dvc(dvc_bin, ["config", "--local", "core.site_cache_dir", str(site)], project)
    _dvc(dvc_bin, ["status"], project)  # DVC hashes this copy's files into its state database
    (project / "data/images/b.txt").chmod(0o644)
    (project / "data/images/b.txt").write_text("image B\n")  # same size, other bytes, after DVC hashed it
    doc = run_json(["import-dvc"], project)
    assert doc["known_from_dvc_state"] >= 3  # raw.csv, images/a.txt, ext.csv at least
    status = run_json(["status"], project)
    changed = {o["path"]: [f["path"] for f in o["files"]] for o in status["outputs"]}
    assert changed == {"data/images": ["data/images/b.txt"]}, status


# --- traps (doctor, and at import) ------------------------------------------------------

def test_doctor_and_import_warn_of_a_metrics_file_hidden_from_git(project: Path, tmp_path: Path) -> None:
    gen(project, {".gitignore": (project / ".gitignore").read_text() + "/eval\n/mlver.yaml\n"})
    git(["rm", "-q", "--cached", "-r", "eval"], project)  # the metrics file never reached Git: the line hides it
    _commit(project, "a stale /eval line")
    proc = run(["import-dvc"], project)
    assert "mlver: warning: the metrics file eval/metrics.json is hidden from Git by .gitignore:" in proc.stderr
    assert ":/eval (a .gitignore line)" in proc.stderr
    assert "mlver: warning: the pipeline file mlver.yaml is hidden from Git by .gitignore:" in proc.stderr
    assert "mlver.lock" in git(["diff", "--cached", "--name-only"], project)  # the rest is staged
    doctor = run(["doctor"], project)
    assert "eval/metrics.json is hidden from Git by .gitignore" in doctor.stderr
    assert any("eval/metrics.json" in w for w in run_json(["doctor"], project)["warnings"])
    # dvclive importable in mlver's environment: said, with the way out
    fake = tmp_path / "site"
    gen(fake, {"dvclive/__init__.py": ""})
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}
    warnings = run_json(["doctor"], project, env=env)["warnings"]
    assert any("dvclive" in w and "save_dvc_exp=False" in w and "mlver.live.Live" in w for w in warnings)


# --- history: commits from before the import --------------------------------------------

def test_history_reads_dvc_commits_as_dvc_shows_them(project: Path, dvc_bin: str) -> None:
    dvc_rows = json.loads(_dvc(dvc_bin, ["exp", "show", "--json", "-n", "3"], project).stdout)
    dvc_by_rev = {r["rev"]: r["data"] for r in dvc_rows if r["rev"] != "workspace"}
    run(["import-dvc"], project)
    rows = run_json(["exp", "show", "-n", "3"], project)["rows"]
    commits = [r for r in rows if r["rev"] != "workspace"]
    assert len(commits) == 3
    import mlver.hashing

    folder_metrics_readable = hasattr(mlver.hashing, "qualify")
    for row in commits:
        dvc = next(v for k, v in dvc_by_rev.items() if k.startswith(row["rev"]))
        dvc_params = {f: _flat(v["data"]) for f, v in dvc["params"].items()}
        assert row["params"]["params.yaml"]["train.lr"] == dvc_params["params.yaml"]["train.lr"]
        for f, values in row["params"].items():
            for k, v in values.items():
                assert dvc_params[f][k] == v, (row["rev"], f, k)
        dvc_metrics = {f: _flat(v["data"]) for f, v in dvc["metrics"].items()}
        if not folder_metrics_readable:  # res/m.json lives inside the cached folder `res` (an md5 .dir listing)
            dvc_metrics.pop("res/m.json")
            row["metrics"].pop("res/m.json", None)
        assert row["metrics"] == dvc_metrics, row["rev"]
    lrs = [r["params"]["params.yaml"]["train.lr"] for r in commits]
    assert lrs == [0.2, 0.2, 0.1]
    # the digests of each commit's stage dependencies, as DVC shows them (md5, from dvc.lock)
    with_deps = {r["rev"]: r for r in run_json(["exp", "show", "-n", "3", "--deps"], project)["rows"]}
    for row in commits:
        dvc = next(v for k, v in dvc_by_rev.items() if k.startswith(row["rev"]))
        ours = with_deps[row["rev"]]["deps"]
        assert {p: d["hash"] for p, d in ours.items()} == {p: "md5" for p in dvc["deps"]}
        assert {p: d["digest"] for p, d in ours.items()} == {p: v["hash"].removesuffix(".dir")
                                                            for p, v in dvc["deps"].items()}
    shown = run_json(["metrics", "show", "-n", "3"], project)["revisions"]
    assert [r["metrics"]["eval/metrics.json"]["lr"] for r in shown[-3:]] == [0.2, 0.2, 0.1]
    diff = run_json(["params", "diff", "HEAD~2", "HEAD~1"], project)["changes"]
    assert diff["params.yaml"]["train.lr"] == {"old": 0.1, "new": 0.2, "diff": 0.1}
    plots = run_json(["plots", "diff", "HEAD~2", "HEAD~1"], project)["plots"]
    loss = next(p for p in plots if "eval/loss.csv" in p["name"])
    assert [[float(pt["loss"]) for pt in r["points"]] for r in loss["revisions"]] == [[1.0, 0.9], [1.0, 0.8]]


def test_data_commands_read_dvc_files_in_old_commits(project: Path) -> None:
    """Pointers of commits from before the import are DVC's ``*.dvc`` and ``dvc.lock``:
    get, diff and gc's scope read them."""
    _md5_digests()
    run(["import-dvc"], project)
    git(["commit", "-q", "-m", "mlver import-dvc"], project)
    run(["get", "--rev", "HEAD~3", "model.pkl", "-o", "old-model.pkl"], project)
    assert (project / "old-model.pkl").read_text() == "model 0.1"
    changed = run_json(["diff", "HEAD~3", "HEAD~2"], project)
    assert "model.pkl" in {m["path"] for m in changed["modified"]}
    assert run_json(["gc", "--all-commits", "--dry-run"], project)["objects"] == 0  # v1's objects are referenced


# --- end to end: the imported project works (needs md5 digests) ----------------------------

def test_imported_project_is_clean_and_pulls_from_the_dvc_remote(project: Path, tmp_path: Path) -> None:
    _md5_digests()
    remote = project.parent / "remote"
    before = _objects(remote)
    workspace = {p: (project / p).read_bytes() for p in ("data/raw.csv", "data/images/a.txt", "data/ext.csv",
                                                         "model.pkl", "res/m.json", "eval/metrics.json")}
    run(["import-dvc"], project)
    status = run_json(["status"], project)
    assert status["clean"] is True, [s for s in status["stages"] if s["changed"]] + status["outputs"]
    repro = run_json(["repro"], project)
    assert repro["ran"] == [] and repro["restored"] == [], repro
    assert {p: (project / p).read_bytes() for p in workspace} == workspace
    assert _objects(remote) == before  # the import uploads nothing
    git(["commit", "-q", "-m", "mlver import-dvc"], project)
    os.rename(remote, project.parent / "unmounted")  # DVC's remote is the team's: never started afresh
    proc = run(["push"], project, check=False)
    assert proc.returncode == 3 and "does not exist, yet it holds the DVC project's data" in proc.stderr, proc.stderr
    assert not remote.exists()
    os.rename(project.parent / "unmounted", remote)
    push = run(["push"], project)
    added = sorted(set(_objects(remote)) - set(before))
    ext_md5 = (project / "data/ext.csv.mlver").read_text().split("digest: ")[1].split()[0]
    # DVC never pushed the `dvc import`ed file (its bytes live on the other project's remote):
    # the first push sends it, and nothing else
    assert added == [f"files/md5/{ext_md5[:2]}/{ext_md5[2:]}"], (added, push.stderr)
    assert "1 object(s) pushed" in push.stderr
    verify = run_json(["repro", "--verify"], project)
    assert verify["reproduced"] is True, verify
    assert {o["path"] for o in verify["outputs"]} >= {"model.pkl", "res", "eval/metrics.json"}
    clone = project.parent / "clone"  # beside the project: the remote's URL is relative (../remote)
    git(["clone", "-q", str(project), str(clone)], tmp_path)
    run(["pull"], clone)
    assert {p: (clone / p).read_bytes() for p in workspace} == workspace
    assert run_json(["status"], clone)["clean"] is True



def test_a_dvc2_project_imports_with_its_md5_dos2unix_digests(tmp_path: Path, dvc2_bin: str) -> None:
    """DVC 2 hashed text files with CRLF read as LF and kept objects at the top of its
    cache and remote (``ab/cdef…``). Imported, the digests stay (``hash: md5-dos2unix``),
    nothing is uploaded, and a fresh clone pulls every byte from the DVC 2 remote."""
    proj, remote = tmp_path / "proj", tmp_path / "remote"
    proj.mkdir()
    remote.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc2_bin, ["init", "-q"], proj)
    _dvc(dvc2_bin, ["remote", "add", "-d", "store", str(remote)], proj)
    crlf = b"id,v\r\n" + b"".join(b"%d,%d\r\n" % (i, i * i) for i in range(200_000))  # text over several MiB
    gen(proj, {"data/crlf.csv": crlf, "data/bin.dat": os.urandom(3000) + b"\r\n\0",
               "images/a.txt": "a\r\nb\r\n", "images/sub/b.txt": "plain\n"})
    _dvc(dvc2_bin, ["add", "-q", "data/crlf.csv", "data/bin.dat", "images"], proj)
    _dvc(dvc2_bin, ["push", "-q"], proj)
    _commit(proj, "dvc 2 data")
    assert "hash:" not in (proj / "data/crlf.csv.dvc").read_text()  # DVC 2's format
    before = sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    assert before and all(len(p.split("/")[0]) == 2 for p in before)  # DVC 2's layout: ab/cdef at the top
    doc = run_json(["import-dvc"], proj)
    assert doc["unconverted"] == [] or all("dos2unix" not in u["what"] for u in doc["unconverted"])
    ptr = (proj / "data/crlf.csv.mlver").read_text()
    assert "hash: md5-dos2unix" in ptr
    assert __import__("hashlib").md5(crlf.replace(b"\r\n", b"\n")).hexdigest() in ptr  # DVC 2's digest, kept
    assert run_json(["status"], proj)["clean"] is True
    assert run_json(["fsck"], proj)["corrupt"] == []
    git(["commit", "-q", "-m", "mlver import-dvc"], proj)
    run(["push"], proj)
    assert sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()) == before  # no upload
    clone = tmp_path / "clone"
    git(["clone", "-q", str(proj), str(clone)], tmp_path)
    run(["pull"], clone)
    for rel in ("data/crlf.csv", "data/bin.dat", "images/a.txt", "images/sub/b.txt"):
        assert (clone / rel).read_bytes() == (proj / rel).read_bytes(), rel
    assert run_json(["status"], clone)["clean"] is True
    # a flipped byte in a DVC 2 object on the remote is found
    h = ptr.split("digest: ")[1].split()[0]
    obj = remote / h[:2] / h[2:]
    data = bytearray(obj.read_bytes())
    data[10] ^= 1
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))
    bad = run(["fsck", "--cloud", "--json"], clone, check=False)
    assert bad.returncode == 1 and h in [c["digest"] for c in json.loads(bad.stdout)["corrupt"]]


def test_finishing_the_switch_keeps_what_mlver_recorded_after_keep_dvc(project: Path, dvc_bin: str,
                                                                       tmp_path: Path) -> None:
    """`--keep-dvc`, then work with mlver (a folder re-added: its pointer moves on, its
    .dvc file does not), then `import-dvc` again: mlver's committed pointer is kept, not
    refused as a collision nor overwritten with DVC's older record."""
    _md5_digests()
    run(["import-dvc", "--keep-dvc"], project)
    git(["commit", "-q", "--no-verify", "-m", "mlver beside DVC"], project)
    (project / "data/images/c.txt").write_text("image c\n")
    run(["add", "data/images"], project)
    pointer = (project / "data/images.mlver").read_text()
    git(["add", "-A"], project)
    git(["commit", "-q", "--no-verify", "-m", "a new image, with mlver"], project)
    doc = run_json(["import-dvc"], project)
    assert "data/images.mlver" in doc["kept"]
    assert (project / "data/images.mlver").read_text() == pointer
    assert not (project / "data/images.dvc").exists()
    git(["commit", "-q", "--no-verify", "-m", "switch"], project)
    status = run_json(["status"], project)
    assert [o for o in status["outputs"] if o["path"] == "data/images"] == []  # the data is as recorded
    changed = {s["name"]: s["reasons"] for s in status["stages"] if s["changed"]}
    assert changed["train"] == ["dep changed: data/images"]  # the new image: the pipeline is due, as it should be
    assert (project / "data/images/c.txt").read_text() == "image c\n"


def test_metrics_and_plots_dvc_cached_by_default_are_staged_in_git(tmp_path: Path, dvc_bin: str) -> None:
    """DVC caches a stage's `metrics:`/`plots:` entry without a `cache` flag; the same text
    in mlver.yaml keeps the file in Git, so import-dvc stages it: the import commit holds
    it and a teammate's clone is complete."""
    proj = tmp_path / "p"
    proj.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc_bin, ["init", "-q"], proj)
    gen(proj, {"s.sh": "echo '{\"acc\": 0.5}' > m.json; printf 'step,loss\\n0,1\\n' > p.csv; echo model > model.bin\n",
               "dvc.yaml": "stages:\n  s:\n    cmd: sh s.sh\n    deps: [s.sh]\n    outs: [model.bin]\n"
                           "    metrics: [m.json]\n    plots: [p.csv]\n"})
    _dvc(dvc_bin, ["repro", "-q"], proj)
    assert "/m.json" in (proj / ".gitignore").read_text()  # DVC cached it
    _commit(proj, "dvc")
    run(["import-dvc"], proj)
    staged = git(["diff", "--cached", "--name-only"], proj).split()
    assert "m.json" in staged and "p.csv" in staged and "model.bin" not in staged
    git(["commit", "-q", "-m", "imported"], proj)
    assert run_json(["status"], proj)["clean"]
    [row] = [r for r in run_json(["exp", "show", "-n", "1"], proj)["rows"] if r["rev"] != "workspace"]
    assert row["metrics"]["m.json"]["acc"] == 0.5


def test_a_gitignore_the_import_empties_goes_in_the_import_commit(tmp_path: Path, dvc_bin: str) -> None:
    """DVC's `/rep.json` line is the root .gitignore's only line: the import takes it out,
    so the file goes; its deletion is staged with the rest (the import commit does not keep
    hiding the metrics file), and no warning names a line the import removed itself."""
    proj = tmp_path / "p"
    proj.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc_bin, ["init", "-q"], proj)
    gen(proj, {"s.sh": "echo '{\"r\": 2}' > rep.json\n",
               "dvc.yaml": "stages:\n  rep:\n    cmd: sh s.sh\n    deps: [s.sh]\n    metrics: [rep.json]\n"})
    _dvc(dvc_bin, ["repro", "-q"], proj)
    assert (proj / ".gitignore").read_text().strip() == "/rep.json"
    _commit(proj, "dvc")
    proc = run(["import-dvc"], proj)
    assert "hidden from Git" not in proc.stderr, proc.stderr
    assert not (proj / ".gitignore").exists()
    assert git(["status", "--porcelain", "--", ".gitignore"], proj).strip().startswith("D ")  # staged, not " D"
    git(["commit", "-q", "-m", "imported"], proj)
    assert ".gitignore" not in git(["ls-tree", "--name-only", "HEAD"], proj).split()
    assert git(["status", "--porcelain"], proj).strip() == ""


def test_fetch_of_a_dvc_commit_skips_the_files_dvc_kept_in_git(tmp_path: Path, dvc_bin: str) -> None:
    """dvc.lock does not say which outputs are `cache: false`; those are the files Git
    tracks in that commit. `mlver fetch --rev` of a commit from before the import brings
    the cached outputs and does not look for the others on the remote (as `dvc fetch`)."""
    proj = tmp_path / "p"
    proj.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc_bin, ["init", "-q"], proj)
    _dvc(dvc_bin, ["remote", "add", "-d", "store", str(tmp_path / "store")], proj)
    gen(proj, {"s.sh": "echo model > model.bin; echo '{\"acc\": 0.5}' > m.json\n",
               "dvc.yaml": "stages:\n  s:\n    cmd: sh s.sh\n    deps: [s.sh]\n    outs: [model.bin]\n"
                           "    metrics:\n    - m.json:\n        cache: false\n"})
    _dvc(dvc_bin, ["repro", "-q"], proj)
    _dvc(dvc_bin, ["push", "-q"], proj)
    gen(proj, {"params.yaml": "lr: 0.1\n"})
    old = _commit(proj, "dvc")
    shutil.rmtree(proj / ".dvc" / "cache")  # pushed, then gone from DVC's cache: the import says so
    gen(proj, {"params.yaml": "lr: 0.2\n"})  # an uncommitted edit (a `dvc exp run` left behind): said too
    proc = run(["import-dvc"], proj)
    assert "DVC's cache lacks data of 1 output(s) (model.bin)" in proc.stderr, proc.stderr
    assert "uncommitted changes to params.yaml" in proc.stderr
    git(["commit", "-q", "-m", "imported"], proj)
    shutil.rmtree(proj / ".mlver" / "cache" / "files", ignore_errors=True)  # nothing local: fetch must get model.bin
    res = run_json(["fetch", "--rev", old], proj)
    assert res["transferred"] == 1 and res["missing"] == [], res


def test_checkout_rev_of_a_dvc_commit_reads_its_dvc_lock(tmp_path: Path, dvc_bin: str) -> None:
    """`checkout --rev OLD model.bin` where OLD is from before the import: the stage's
    record comes from OLD's dvc.lock (a Git-kept metrics file from OLD's tree)."""
    proj = tmp_path / "p"
    proj.mkdir()
    git(["init", "-q"], proj)
    _dvc(dvc_bin, ["init", "-q"], proj)
    for v in ("1", "2"):
        gen(proj, {"s.sh": f"echo model {v} > model.bin; echo '{{\"v\": {v}}}' > m.json\n",
                   "dvc.yaml": "stages:\n  s:\n    cmd: sh s.sh\n    deps: [s.sh]\n    outs: [model.bin]\n"
                               "    metrics:\n    - m.json:\n        cache: false\n"})
        _dvc(dvc_bin, ["repro", "-q"], proj)
        _commit(proj, f"v{v}")
    run(["import-dvc"], proj)
    git(["commit", "-q", "-m", "imported"], proj)
    run(["checkout", "--rev", "HEAD~2", "model.bin"], proj)
    assert (proj / "model.bin").read_text() == "model 1\n" and json.loads((proj / "m.json").read_text()) == {"v": 1}
    changed = {s["name"] for s in run_json(["status"], proj)["stages"] if s["changed"]}
    assert changed == {"s"}  # its deps are today's: repro makes it current
    run(["repro"], proj)
    assert (proj / "model.bin").read_text() == "model 2\n"


NO_DEPS = """\
stages:
  once:
    cmd: echo once >> log && echo 1 > o.txt
    outs: [o.txt]
  every:
    cmd: echo every >> log
  reads_param:
    cmd: echo reads_param ${x} >> log
  reads_param_out:
    cmd: echo reads_param_out ${x} >> log && echo 1 > j.txt
    outs: [j.txt]
  lists_param:
    cmd: echo lists_param >> log
    params: [x]
"""


def test_stages_without_dependencies_are_noted_where_dvc_and_mlver_differ(tmp_path: Path, dvc_bin: str) -> None:
    """The real DVC decides what a second `repro` runs; import-dvc notes exactly the stages
    mlver would treat otherwise, and mlver with the advice applied runs what DVC runs."""
    project = tmp_path / "p"
    project.mkdir()
    git(["init", "-q"], project)
    _dvc(dvc_bin, ["init", "-q"], project)
    gen(project, {"dvc.yaml": NO_DEPS, "params.yaml": "x: 1\n", ".gitignore": "log\n"})
    _dvc(dvc_bin, ["repro", "-q"], project)
    (project / "log").unlink()
    _dvc(dvc_bin, ["repro", "-q"], project)
    dvc_again = sorted(w.split()[0] for w in (project / "log").read_text().splitlines())
    assert dvc_again == ["every", "reads_param"]
    (project / "log").unlink()
    _commit(project, "dvc project")
    doc = run_json(["import-dvc"], project)
    notes = {u["what"]: u["todo"] for u in doc["unconverted"] if "dependencies" in u["what"]}
    assert set(notes) == {"stage 'once' has no dependencies",
                          "stage 'reads_param' has no dependencies and no outputs"}, notes
    assert "always_changed: true" in notes["stage 'reads_param' has no dependencies and no outputs"]
    text = (project / "mlver.yaml").read_text()
    gen(project, {"mlver.yaml": text.replace("    cmd: echo reads_param ${x} >> log\n",
                                             "    cmd: echo reads_param ${x} >> log\n    always_changed: true\n")
                  .replace("    outs: [o.txt]\n", "    outs: [o.txt]\n    frozen: true\n")})
    run(["repro"], project)
    assert sorted(w.split()[0] for w in (project / "log").read_text().splitlines()) == dvc_again
