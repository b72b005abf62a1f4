"""The same templated pipeline file run by the real DVC 3 CLI (its own virtualenv) and
by mlver: the same generated stage names, the same outputs and the same metrics."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import gen, git, run, run_json

PIPELINE = """\
vars:
  - config.yaml
  - scale: 10
stages:
  prepare:
    cmd: echo ${prep.base} > base.txt
    deps: [config.yaml]
    outs:
    - base.txt
  train:
    foreach: ${models}
    do:
      cmd: echo $(( $(cat base.txt) * ${item.depth} * ${scale} )) > score-${key}.txt
      deps: [base.txt]
      outs:
      - score-${key}.txt
  sweep:
    matrix:
      seed: ${seeds}
      opt: [adam, sgd]
    cmd: echo ${item.seed}-${item.opt} > sweep-${item.seed}-${item.opt}.txt
    deps: [config.yaml]
    outs:
    - sweep-${item.seed}-${item.opt}.txt
  listed:
    foreach: [alpha, beta]
    do:
      cmd: echo ${item} > listed-${item}.txt
      outs:
      - listed-${item}.txt
  evaluate:
    cmd: >-
      echo "{\\"small\\": $(cat score-small.txt), \\"big\\": $(cat score-big.txt)}" > metrics.json
    deps: [score-small.txt, score-big.txt]
    metrics:
    - metrics.json:
        cache: false
"""

PARAMS = "models:\n  small:\n    depth: 2\n  big:\n    depth: 5\nseeds: [1, 2]\n"
CONFIG = "prep:\n  base: 3\n"


def _dvc(dvc: str, args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE": "1"}
    proc = subprocess.run([dvc, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"dvc {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def test_dvc_and_mlver_generate_the_same_stages_and_metrics(tmp_path: Path, dvc_bin: str) -> None:
    files = {"params.yaml": PARAMS, "config.yaml": CONFIG}
    d = tmp_path / "dvc"
    d.mkdir()
    git(["init", "-q"], d)
    _dvc(dvc_bin, ["init", "-q"], d)
    gen(d, {**files, "dvc.yaml": PIPELINE})
    _dvc(dvc_bin, ["repro", "-q"], d)
    dvc_names = sorted(_dvc(dvc_bin, ["stage", "list", "--name-only"], d).split())
    dvc_metrics = json.loads(_dvc(dvc_bin, ["metrics", "show", "--json"], d))

    m = tmp_path / "mlver"
    m.mkdir()
    git(["init", "-q"], m)
    run(["init"], m)
    gen(m, {**files, "mlver.yaml": PIPELINE})
    run(["repro"], m)
    mlver_names = sorted(s["name"] for s in run_json(["stage", "list"], m)["stages"])
    mlver_metrics = run_json(["metrics", "show"], m)["revisions"][0]["metrics"]

    assert mlver_names == dvc_names
    assert "train@big" in mlver_names and "sweep@2-sgd" in mlver_names and "listed@alpha" in mlver_names
    # DVC: {"": {"data": {"metrics.json": {"data": {...}}}}}
    dvc_values = next(iter(dvc_metrics.values()))["data"]["metrics.json"]["data"]
    assert mlver_metrics["metrics.json"] == dvc_values == {"small": 60, "big": 150}
    for out in ["base.txt", "score-big.txt", "sweep-1-sgd.txt", "listed-beta.txt"]:
        assert (m / out).read_bytes() == (d / out).read_bytes(), out
