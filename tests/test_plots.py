"""Plots: definitions of mlver.yaml (DVC's syntax), every template and data format
(dvclive's wrapped JSON too), `plots show --json` points per chart, `plots diff` across
revisions (files in Git and inside cached folder outputs), images for CI (--svg-dir,
--png-dir), the trend report's old spelling, and the HTML report checked in a real
headless Chromium (one chart per definition, series and marks, axis titles, no network
request, no console error)."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8  # enough bytes to be recognised as a PNG by its name


def _roc(scale: float = 1.0) -> str:
    return json.dumps({"roc": [{"fpr": i / 20, "tpr": round(min(1.0, (i / 20) ** 0.5) * scale, 6),
                                "threshold": round(1 - i / 20, 3)} for i in range(21)]})


def _confusion(seed: int = 1, n: int = 60) -> str:
    rng = random.Random(seed)
    return json.dumps([{"actual": rng.choice("abc"), "predicted": rng.choice("abc")} for _ in range(n)])


PIPELINE = """\
stages:
  train:
    cmd: echo trained
    plots:
      - eval/loss.csv:
          x: epoch
          y: [loss, acc]
plots:
  - roc:
      template: simple
      x: fpr
      y:
        eval/plots/roc.json: tpr
      title: ROC
      x_label: false positive rate
      y_label: true positive rate
  - confusion:
      template: confusion
      x: actual
      y: {eval/plots/cm.json: predicted}
  - confusion_norm:
      template: confusion_normalized
      x: actual
      y: {eval/plots/cm.json: predicted}
  - eval/imp.tsv:
      template: bar_horizontal
      x: importance
      y: feature
  - importance_sorted:
      template: bar_horizontal_sorted
      x: importance
      y: {eval/imp.tsv: feature}
  - eval/points.yaml:
      template: scatter
      x: x
      y: y
  - smooth:
      template: smooth
      y: {eval/noisy.json: v}
  - eval/importance.png
"""


def _files(scale: float = 1.0) -> dict[str, str | bytes]:
    return {
        "mlver.yaml": PIPELINE,
        "eval/plots/roc.json": _roc(scale),
        "eval/plots/cm.json": _confusion(),
        "eval/loss.csv": "epoch,loss,acc\n" + "".join(f"{i},{1 / (i + 1):.4f},{1 - 1 / (i + 2):.4f}\n"
                                                        for i in range(10)),
        "eval/imp.tsv": "feature\timportance\nage\t0.3\nincome\t0.5\nzip\t0.1\n",
        "eval/points.yaml": "- {x: 1, y: 2}\n- {x: 2, y: 3.5}\n- {x: 3, y: 1}\n",
        "eval/noisy.json": json.dumps([{"v": (i % 5) * 0.1 + i * 0.01} for i in range(40)]),
        "eval/importance.png": PNG,
    }


def _by_name(doc: dict) -> dict[str, dict]:
    return {p["name"]: p for p in doc["plots"]}


def test_every_template_and_format_in_show_json(repo: Path) -> None:
    gen(repo, _files())
    doc = run_json(["plots", "show"], repo)
    assert doc["version"] == 1
    plots = _by_name(doc)
    assert list(plots) == ["roc", "confusion", "confusion_norm", "eval/imp.tsv", "importance_sorted",
                           "eval/points.yaml", "smooth", "eval/importance.png", "eval/loss.csv"]
    templates = {n: p["template"] for n, p in plots.items()}
    assert templates["roc"] == "simple" and templates["eval/loss.csv"] == "linear"
    assert templates["eval/importance.png"] == "image" and templates["smooth"] == "smooth"
    for p in plots.values():
        assert [r["rev"] for r in p["revisions"]] == ["workspace"]
    points = {n: p["revisions"][0]["points"] for n, p in plots.items()}
    # dvclive's {"roc": [...]} mapping: one point per record, its fields kept
    assert len(points["roc"]) == 21 and points["roc"][5]["fpr"] == 0.25 and "threshold" in points["roc"][5]
    assert {p["filename"] for p in points["roc"]} == {"eval/plots/roc.json"}
    assert len(points["confusion"]) == 60 and set(points["confusion"][0]) >= {"actual", "predicted"}
    # TSV with a text column; YAML records; CSV with two y fields: a point per record and field
    assert [(p["feature"], p["importance"]) for p in points["eval/imp.tsv"]] == [("age", 0.3), ("income", 0.5),
                                                                                 ("zip", 0.1)]
    assert [(p["x"], p["y"]) for p in points["eval/points.yaml"]] == [(1, 2), (2, 3.5), (3, 1)]
    assert len(points["eval/loss.csv"]) == 20
    assert {p["field"] for p in points["eval/loss.csv"]} == {"loss", "acc"}
    # no x given: the record's index is the step
    assert [p["step"] for p in points["smooth"]][:3] == [0, 1, 2]
    img = plots["eval/importance.png"]["revisions"][0]
    assert img["points"] == [] and img["image"] == {"path": "eval/importance.png", "size": len(PNG),
                                                    "type": "image/png"}
    assert not (repo / "plots.html").exists()  # --json alone writes no page


def test_show_writes_one_self_contained_page(repo: Path) -> None:
    gen(repo, _files())
    proc = run(["plots", "show", "-o", "out/p.html"], repo)
    assert "9 plot(s)" in proc.stderr
    page = (repo / "out" / "p.html").read_text()
    assert page.count('<figure class="chart"') == 9
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "false positive rate" in page and "true positive rate" in page  # axis titles
    assert "data:image/png;base64," in page  # the image, inline
    run(["plots", "show", "roc", "--svg", "svg-alias"], repo)  # SPEC's other spelling of --svg-dir
    assert (repo / "svg-alias" / "roc.svg").read_text().startswith("<svg")
    only = run_json(["plots", "show", "roc", "eval/imp.tsv"], repo)
    assert [p["name"] for p in only["plots"]] == ["roc", "eval/imp.tsv", "importance_sorted"]  # a file names its plots


def _commit(root: Path, message: str) -> str:
    git(["add", "-A"], root)
    git(["commit", "-q", "-m", message], root)
    return git(["rev-parse", "HEAD"], root).strip()


def test_diff_of_three_revisions_holds_three_series(repo: Path) -> None:
    gen(repo, _files(1.0))
    first = _commit(repo, "first model")
    git(["tag", "v1"], repo)
    gen(repo, {"eval/plots/roc.json": _roc(0.9)})
    _commit(repo, "second model")
    gen(repo, {"eval/plots/roc.json": _roc(0.8)})
    third = _commit(repo, "third model")
    doc = run_json(["plots", "diff", "v1", "HEAD~1", third], repo)
    roc = _by_name(doc)["roc"]
    assert [r["rev"] for r in roc["revisions"]] == ["v1", "HEAD~1", third]
    tprs = [r["points"][-1]["tpr"] for r in roc["revisions"]]
    assert tprs == [1.0, 0.9, 0.8]
    # the HTML names the revisions by tag/branch, else short hash and subject
    run(["plots", "diff", "v1", "HEAD~1", third, "-o", "d.html"], repo)
    page = (repo / "d.html").read_text()
    assert "v1" in page and "second model" in page and "main" in page
    # default: HEAD and the workspace
    gen(repo, {"eval/plots/roc.json": _roc(0.5)})
    doc = run_json(["plots", "diff", "--targets", "roc"], repo)  # DVC's spelling of -t
    [roc] = doc["plots"]
    assert [r["rev"] for r in roc["revisions"]] == ["HEAD", "workspace"]
    assert [r["points"][-1]["tpr"] for r in roc["revisions"]] == [0.8, 0.5]
    # one revision: it and the workspace
    doc = run_json(["plots", "diff", first, "-t", "roc"], repo)
    assert [r["rev"] for r in doc["plots"][0]["revisions"]] == [first, "workspace"]


def test_diff_reads_plots_inside_a_cached_folder_output(repo: Path) -> None:
    """A stage whose whole `eval` folder is a cached output: its plots files are not in
    Git, so other revisions read them through the folder's manifest in the cache."""
    gen(repo, {"mlver.yaml": "stages:\n  eval:\n    cmd: python3 make.py\n    deps: [make.py]\n"
                             "    outs: [eval]\n    plots:\n      - eval/roc.json:\n          x: fpr\n"
                             "          y: tpr\n",
               "make.py": "import json, os\nos.makedirs('eval', exist_ok=True)\nS = 1.0\n"
                          "json.dump({'roc': [{'fpr': i / 4, 'tpr': S * i / 4} for i in range(5)]},"
                          " open('eval/roc.json', 'w'))\n"})
    run(["repro"], repo)
    _commit(repo, "eval v1")
    gen(repo, {"make.py": (repo / "make.py").read_text().replace("S = 1.0", "S = 0.5")})
    run(["repro"], repo)
    _commit(repo, "eval v2")
    assert "eval/roc.json" not in git(["ls-files"], repo)
    doc = run_json(["plots", "diff", "HEAD~1", "HEAD"], repo)
    [roc] = doc["plots"]
    assert roc["name"] == "eval/roc.json"
    assert [r["points"][-1]["tpr"] for r in roc["revisions"]] == [1.0, 0.5]


def test_a_folder_entry_draws_every_plot_file_in_it(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "plots:\n  - dvclive/plots\n",
               "dvclive/plots/metrics/train/loss.tsv": "step\tloss\n0\t0.9\n1\t0.5\n2\t0.3\n",
               "dvclive/plots/metrics/acc.tsv": "step\tacc\n0\t0.5\n1\t0.7\n",
               "dvclive/plots/sklearn/cm.json": _confusion(2, 10),
               "dvclive/plots/images/sample.jpg": b"\xff\xd8\xff\xe0jpeg",
               "dvclive/plots/notes.txt": "not a plot\n"})
    doc = run_json(["plots", "show"], repo)
    names = [p["name"] for p in doc["plots"]]
    assert names == ["dvclive/plots/images/sample.jpg", "dvclive/plots/metrics/acc.tsv",
                     "dvclive/plots/metrics/train/loss.tsv", "dvclive/plots/sklearn/cm.json"]
    loss = _by_name(doc)["dvclive/plots/metrics/train/loss.tsv"]["revisions"][0]["points"]
    assert [p["loss"] for p in loss] == [0.9, 0.5, 0.3] and loss[0]["field"] == "loss"  # y: the last field
    _commit(repo, "dvclive files")
    doc = run_json(["plots", "diff", "HEAD", "workspace"], repo)
    assert [len(r["points"]) for r in _by_name(doc)["dvclive/plots/metrics/acc.tsv"]["revisions"]] == [2, 2]


def test_plots_errors(repo: Path) -> None:
    # no definitions: say what to define (not "no parameter or metric 'show'")
    proc = run(["plots", "show"], repo, check=False)
    assert proc.returncode == 3 and "no plots are defined in mlver.yaml" in proc.stderr
    assert "plots:" in proc.stderr and "Traceback" not in proc.stderr
    typo = run(["plots", "shwo"], repo, check=False)  # the bare form takes metric names: a typo is told so
    assert typo.returncode == 2 and "did you mean `mlver plots show`" in typo.stderr
    gen(repo, _files())
    proc = run(["plots", "show", "nope"], repo, check=False)
    assert proc.returncode == 2 and "no plot named 'nope'" in proc.stderr and "roc" in proc.stderr
    proc = run(["plots", "diff", "no-such-rev"], repo, check=False)
    assert proc.returncode == 3 and "unknown revision 'no-such-rev'" in proc.stderr
    # an unreadable data file: named in the chart and in the JSON, the other plots still drawn
    gen(repo, {"eval/plots/roc.json": '{"roc": [', "eval/imp.tsv": ""})
    doc = run_json(["plots", "show"], repo)
    roc = _by_name(doc)["roc"]["revisions"][0]
    assert roc["points"] == [] and "eval/plots/roc.json" in roc["errors"][0] and "JSON" in roc["errors"][0]
    assert len(_by_name(doc)["confusion"]["revisions"][0]["points"]) == 60
    # a file that is absent
    (repo / "eval" / "noisy.json").unlink()
    assert _by_name(run_json(["plots", "show"], repo))["smooth"]["revisions"][0]["missing"] == ["eval/noisy.json"]
    # a bad definition names mlver.yaml
    gen(repo, {"mlver.yaml": "plots:\n  - roc:\n      template: pie\n      y: {a.json: b}\n"})
    proc = run(["plots", "show"], repo, check=False)
    assert proc.returncode == 3 and "mlver.yaml" in proc.stderr and "unknown template 'pie'" in proc.stderr
    gen(repo, {"mlver.yaml": "stages:\n  s:\n    cmd: echo\n    plots:\n      - a.csv:\n          colour: red\n"})
    proc = run(["plots", "show"], repo, check=False)
    assert proc.returncode == 3 and "unknown field 'colour'" in proc.stderr and "template" in proc.stderr


def test_trend_keeps_its_old_spelling_and_writes_images(repo: Path, tmp_path: Path) -> None:
    for lr, acc in ((0.1, 0.81), (0.05, 0.86), (0.02, 0.91)):
        gen(repo, {"params.yaml": f"lr: {lr}\n", "metrics.json": json.dumps({"acc": acc}),
                   "mlver.yaml": "stages:\n  t:\n    cmd: echo\n    params: [lr]\n    metrics: [metrics.json]\n"})
        _commit(repo, f"lr {lr}")
    git(["tag", "best"], repo)
    old = run_json(["plots", "-n", "3", "-o", "t.html"], repo)
    assert old["metrics"] == ["acc"] and old["points"] == 3
    new = run_json(["plots", "trend", "acc", "-n", "3", "-o", "t2.html", "--svg-dir", str(tmp_path / "svg")], repo)
    assert new["metrics"] == ["acc"] and [os.path.basename(p) for p in new["images"]] == ["acc.svg"]
    svg = (tmp_path / "svg" / "acc.svg").read_text()
    assert svg.startswith("<svg") and "best" in svg  # the tag names the commit
    page = (repo / "t2.html").read_text()
    assert "null" not in page and "0.81" in page and "lr 0.05" in page  # short hash + subject as the label
    assert run(["plots", "lr"], repo, check=False).returncode == 2  # a parameter is not a metric
    for args in (["plots", "trend", "--json"], ["plots", "--json"]):  # --json alone: the data, no page
        (repo / "plots.html").unlink(missing_ok=True)
        doc = run_json([*args, "-n", "3"], repo)
        assert doc["out"] is None and not (repo / "plots.html").exists()
        assert [r["metrics"]["acc"] for r in doc["revisions"]] == [0.81, 0.86, 0.91]
        assert [r["subject"] for r in doc["revisions"]] == ["lr 0.1", "lr 0.05", "lr 0.02"]
        assert "best" in doc["revisions"][-1]["refs"]
        [chart] = doc["plots"]  # SPEC's shape too
        assert chart["name"] == "acc" and [r["points"] for r in chart["revisions"]] == [[{"acc": a}] for a in (0.81, 0.86, 0.91)]


def test_twenty_thousand_points_stay_under_two_megabytes(repo: Path) -> None:
    rows = "".join(f"{i},{(i % 97) / 97 + i / 20000:.6f},{1 / (i + 1):.6f}\n" for i in range(20000))
    gen(repo, {"mlver.yaml": "plots:\n  - big.csv:\n      x: step\n      y: [a, b]\n  - scat:\n"
                             "      template: scatter\n      x: a\n      y: {big.csv: b}\n",
               "big.csv": "step,a,b\n" + rows})
    _commit(repo, "big")
    gen(repo, {"big.csv": "step,a,b\n" + rows.replace(",0.", ",1.")})
    doc = run_json(["plots", "diff", "-o", "big.html"], repo)
    assert [len(r["points"]) for r in _by_name(doc)["big.csv"]["revisions"]] == [40000, 40000]  # JSON: every point
    size = (repo / "big.html").stat().st_size
    assert size < 2_000_000, size


# --- in a real browser -------------------------------------------------------------------

def test_report_in_headless_chromium(repo: Path, chromium_bin: str, artifacts_dir: Path) -> None:
    from mlver.browser import Browser

    gen(repo, _files(1.0))
    _commit(repo, "first model")
    git(["tag", "v1"], repo)
    gen(repo, {"eval/plots/roc.json": _roc(0.9)})
    run(["plots", "diff", "-o", "report.html"], repo)
    with Browser(chromium_bin) as browser:
        browser.load((repo / "report.html").as_uri(), 1280, 900)
        facts = browser.evaluate("""(() => {
            const charts = [...document.querySelectorAll('figure.chart')];
            return charts.map(f => ({
                name: f.dataset.plot,
                series: f.querySelectorAll('g.series').length,
                marks: f.querySelectorAll('.mark').length,
                titles: [...f.querySelectorAll('.axis-title')].map(t => t.textContent),
                width: f.getBoundingClientRect().width,
                tip: (f.querySelector('.mark title') || {}).textContent || null,
                images: f.querySelectorAll('img').length,
            }));
        })()""")
        shot = browser.screenshot()
        events = list(browser.events)
    (artifacts_dir / "plots-report.png").write_bytes(shot)
    assert shot.startswith(b"\x89PNG")
    by = {f["name"]: f for f in facts}
    assert len(facts) == 9  # one chart per definition
    assert by["roc"]["series"] == 2 and by["roc"]["marks"] == 0  # simple: lines only, HEAD and workspace
    assert by["roc"]["titles"] == ["false positive rate", "true positive rate"]
    assert by["eval/loss.csv"]["series"] == 4 and by["eval/loss.csv"]["marks"] == 40  # 2 fields x 2 revisions
    assert by["eval/loss.csv"]["titles"] == ["epoch", "loss / acc"]
    assert by["eval/loss.csv"]["tip"] == "main, v1 loss: epoch 0, loss 1 (step 0)"  # revision, x, value, step
    assert by["confusion"]["series"] == 2 and by["confusion"]["marks"] == 2 * 9  # a heat map per revision
    assert by["eval/imp.tsv"]["marks"] == 6 and by["eval/points.yaml"]["marks"] == 6
    assert by["eval/importance.png"]["images"] == 2
    assert all(f["width"] > 1000 for f in facts)  # sized to the page, not 550 px
    urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    errors = [e for e in events if e["method"] in ("Runtime.exceptionThrown",)
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []


def test_png_dir_draws_each_chart(repo: Path, chromium_bin: str, tmp_path: Path) -> None:
    gen(repo, _files())
    out = tmp_path / "png"
    res = run(["plots", "show", "roc", "confusion", "eval/importance.png", "--png-dir", str(out)], repo,
              env={"MLVER_CHROMIUM": chromium_bin})
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "eval_importance-workspace.png", "roc.png"]
    assert (out / "roc.png").read_bytes().startswith(b"\x89PNG") and (out / "roc.png").stat().st_size > 5000
    assert str(out / "roc.png") in res.stderr


def test_png_dir_without_a_browser_says_so(repo: Path, tmp_path: Path) -> None:
    gen(repo, _files())
    proc = run(["plots", "show", "roc", "--png-dir", str(tmp_path / "png")], repo,
               env={"MLVER_CHROMIUM": str(tmp_path / "no-chromium")}, check=False)  # the browser: none
    assert proc.returncode == 3 and "needs Chromium" in proc.stderr and "--svg-dir" in proc.stderr


@pytest.mark.parametrize("template", ["linear", "simple", "scatter", "smooth", "confusion", "confusion_normalized",
                                      "bar_horizontal", "bar_horizontal_sorted"])
def test_each_template_draws_an_svg(repo: Path, tmp_path: Path, template: str) -> None:
    gen(repo, {"mlver.yaml": f"plots:\n  - p:\n      template: {template}\n      x: a\n      y: {{d.csv: b}}\n",
               "d.csv": "a,b\n1,1\n2,2\n1,2\n3,1\n"})
    run(["plots", "show", "--svg-dir", str(tmp_path / "svg"), "-o", str(tmp_path / "p.html")], repo)
    svg = (tmp_path / "svg" / "p.svg").read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and "class=\"series\"" in svg
    assert ">a<" in svg and ">b<" in svg  # axis titles from the fields


# --- mlver.live ----------------------------------------------------------------------------

TRAIN = """\
import random
from mlver.live import Live

rng = random.Random(7)
truth = [rng.random() < 0.4 for _ in range(200)]
scores = [min(1.0, max(0.0, (0.35 if t else 0.0) + rng.random() * 0.65)) for t in truth]
with Live("eval") as live:
    live.log_param("lr", 0.01)
    live.log_params({"model": {"depth": 3, "layers": [8, 4]}})
    for epoch in range(5):
        live.log_metric("train/loss", round(1 / (epoch + 1), 4))
        live.log_metric("acc", round(0.5 + epoch / 10, 4))
        live.next_step()
    live.log_plot("roc", truth, scores)
    live.log_plot("precision_recall", truth, scores)
    live.log_plot("confusion", [int(t) for t in truth], [int(s > 0.5) for s in scores], labels=["no", "yes"])
"""

LIVE_PIPELINE = """\
stages:
  train:
    cmd: python3 train.py
    deps: [train.py]
    outs: [eval/plots]
    metrics: [eval/metrics.json]
plots:
  - eval/plots/metrics:
      x: step
  - roc:
      template: simple
      x: fpr
      y: {eval/plots/sklearn/roc.json: tpr}
  - prc:
      template: simple
      x: recall
      y: {eval/plots/sklearn/precision_recall.json: precision}
  - confusion:
      template: confusion
      x: actual
      y: {eval/plots/sklearn/confusion_matrix.json: predicted}
"""


def test_live_writes_what_the_plots_read_and_reproduces(repo: Path) -> None:
    gen(repo, {"train.py": TRAIN, "mlver.yaml": LIVE_PIPELINE})
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "") or str(Path(__file__).resolve().parents[1])}
    run(["repro"], repo, env=env)
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert metrics == {"train": {"loss": 0.2}, "acc": 0.9, "step": 4}  # the last logged step, as dvclive writes
    assert (repo / "eval" / "params.yaml").read_text() == "lr: 0.01\nmodel:\n  depth: 3\n  layers:\n  - 8\n  - 4\n"
    assert (repo / "eval/plots/metrics/train/loss.tsv").read_text().splitlines()[:3] == ["step\tloss", "0\t1.0",
                                                                                        "1\t0.5"]
    doc = _by_name(run_json(["plots", "show"], repo))
    assert list(doc) == ["eval/plots/metrics/acc.tsv", "eval/plots/metrics/train/loss.tsv", "roc", "prc", "confusion"]
    assert [p["loss"] for p in doc["eval/plots/metrics/train/loss.tsv"]["revisions"][0]["points"]] == [
        1.0, 0.5, 0.3333, 0.25, 0.2]
    roc = doc["roc"]["revisions"][0]["points"]
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert all(a["fpr"] <= b["fpr"] and a["tpr"] <= b["tpr"] for a, b in zip(roc, roc[1:]))
    cm = doc["confusion"]["revisions"][0]["points"]
    assert len(cm) == 200 and {p["actual"] for p in cm} == {"no", "yes"}
    assert run_json(["metrics", "show"], repo)["revisions"][0]["metrics"]["eval/metrics.json"]["acc"] == 0.9
    assert not (repo / ".dvc").exists() and not (repo / "dvc.yaml").exists()  # no other tool's repository
    _commit(repo, "trained with mlver.live")
    verify = run_json(["repro", "--verify"], repo, env=env)
    assert verify["reproduced"] is True, verify
    assert {o["path"] for o in verify["outputs"]} >= {"eval/plots", "eval/metrics.json"}


def test_live_keeps_a_diverged_loss(tmp_path: Path) -> None:
    """A NaN or infinite loss is an everyday event: it is written (NaN / Infinity in
    metrics.json, as dvclive writes it; nan / inf in the TSV) and logging goes on."""
    from mlver.live import Live

    with Live(str(tmp_path / "e")) as live:
        for v in (1.0, float("inf"), float("nan"), 0.5):
            live.log_metric("loss", v)
            live.next_step()
    text = (tmp_path / "e" / "metrics.json").read_text()
    assert json.loads(text) == {"loss": 0.5, "step": 3}
    rows = (tmp_path / "e/plots/metrics/loss.tsv").read_text().splitlines()
    assert rows == ["step\tloss", "0\t1.0", "1\tinf", "2\tnan", "3\t0.5"]
    with Live(str(tmp_path / "f")) as live:
        live.log_metric("loss", float("nan"))
    assert "NaN" in (tmp_path / "f" / "metrics.json").read_text()


def test_live_refuses_bad_input(tmp_path: Path) -> None:
    from mlver.live import Live

    live = Live(str(tmp_path / "e"))
    with pytest.raises(TypeError, match="metric 'x'"):
        live.log_metric("x", "high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown plot kind 'pie'"):
        live.log_plot("pie", [1], [1])
    with pytest.raises(ValueError, match="0/1 or booleans"):
        live.log_plot("roc", [2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="invalid name"):
        live.log_metric("../escape", 1)
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").rglob("*.json"))


# --- report --md ---------------------------------------------------------------------------

def test_report_md_for_a_pull_request(repo: Path, tmp_path: Path) -> None:
    gen(repo, {"params.yaml": "lr: 0.1\n", "metrics.json": json.dumps({"acc": 0.95, "loss": 0.2}),
               "hist.csv": "step,acc\n0,0.5\n1,0.9\n",
               "mlver.yaml": "stages:\n  t:\n    cmd: echo\n    params: [lr]\n    metrics: [metrics.json]\n"
                             "plots:\n  - hist.csv\nchecks:\n  - metric: metrics.json:acc\n    min: 0.9\n"
                             "    max_drop: 0.01\n"})
    base = _commit(repo, "baseline")
    gen(repo, {"params.yaml": "lr: 0.3\n", "metrics.json": json.dumps({"acc": 0.91, "loss": 0.2}),
               "hist.csv": "step,acc\n0,0.4\n1,0.8\n"})
    svg = tmp_path / "svg"
    proc = run(["report", "--md", "--base", base, "--svg-dir", str(svg)], repo)  # a failing check: still exit 0
    md = proc.stdout
    assert md.startswith(f"## mlver report: workspace vs `{base[:7]}`")
    assert "**1 of 1 check(s) failed**" in md
    assert "| metrics.json:acc | 0.91 | 0.95 | -0.04 | min 0.9, max_drop 0.01 | FAIL: dropped 0.04" in md
    assert f"| metrics.json | acc | {base[:7]} | " not in md  # the header names the revisions, rows the values
    assert "| metrics.json | acc | 0.95 | 0.91 | -0.04 |" in md and "loss" not in md.split("### Parameters")[0].split(
        "### Metrics")[1]
    assert "| params.yaml | lr | 0.1 | 0.3 | 0.2 |" in md
    link = os.path.relpath(svg / "hist.csv.svg", repo)
    assert f"![hist.csv]({link})" in md and (svg / "hist.csv.svg").exists()
    urls = run(["report", "--base", base, "--svg-dir", str(svg), "--image-url", "https://ci.example/run/7/"], repo)
    assert "![hist.csv](https://ci.example/run/7/hist.csv.svg)" in urls.stdout
    doc = run_json(["report", "--base", base], repo)
    assert doc["base"] == base and doc["checks"]["passed"] is False
    assert doc["metrics"]["metrics.json"]["acc"]["new"] == 0.91 and doc["images"] == []
    bad = run(["report", "--base", "nope"], repo, check=False)
    assert bad.returncode == 3 and "unknown revision 'nope'" in bad.stderr


def test_report_without_checks_or_plots(repo: Path) -> None:
    gen(repo, {"params.yaml": "lr: 0.1\n", "metrics.json": '{"acc": 0.9}',
               "mlver.yaml": "stages:\n  t:\n    cmd: echo\n    params: [lr]\n    metrics: [metrics.json]\n"})
    _commit(repo, "base")
    md = run(["report", "--png-dir", "png"], repo).stdout  # base: HEAD (no origin/HEAD here)
    assert md.startswith("## mlver report: workspace vs `HEAD`")
    assert "### Checks" not in md and "No metric changes." in md and "No param changes." in md
    assert "no plots are defined" in md and not (repo / "png").exists()
