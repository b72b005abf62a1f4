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


SCALARS = "mode: yes\n'on': 3\noct: 010\nt: 12:30\nlr: 1e-3\nflag: on\n"
SCALAR_STAGES = """\
stages:
  s:
    cmd: echo ${mode} ${oct} ${t} ${lr} ${flag} > o.txt
    outs: [o.txt]
  k:
    cmd: echo hi > k.txt
    params: [oct, lr]
    outs: [k.txt]
  p:
    foreach: [a/b, "c d", "e:f"]
    do:
      cmd: echo "${item}" >> seen.txt
"""
SUB_STAGES = """\
stages:
  s:
    cmd: echo ${lr} $(cat ../o.txt) > sub.txt
    deps: [../o.txt]
    outs: [sub.txt]
"""


def test_yaml_scalars_and_subfolder_pipelines_mean_what_they_mean_to_dvc(tmp_path: Path, dvc_bin: str) -> None:
    """YAML 1.2 types (yes/on are strings, 010 is ten, 12:30 a string, 1e-3 a float),
    as DVC's parser reads them, and a pipeline file in a subfolder with its own params."""
    files = {"params.yaml": SCALARS, "sub/params.yaml": "lr: 0.5\n"}
    d = tmp_path / "dvc"
    d.mkdir()
    git(["init", "-q"], d)
    _dvc(dvc_bin, ["init", "-q"], d)
    gen(d, {**files, "dvc.yaml": SCALAR_STAGES, "sub/dvc.yaml": SUB_STAGES})
    _dvc(dvc_bin, ["repro", "-q", "-P"], d)  # DVC's repro needs -P for every file; mlver's runs them all
    dvc_names = sorted(_dvc(dvc_bin, ["stage", "list", "--all", "--name-only"], d).splitlines())

    m = tmp_path / "mlver"
    m.mkdir()
    git(["init", "-q"], m)
    run(["init"], m)
    gen(m, {**files, "mlver.yaml": SCALAR_STAGES, "sub/mlver.yaml": SUB_STAGES})
    run(["repro"], m)
    mlver_names = sorted(s["name"] for s in run_json(["stage", "list"], m)["stages"])

    assert mlver_names == [n.replace("dvc.yaml", "mlver.yaml") for n in dvc_names]
    assert "sub/mlver.yaml:s" in mlver_names and "p@a/b" in mlver_names and "p@e:f" in mlver_names
    run(["repro", "-f", "-s", "p@c d"], m)  # generated names with '/', ' ' or ':' are addressable
    for out in ["o.txt", "sub/sub.txt"]:
        assert (m / out).read_bytes() == (d / out).read_bytes(), out
    assert (m / "o.txt").read_text() == "yes 10 12:30 0.001 on\n"
    lock = (m / "mlver.lock").read_text()
    assert "oct: 10" in lock and "lr: 0.001" in lock


ORDER = """\
stages:
  a:
    cmd: echo a >> order.log && echo a > a.txt
    outs: [a.txt]
  b:
    cmd: echo b >> order.log && cat a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: echo c >> order.log && echo c > c.txt
    outs: [c.txt]
  d:
    cmd: echo d >> order.log && cat b.txt > d.txt
    deps: [b.txt]
    outs: [d.txt]
"""

ORDER_CHAIN_LATER = """\
stages:
  d:
    cmd: echo d >> order.log && cat b.txt > d.txt
    deps: [b.txt]
    outs: [d.txt]
  a:
    cmd: echo a >> order.log && cat s.sh > a.txt
    deps: [s.sh]
    outs: [a.txt]
  c:
    cmd: echo c >> order.log && cat s.sh > c.txt
    deps: [s.sh]
    outs: [c.txt]
  b:
    cmd: echo b >> order.log && cat a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
  e:
    cmd: echo e >> order.log && cat s.sh > e.txt
    deps: [s.sh]
    outs: [e.txt]
"""

FROZEN = """\
stages:
  a:
    cmd: echo a >> order.log && cat k > a.txt
    deps: [k]
    outs: [a.txt]
  b:
    cmd: echo b >> order.log && cat a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: echo c >> order.log && cat b.txt b.txt > c.txt
    deps: [b.txt]
    outs: [c.txt]
"""


def _ran(root: Path) -> list[str]:
    log = root / "order.log"
    ran = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return ran


def test_stage_order_and_frozen_stages_as_dvc_runs_them(tmp_path: Path, dvc_bin: str) -> None:
    """Each tool runs a pipeline; then, with `b` frozen and `a`'s input changed, `repro c`,
    `repro -f c` and `repro`: the same stages run, in the same order (a frozen stage stops
    its upstream from being reproduced for a target downstream of it)."""
    ran: dict[str, list[list[str]]] = {}
    for tool in ("dvc", "mlver"):
        root = tmp_path / tool
        root.mkdir()
        git(["init", "-q"], root)
        pipeline = f"{tool}.yaml" if tool == "dvc" else "mlver.yaml"

        def repro(*args: str) -> list[str]:
            if tool == "dvc":
                _dvc(dvc_bin, ["repro", *args], root)
            else:
                run(["repro", *args], root)
            return _ran(root)

        if tool == "dvc":
            _dvc(dvc_bin, ["init", "-q"], root)
        else:
            run(["init"], root)
        gen(root, {pipeline: ORDER})
        steps = [repro()]
        gen(root, {pipeline: FROZEN, "k": "1"})
        steps.append(repro())
        gen(root, {pipeline: FROZEN.replace("    outs: [b.txt]\n", "    outs: [b.txt]\n    frozen: true\n"), "k": "2"})
        steps += [repro("c"), repro("-f", "c"), repro(), repro("-f", "--downstream", "a"),
                  repro("-f", "--downstream", "b")]
        gen(root, {pipeline: ORDER_CHAIN_LATER, "s.sh": "s"})  # a chain written after its consumer
        steps.append(repro("-f"))
        ran[tool] = steps
    assert ran["mlver"] == ran["dvc"]
    assert ran["mlver"][0] == ["a", "b", "c", "d"]
    assert ran["mlver"][2:-1] == [[], ["c"], ["a"], ["a"], ["c"]]
    assert ran["mlver"][-1] == ["a", "b", "d", "c", "e"]  # each stage's upstream chain first, in file order


ANNOTATED = """\
stages:
  train:
    cmd: echo m > model.pkl && echo 1 > a.txt && echo 2 > b.txt && printf 'x,y\\n0,1\\n' > p.csv
    outs:
    - model.pkl:
        type: model
        labels: [best]
        meta: {framework: none}
        desc: the model
    - a.txt: {cache: false}
      b.txt: {cache: false}
    plots:
    - p.csv:
        header: true
        x: x
"""


def test_fields_dvc_3_accepts_on_outputs_and_plots_are_read(tmp_path: Path, dvc_bin: str) -> None:
    """Model-registry annotations on an output, several paths in one `outs` entry and a
    plot's `header: true`: DVC runs the file, and so does mlver, with the same outputs."""
    outs = {}
    for tool in ("dvc", "mlver"):
        root = tmp_path / tool
        root.mkdir()
        git(["init", "-q"], root)
        if tool == "dvc":
            _dvc(dvc_bin, ["init", "-q"], root)
            gen(root, {"dvc.yaml": ANNOTATED})
            _dvc(dvc_bin, ["repro", "-q"], root)
            lock = __import__("yaml").safe_load((root / "dvc.lock").read_text())
            outs[tool] = sorted(o["path"] for o in lock["stages"]["train"]["outs"])
        else:
            run(["init"], root)
            gen(root, {"mlver.yaml": ANNOTATED})
            run(["repro"], root)
            outs[tool] = sorted(run_json(["stage", "list"], root)["stages"][0]["outs"])
        assert (root / "b.txt").read_text() == "2\n"
    assert outs["mlver"] == outs["dvc"] == ["a.txt", "b.txt", "model.pkl", "p.csv"]
