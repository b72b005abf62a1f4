"""Guarantee 1 (nothing is lost) and guarantee 4 (clear errors) through the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import xxhash

from conftest import gen, git, mlver_cmd, run, run_json


def obj_path(repo: Path, data: bytes) -> Path:
    d = xxhash.xxh3_128_hexdigest(data)
    return repo / ".mlver/cache/files/xxh3-128" / d[:2] / d[2:]


def test_checkout_keeps_uncached_edit_and_lists_it(repo: Path) -> None:
    gen(repo, {"a.csv": "v1", "f/x": "x1", "f/y": "y1"})
    run(["add", "a.csv", "f"], repo)
    gen(repo, {"a.csv": "my precious edit", "f/x": "edited x", "f/new": "brand new"})
    os.unlink(repo / "f/y")
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("mlver: error: kept local changes")
    for p in ("a.csv", "f/x", "f/new"):
        assert p in proc.stderr
    assert (repo / "a.csv").read_text() == "my precious edit"
    assert (repo / "f/x").read_text() == "edited x"
    assert (repo / "f/new").read_text() == "brand new"
    assert (repo / "f/y").read_text() == "y1"  # everything else is updated


def test_checkout_force_caches_then_replaces(repo: Path) -> None:
    gen(repo, {"a.csv": "v1"})
    run(["add", "a.csv"], repo)
    gen(repo, {"a.csv": "edit to throw away"})
    run(["checkout", "--force"], repo)
    assert (repo / "a.csv").read_text() == "v1"
    assert obj_path(repo, b"edit to throw away").read_bytes() == b"edit to throw away"


def test_checkout_replaces_content_that_is_in_cache(repo: Path) -> None:
    gen(repo, {"a.csv": "v1"})
    run(["add", "a.csv"], repo)
    run(["commit", "-m", "v1"], repo)
    gen(repo, {"a.csv": "v2"})
    run(["commit", "-m", "v2"], repo)
    git(["checkout", "-q", "HEAD~1"], repo)
    run(["checkout"], repo)  # v2 is cached, so replacing it is safe
    assert (repo / "a.csv").read_text() == "v1"


def test_vanished_pointer_removes_only_cached_unchanged_data(repo: Path) -> None:
    run(["commit", "-m", "base"], repo)
    git(["checkout", "-q", "-b", "feature"], repo)
    gen(repo, {"clean.bin": b"clean", "edited.bin": b"orig"})
    run(["add", "clean.bin", "edited.bin"], repo)
    run(["commit", "-m", "feature data"], repo)
    gen(repo, {"edited.bin": b"local edit"})
    git(["checkout", "-q", "main"], repo)
    proc = run(["checkout"], repo, check=False)
    assert not (repo / "clean.bin").exists()
    assert (repo / "edited.bin").read_bytes() == b"local edit"
    assert "edited.bin" in proc.stderr and proc.returncode == 3
    assert "kept data whose pointer is gone" in proc.stderr
    # --force replaces local edits of tracked data; it does not delete untracked data
    proc = run(["checkout", "--force"], repo, check=False)
    assert proc.returncode == 3 and (repo / "edited.bin").read_bytes() == b"local edit"
    assert "use --force" not in proc.stderr and "kept data whose pointer is gone" in proc.stderr


def test_missing_object_reported_with_pull_hint(repo: Path) -> None:
    gen(repo, {"a.bin": b"gone"})
    run(["add", "a.bin"], repo)
    obj = obj_path(repo, b"gone")
    os.chmod(obj, 0o644)
    obj.unlink()
    os.unlink(repo / "a.bin")
    assert run_json(["status"], repo)["outputs"][0]["state"] == "not_in_cache"
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "a.bin" in proc.stderr and "mlver pull" in proc.stderr


def test_checkout_of_a_version_not_in_the_cache_removes_the_other_cached_version(repo: Path) -> None:
    """As `dvc checkout`: the version checked out before goes when the cache keeps it (it
    must not pass for this branch's data, nor be recorded by a commit); a local edit the
    cache lacks stays and is listed (guarantee 1); status says the data is not in the cache."""
    base = git(["symbolic-ref", "--short", "HEAD"], repo).strip()
    gen(repo, {"d.txt": "A\n", "dd/x": "1\n", "e.txt": "E1\n"})
    run(["add", "d.txt", "dd", "e.txt"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "a"], repo)
    git(["checkout", "-q", "-b", "br"], repo)
    gen(repo, {"d.txt": "B\n", "dd/x": "2\n", "dd/y": "3\n", "e.txt": "E2\n"})
    run(["commit", "-m", "b"], repo)
    git(["checkout", "-q", base], repo)
    run(["checkout"], repo)
    run(["gc", "-f", "--workspace", "--include-unpushed"], repo)  # br's objects leave the cache
    gen(repo, {"e.txt": "my edit\n"})  # not in the cache: must survive
    git(["checkout", "-q", "br"], repo)
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "not in the cache" in proc.stderr and "mlver pull" in proc.stderr
    assert not (repo / "d.txt").exists() and not (repo / "dd").exists()
    assert (repo / "e.txt").read_text() == "my edit\n" and "e.txt" in proc.stderr
    states = {o["path"]: o["state"] for o in run_json(["status"], repo)["outputs"]}
    assert states == {"d.txt": "not_in_cache", "dd": "not_in_cache", "e.txt": "modified"}
    before = (repo / "d.txt.mlver").read_text(), (repo / "dd.mlver").read_text()
    run(["commit", "d.txt", "dd"], repo)  # nothing of main's is recorded on br
    assert ((repo / "d.txt.mlver").read_text(), (repo / "dd.mlver").read_text()) == before


@pytest.mark.parametrize("text,problem", [
    ("version: 1\npath: [unclosed\n", "invalid YAML"),
    ("version: 1\npath: a.bin\nkind: file\nhash: xxh3-128\ndigest: abc\nsize: 1\n", "'digest'"),
    ("version: 1\npath: a.bin\nkind: file\nhash: sha1\ndigest: " + "0" * 32 + "\nsize: 1\n", "unknown hash 'sha1'"),
    ("version: 1\npath: ../../etc/passwd\nkind: file\nhash: xxh3-128\ndigest: " + "0" * 32 + "\nsize: 1\n", "'..'"),
    ("version: 1\npath: /etc/passwd\nkind: file\nhash: xxh3-128\ndigest: " + "0" * 32 + "\nsize: 1\n", "absolute"),
    ("version: 1\npath: a.bin\nkind: blob\nhash: xxh3-128\ndigest: " + "0" * 32 + "\nsize: 1\n", "'kind'"),
    ("- just\n- a list\n", "expected a YAML mapping"),
    ("version: 1\npath: a.bin\nkind: file\nhash: xxh3-128\ndigest: " + "0" * 32 + "\nsize: 1\nsize: 2\n",
     "a.bin.mlver:7: invalid YAML: duplicate key 'size'"),
])
def test_malformed_pointer_is_named_with_exit_3(repo: Path, text: str, problem: str) -> None:
    gen(repo, {"a.bin.mlver": text})
    for cmd in (["status"], ["checkout"], ["list"]):
        proc = run(cmd, repo, check=False)
        assert proc.returncode == 3, proc
        first = proc.stderr.splitlines()[0]
        assert first.startswith("mlver: error: a.bin.mlver") and problem in first, first
        assert "Traceback" not in proc.stderr


def test_malformed_pointer_names_the_line(repo: Path) -> None:
    gen(repo, {"a.bin.mlver": "version: 1\npath: a.bin\nkind: file\nhash: xxh3-128\ndigest: xyz\nsize: 1\n"})
    proc = run(["status"], repo, check=False)
    assert "a.bin.mlver:5:" in proc.stderr


def test_pointer_through_symlinked_parent_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    os.symlink(outside, repo / "link")
    gen(repo, {"x.mlver": "version: 1\npath: link/secret.bin\nkind: file\nhash: xxh3-128\ndigest: "
               + "0" * 32 + "\nsize: 6\n"})
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "leaves the repository" in proc.stderr
    assert (outside / "secret.bin").read_bytes() == b"secret"


@pytest.mark.parametrize("target,expect", [
    ("/etc/hostname", "outside the repository"),
    ("../escape.txt", "outside the repository"),
    ("nope.csv", "does not exist"),
])
def test_add_refuses_bad_paths(repo: Path, target: str, expect: str) -> None:
    (repo.parent / "escape.txt").write_text("x")
    proc = run(["add", target], repo, check=False)
    assert proc.returncode == 3 and expect in proc.stderr and proc.stderr.startswith("mlver: error:")


@pytest.mark.parametrize("name", [b"bad\xffname.txt", b"new\nline.txt", b"tab\there.txt"])
def test_add_refuses_names_it_cannot_record(repo: Path, name: bytes) -> None:
    """A name that is not UTF-8 (pointers, locks, manifests hold UTF-8 text), or with a
    line break (a .gitignore entry is one line): one error naming it, exit 3, nothing
    cached or written; inside a folder the file is named."""
    path = os.path.join(os.fsencode(repo), name)
    with open(path, "wb") as f:
        f.write(b"data\n")
    proc = subprocess.run([*mlver_cmd(), "add", name], cwd=repo, capture_output=True)
    err = proc.stderr.decode()
    assert proc.returncode == 3 and err.startswith("mlver: error: ") and len(err.splitlines()) == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert not (repo / ".gitignore").exists() and not (repo / ".mlver" / "cache").exists()
    assert not any(p.name.endswith(".mlver") and p.is_file() for p in repo.iterdir())  # no pointer
    os.makedirs(repo / "dd")
    (repo / "dd" / "ok.txt").write_text("ok\n")
    os.rename(path, os.path.join(os.fsencode(repo), b"dd", name))
    proc = subprocess.run([*mlver_cmd(), "add", "dd"], cwd=repo, capture_output=True)
    err = proc.stderr.decode()
    if b"\xff" in name:
        assert proc.returncode == 3 and "dd/bad\\xffname.txt: is not a UTF-8 name" in err, err
    else:  # inside a folder only the folder is in .gitignore: any UTF-8 name is fine
        assert proc.returncode == 0, err
        assert run_json(["status"], repo)["clean"]


def test_add_refuses_through_symlinked_folder(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f.bin").write_bytes(b"f")
    os.symlink(outside, repo / "ln")
    proc = run(["add", "ln/f.bin"], repo, check=False)
    assert proc.returncode == 3 and "outside the repository" in proc.stderr


def test_add_refuses_git_tracked_path_with_hint(repo: Path) -> None:
    gen(repo, {"data.csv": "a,b\n"})
    git(["add", "data.csv"], repo)
    proc = run(["add", "data.csv"], repo, check=False)
    assert proc.returncode == 3 and "tracked by Git" in proc.stderr and "git rm -r --cached data.csv" in proc.stderr


def test_add_refuses_path_inside_or_containing_output(repo: Path) -> None:
    gen(repo, {"ds/a": "a", "ds/b": "b", "outer/inner.bin": "i"})
    run(["add", "ds", "outer/inner.bin"], repo)
    proc = run(["add", "ds/a"], repo, check=False)
    assert proc.returncode == 3 and "inside the tracked output ds" in proc.stderr
    proc = run(["add", "outer"], repo, check=False)
    assert proc.returncode == 3 and "contains the tracked output outer/inner.bin" in proc.stderr


def test_symlink_inside_tracked_folder_is_refused_unless_ignored(repo: Path) -> None:
    gen(repo, {"ds/a": "a"})
    os.symlink("/etc/hostname", repo / "ds/link")
    proc = run(["add", "ds"], repo, check=False)
    assert proc.returncode == 3 and "ds/link" in proc.stderr and ".mlverignore" in proc.stderr
    gen(repo, {".mlverignore": "ds/link\n"})
    run(["add", "ds"], repo)
    assert "files: 1" in (repo / "ds.mlver").read_text()


def test_malformed_config_is_named(repo: Path) -> None:
    (repo / ".mlver/config").write_text("[core\nremote = x\n")
    proc = run(["status"], repo, check=False)
    assert proc.returncode == 3 and ".mlver/config" in proc.stderr and "Traceback" not in proc.stderr
    assert "a section header without its closing ']': [core" in proc.stderr


@pytest.mark.parametrize("text,problem", [
    (b"\xff\xfe\n", "not UTF-8 text"),
    (b"[core]\nautostage = maybe\n", "core.autostage: expected true or false, got 'maybe'"),
    (b"[cache]\ntype = foo\n", "cache.type: unknown link type 'foo'"),
    (b'[remote "s"]\nurl = /x\ntimeout = soon\n', "remote.s.timeout: expected a number of seconds, got 'soon'"),
    (b'[remote "s"]\nurl = /x\njobs = many\n', "remote.s.jobs: expected a positive whole number, got 'many'"),
    (b'[remote "s"]\nurl = /x\npack_threshold = big\n', "remote.s.pack_threshold: expected a size in bytes"),
    (b'[remote "s"]\nurl = /x\npacks = sometimes\n', "remote.s.packs: expected true or false, got 'sometimes'"),
])
def test_bad_config_values_name_the_file_exit_3(repo: Path, text: bytes, problem: str) -> None:
    gen(repo, {"new.bin": b"n"})
    (repo / ".mlver/config.local").write_bytes(text)
    proc = run(["add", "new.bin"], repo, check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("mlver: error: ") and ".mlver/config.local" in first and problem in first
    assert not (repo / "new.bin.mlver").exists()


def test_mlver_config_can_fix_a_bad_value(repo: Path) -> None:
    (repo / ".mlver/config.local").write_text("[core]\nautostage = maybe\n")
    assert run(["status"], repo, check=False).returncode == 3
    run(["config", "--local", "core.autostage", "false"], repo)
    assert run(["status"], repo).returncode == 0
    # a bad remote option: the hint's own command fixes it (the config is not checked first)
    (repo / ".mlver/config.local").write_text('[remote "s"]\nurl = /x\njobs = many\n')
    proc = run(["push", "-r", "s"], repo, check=False)
    assert proc.returncode == 3 and "mlver remote modify --local s jobs VALUE" in proc.stderr
    run(["remote", "modify", "--local", "s", "jobs", "4"], repo)
    assert run(["status"], repo).returncode == 0
    assert "jobs = 4" in (repo / ".mlver/config.local").read_text()
    # a folder remote takes no timeout: one written there by hand, bad, is removed with --unset
    (repo / ".mlver/config.local").write_text('[remote "s"]\nurl = /x\ntimeout = -5\n')
    proc = run(["status"], repo, check=False)
    assert proc.returncode == 3 and "--unset" in proc.stderr
    run(["remote", "modify", "--local", "s", "timeout", "--unset"], repo)
    assert run(["status"], repo).returncode == 0 and "timeout" not in (repo / ".mlver/config.local").read_text()


def test_config_round_trip_and_validation(repo: Path) -> None:
    run(["config", "cache.type", "hardlink,copy"], repo)
    assert run(["config", "cache.type"], repo).stdout.strip() == "hardlink,copy"
    assert "[cache]" in (repo / ".mlver/config").read_text()
    run(["config", "--local", "core.remote", "mine"], repo)
    assert run(["config", "core.remote"], repo).stdout.strip() == "mine"
    assert "mine" not in (repo / ".mlver/config").read_text()
    bad = run(["config", "cache.type", "teleport"], repo, check=False)
    assert bad.returncode == 2 and "unknown link type" in bad.stderr
    unknown = run(["config", "core.colour", "x"], repo, check=False)
    assert unknown.returncode == 2 and "unknown config key" in unknown.stderr
    run(["config", "--global", "core.autostage", "true"], repo)
    assert run(["config", "core.autostage"], repo).stdout.strip() == "true"


def test_doctor_reports_environment(repo: Path) -> None:
    doc = run_json(["doctor"], repo)
    assert doc["link_types"]["copy"] is True and doc["link_types"]["symlink"] is True
    assert doc["cache_dir"].endswith(".mlver/cache") and doc["git"].startswith("git version")
    text = run(["doctor"], repo).stdout
    assert "Link types that work here" in text


def test_debris_of_killed_processes_is_swept_by_checkout(repo: Path) -> None:
    gen(repo, {"data/imgs/a": "a", "data/f": "f"})
    run(["add", "data/imgs", "data/f"], repo)
    dead = 2 ** 22 + 12345  # above pid_max's default: never a live process
    debris = [repo / f"data/.mlver-tmp-{dead}-abc-1", repo / f"data/imgs/.mlver-tmp-{dead}-abc-2",
              repo / f".mlver/cache/tmp/{dead}-abc-3"]
    for d in debris:
        d.write_bytes(b"partial")
    assert run_json(["status"], repo)["clean"] is True  # debris never confuses status
    run(["checkout"], repo)
    assert not any(d.exists() for d in debris)


def test_add_refuses_a_declared_stage_output(repo: Path) -> None:
    gen(repo, {"mlver.yaml": "stages:\n  train:\n    cmd: python -c pass\n    outs: [model.pkl]\n",
               "model.pkl": b"weights"})
    proc = run(["add", "model.pkl"], repo, check=False)
    assert proc.returncode == 3 and "stage 'train'" in proc.stderr
    assert not (repo / "model.pkl.mlver").exists()


def test_remove_and_move_refuse_bad_targets_without_losing_data(repo: Path) -> None:
    gen(repo, {"a.csv": "a", "b.csv": "b", "loose.txt": "x"})
    run(["add", "a.csv", "b.csv"], repo)
    proc = run(["remove", "loose.txt"], repo, check=False)
    assert proc.returncode == 3 and proc.stderr.startswith("mlver: error: loose.txt") and "is not tracked by mlver" in proc.stderr
    proc = run(["move", "a.csv", "b.csv"], repo, check=False)
    assert proc.returncode == 3 and "already exists" in proc.stderr
    assert (repo / "a.csv").read_text() == "a" and (repo / "b.csv").read_text() == "b"
    assert (repo / "a.csv.mlver").exists() and (repo / "b.csv.mlver").exists()


def test_checkout_rev_needs_a_target_and_unprotect_needs_a_path(repo: Path) -> None:
    proc = run(["checkout", "--rev", "HEAD"], repo, check=False)
    assert proc.returncode == 2 and "needs at least one target" in proc.stderr
    proc = run(["unprotect", "nothing-here.bin"], repo, check=False)
    assert proc.returncode == 3 and "does not exist" in proc.stderr


def test_files_mlverignore_leaves_out_survive_checkouts(repo: Path) -> None:
    import shutil

    gen(repo, {".mlverignore": "*.tmp\n"})
    git(["add", ".mlverignore"], repo)
    git(["commit", "-q", "-m", "ignore rules"], repo)
    gen(repo, {"x/in": "in"})
    run(["add", "x"], repo)
    run(["commit", "-m", "x"], repo)
    gen(repo, {"x/p.tmp": "precious"})  # ignored: never cached
    # the pointer vanishes: the tracked file goes, the ignored one stays
    git(["checkout", "-q", "HEAD~1"], repo)
    assert run(["checkout"], repo).returncode == 0
    assert (repo / "x/p.tmp").read_text() == "precious" and not (repo / "x/in").exists()
    git(["checkout", "-q", "-"], repo)
    run(["checkout"], repo)
    assert (repo / "x/in").read_text() == "in"
    # on another branch x is a file: the ignored file in the folder is local data, kept and listed
    git(["checkout", "-q", "-b", "flat", "HEAD~1"], repo)
    shutil.move(str(repo / "x"), str(repo / "x.saved"))
    gen(repo, {"x": "x is a file"})
    run(["add", "x"], repo)
    run(["commit", "-m", "x file"], repo)
    git(["checkout", "-q", "-"], repo)
    run(["checkout"], repo)
    shutil.rmtree(repo / "x.saved")
    os.unlink(repo / "x/in")
    gen(repo, {"x/p.tmp": "precious"})  # x: a folder holding only the ignored file
    git(["checkout", "-q", "flat"], repo)
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "x/p.tmp" in proc.stderr
    assert (repo / "x/p.tmp").read_text() == "precious"
    run(["checkout", "--force"], repo)
    assert (repo / "x").read_text() == "x is a file"
    assert obj_path(repo, b"precious").read_bytes() == b"precious"  # cached before it was replaced


def test_a_merge_conflict_in_a_pointer_or_the_lock_is_named_with_the_way_out(repo: Path) -> None:
    base = git(["symbolic-ref", "--short", "HEAD"], repo).strip()
    gen(repo, {"d.txt": "base\n", "params.yaml": "lr: 1\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: cat params.yaml > o.txt\n    params: [lr]\n    outs: [o.txt]\n"})
    run(["add", "d.txt"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    git(["checkout", "-q", "-b", "b1"], repo)
    gen(repo, {"d.txt": "one\n", "params.yaml": "lr: 2\n"})
    run(["commit", "d.txt"], repo)
    run(["repro"], repo)
    git(["commit", "-q", "-am", "one"], repo)
    git(["checkout", "-q", base], repo)
    run(["checkout"], repo)
    gen(repo, {"d.txt": "two\n", "params.yaml": "lr: 3\n"})
    run(["commit", "d.txt"], repo)
    run(["repro"], repo)
    git(["commit", "-q", "-am", "two"], repo)
    assert subprocess.run(["git", "merge", "-q", "b1"], cwd=repo, capture_output=True).returncode != 0
    proc = run(["status"], repo, check=False)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("mlver: error: ") and "holds an unresolved Git merge conflict" in lines[0]
    assert "git checkout --theirs" in lines[1] or "git checkout --ours" in lines[1]
    named = {f for f in ("d.txt.mlver", "mlver.lock", "params.yaml") if f in lines[0]}
    assert len(named) == 1, lines
    # the ways out the hints give, in turn: ours for the lock and params, theirs for the data
    git(["checkout", "--ours", "mlver.lock", "params.yaml"], repo)
    proc = run(["status"], repo, check=False)
    assert proc.returncode == 3 and "d.txt.mlver:" in proc.stderr and "--theirs d.txt.mlver" in proc.stderr
    git(["checkout", "--theirs", "d.txt.mlver"], repo)
    run(["checkout", "d.txt"], repo)
    assert (repo / "d.txt").read_text() == "one\n"
    run(["repro"], repo)
    assert run_json(["status"], repo)["clean"]


def test_two_pointer_files_naming_one_path_are_refused_naming_both(repo: Path) -> None:
    gen(repo, {"a.txt": "1\n"})
    run(["add", "a.txt"], repo)
    (repo / "weird.mlver").write_text((repo / "a.txt.mlver").read_text())  # a copy, or a merge
    for args in (["status"], ["checkout"]):
        proc = run(args, repo, check=False)
        assert proc.returncode == 3 and "weird.mlver" in proc.stderr and "a.txt.mlver" in proc.stderr, proc.stderr
    assert (repo / "a.txt").read_text() == "1\n"


def test_a_cache_dir_that_is_a_file_is_named_as_the_config_problem(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    run(["config", "cache.dir", str(tmp_path / "not-a-folder")], repo)
    gen(repo, {"a.bin": b"data"})
    proc = run(["add", "a.bin"], repo, check=False)
    assert proc.returncode == 3 and "cache.dir:" in proc.stderr and "is not a folder" in proc.stderr, proc.stderr
    assert ".mlver/config" in proc.stderr.splitlines()[0]
    run(["config", "--unset", "cache.dir"], repo)  # the way out works
    run(["add", "a.bin"], repo)
