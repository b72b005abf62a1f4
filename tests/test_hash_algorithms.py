"""Digests that carry their algorithm: xxh3-128 (default), sha256 (``core.hash``) and md5
objects in DVC 3's layout, side by side in one cache and remote, through the real CLI
(and the real ``dvc`` CLI for the DVC layout)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json


def sha256_tree(root: Path, rel: str) -> dict[str, str]:
    top = root / rel
    if top.is_file():
        return {rel: hashlib.sha256(top.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def objects_under(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()
                  and "tmp" not in p.relative_to(store).parts)


def pointer_fields(path: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


# --- sha256 through core.hash -----------------------------------------------------------

def test_core_hash_sha256_round_trips_add_push_pull(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    run(["config", "core.hash", "sha256"], repo)
    gen(repo, {"data/a.bin": os.urandom(5000), "data/sub/b.txt": "bee\n", "model.bin": os.urandom(70_000)})
    run(["add", "data", "model.bin"], repo)
    ptr = pointer_fields(repo / "model.bin.mlver")
    assert ptr["hash"] == "sha256"
    assert ptr["digest"] == hashlib.sha256((repo / "model.bin").read_bytes()).hexdigest()  # an independent hash
    assert pointer_fields(repo / "data.mlver")["hash"] == "sha256"
    assert len(pointer_fields(repo / "data.mlver")["digest"]) == 64
    h = ptr["digest"]
    assert (repo / ".mlver/cache/files/sha256" / h[:2] / h[2:]).is_file()
    listed = run_json(["list"], repo)["outputs"]
    assert {o["path"]: o["hash"] for o in listed} == {"data": "sha256", "model.bin": "sha256"}
    run(["remote", "add", "-d", "store", str(store)], repo)
    run(["push"], repo)
    assert any(o.startswith("files/sha256/") for o in objects_under(store))
    assert not any(o.startswith("files/xxh3-128/") for o in objects_under(store))
    git(["add", "-A"], repo)
    git(["commit", "-qm", "sha256 data"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    run(["pull"], clone)
    assert sha256_tree(clone, "data") == sha256_tree(repo, "data")
    assert sha256_tree(clone, "model.bin") == sha256_tree(repo, "model.bin")
    assert run_json(["status"], clone)["clean"] is True
    assert run_json(["fsck"], clone)["corrupt"] == []


def test_an_output_keeps_its_algorithm_when_core_hash_changes(repo: Path) -> None:
    gen(repo, {"a.txt": "one\n"})
    run(["add", "a.txt"], repo)
    assert pointer_fields(repo / "a.txt.mlver")["hash"] == "xxh3-128"
    run(["config", "core.hash", "sha256"], repo)
    (repo / "a.txt").write_text("two\n")
    run(["add", "a.txt"], repo)
    assert pointer_fields(repo / "a.txt.mlver")["hash"] == "xxh3-128"  # re-added: its own algorithm
    gen(repo, {"b.txt": "bee\n"})
    run(["add", "b.txt"], repo)
    assert pointer_fields(repo / "b.txt.mlver")["hash"] == "sha256"  # added afresh: core.hash
    assert run_json(["status"], repo)["clean"] is True


def test_unknown_hash_names_are_refused_with_one_line(repo: Path) -> None:
    bad = run(["config", "core.hash", "sha1"], repo, check=False)
    assert bad.returncode != 0 and "unknown hash 'sha1'" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2
    gen(repo, {"x.txt": "x\n"})
    run(["add", "x.txt"], repo)
    text = (repo / "x.txt.mlver").read_text()
    (repo / "x.txt.mlver").write_text(text.replace("hash: xxh3-128", "hash: sha1"))
    proc = run(["status"], repo, check=False)
    assert proc.returncode != 0
    assert "x.txt.mlver" in proc.stderr and "unknown hash 'sha1'" in proc.stderr
    (repo / "x.txt.mlver").write_text(text.replace("hash: xxh3-128", "hash: sha256"))  # 32 hex: not a sha256
    proc = run(["status"], repo, check=False)
    assert proc.returncode != 0 and "64 lower-case hex digits" in proc.stderr


def test_lock_entries_carry_their_own_hash_where_it_differs(repo: Path) -> None:
    """A stage whose dependency is md5... simulated by sha256 data: the lock's top-level
    hash stays the default and the entry says its own."""
    run(["config", "core.hash", "sha256"], repo)
    gen(repo, {"raw.txt": "raw\n"})
    run(["add", "raw.txt"], repo)
    run(["config", "core.hash", "xxh3-128"], repo)
    gen(repo, {"mlver.yaml": "stages:\n  copy:\n    cmd: cp raw.txt out.txt\n    deps: [raw.txt]\n    outs: [out.txt]\n"})
    run(["repro"], repo)
    lock = (repo / "mlver.lock").read_text()
    assert "\nhash: xxh3-128\n" in lock
    dep = lock.split("- path: raw.txt\n", 1)[1].split("- path", 1)[0]
    assert "hash: sha256" in dep  # compared in the algorithm raw.txt is tracked with
    assert hashlib.sha256(b"raw\n").hexdigest() in dep
    out = lock.split("- path: out.txt\n", 1)[1]
    assert "hash:" not in out.split("size:")[0]
    assert run_json(["status"], repo)["clean"] is True
    assert run_json(["repro"], repo)["ran"] == []


# --- md5 objects in DVC's layout --------------------------------------------------------

def _dvc(dvc_bin: str, args: list[str], cwd: Path) -> str:
    proc = subprocess.run([dvc_bin, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _pointers_from_dvc_files(root: Path) -> None:
    """What `import-dvc` writes for plain `.dvc` files, by hand: the md5 digests kept."""
    import yaml

    for dvcfile in (p for p in root.glob("*.dvc") if p.is_file()):
        out = yaml.safe_load(dvcfile.read_text())["outs"][0]
        md5 = out["md5"]
        kind = "dir" if md5.endswith(".dir") else "file"
        text = (f"version: 1\npath: {out['path']}\nkind: {kind}\nhash: md5\ndigest: {md5.removesuffix('.dir')}\n"
                f"size: {out['size']}\n" + (f"files: {out['nfiles']}\n" if kind == "dir" else ""))
        (root / f"{out['path']}.mlver").write_text(text)


@pytest.fixture
def dvc_project(tmp_path: Path, dvc_bin: str) -> tuple[Path, Path]:
    """A DVC 3 project (a folder and a file) pushed to a local DVC remote, plus mlver
    pointers that keep its md5 digests and its cache hard-linked into mlver's."""
    root, store = tmp_path / "proj", tmp_path / "dvc-store"
    root.mkdir()
    store.mkdir()
    git(["init", "-q"], root)
    git(["config", "user.email", "t@example.com"], root)
    git(["config", "user.name", "T"], root)
    _dvc(dvc_bin, ["init", "-q"], root)
    gen(root, {"images/a.bin": os.urandom(3000), "images/sub/b.txt": "bee\n", "images/c.txt": "sea\n",
               "model.bin": os.urandom(50_000)})
    _dvc(dvc_bin, ["add", "-q", "images", "model.bin"], root)
    _dvc(dvc_bin, ["remote", "add", "-q", "-d", "store", str(store)], root)
    _dvc(dvc_bin, ["push", "-q"], root)
    git(["add", "-A"], root)
    git(["commit", "-qm", "dvc project"], root)
    run(["init"], root)
    run(["remote", "add", "-d", "store", str(store)], root)
    _pointers_from_dvc_files(root)
    shutil.copytree(root / ".dvc/cache/files", root / ".mlver/cache/files", copy_function=os.link)
    git(["add", "-A"], root)
    git(["commit", "-qm", "mlver pointers"], root)
    return root, store


def test_md5_data_in_dvc_layout_is_status_clean_pushes_nothing_and_pulls(dvc_project: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    root, store = dvc_project
    before = objects_under(store)
    assert all(o.startswith("files/md5/") for o in before)
    assert run_json(["status"], root)["clean"] is True
    push = run_json(["push"], root)
    assert objects_under(store) == before  # no upload: DVC's remote already holds every object
    assert push.get("pushed", 0) == 0
    clone = tmp_path / "clone"
    git(["clone", "-q", str(root), str(clone)], tmp_path)
    run(["pull"], clone)
    assert sha256_tree(clone, "images") == sha256_tree(root, "images")
    assert sha256_tree(clone, "model.bin") == sha256_tree(root, "model.bin")
    assert run_json(["status"], clone)["clean"] is True
    listed = {o["path"]: o for o in run_json(["list"], clone)["outputs"]}
    assert listed["model.bin"]["hash"] == "md5"
    assert listed["model.bin"]["digest"] == hashlib.md5((root / "model.bin").read_bytes()).hexdigest()


def test_editing_one_file_of_an_md5_folder_keeps_md5_and_uploads_only_the_change(
        dvc_project: tuple[Path, Path], dvc_bin: str, tmp_path: Path) -> None:
    root, store = dvc_project
    before = set(objects_under(store))
    (root / "images/c.txt").write_text("changed\n")
    run(["add", "images"], root)
    ptr = pointer_fields(root / "images.mlver")
    assert ptr["hash"] == "md5"
    run(["push"], root)
    new = set(objects_under(store)) - before
    # the changed file and the new listing, nothing else (the other files are not re-sent)
    assert len(new) == 2 and all(o.startswith("files/md5/") for o in new)
    assert any(o.endswith(".dir") for o in new)
    listing = json.loads((store / "files/md5" / ptr["digest"][:2] / (ptr["digest"][2:] + ".dir")).read_text())
    assert {e["relpath"] for e in listing} == {"a.bin", "c.txt", "sub/b.txt"}
    # DVC reads the folder mlver recorded: same listing format, same digest
    (root / "images.dvc").write_text(f"outs:\n- md5: {ptr['digest']}.dir\n  size: {ptr['size']}\n"
                                     f"  nfiles: {ptr['files']}\n  hash: md5\n  path: images\n")
    shutil.rmtree(root / "images")
    _dvc(dvc_bin, ["pull", "-q", "images.dvc"], root)
    assert (root / "images/c.txt").read_text() == "changed\n"
    _dvc(dvc_bin, ["status", "-q"], root)


def test_corrupt_md5_objects_are_found_by_fsck_in_cache_and_on_the_remote(dvc_project: tuple[Path, Path]) -> None:
    root, store = dvc_project
    h = pointer_fields(root / "model.bin.mlver")["digest"]
    for top in (root / ".mlver/cache", store):
        obj = top / "files/md5" / h[:2] / h[2:]
        data = bytearray(obj.read_bytes())
        data[100] ^= 0xFF
        os.chmod(obj, 0o644)
        obj.unlink()  # a hard link shared with DVC's cache: replace, not write through
        obj.write_bytes(bytes(data))
    local = run(["fsck", "--json"], root, check=False)
    assert local.returncode == 1
    assert [c["digest"] for c in json.loads(local.stdout)["corrupt"]] == [h]
    assert json.loads(local.stdout)["corrupt"][0]["hash"] == "md5"
    cloud = run(["fsck", "--cloud", "--json"], root, check=False)
    assert cloud.returncode == 1
    assert h in [c["digest"] for c in json.loads(cloud.stdout)["corrupt"]]


def test_gc_keeps_md5_objects_that_history_references(dvc_project: tuple[Path, Path]) -> None:
    root, _ = dvc_project
    old = pointer_fields(root / "images.mlver")["digest"]
    (root / "images/c.txt").write_text("changed\n")
    run(["add", "images"], root)
    git(["add", "-A"], root)
    git(["commit", "-qm", "edit"], root)
    gen(root, {"scratch.bin": os.urandom(1000)})
    run(["add", "scratch.bin"], root)
    scratch = pointer_fields(root / "scratch.bin.mlver")["digest"]
    (root / "scratch.bin.mlver").unlink()  # never committed: garbage
    run(["gc", "--all-commits", "-f"], root)
    cache = root / ".mlver/cache/files"
    assert (cache / "md5" / old[:2] / (old[2:] + ".dir")).is_file()  # the pre-edit folder, in history
    assert not (cache / "xxh3-128" / scratch[:2] / scratch[2:]).exists()
    (root / "scratch.bin").unlink()
    git(["checkout", "-q", "HEAD~1"], root)
    run(["checkout"], root)
    assert (root / "images/c.txt").read_text() == "sea\n"
