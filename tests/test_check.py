"""`mlver check`: the checks of mlver.yaml against thresholds and a base revision, and the
pre-push hook that refuses a push with a failing check (hooks.check)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

PIPELINE = """\
stages:
  evaluate:
    cmd: cp values.json eval/metrics.json
    deps: [values.json]
    metrics:
    - eval/metrics.json
checks:
  - metric: eval/metrics.json:acc
    min: 0.5
    max_drop: 0.01
  - metric: eval/metrics.json:latency_ms
    max: 40
    max_rise: 10%
"""


def _set(repo: Path, acc: float, latency: float, *, commit: str | None = None) -> None:
    (repo / "eval").mkdir(exist_ok=True)
    (repo / "values.json").write_text(json.dumps({"acc": acc, "latency_ms": latency}))
    run(["repro"], repo)
    if commit:
        git(["add", "-A"], repo)
        git(["commit", "-qm", commit], repo)


@pytest.fixture
def project(repo: Path) -> Path:
    gen(repo, {"mlver.yaml": PIPELINE})
    _set(repo, 0.90, 30, commit="baseline")
    return repo


def test_passing_checks(project: Path) -> None:
    res = run_json(["check"], project)
    assert res["passed"] is True and res["rev"] == "workspace"
    acc = res["checks"][0]
    assert acc["metric"] == "eval/metrics.json:acc" and acc["value"] == 0.9 and acc["base_value"] == 0.9
    assert acc["limits"] == {"min": 0.5, "max_drop": 0.01}
    assert res["checks"][1]["limits"] == {"max": 40, "max_rise": "10%"}
    proc = run(["check"], project)
    assert "eval/metrics.json:acc" in proc.stdout and "pass" in proc.stdout
    md = run(["check", "--md"], project).stdout
    assert md.startswith("| Metric |") and "|---|" in md


def test_failing_min_drop_and_rise(project: Path) -> None:
    _set(project, 0.45, 30)  # below min and dropped
    proc = run(["check", "--json"], project, check=False)
    assert proc.returncode == 1
    acc = json.loads(proc.stdout)["checks"][0]
    assert acc["passed"] is False and "below min 0.5" in acc["message"] and "dropped" in acc["message"]
    assert abs(acc["change"] - (-0.45)) < 1e-9
    _set(project, 0.895, 30)  # a drop of 0.005: within max_drop 0.01
    assert run(["check"], project).returncode == 0
    _set(project, 0.885, 30)  # a drop of 0.015
    assert run(["check"], project, check=False).returncode == 1
    _set(project, 0.9, 33.5)  # +11.7 %: over max_rise 10 %
    proc = run(["check", "--json"], project, check=False)
    lat = json.loads(proc.stdout)["checks"][1]
    assert proc.returncode == 1 and not lat["passed"] and "max_rise 10%" in lat["message"]
    _set(project, 0.9, 32.9)  # +9.7 %
    assert run(["check"], project).returncode == 0


def test_base_revision_and_missing_base(project: Path) -> None:
    _set(project, 0.95, 30, commit="better")
    _set(project, 0.935, 30)
    # against HEAD (0.95): dropped 0.015; against the first commit (0.90): fine
    assert run(["check"], project, check=False).returncode == 1
    assert run(["check", "--base", "HEAD~1"], project).returncode == 0
    run(["config", "checks.base", "HEAD~1"], project)
    assert run(["check"], project).returncode == 0
    # a base without the metric skips drop/rise limits with a note
    res = run_json(["check", "--base", "HEAD~2"], project)
    assert res["passed"] is True and "no base value" in res["checks"][0]["message"]
    # --rev checks a commit
    res = run_json(["check", "--rev", "HEAD", "--base", "HEAD~1"], project)
    assert res["checks"][0]["value"] == 0.95


def test_missing_metric_exits_3_naming_it(project: Path) -> None:
    (project / "mlver.yaml").write_text(PIPELINE + "  - metric: eval/metrics.json:f1\n    min: 0.1\n")
    proc = run(["check"], project, check=False)
    assert proc.returncode == 3
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "eval/metrics.json:f1 is missing" in errors[0], proc.stderr
    # a file that is there but cannot be read says why (not "missing")
    (project / "eval" / "metrics.json").write_text("{bad json")
    proc = run(["check"], project, check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert proc.returncode == 3 and "cannot be read" in errors[0] and "invalid JSON" in errors[0], proc.stderr
    assert "is missing" not in proc.stderr and "fix the file" in proc.stderr


@pytest.mark.parametrize("entry, message", [
    ("  - metric: acc\n    min: 1\n", "'metric' must be FILE:KEY"),
    ("  - metric: m.json:acc\n", "give at least one of"),
    ("  - metric: m.json:acc\n    max_drop: lots\n", "'max_drop' must be a number or a percentage"),
    ("  - metric: m.json:acc\n    mn: 1\n", "unknown field 'mn'"),
    ("  - metric: m.json:acc\n    min: '1'\n", "'min' must be a number"),
])
def test_malformed_checks(repo: Path, entry: str, message: str) -> None:
    gen(repo, {"mlver.yaml": "checks:\n" + entry})
    proc = run(["check"], repo, check=False)
    assert proc.returncode == 3 and message in proc.stderr and "mlver.yaml:" in proc.stderr, proc.stderr


def test_no_checks_says_what_to_define(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages: {}\n"})
    proc = run(["check"], repo, check=False)
    assert proc.returncode == 3 and "has no checks" in proc.stderr and "checks:" in proc.stderr


def test_pre_push_refuses_a_failing_check_when_hooks_check_is_set(project: Path, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(["init", "-q", "--bare", str(bare)], tmp_path)
    git(["remote", "add", "origin", str(bare)], project)
    run(["install"], project)
    git(["push", "-q", "origin", "main"], project)
    _set(project, 0.40, 30, commit="worse model")
    # without hooks.check the push goes through
    git(["push", "-q", "origin", "main"], project)
    _set(project, 0.30, 30, commit="even worse")
    run(["config", "hooks.check", "true"], project)
    proc = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=project, capture_output=True, text=True)
    assert proc.returncode != 0 and "checks failed" in proc.stderr and "below min 0.5" in proc.stderr, proc.stderr
    remote_head = git(["--git-dir", str(bare), "rev-parse", "main"], tmp_path).strip()
    assert remote_head == git(["rev-parse", "HEAD~1"], project).strip()
    _set(project, 0.41, 30, commit="fixed")  # 0.41 vs the remote's 0.40: within max_drop... but below min
    proc = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=project, capture_output=True, text=True)
    assert proc.returncode != 0


def test_pre_push_of_a_new_branch_compares_with_the_remote_default_branch(project: Path, tmp_path: Path) -> None:
    """A repository made with `git init` + `git remote add` has no origin/HEAD: the base
    of a new branch is still the remote's main (its merge-base), not the pushed commit
    itself (which made every drop limit pass with a change of 0)."""
    bare = tmp_path / "origin.git"
    git(["init", "-q", "--bare", str(bare)], tmp_path)
    git(["remote", "add", "origin", str(bare)], project)
    run(["install"], project)
    run(["config", "hooks.check", "true"], project)
    git(["push", "-q", "-u", "origin", "main"], project)
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "origin/HEAD"], cwd=project,
                          capture_output=True).returncode != 0
    git(["checkout", "-q", "-b", "feat"], project)
    _set(project, 0.70, 30, commit="much worse")  # above min 0.5, but a drop of 0.2 > max_drop 0.01
    proc = subprocess.run(["git", "push", "-q", "origin", "feat"], cwd=project, capture_output=True, text=True)
    assert proc.returncode != 0 and "checks failed" in proc.stderr and "acc" in proc.stderr, proc.stderr
    report = run_json(["check"], project, check=False)
    assert report["base"] == git(["rev-parse", "main"], project).strip()


def test_repro_prints_the_check_table_and_fails_only_with_check(project: Path) -> None:
    (project / "values.json").write_text(json.dumps({"acc": 0.70, "latency_ms": 30}))
    proc = run(["repro"], project)  # a failing check is reported, the run still succeeds
    assert "eval/metrics.json:acc" in proc.stdout and "FAIL" in proc.stdout
    assert "1 of 2 check(s) failed" in proc.stderr and "--check" in proc.stderr
    strict = run(["repro", "--check"], project, check=False)  # nothing to run: the checks still decide
    assert strict.returncode == 1, strict.stderr
    assert "FAIL" in strict.stdout
    doc = run_json(["repro", "--json"], project)
    assert doc["checks"]["passed"] is False
    assert [c["passed"] for c in doc["checks"]["checks"]] == [False, True]
    (project / "values.json").write_text(json.dumps({"acc": 0.95, "latency_ms": 30}))
    ok = run(["repro", "--check"], project)
    assert "FAIL" not in ok.stdout and "pass" in ok.stdout


def test_repro_check_with_a_missing_metric_exits_3(repo: Path) -> None:
    gen(repo, {"mlver.yaml": PIPELINE.replace("latency_ms\n    max: 40", "latency\n    max: 40"),
               "values.json": json.dumps({"acc": 0.9, "latency_ms": 30})})
    (repo / "eval").mkdir()
    loose = run(["repro"], repo)  # without --check: a warning, exit 0
    assert "warning: check: eval/metrics.json:latency is missing" in loose.stderr
    strict = run(["repro", "--check", "-f"], repo, check=False)
    assert strict.returncode == 3
    assert "mlver: error: eval/metrics.json:latency is missing" in strict.stderr


def test_repro_without_checks_prints_no_table(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n"})
    proc = run(["repro", "--check"], repo)
    assert "Metric" not in proc.stdout and "has no checks" in proc.stderr
    assert run(["repro", "--dry-run", "--check"], repo, check=False).returncode == 2


def test_a_check_reads_its_file_even_where_no_metrics_list_declares_it(repo: Path) -> None:
    gen(repo, {"m.json": '{"acc": 0.9}'})
    git(["add", "m.json"], repo)
    git(["commit", "-qm", "base"], repo)
    gen(repo, {"mlver.yaml": "checks:\n  - metric: m.json:acc\n    max_drop: 10%\n"})
    res = run_json(["check"], repo)
    assert res["passed"] is True and res["checks"][0]["value"] == 0.9 and res["checks"][0]["base_value"] == 0.9
    (repo / "m.json").write_text('{"acc": 0.1}')
    proc = run(["check", "--json"], repo, check=False)
    assert proc.returncode == 1  # the base's m.json (in Git, undeclared there) holds 0.9
    assert json.loads(proc.stdout)["checks"][0]["base_value"] == 0.9
