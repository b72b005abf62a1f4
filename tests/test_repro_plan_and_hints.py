"""`repro --dry-run` tells run-cache restores from runs, also downstream of a restore
(issue 11 item 12), and hints that lead somewhere (item 10)."""

from __future__ import annotations

from pathlib import Path

from conftest import gen, git, run, run_json
from test_pipeline_repro import PY, lock_stage, runs, set_params
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


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlver: error:")]


def test_stage_add_and_repro_name_an_untracked_mlver_yaml_and_warn_about_ignored_files(repo: Path) -> None:
    gen(repo, {"in.txt": "1\n", ".gitignore": "metrics.json\nmlver.lock\n"})
    cmd = f"{PY} -c \"open('metrics.json', 'w').write(open('in.txt').read())\""
    proc = run(["stage", "add", "-n", "s", "-d", "in.txt", "-M", "metrics.json", "--", cmd], repo)
    assert "To track the changes with Git, run:\n    git add mlver.yaml\n" in proc.stderr
    proc = run(["repro"], repo)
    assert "    git add metrics.json mlver.lock mlver.yaml\n" in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("mlver: warning:")]
    assert warnings == [f"mlver: warning: {f} is ignored by Git (a .gitignore pattern hides it), so `git add` "
                        f"refuses it; use `git add -f {f}` or remove the pattern" for f in ("metrics.json", "mlver.lock")]
    # once Git tracks mlver.yaml and nothing is ignored: the hint names only what changed, no warnings
    gen(repo, {".gitignore": ""})
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "pipeline"], repo)
    gen(repo, {"in.txt": "2\n"})
    proc = run(["repro"], repo)
    assert "    git add metrics.json mlver.lock\n" in proc.stderr and "warning" not in proc.stderr
    proc = run(["stage", "add", "-n", "t", "-d", "in.txt", "-o", "t.txt", "--", "cp in.txt t.txt"], repo)
    assert "git add" not in proc.stderr
    # from a subfolder the paths are relative to it, like Git's
    (repo / "sub").mkdir()
    gen(repo, {".gitignore": "mlver.lock\n"})
    proc = run(["repro", "t"], repo / "sub")
    assert "git add ../.gitignore ../mlver.lock" in proc.stderr and "    git add" in proc.stderr
    # mlver.lock matches the pattern but Git tracks it already: `git add` takes it, no warning
    assert "warning" not in proc.stderr


def test_checkout_of_a_path_that_exists_nowhere_suggests_the_closest_tracked_ones(repo: Path) -> None:
    gen(repo, {"data/train.csv": "a\n", "data/test.csv": "b\n", "loose.txt": "x"})
    run(["add", "data/train.csv", "data/test.csv"], repo)
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts)
    proc = run(["checkout", "data/trian.csv"], repo, check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert _errors(proc.stderr) == ["mlver: error: data/trian.csv: does not exist and is not tracked by mlver"]
    assert "hint: did you mean 'data/train.csv'" in proc.stderr and "mlver add" not in proc.stderr
    proc = run(["checkout", "zzz/qqq"], repo, check=False)
    assert proc.returncode == 3 and len(_errors(proc.stderr)) == 1
    assert "hint: `mlver list` shows the tracked paths" in proc.stderr
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts) == before
    # a file that exists but is not tracked: tracking it is the way
    proc = run(["checkout", "loose.txt"], repo, check=False)
    assert proc.returncode == 3 and "is not tracked by mlver" in proc.stderr and "mlver add loose.txt" in proc.stderr


def test_checkout_relink_reports_relinked_files_not_modified(repo: Path) -> None:
    gen(repo, {"images/1.bin": b"one", "images/2.bin": b"two", "a.csv": "a\n"})
    run(["add", "images", "a.csv"], repo)
    run(["config", "cache.type", "copy"], repo)
    proc = run(["checkout", "--relink"], repo)
    assert "M       " not in proc.stdout and "A       " not in proc.stdout
    assert "3 file(s) relinked (copy)" in proc.stdout
    assert (repo / "images/1.bin").read_bytes() == b"one" and (repo / "a.csv").read_text() == "a\n"
    assert run_json(["status"], repo)["clean"] is True
    # a real change next to relinked files is still reported as one
    (repo / "a.csv").unlink()
    proc = run(["checkout", "--relink"], repo)
    assert "A       a.csv" in proc.stdout and "2 file(s) relinked (copy)" in proc.stdout
