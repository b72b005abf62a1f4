"""`repro --dry-run` tells run-cache restores from runs, also downstream of a restore
(issue 11 item 12), and hints that lead somewhere (item 10)."""

from __future__ import annotations

from pathlib import Path

from conftest import gen, run, run_json
from test_pipeline_repro import lock_stage, runs, set_params
from test_pipeline_repro import pipe  # noqa: F401  (the fixture)


def test_dry_run_says_restore_for_stages_the_run_cache_will_restore(pipe: Path) -> None:  # noqa: F811
    run(["repro"], pipe)
    runs(pipe)
    set_params(pipe, split=2)
    run(["repro"], pipe)
    assert runs(pipe) == ["prepare", "train"]
    lock = (pipe / "mlver.lock").read_bytes()
    # back to split 3: prepare comes back from the run cache, and train, whose input is
    # prepare's restored output, too — the plan must say so, as the run then does
    set_params(pipe, split=3)
    proc = run(["repro", "--dry-run"], pipe)
    assert "Would restore stage 'prepare' from the run cache:\n    param changed: params.yaml:prepare.split\n" \
        in proc.stdout
    assert "Would restore stage 'train' from the run cache:\n    dep changed: data/prepared\n" in proc.stdout
    assert "Would run" not in proc.stdout
    plan = run_json(["repro", "--dry-run"], pipe)
    assert [(s["name"], s["action"]) for s in plan["stages"]] == [("prepare", "restore"), ("train", "restore")]
    assert runs(pipe) == [] and (pipe / "mlver.lock").read_bytes() == lock
    proc = run(["repro"], pipe)
    assert runs(pipe) == []
    assert "Restored stage 'prepare'" in proc.stderr and "Restored stage 'train'" in proc.stderr

    # a restore upstream whose output is what train already saw: train is up to date
    gen(pipe, {"src/prepare.py": (pipe / "src/prepare.py").read_text() + "# v2\n"})
    run(["repro"], pipe)
    assert runs(pipe) == ["prepare"]  # same output, so train stays
    gen(pipe, {"src/prepare.py": (pipe / "src/prepare.py").read_text().replace("# v2\n", "")})
    plan = run_json(["repro", "--dry-run"], pipe)
    assert [(s["name"], s["action"]) for s in plan["stages"]] == [("prepare", "restore"), ("train", "skip")]
    run(["repro"], pipe)
    assert runs(pipe) == []

    # downstream of a stage that will run, nothing is known: train runs
    set_params(pipe, split=1)
    plan = run_json(["repro", "--dry-run"], pipe)
    assert [(s["name"], s["action"], s["reasons"]) for s in plan["stages"]] == [
        ("prepare", "run", ["param changed: params.yaml:prepare.split"]),
        ("train", "run", ["upstream stage will change: prepare"])]
    assert lock_stage(pipe, "train") is not None
