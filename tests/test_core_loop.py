"""The core loop through the real CLI: add, status, commit, checkout, diff, list."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import xxhash

from conftest import gen, git, run, run_json


def digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def test_add_writes_spec_pointer_and_gitignore(repo: Path) -> None:
    payload = os.urandom(300_000)
    gen(repo, {"data/train.csv": payload})
    proc = run(["add", "data/train.csv", "--desc", "raw training set, March export"], repo)
    assert "git add" in proc.stderr
    text = (repo / "data/train.csv.mlver").read_text()
    assert text == (
        "# mlver pointer: commit this file; the data lives in the mlver cache and remotes\n"
        "version: 1\npath: train.csv\nkind: file\nhash: xxh3-128\n"
        f"digest: {digest(payload)}\nsize: 300000\ndesc: raw training set, March export\n"
    )
    assert (repo / "data/.gitignore").read_text() == "/train.csv\n"
    obj = repo / ".mlver/cache/files/xxh3-128" / digest(payload)[:2] / digest(payload)[2:]
    assert obj.read_bytes() == payload
    assert obj.stat().st_mode & 0o222 == 0  # read-only once stored
    # Git sees the pointer, not the data
    status = git(["status", "--porcelain", "--untracked-files=all"], repo)
    assert "data/train.csv.mlver" in status and "data/train.csv\n" not in status


def test_readd_unchanged_is_noop_and_desc_survives(repo: Path) -> None:
    gen(repo, {"model.pkl": b"weights"})
    run(["add", "model.pkl", "--desc", "first model"], repo)
    before = (repo / "model.pkl.mlver").stat().st_mtime_ns
    proc = run(["add", "model.pkl"], repo)
    assert "Unchanged" in proc.stderr
    assert (repo / "model.pkl.mlver").stat().st_mtime_ns == before
    gen(repo, {"model.pkl": b"weights v2"})
    run(["add", "model.pkl"], repo)
    text = (repo / "model.pkl.mlver").read_text()
    assert "desc: first model" in text and digest(b"weights v2") in text
    run(["add", "model.pkl", "--desc", ""], repo)  # an empty description clears it
    assert "desc" not in (repo / "model.pkl.mlver").read_text()


def test_unknown_pointer_keys_are_kept(repo: Path) -> None:
    gen(repo, {"a.bin": b"one"})
    run(["add", "a.bin"], repo)
    p = repo / "a.bin.mlver"
    p.write_text(p.read_text() + "owner: team-vision\n")
    gen(repo, {"a.bin": b"two"})
    run(["add", "a.bin"], repo)
    assert p.read_text().endswith("owner: team-vision\n")
    assert digest(b"two") in p.read_text()


def test_directory_manifest_and_partial_status(repo: Path) -> None:
    files = {f"images/c{i % 3}/img{i}.bin": os.urandom(100 + i) for i in range(30)}
    gen(repo, files)
    run(["add", "images"], repo)
    ptr = (repo / "images.mlver").read_text()
    assert "kind: dir" in ptr and "files: 30" in ptr
    assert f"size: {sum(len(v) for v in files.values())}" in ptr
    assert run_json(["status"], repo)["clean"] is True
    gen(repo, {"images/c0/img0.bin": b"changed", "images/new.bin": b"new"})
    os.unlink(repo / "images/c1/img1.bin")
    doc = run_json(["status"], repo)
    assert doc["version"] == 1 and doc["clean"] is False
    [out] = doc["outputs"]
    assert out["path"] == "images" and out["kind"] == "dir" and out["state"] == "modified"
    assert {(f["path"], f["state"]) for f in out["files"]} == {
        ("images/c0/img0.bin", "modified"), ("images/new.bin", "new"), ("images/c1/img1.bin", "deleted")}
    assert run(["status", "--check"], repo, check=False).returncode == 1


def test_folder_status_from_the_memo_agrees_with_a_cold_start(repo: Path) -> None:
    files = {f"images/c{i % 3}/img{i}.bin": os.urandom(100 + i) for i in range(40)}
    gen(repo, files)
    time.sleep(0.3)  # nothing racy: the folder memo vouches for every file
    run(["add", "images"], repo)
    state_db = repo / ".mlver" / "tmp" / "state.db"
    assert state_db.exists()

    def files_status() -> set[tuple[str, str]]:
        [out] = run_json(["status"], repo)["outputs"]
        return {(f["path"], f["state"]) for f in out["files"]}

    # touched only (new mtime, same bytes): not a change, from the memo or cold
    os.utime(repo / "images/c2/img2.bin")
    assert run_json(["status"], repo)["clean"] is True
    gen(repo, {"images/c0/img0.bin": b"changed", "images/new.bin": b"new",
               "images/c1/img4.bin": files["images/c1/img4.bin"]})  # rewritten, same bytes
    os.unlink(repo / "images/c1/img1.bin")
    os.chmod(repo / "images/c2/img5.bin", 0o755)  # only the executable bit
    want = {("images/c0/img0.bin", "modified"), ("images/new.bin", "new"), ("images/c1/img1.bin", "deleted"),
            ("images/c2/img5.bin", "modified")}
    assert files_status() == want
    assert files_status() == want  # again, after the first status ran
    for f in state_db.parent.glob("state.db*"):
        f.unlink()
    assert files_status() == want  # cold: every file read again
    run(["commit"], repo)
    assert run_json(["status"], repo)["clean"] is True
    # every file re-created by checkout (new inodes, same bytes): clean, and the memo
    # rebuilt from those new rows still sees the next edit
    shutil.rmtree(repo / "images")
    run(["checkout"], repo)
    assert run_json(["status"], repo)["clean"] is True
    assert run_json(["status"], repo)["clean"] is True
    time.sleep(0.2)
    (repo / "images/c0/img3.bin").write_bytes(b"edited after checkout")
    assert files_status() == {("images/c0/img3.bin", "modified")}


def test_status_clean_is_one_line_and_check_passes(repo: Path) -> None:
    gen(repo, {"d.bin": b"x"})
    run(["add", "d.bin"], repo)
    proc = run(["status", "--check"], repo)
    assert proc.stdout.strip().count("\n") == 0 and proc.stdout.strip()


def test_file_round_trip_after_delete(repo: Path) -> None:
    payload = os.urandom(2_000_000)
    gen(repo, {"data/big.bin": payload, "data/dir/a.txt": "a", "data/dir/b/c.txt": "c"})
    run(["add", "data/big.bin", "data/dir"], repo)
    os.unlink(repo / "data/big.bin")
    shutil.rmtree(repo / "data/dir")
    assert {o["state"] for o in run_json(["status"], repo)["outputs"]} == {"deleted"}
    run(["checkout"], repo)
    assert (repo / "data/big.bin").read_bytes() == payload
    assert (repo / "data/dir/b/c.txt").read_text() == "c"
    assert run_json(["status"], repo)["clean"] is True


def test_two_versions_across_git_checkout(repo: Path) -> None:
    gen(repo, {"data/x.csv": "v1\n", "data/folder/a": "a1", "data/folder/b": "b1"})
    run(["add", "data/x.csv", "data/folder"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "v1"], repo)
    gen(repo, {"data/x.csv": "v2\n", "data/folder/a": "a2", "data/folder/c": "c2"})
    os.unlink(repo / "data/folder/b")
    proc = run(["commit", "-m", "v2"], repo)
    assert "Committed" in proc.stderr
    assert "v2" in git(["log", "-1", "--format=%s"], repo)
    git(["checkout", "-q", "HEAD~1"], repo)
    run(["checkout"], repo)
    assert (repo / "data/x.csv").read_text() == "v1\n"
    assert sorted(os.listdir(repo / "data/folder")) == ["a", "b"]
    assert (repo / "data/folder/a").read_text() == "a1"
    git(["checkout", "-q", "main"], repo)
    run(["checkout"], repo)
    assert (repo / "data/x.csv").read_text() == "v2\n"
    assert sorted(os.listdir(repo / "data/folder")) == ["a", "c"]


def test_checkout_touches_only_what_differs(repo: Path) -> None:
    gen(repo, {"keep.bin": b"k", "folder/a": "a", "folder/b": "b"})
    run(["add", "keep.bin", "folder"], repo)
    before = {p: (repo / p).stat().st_mtime_ns for p in ("keep.bin", "folder/a")}
    os.unlink(repo / "folder/b")
    proc = run(["checkout"], repo)
    assert proc.stdout.strip() == "A       folder/b"
    assert {p: (repo / p).stat().st_mtime_ns for p in before} == before


def test_commit_nothing_to_record_makes_no_empty_commit(repo: Path) -> None:
    gen(repo, {"a.bin": b"a"})
    run(["add", "a.bin"], repo)
    run(["commit", "-m", "add a"], repo)
    head = git(["rev-parse", "HEAD"], repo)
    proc = run(["commit", "-m", "again"], repo)
    assert "Nothing to commit" in proc.stderr
    assert git(["rev-parse", "HEAD"], repo) == head
    # the pointer is right but the cache lost its object: commit stores it again, and says so
    [obj] = [p for p in (repo / ".mlver" / "cache" / "files").rglob("*") if p.is_file()]
    obj.chmod(0o644)
    obj.unlink()
    assert run_json(["status"], repo)["outputs"][0]["state"] == "not_in_cache"
    proc = run(["commit"], repo)
    assert "Stored again what the cache lacked: a.bin" in proc.stderr
    assert run_json(["status"], repo)["clean"] is True


def test_commit_m_includes_code_the_user_staged(repo: Path) -> None:
    gen(repo, {"a.bin": b"a", "train.py": "print('hi')\n"})
    run(["add", "a.bin"], repo)
    git(["add", "train.py"], repo)
    run(["commit", "-m", "data and code"], repo)
    files = git(["show", "--name-only", "--format=", "HEAD"], repo).split()
    assert {"train.py", "a.bin.mlver", ".gitignore"} <= set(files)


def test_commit_untracked_target_suggests_add(repo: Path) -> None:
    gen(repo, {"loose.csv": "x"})
    proc = run(["commit", "loose.csv"], repo, check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("mlver: error: loose.csv: is not tracked")
    assert "mlver add loose.csv" in proc.stderr


def test_diff_between_revisions_and_workspace(repo: Path) -> None:
    gen(repo, {"d/a.txt": "a", "d/b.txt": "b", "d/c.txt": "c", "m.bin": b"m1"})
    run(["add", "d", "m.bin"], repo)
    run(["commit", "-m", "one"], repo)
    gen(repo, {"d/a.txt": "A", "d/new.txt": "n", "m.bin": b"m2"})
    os.unlink(repo / "d/b.txt")
    os.rename(repo / "d/c.txt", repo / "d/c2.txt")
    doc = run_json(["diff"], repo)
    assert doc["version"] == 1
    assert [a["path"] for a in doc["added"]] == ["d/new.txt"]
    assert [d["path"] for d in doc["deleted"]] == ["d/b.txt"]
    assert sorted(m["path"] for m in doc["modified"]) == ["d/a.txt", "m.bin"]
    assert doc["renamed"] == [{"path": "d/c2.txt", "old_path": "d/c.txt", "digest": digest(b"c"), "hash": "xxh3-128"}]
    run(["commit", "-m", "two"], repo)
    doc2 = run_json(["diff", "HEAD~1", "HEAD"], repo)
    assert {k: len(v) for k, v in doc2.items() if k != "version"} == {
        "added": 1, "deleted": 1, "modified": 2, "renamed": 1}
    assert run_json(["diff", "HEAD"], repo)["modified"] == []


def test_list_shows_outputs(repo: Path) -> None:
    gen(repo, {"a.bin": b"aaaa", "f/x": "1", "f/y": "22"})
    run(["add", "a.bin", "f"], repo)
    os.unlink(repo / "a.bin")
    doc = run_json(["list"], repo)
    rows = {o["path"]: o for o in doc["outputs"]}
    assert rows["a.bin"]["state"] == "deleted" and rows["a.bin"]["size"] == 4 and rows["a.bin"]["kind"] == "file"
    assert rows["f"]["files"] == 2 and rows["f"]["size"] == 3 and rows["f"]["state"] == "ok"
    assert "a.bin" in run(["list"], repo).stdout


def test_mlverignore_leaves_files_out(repo: Path) -> None:
    gen(repo, {".mlverignore": "*.tmp\ncache/\n", "ds/a.csv": "a", "ds/b.tmp": "b", "ds/cache/x": "x"})
    run(["add", "ds"], repo)
    assert "files: 1" in (repo / "ds.mlver").read_text()
    gen(repo, {"ds/c.tmp": "c"})
    assert run_json(["status"], repo)["clean"] is True


def test_remove_keeps_data_and_drops_gitignore_entry(repo: Path) -> None:
    gen(repo, {"data/a.csv": "a", "data/b.csv": "b"})
    run(["add", "data/a.csv", "data/b.csv"], repo)
    run(["remove", "data/a.csv.mlver"], repo)
    assert (repo / "data/a.csv").read_text() == "a"
    assert not (repo / "data/a.csv.mlver").exists()
    assert (repo / "data/.gitignore").read_text() == "/b.csv\n"


def test_move_renames_data_and_pointer(repo: Path) -> None:
    gen(repo, {"data/a.csv": "a"})
    run(["add", "data/a.csv"], repo)
    (repo / "archive").mkdir()
    run(["move", "data/a.csv", "archive/old.csv"], repo)
    assert (repo / "archive/old.csv").read_text() == "a"
    assert "path: old.csv" in (repo / "archive/old.csv.mlver").read_text()
    assert not (repo / "data/a.csv.mlver").exists()
    assert (repo / "archive/.gitignore").read_text() == "/old.csv\n"
    assert "/a.csv" not in (repo / "data/.gitignore").read_text() if (repo / "data/.gitignore").exists() else True
    assert run_json(["status"], repo)["clean"] is True
    # pointer names on both sides move the data to the name without the suffix
    gen(repo, {"data/imgs/1.bin": b"1"})
    run(["add", "data/imgs"], repo)
    run(["move", "data/imgs.mlver", "data/images.mlver"], repo)
    assert (repo / "data/images/1.bin").read_bytes() == b"1" and (repo / "data/images.mlver").is_file()
    assert not (repo / "data/images.mlver.mlver").exists() and not (repo / "data/imgs.mlver").exists()
    assert "/images" in (repo / "data/.gitignore").read_text().split("\n")
    assert run_json(["status"], repo)["clean"] is True
    # a target that is not tracked: no `mlver add` hint
    proc = run(["remove", "nosuch.mlver"], repo, check=False)
    assert proc.returncode == 3 and "is not an mlver pointer file" in proc.stderr and "mlver add" not in proc.stderr


def test_autostage_stages_pointer_and_gitignore(repo: Path) -> None:
    run(["config", "core.autostage", "true"], repo)
    gen(repo, {"a.bin": b"a"})
    proc = run(["add", "a.bin"], repo)
    staged = git(["diff", "--cached", "--name-only"], repo).split()
    assert {"a.bin.mlver", ".gitignore"} <= set(staged)
    assert "Staged:" in proc.stderr and "git add" not in proc.stderr
    git(["commit", "-q", "-m", "a"], repo)
    # commit and move stage what they rewrite, and say so instead of the `git add` hint
    gen(repo, {"a.bin": b"a2"})
    proc = run(["commit"], repo)
    assert "Staged: a.bin.mlver" in proc.stderr and "git add" not in proc.stderr
    assert "a.bin.mlver" in git(["diff", "--cached", "--name-only"], repo).split()
    proc = run(["move", "a.bin", "b.bin"], repo)
    assert "Staged:" in proc.stderr and "git add" not in proc.stderr
    assert {"a.bin.mlver", "b.bin.mlver"} <= set(git(["diff", "--cached", "--name-only", "--no-renames"], repo).split())


def test_checkout_rev_brings_old_version(repo: Path) -> None:
    gen(repo, {"m.bin": b"old"})
    run(["add", "m.bin"], repo)
    run(["commit", "-m", "old"], repo)
    gen(repo, {"m.bin": b"new"})
    run(["commit", "-m", "new"], repo)
    run(["checkout", "--rev", "HEAD~1", "m.bin"], repo)
    assert (repo / "m.bin").read_bytes() == b"old"
    assert digest(b"old") in (repo / "m.bin.mlver").read_text()


def test_subdirectory_and_C_option(repo: Path) -> None:
    gen(repo, {"sub/dir/f.txt": "hello"})
    proc = run(["add", "f.txt"], repo / "sub/dir")
    assert (repo / "sub/dir/f.txt.mlver").exists()
    # the hint's paths are relative to where the user is, so it can be pasted there
    hint = proc.stderr.split("git add ", 1)[1].split()
    assert hint == [".gitignore", "f.txt.mlver"]
    git(["add", *hint], repo / "sub/dir")
    doc = run_json(["-C", str(repo / "sub"), "list"], repo.parent)
    assert doc["outputs"][0]["path"] == "sub/dir/f.txt"


def test_project_in_a_subfolder_of_the_git_repo(tmp_path: Path) -> None:
    root = tmp_path / "mono"
    (root / "ml").mkdir(parents=True)
    git(["init", "-q"], root)
    run(["init"], root / "ml")
    gen(root, {"ml/data/a.csv": "a"})
    run(["add", "data/a.csv"], root / "ml")
    assert [o["path"] for o in run_json(["list"], root / "ml")["outputs"]] == ["data/a.csv"]
    run(["commit", "-m", "data"], root / "ml")
    gen(root, {"ml/data/a.csv": "b"})
    assert run_json(["status"], root / "ml")["outputs"][0]["state"] == "modified"
    assert [m["path"] for m in run_json(["diff"], root / "ml")["modified"]] == ["data/a.csv"]


def test_names_git_would_read_as_patterns_or_windows_paths(repo: Path) -> None:
    git(["commit", "-q", "--allow-empty", "-m", "base"], repo)
    gen(repo, {"[xy]": "1", "y": "y", "C:x": "drive-like", "d/a:b": "colon", "d/\\back": "slash"})
    run(["add", "[xy]", "y", "C:x", "d"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    assert run_json(["status"], repo)["clean"] is True
    # `[xy]` is a file name, not a pattern matching `y`: only its pointer is committed
    (repo / "y.mlver").write_text((repo / "y.mlver").read_text() + "note: wip\n")
    gen(repo, {"[xy]": "2"})
    run(["commit", "-m", "only xy", "[xy]"], repo)
    assert git(["show", "--name-only", "--format=", "HEAD"], repo).split() == ["[xy].mlver"]
    # a file named `*` is not "tracked by Git" because other files are
    gen(repo, {"*": "star"})
    run(["add", "*"], repo)
    # names that are drive letters or backslashes only on Windows round-trip elsewhere
    for p in ("C:x", "d"):
        shutil.rmtree(repo / p) if (repo / p).is_dir() else (repo / p).unlink()
    run(["checkout"], repo)
    assert (repo / "C:x").read_text() == "drive-like" and (repo / "d/a:b").read_text() == "colon"
    assert (repo / "d/\\back").read_text() == "slash"
    assert run(["list"], repo).returncode == 0


def test_empty_folder_round_trips(repo: Path, tmp_path: Path) -> None:
    (repo / "e").mkdir()
    run(["add", "e"], repo)
    run(["commit", "-m", "empty"], repo)
    os.rmdir(repo / "e")
    assert run_json(["status"], repo)["outputs"][0]["state"] == "deleted"
    assert "A       e" in run(["checkout"], repo).stdout
    assert (repo / "e").is_dir() and run(["status", "--check"], repo).returncode == 0
    # and through a remote into a fresh clone
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    git(["commit", "-q", "-am", "remote"], repo)
    run(["push"], repo)
    git(["clone", "-q", str(repo), str(tmp_path / "clone")], tmp_path)
    run(["pull"], tmp_path / "clone")
    assert (tmp_path / "clone/e").is_dir() and run(["status", "--check"], tmp_path / "clone").returncode == 0


@pytest.mark.parametrize("desc", ["- dash", "@x", "-", "-x ok", "a - b"])
def test_desc_round_trips_through_any_yaml_reader(repo: Path, desc: str) -> None:
    import yaml

    gen(repo, {"f": "x\n"})
    run(["add", "--desc", desc, "f"], repo)
    assert yaml.safe_load((repo / "f.mlver").read_text())["desc"] == desc
    assert run_json(["list", "--json"], repo) is not None
