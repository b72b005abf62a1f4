"""`mlver commit` never records a stale stage as up to date (issue 11 item 2): a stage
whose command, dependencies or parameters differ from its lock (or that never ran) is
refused, exit 3, and nothing is recorded; `--force` records it and says so. Hand-edited
outputs of an unchanged stage may still be recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import gen, git, run, run_json
from test_pipeline_repro import PIPELINE, PY, digest, lock_stage, runs, set_params
from test_pipeline_repro import pipe  # noqa: F401  (the fixture)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every mlver file and cache object, and the Git HEAD: what a refusal must leave as it is."""
    files = {str(p.relative_to(root)): p.read_bytes()
             for pattern in ("*.mlver", "**/*.mlver", "mlver.lock", "**/.gitignore", ".gitignore")
             for p in root.glob(pattern) if p.is_file()}
    cache = root / ".mlver/cache"
    files.update({str(p.relative_to(root)): b"" for p in cache.rglob("*") if p.is_file()})
    files["HEAD"] = git(["rev-parse", "HEAD"], root).encode()
    files["index"] = git(["ls-files", "-s"], root).encode()
    return files


def assert_refused(proc, *, stage: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlver: error:")]
    assert errors == [errors[0]] and f"stage '{stage}' is not up to date: {reason}" in errors[0], proc.stderr
    assert "nothing was recorded" in errors[0]
    assert f"`mlver repro {stage}`" in proc.stderr and f"`mlver commit --force {stage}`" in proc.stderr
    assert "Traceback" not in proc.stderr and "Recorded" not in proc.stderr


@pytest.fixture
def ran(pipe: Path) -> Path:  # noqa: F811
    """The pipeline run, plus a file tracked with `mlver add`, all committed in Git."""
    gen(pipe, {"notes/extra.csv": "x\n1\n"})
    run(["add", "notes/extra.csv"], pipe)
    run(["repro"], pipe)
    runs(pipe)
    git(["add", "-A"], pipe)
    git(["commit", "-q", "-m", "pipeline"], pipe)
    return pipe


def test_commit_m_refuses_a_stage_whose_dependency_changed(ran: Path) -> None:
    # the scenario: smaller data, then the hint the pre-commit hook used to give
    gen(ran, {"data/raw.txt": "a\nb\nc\n", "notes/extra.csv": "x\n2\n"})
    before = snapshot(ran)
    proc = run(["commit", "-m", "smaller data"], ran, check=False)
    assert_refused(proc, stage="prepare", reason="dep changed: data/raw.txt")
    # all or nothing: the added file's pointer is not written either, no object cached, no Git commit
    assert snapshot(ran) == before
    doc = run_json(["status"], ran)
    assert [(s["name"], s["reasons"]) for s in doc["stages"] if s["changed"]] == \
        [("prepare", ["dep changed: data/raw.txt"])]
    assert [(o["path"], o["state"]) for o in doc["outputs"]] == [("notes/extra.csv", "modified")]
    assert run(["status", "--check"], ran, check=False).returncode == 1
    # with targets too, and naming a stage output instead of the stage
    for targets in (["prepare"], ["data/prepared"], ["prepare", "train"]):
        proc = run(["commit", *targets], ran, check=False)
        assert_refused(proc, stage="prepare", reason="dep changed: data/raw.txt")
        assert snapshot(ran) == before
    # repro is the way out; then commit has nothing stale to refuse
    run(["repro"], ran)
    assert runs(ran) == ["prepare", "train"]
    proc = run(["commit", "-m", "smaller data"], ran)
    assert "Committed" in proc.stderr
    assert run(["status", "--check"], ran).returncode == 0


def test_commit_refuses_changed_params_and_command(ran: Path) -> None:
    set_params(ran, lr=0.2)
    before = snapshot(ran)
    assert_refused(run(["commit", "train"], ran, check=False), stage="train", reason="param changed: params.yaml:train.lr")
    assert snapshot(ran) == before
    set_params(ran)
    gen(ran, {"mlver.yaml": PIPELINE.replace(f"cmd: {PY} src/train.py", f"cmd: {PY} src/train.py --fast")})
    before = snapshot(ran)
    assert_refused(run(["commit"], ran, check=False), stage="train", reason="command changed")
    assert snapshot(ran) == before
    assert runs(ran) == []


def test_force_records_a_stale_stage_and_says_so(ran: Path) -> None:
    gen(ran, {"data/raw.txt": "a\nb\nc\n"})
    head = git(["rev-parse", "HEAD"], ran)
    proc = run(["commit", "--force", "-m", "smaller data, not re-run"], ran)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("mlver: warning:")]
    assert warnings == ["mlver: warning: recorded stage 'prepare' without running it (--force), although it is "
                        "not up to date: dep changed: data/raw.txt"]
    assert "Recorded stage 'prepare' in mlver.lock" in proc.stderr and "Committed" in proc.stderr
    assert git(["rev-parse", "HEAD~1"], ran) == head
    deps = {d["path"]: d["digest"] for d in lock_stage(ran, "prepare")["deps"]}
    assert deps["data/raw.txt"] == digest(b"a\nb\nc\n")
    assert runs(ran) == [] and run_json(["status"], ran)["clean"] is True


def test_hand_edited_output_of_an_unchanged_stage_is_still_recorded(ran: Path) -> None:
    gen(ran, {"model.pkl": b"weights I trust"})
    proc = run(["commit", "-m", "hand-fixed model"], ran)
    assert "Recorded stage 'train' in mlver.lock" in proc.stderr and "warning" not in proc.stderr
    assert lock_stage(ran, "train")["outs"][0]["digest"] == digest(b"weights I trust")
    # the downstream case: a hand-fixed *upstream* output changes train's recorded dependency
    gen(ran, {"data/prepared/train.txt": "a\nb\n"})
    before = snapshot(ran)
    assert_refused(run(["commit"], ran, check=False), stage="train", reason="dep changed: data/prepared")
    assert snapshot(ran) == before
    # prepare alone may be recorded (its inputs did not change); train then waits for repro
    run(["commit", "prepare"], ran)
    assert run_json(["status"], ran)["stages"][1]["reasons"] == ["dep changed: data/prepared"]


def test_stage_without_dependencies_is_not_refused_for_always_running(repo: Path) -> None:
    gen(repo, {"make.py": "open('out.txt', 'w').write('made\\n')\n",
               "mlver.yaml": f"stages:\n  make:\n    cmd: {PY} make.py\n    outs: [out.txt]\n"})
    run(["repro"], repo)
    gen(repo, {"out.txt": "fixed by hand\n"})
    proc = run(["commit", "make"], repo)
    assert "Recorded stage 'make' in mlver.lock" in proc.stderr
    assert lock_stage(repo, "make")["outs"][0]["digest"] == digest(b"fixed by hand\n")
    # a changed command is still a reason
    gen(repo, {"mlver.yaml": f"stages:\n  make:\n    cmd: {PY} make.py --again\n    outs: [out.txt]\n"})
    assert_refused(run(["commit"], repo, check=False), stage="make", reason="command changed")


def test_a_stage_that_never_ran_is_refused_unless_forced(pipe: Path) -> None:  # noqa: F811
    # outputs made by hand: the lock would claim they came from these inputs
    gen(pipe, {"data/prepared/train.txt": "a\n", "data/prepared/test.txt": "b\n"})
    git(["add", "-A"], pipe)
    git(["commit", "-q", "-m", "by hand"], pipe)
    before = snapshot(pipe)
    proc = run(["commit", "-m", "record", "prepare"], pipe, check=False)
    assert_refused(proc, stage="prepare", reason="never run")
    assert snapshot(pipe) == before and not (pipe / "mlver.lock").exists()
    proc = run(["commit", "--force", "prepare"], pipe)
    assert "without running it (--force), although it is not up to date: never run" in proc.stderr
    assert lock_stage(pipe, "prepare")["outs"][0]["path"] == "data/prepared"


def test_pre_commit_hint_says_repro_for_stage_outputs_and_commit_for_added_data(ran: Path) -> None:
    run(["install"], ran)
    gen(ran, {"model.pkl": b"edited", "notes/extra.csv": "x\n3\n"})
    proc = subprocess_git(["commit", "-q", "--allow-empty", "-m", "stale"], ran)
    assert proc.returncode == 1
    hints = [line for line in proc.stderr.splitlines() if line.startswith("hint:")]
    assert len(hints) == 2, proc.stderr
    assert "`mlver commit`" in hints[0] and "git add" in hints[0]
    assert "`mlver repro`" in hints[1] and "git add mlver.lock" in hints[1] and "mlver commit" not in hints[1]
    # repro ran, the lock was not staged: the hint names mlver.lock to `git add`
    (ran / "model.pkl").unlink()
    gen(ran, {"notes/extra.csv": "x\n1\n", "data/raw.txt": "a\nb\nc\nd\n"})
    run(["repro"], ran)
    proc = subprocess_git(["commit", "-q", "--allow-empty", "-m", "lock not staged"], ran)
    assert proc.returncode == 1
    hints = [line for line in proc.stderr.splitlines() if line.startswith("hint:")]
    assert hints == ["hint: already recorded in the workspace; stage the mlver files: git add mlver.lock"]
    git(["add", "mlver.lock"], ran)
    assert subprocess_git(["commit", "-q", "-m", "lock staged"], ran).returncode == 0


def subprocess_git(args: list[str], cwd: Path):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
