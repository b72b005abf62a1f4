"""mlver.api, the mlver:// filesystem and `mlver ls`, in real Git repositories: data of the
workspace, of old commits and tags, of a clone that never pulled (streamed from a folder
remote or from moto's S3 server), of another repository by Git URL; compared byte for
byte with what `git checkout` + `mlver checkout/pull` put in a workspace."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import mlver.api as api
from conftest import gen, git, run, run_json
from mlver.errors import (ChecksumMismatch, NotARepoError, ObjectMissing, PathError, PathIsFolder, PathNotTracked,
                          RevisionNotFound, UsageError)

fsspec = pytest.importorskip("fsspec")


def _register() -> None:
    # `pip install mlver` registers the protocol through the fsspec.specs entry point; the
    # test venv may have been installed from another checkout, so name it here too
    fsspec.register_implementation("mlver", "mlver.filesystem.MlverFileSystem", clobber=True)


_register()

VERSIONS = [b"id,x\n1,10\n2,20\n", b"id,x\n1,11\n2,21\n3,31\n", b"id,x\n1,12\n"]


@pytest.fixture
def history(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Three commits of data/train.csv (the first tagged v1) and a folder data/parts that
    changes in the second; every commit's data pushed to a folder remote. Returns (repo,
    remote)."""
    remote = tmp_path / "remote"
    run(["remote", "add", "-d", "store", str(remote)], repo)
    for i, content in enumerate(VERSIONS):
        files: dict[str, str | bytes] = {"data/train.csv": content}
        if i < 2:
            files.update({f"data/parts/p{j}.csv": f"a,b\n{j},{j * (i + 1)}\n" for j in range(3)})
        gen(repo, files)
        run(["add", "data/train.csv", "data/parts"], repo)
        gen(repo, {"src/train.py": f"print({i})\n"})
        git(["add", "-A"], repo)
        git(["commit", "-q", "-m", f"v{i + 1}"], repo)
        if i == 0:
            git(["tag", "v1"], repo)
    run(["push", "--all-commits"], repo)
    return repo, remote


def _clone(src: Path | str, dest: Path) -> Path:
    git(["clone", "-q", str(src), str(dest)], dest.parent)
    return dest


def _checked_out(repo: Path, rev: str, tmp_path: Path, rel: str) -> bytes:
    """The bytes `git checkout REV` + `mlver pull` give in a fresh clone."""
    where = tmp_path / f"co-{rev.replace('~', '_')}"
    if not where.exists():
        _clone(repo, where)
        git(["checkout", "-q", rev], where)
        run(["pull"], where)
    return (where / rel).read_bytes()


def _cache_objects(repo: Path) -> list[Path]:
    cache = repo / ".mlver" / "cache" / "files"
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


# --- mlver.api --------------------------------------------------------------------------

def test_read_at_workspace_old_commit_and_tag(history: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ = history
    gen(repo, {"data/train.csv": b"edited, not committed\n"})
    monkeypatch.chdir(repo)
    assert api.read("data/train.csv") == b"edited, not committed\n"  # rev=None: the workspace's bytes
    for rev in ("HEAD", "HEAD~2", "v1", "HEAD~1"):
        expected = _checked_out(repo, rev, tmp_path, "data/train.csv")
        assert api.read("data/train.csv", rev=rev) == expected
        assert api.read("data/parts/p2.csv", repo=str(repo), rev=rev) == \
            _checked_out(repo, rev, tmp_path, "data/parts/p2.csv")
    assert api.read("data/train.csv", rev="v1", mode="r") == VERSIONS[0].decode()
    assert api.read("src/train.py", rev="HEAD~2") == b"print(0)\n"  # a plain Git file
    with api.open("data/train.csv", rev="HEAD~1") as f:
        f.seek(5)
        assert f.read(4) == VERSIONS[1][5:9]
        f.seek(0)
        assert f.read() == VERSIONS[1]
    assert api.exists("data/parts/p1.csv", rev="v1") and api.exists("data/parts", rev="v1")
    assert not api.exists("data/parts/p9.csv", rev="v1") and not api.exists("nope", rev="v1")


def test_workspace_reads_write_nothing(history: tuple[Path, Path], tmp_path: Path) -> None:
    """The API is read-only: reading a clone's workspace makes no state database (nor
    anything else) under .mlver/ and leaves `git status` as it was."""
    import subprocess
    import sys

    repo, _ = history
    clone = _clone(repo, tmp_path / "ro")
    run(["pull"], clone)
    shutil.rmtree(clone / ".mlver" / "tmp", ignore_errors=True)
    before = sorted(str(p.relative_to(clone)) for p in (clone / ".mlver").rglob("*"))
    status = git(["status", "--porcelain", "--ignored"], clone)
    code = ("import mlver.api as a; a.read('data/train.csv'); a.exists('data/parts/p1.csv'); a.ls('data');"
            "a.metrics_show(); a.params_show()")
    subprocess.run([sys.executable, "-c", code], cwd=clone, check=True, timeout=120)
    assert sorted(str(p.relative_to(clone)) for p in (clone / ".mlver").rglob("*")) == before
    assert git(["status", "--porcelain", "--ignored"], clone) == status


def test_a_branch_only_on_the_remote_is_a_revision(history: tuple[Path, Path], tmp_path: Path) -> None:
    """A CI clone has `origin/feature` and no local `feature`: `rev="feature"` (and every
    command's revision) finds it when one remote has that branch, as DVC's resolver does."""
    repo, _ = history
    git(["branch", "feature", "HEAD~1"], repo)
    clone = _clone(repo, tmp_path / "ci")
    assert "feature" not in git(["branch", "--list", "feature"], clone)
    assert api.read("data/train.csv", repo=str(clone), rev="feature") == VERSIONS[1]
    run(["get", "--rev", "feature", "data/train.csv", "-o", str(tmp_path / "got.csv")], clone)
    assert (tmp_path / "got.csv").read_bytes() == VERSIONS[1]


def test_never_pulled_clone_streams_from_the_folder_remote(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, remote = history
    clone = _clone(repo, tmp_path / "fresh")
    for rev in ("HEAD", "HEAD~1", "v1"):
        assert api.read("data/train.csv", repo=str(clone), rev=rev) == \
            _checked_out(repo, rev, tmp_path, "data/train.csv")
        assert api.read("data/parts/p0.csv", repo=str(clone), rev=rev) == \
            _checked_out(repo, rev, tmp_path, "data/parts/p0.csv")
    # rev=None in a clone that never pulled: the pointers' data, streamed
    assert api.read("data/train.csv", repo=str(clone)) == VERSIONS[2]
    assert _cache_objects(clone) == []  # streamed, never stored
    url = api.get_url("data/train.csv", repo=str(clone), rev="v1")
    assert url.startswith(str(remote) + "/files/xxh3-128/")
    assert Path(url).read_bytes() == VERSIONS[0]
    assert api.read("data/train.csv", repo=str(clone), rev="v1", cache=True) == VERSIONS[0]
    kept = _cache_objects(clone)
    assert [p.read_bytes() for p in kept] == [VERSIONS[0]]  # cache=True: kept for the next read
    shutil.rmtree(remote)
    assert api.read("data/train.csv", repo=str(clone), rev="v1") == VERSIONS[0]  # from the cache now


def test_git_url_of_another_repository(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = history
    url = f"file://{repo}"
    assert api.read("data/train.csv", repo=url) == VERSIONS[2]  # its default branch
    assert api.read("data/train.csv", repo=url, rev="v1") == VERSIONS[0]
    assert api.read("data/train.csv", repo=url, rev="HEAD~1") == VERSIONS[1]  # deeper than the shallow clone
    clones = list((Path(os.environ["HOME"]) / ".cache" / "mlver" / "repos").iterdir())
    assert len(clones) == 1 and (clones[0] / ".git").is_dir()
    # a new commit on the branch is seen on the next read (the clone is fetched, not re-made)
    gen(repo, {"data/train.csv": b"id,x\n9,99\n"})
    run(["add", "data/train.csv"], repo)
    git(["commit", "-q", "-am", "v4"], repo)
    run(["push"], repo)
    assert api.read("data/train.csv", repo=url, rev="main") == b"id,x\n9,99\n"
    assert list((Path(os.environ["HOME"]) / ".cache" / "mlver" / "repos").iterdir()) == clones
    with pytest.raises(RevisionNotFound) as e:
        api.read("data/train.csv", repo=url, rev="no-such-tag")
    assert e.value.rev == "no-such-tag" and e.value.repo == url


def test_params_and_metrics_show(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen(repo, {"params.yaml": "train:\n  lr: 0.1\n", "metrics.json": '{"acc": 0.5}\n',
               "mlver.yaml": "stages:\n  train:\n    cmd: echo\n    params: [train.lr]\n    metrics: [metrics.json]\n"})
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "one"], repo)
    gen(repo, {"params.yaml": "train:\n  lr: 0.2\n", "metrics.json": '{"acc": 0.7}\n'})
    monkeypatch.chdir(repo)
    assert api.params_show(rev="HEAD") == {"params.yaml": {"train.lr": 0.1}}
    assert api.params_show() == {"params.yaml": {"train.lr": 0.2}}
    assert api.metrics_show(repo=str(repo), rev="HEAD") == {"metrics.json": {"acc": 0.5}}
    # through a Git URL and a bare repository too (no workspace to list pipeline files in)
    bare = repo.parent / "bare.git"
    git(["clone", "-q", "--bare", str(repo), str(bare)], repo.parent)
    for where in (f"file://{repo}", str(bare)):
        assert api.params_show(repo=where, rev="HEAD") == {"params.yaml": {"train.lr": 0.1}}
        assert api.metrics_show(repo=where) == {"metrics.json": {"acc": 0.5}}


def test_every_error_type(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, remote = history
    clone = _clone(repo, tmp_path / "fresh")
    with pytest.raises(PathNotTracked) as nt:
        api.read("data/nope.csv", repo=str(clone), rev="v1")
    assert isinstance(nt.value, FileNotFoundError) and nt.value.path == "data/nope.csv" and nt.value.rev
    with pytest.raises(RevisionNotFound) as rnf:
        api.read("data/train.csv", repo=str(clone), rev="v9")
    assert rnf.value.rev == "v9"
    with pytest.raises(PathIsFolder):
        api.read("data/parts", repo=str(clone), rev="v1")
    # paths: `..` inside the repository is normalised, one leaving it is refused as such (not
    # "not tracked"), an absolute path is taken only inside the project; the root is a folder
    assert api.read("data/../src/train.py", repo=str(clone), rev="v1") == b"print(0)\n"
    for outside in ("../x", "data/../../x", "/src/train.py"):
        with pytest.raises(PathError, match="outside the repository") as pe:
            api.read(outside, repo=str(clone), rev="v1")
        assert not isinstance(pe.value, PathNotTracked)
    assert api.read(str(clone / "src" / "train.py"), repo=str(clone)) == (clone / "src" / "train.py").read_bytes()
    with pytest.raises(PathIsFolder):
        api.read(".", repo=str(clone))
    with pytest.raises(UsageError):
        with api.open("data/train.csv", repo=str(clone), mode="w"):
            pass
    with pytest.raises(NotARepoError):
        api.read("x", repo=str(tmp_path))
    with pytest.raises(PathIsFolder):
        api.get_url("data/parts", repo=str(clone), rev="v1")
    with pytest.raises(PathError, match="Git tracks"):
        api.get_url("src/train.py", repo=str(clone), rev="v1")

    # an object that is on no remote: its digest and the remote are fields
    gen(repo, {"data/train.csv": b"never pushed\n"})
    run(["add", "data/train.csv"], repo)
    git(["commit", "-q", "-am", "unpushed"], repo)
    git(["pull", "-q"], clone)
    with pytest.raises(ObjectMissing) as om:
        api.read("data/train.csv", repo=str(clone), rev="HEAD")
    assert om.value.remote == "store" and len(om.value.digest) == 32 and "never pushed" not in str(om.value)
    assert pickle.loads(pickle.dumps(om.value)).digest == om.value.digest  # comes back whole from a worker

    # damaged bytes on the remote: a read to the end fails, naming the object
    url = Path(api.get_url("data/train.csv", repo=str(clone), rev="v1"))
    url.chmod(0o644)
    url.write_bytes(VERSIONS[0].replace(b"1", b"7"))
    with pytest.raises(ChecksumMismatch) as cm:
        api.read("data/train.csv", repo=str(clone), rev="v1")
    assert cm.value.expected != cm.value.actual
    with api.open("data/train.csv", repo=str(clone), rev="v1") as f:
        f.seek(1)
        assert f.read(2) == b"d,"  # bytes that do not cover the object from its start cannot be checked


def test_ls_at_an_old_rev_json_and_api(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = history
    clone = _clone(repo, tmp_path / "fresh")
    doc = run_json(["ls", str(clone), "data/parts", "--rev", "v1"], tmp_path)
    assert doc["version"] == 1
    assert [e["path"] for e in doc["entries"]] == ["data/parts/p0.csv", "data/parts/p1.csv", "data/parts/p2.csv"]
    assert all(e["type"] == "file" and e["tracked"] and len(e["digest"]) == 32 and e["size"] == 8
               for e in doc["entries"])
    assert _cache_objects(clone) == []  # listed from the manifest, read from the remote in place
    top = {e["path"]: e for e in run_json(["ls", "data", "--rev", "HEAD~2"], clone)["entries"]}
    assert top["data/parts"]["type"] == "directory" and top["data/parts"]["tracked"]
    assert top["data/parts"]["size"] == 24 and top["data/train.csv"]["tracked"]
    assert top["data/train.csv.mlver"] == {"path": "data/train.csv.mlver", "type": "file",
                                           "size": top["data/train.csv.mlver"]["size"], "tracked": False,
                                           "digest": None, "hash": None}
    only = run_json(["ls", "-R", "--tracked-only", "--rev", "v1"], clone)["entries"]
    assert [e["path"] for e in only] == ["data/parts/p0.csv", "data/parts/p1.csv", "data/parts/p2.csv",
                                         "data/train.csv"]
    assert run(["ls", "data", "--rev", "v1"], clone).stdout.split() == [
        ".gitignore", "parts/", "parts.mlver", "train.csv", "train.csv.mlver"]
    assert api.ls("data/train.csv", repo=str(clone), rev="v1") == [
        {"path": "data/train.csv", "type": "file", "size": len(VERSIONS[0]), "tracked": True,
         "digest": top["data/train.csv"]["digest"], "hash": "xxh3-128"}]
    assert run(["ls", f"file://{repo}", "src", "--rev", "v1"], tmp_path).stdout.split() == ["train.py"]


def test_ls_errors_are_one_line(history: tuple[Path, Path]) -> None:
    repo, _ = history
    bad = run(["ls", "data/nope", "--rev", "v1"], repo, check=False)
    assert bad.returncode == 3 and bad.stderr.startswith("mlver: error: data/nope: is not tracked")
    assert bad.stdout == ""
    bad = run(["ls", "--rev", "v9"], repo, check=False)
    assert bad.returncode == 3 and bad.stderr.splitlines()[0] == "mlver: error: unknown revision 'v9'"
    bad = run(["ls", "a", "b", "c"], repo, check=False)
    assert bad.returncode == 2 and "at most REPO and PATH" in bad.stderr
    bad = run(["ls", "data", "-r", "nope"], repo, check=False)  # said even when no listing needs the remote
    assert bad.returncode == 3 and "remote 'nope' is not configured" in bad.stderr and bad.stdout == ""
    nowhere = repo.parent / "nowhere.git"  # git's cause, not its closing advice
    bad = run(["ls", f"file://{nowhere}"], repo, check=False)
    assert bad.returncode == 3 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert "does not appear to be a git repository" in bad.stderr and "access rights" not in bad.stderr


# --- the mlver:// filesystem ------------------------------------------------------------

def test_pandas_reads_two_revisions(history: tuple[Path, Path], tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    repo, _ = history
    clone = _clone(repo, tmp_path / "fresh")
    old = pd.read_csv("mlver://data/train.csv", storage_options={"repo": str(clone), "rev": "v1"})
    new = pd.read_csv("mlver://data/train.csv", storage_options={"repo": str(clone), "rev": "HEAD"})
    assert old["x"].tolist() == [10, 20] and new["x"].tolist() == [12]
    one_string = pd.read_csv(f"mlver://data/train.csv?rev=HEAD~1&repo=file://{repo}")
    assert one_string["x"].tolist() == [11, 21, 31]


def test_filesystem_listing_globs_and_ranges(history: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = history
    clone = _clone(repo, tmp_path / "fresh")
    fs = fsspec.filesystem("mlver", repo=str(clone), rev="v1")
    assert fs.glob("data/parts/*.csv") == ["data/parts/p0.csv", "data/parts/p1.csv", "data/parts/p2.csv"]
    assert fs.glob("data/parts/p?.csv") == fs.glob("data/parts/*.csv")
    assert fs.info("data/parts")["type"] == "directory" and fs.info("data/parts")["tracked"]
    assert fs.info("data/train.csv")["size"] == len(VERSIONS[0])
    assert fs.isdir("data") and fs.isfile("src/train.py") and not fs.exists("data/nope")
    assert "data/parts/p1.csv" in fs.find("data")
    assert fs.cat_file("data/train.csv", 3, 8) == VERSIONS[0][3:8]
    assert fs.cat_file("data/train.csv", -4) == VERSIONS[0][-4:]
    assert fs.cat("src/train.py") == b"print(0)\n"
    with fsspec.open("mlver://data/parts/p1.csv", "rt", repo=str(clone), rev="v1") as f:
        assert f.read() == "a,b\n1,1\n"
    with pytest.raises(FileNotFoundError):
        fs.cat_file("data/nope.csv")
    with pytest.raises(PermissionError):
        fs.open("data/train.csv", "wb")
    assert _cache_objects(clone) == []


def _read_all(fs: Any, path: str) -> bytes:
    return bytes(fs.cat_file(path))


def test_eight_threads_and_a_process_pool_through_one_filesystem(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    run(["remote", "add", "-d", "store", str(remote)], repo)
    files = {f"data/set/f{i:02d}.bin": os.urandom(50_000 + i) for i in range(16)}
    gen(repo, files)
    run(["add", "data/set"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "set"], repo)
    run(["push"], repo)
    clone = _clone(repo, tmp_path / "fresh")
    fs = fsspec.filesystem("mlver", repo=str(clone), rev="HEAD")
    paths = sorted(files)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: _read_all(fs, p), paths * 2))
    assert got == [files[p] for p in paths * 2]
    shipped = pickle.loads(pickle.dumps(fs))
    assert shipped.storage_options["rev"] == git(["rev-parse", "HEAD"], repo).strip()  # pinned to the commit
    # a relative repo (or none: the current folder's project) is pinned by its absolute path,
    # so a worker started in another folder opens the same project; passing the pickled
    # filesystem on (a Dask scheduler) does not open the project again
    here = os.getcwd()
    os.chdir(clone)
    try:
        relative = [fsspec.filesystem("mlver", repo=".", rev="HEAD"), fsspec.filesystem("mlver", rev="HEAD")]
        blobs = [pickle.dumps(f) for f in relative]
    finally:
        os.chdir(here)
    for blob in blobs:
        again = pickle.loads(blob)
        assert again.storage_options["repo"] == str(clone) and _read_all(again, paths[0]) == files[paths[0]]
    moved = tmp_path / "moved"
    shutil.move(str(clone), moved)  # the project is gone from where the pickle says: re-pickling still works
    assert pickle.loads(pickle.dumps(pickle.loads(blobs[0]))).storage_options["repo"] == str(clone)
    shutil.move(str(moved), clone)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as procs:
        got = procs.starmap(_read_all, [(fs, p) for p in paths])
    assert got == [files[p] for p in paths]


def test_a_never_pulled_clone_reads_packed_objects(repo: Path, tmp_path: Path) -> None:
    """Small objects travel in packs: the API reads their range of the pack (verified),
    and get_url says where in which pack they are."""
    from mlver import packs

    remote = tmp_path / "packed"
    run(["remote", "add", "-d", "store", str(remote)], repo)
    files = {f"data/many/f{i:03}.txt": f"row {i}\n" for i in range(packs.PACK_MIN_OBJECTS + 5)}
    gen(repo, files)
    run(["add", "data/many"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-qm", "many"], repo)
    run(["push"], repo)
    assert list(remote.glob("packs/**/*")), "expected the small files in a pack"
    clone = _clone(repo, tmp_path / "fresh")
    assert api.read("data/many/f007.txt", repo=str(clone), rev="HEAD") == b"row 7\n"
    assert _cache_objects(clone) == []
    with pytest.raises(api.PackedObject) as info:
        api.get_url("data/many/f007.txt", repo=str(clone), rev="HEAD")
    err = info.value
    assert err.length == len(b"row 7\n") and err.offset >= 0 and "packs/" in err.url
    with open(err.url, "rb") as f:  # the range the error names holds the bytes
        f.seek(err.offset)
        assert f.read(err.length) == b"row 7\n"
    assert api.read("data/many/f008.txt", repo=str(clone), rev="HEAD", cache=True) == b"row 8\n"
    assert [p.read_bytes() for p in _cache_objects(clone)] == [b"row 8\n"]
