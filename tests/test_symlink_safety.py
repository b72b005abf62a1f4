"""Writes never leave the repository through a symlink (SPEC guarantee 4, issue 11 item 1):
the reported cases, each writing command, a property-style run of every writing command
over a repo full of links to a canary folder, a seeded CLI fuzzer, a link swapped in
while checkout runs — and `cache.type symlink` links whose object is gone."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json

# --- helpers ---------------------------------------------------------------------------


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry below ``top``: its kind, mode and content (sha256) or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
    out["."] = ("top", stat.S_IMODE(os.lstat(top).st_mode))
    return out


def make_canary(tmp_path: Path) -> Path:
    """A folder outside the repository holding files named like the repository's data
    (same names, other bytes) plus files of its own, and a pointer an attacker left."""
    canary = tmp_path / "canary"
    files = {"a.bin": b"canary a\n", "b/c.bin": b"canary c\n", "own.txt": b"not mlver's\n",
             "x": b"canary x\n", "keep/deep.txt": b"deep\n", "gitignore": b"# someone else's\n"}
    for rel, data in files.items():
        (canary / rel).parent.mkdir(parents=True, exist_ok=True)
        (canary / rel).write_bytes(data)
    (canary / "ro.txt").write_bytes(b"read-only\n")
    (canary / "ro.txt").chmod(0o444)
    return canary


def assert_clean_outcome(proc: subprocess.CompletedProcess[str], what: str = "") -> None:
    assert proc.returncode in (0, 1, 3), f"{what}: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, f"{what}:\n{proc.stderr}"
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    if proc.returncode == 3:
        assert len(errors) == 1, f"{what}: want one error line\n{proc.stderr}"


def assert_refused(proc: subprocess.CompletedProcess[str], name: str) -> None:
    assert proc.returncode == 3, proc
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and name in errors[0], proc.stderr


def tracked_folder(repo: Path) -> None:
    gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n"})
    run(["add", "d"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "d"], repo)


def escape_pointer(repo: Path, canary: Path, name: str = "escape-link") -> None:
    """``NAME.mlver`` with the digest of ``d`` and ``path: NAME``, NAME a link to the canary."""
    text = (repo / "d.mlver").read_text().replace("path: d\n", f"path: {name}\n")
    (repo / f"{name}.mlver").write_text(text)
    os.symlink(canary, repo / name)


# --- the reported cases ------------------------------------------------------------------


def test_checkout_refuses_a_tracked_folder_that_is_a_link_out(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    tracked_folder(repo)
    escape_pointer(repo, canary)
    for cmd in (["checkout"], ["checkout", "--force"], ["checkout", "escape-link"], ["status"]):
        proc = run(cmd, repo, check=False)
        assert_refused(proc, "escape-link: is a symbolic link to")
        assert "outside the repository" in proc.stderr
        assert snapshot(canary) == before, cmd
    # refused before anything was written: the other output is untouched too
    assert (repo / "d/a.bin").read_bytes() == b"data a\n"


def test_clone_with_committed_folder_link_pull_and_force_checkout_write_nothing(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    tracked_folder(repo)
    run(["push"], repo)
    # the folder is replaced by a link to the canary, committed in Git
    shutil.rmtree(repo / "d")
    os.symlink(canary, repo / "d")
    git(["add", "-f", "d"], repo)
    git(["commit", "-q", "-m", "d is a link"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    assert (clone / "d").is_symlink()
    before = snapshot(canary)
    for cmd in (["pull"], ["checkout", "--force"], ["checkout"], ["fetch"]):
        proc = run(cmd, clone, check=False)
        if cmd == ["fetch"]:
            assert proc.returncode == 0, proc  # fetching writes only the cache
        else:
            assert_refused(proc, "d: is a symbolic link to")
        assert snapshot(canary) == before, cmd


def test_a_committed_folder_link_to_code_inside_the_repo_is_never_written_through(repo: Path, tmp_path: Path) -> None:
    """A tracked folder replaced in Git by a link to another folder of the repository
    (source code): pull and checkout --force refuse it by name and leave that folder as it is."""
    gen(repo, {"src/train.py": 'print("good")\n'})
    git(["add", "src"], repo)
    git(["commit", "-qm", "code"], repo)
    gen(repo, {"imgs/train.py": 'print("evil")\n'})
    run(["add", "imgs"], repo)
    run(["remote", "add", "-d", "store", str(tmp_path / "store")], repo)
    run(["push"], repo)
    shutil.rmtree(repo / "imgs")
    os.symlink("src", repo / "imgs")
    git(["add", "-A"], repo)
    git(["add", "-f", "imgs"], repo)
    git(["commit", "-qm", "imgs is a link to src"], repo)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(repo), str(clone)], tmp_path)
    before = snapshot(clone / "src")
    for cmd in (["pull"], ["checkout", "--force"], ["checkout"], ["pull", "--force"]):
        proc = run(cmd, clone, check=False)
        assert_refused(proc, "imgs: is a symbolic link to src")
        assert snapshot(clone / "src") == before, cmd
    assert (clone / "src/train.py").read_text() == 'print("good")\n'
    assert git(["status", "--porcelain"], clone) == ""


def test_pointer_in_a_folder_that_became_a_link_out(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    gen(repo, {"data/x": b"real x\n"})
    run(["add", "data/x"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "x"], repo)
    shutil.copy(repo / "data/x.mlver", canary / "x.mlver")
    shutil.rmtree(repo / "data")
    os.symlink(canary, repo / "data")
    before = snapshot(canary)
    for cmd in (["checkout"], ["checkout", "--force"], ["status"], ["add", "data/x"], ["remove", "data/x.mlver"]):
        proc = run(cmd, repo, check=False)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, (cmd, proc)
        assert "data" in proc.stderr and ("repository" in proc.stderr), proc.stderr
        assert snapshot(canary) == before, cmd


def test_gitignore_that_is_a_link_out_is_neither_edited_nor_replaced(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    gen(repo, {"sub/f.bin": b"f\n", "g.bin": b"g\n"})
    os.symlink(canary / "gitignore", repo / "sub/.gitignore")
    before = snapshot(canary)
    proc = run(["add", "sub/f.bin"], repo, check=False)
    assert_refused(proc, "sub/.gitignore: is a symbolic link to")
    assert not (repo / "sub/f.bin.mlver").exists()  # refused before the pointer was written
    assert (repo / "sub/.gitignore").is_symlink()
    # remove and move of data beside such a .gitignore: refused too, nothing moved
    run(["add", "g.bin"], repo)
    os.unlink(repo / ".gitignore")
    os.symlink(canary / "gitignore", repo / ".gitignore")
    proc = run(["remove", "g.bin.mlver"], repo, check=False)
    assert_refused(proc, ".gitignore: is a symbolic link to")
    assert (repo / "g.bin.mlver").exists()
    proc = run(["move", "g.bin", "h.bin"], repo, check=False)
    assert_refused(proc, ".gitignore: is a symbolic link to")
    assert (repo / "g.bin").exists() and not (repo / "h.bin").exists()
    assert snapshot(canary) == before


# --- each writing command ----------------------------------------------------------------


def test_move_remove_unprotect_get_refuse_links_out(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    tracked_folder(repo)
    os.symlink(canary, repo / "out")
    escape_pointer(repo, canary)
    before = snapshot(canary)
    proc = run(["move", "d", "out/d"], repo, check=False)
    assert proc.returncode == 3 and "outside the repository" in proc.stderr and "Traceback" not in proc.stderr
    assert (repo / "d/a.bin").exists()
    assert_refused(run(["unprotect", "escape-link"], repo, check=False), "escape-link: is a symbolic link to")
    assert_refused(run(["remove", "escape-link.mlver"], repo, check=False), "escape-link: is a symbolic link to")
    assert (repo / "escape-link.mlver").exists()
    proc = run(["get", "d", "-o", "out/got"], repo, check=False)
    assert_refused(proc, "out: is a symbolic link to")
    proc = run(["get", "d", "-o", "out/x", "--force"], repo, check=False)
    assert_refused(proc, "out: is a symbolic link to")
    assert snapshot(canary) == before
    # get without -o writes beside the user, in the repository
    (repo / "sub").mkdir()
    run(["get", "../d"], repo / "sub")
    assert (repo / "sub/d/b/c.bin").read_bytes() == b"data c\n"


def test_repro_outputs_never_land_outside(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    os.symlink(canary, repo / "out")
    gen(repo, {"mlver.yaml": "stages:\n  s:\n    cmd: echo hi > out/x\n    outs: [out/x]\n"})
    proc = run(["repro"], repo, check=False)
    assert proc.returncode == 3 and "outside the repository" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(canary) == before
    # an output that is itself a link to the canary: the link is removed, never written through
    os.unlink(repo / "out")
    os.symlink(canary, repo / "res")
    gen(repo, {"mlver.yaml": "stages:\n  s:\n    cmd: mkdir -p res && echo hi > res/o\n    outs: [res]\n"})
    run(["repro"], repo)
    assert not (repo / "res").is_symlink() and (repo / "res/o").read_text() == "hi\n"
    assert snapshot(canary) == before
    # restoring it from the run cache through a link swapped in: refused
    shutil.rmtree(repo / "res")
    os.symlink(canary, repo / "res")
    proc = run(["checkout", "res"], repo, check=False)
    assert_refused(proc, "res: is a symbolic link to")
    assert snapshot(canary) == before


def test_post_checkout_hook_refuses_a_branch_whose_folder_is_a_link_out(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    tracked_folder(repo)
    run(["install"], repo)
    git(["checkout", "-q", "-b", "evil"], repo)
    escape_pointer(repo, canary)
    git(["add", "-f", "escape-link", "escape-link.mlver"], repo)
    git(["commit", "-q", "--no-verify", "-m", "evil"], repo)
    git(["checkout", "-q", "main"], repo)
    before = snapshot(canary)
    proc = subprocess.run(["git", "checkout", "-q", "evil"], cwd=repo, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "escape-link: is a symbolic link to" in errors[0], proc.stderr
    assert snapshot(canary) == before
    proc = subprocess.run(["git", "merge", "-q", "main"], cwd=repo, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
    assert snapshot(canary) == before


def test_cleanup_of_vanished_data_never_follows_a_link(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    tracked_folder(repo)
    os.unlink(repo / "d.mlver")  # d vanished: checkout would remove the data mlver placed...
    shutil.rmtree(repo / "d")
    os.symlink(canary, repo / "d")  # ... but d now leads to the canary, which holds a.bin and b/c.bin
    before = snapshot(canary)
    for cmd in (["checkout"], ["checkout", "--force"], ["gc", "-w", "-f"]):
        proc = run(cmd, repo, check=False)
        assert_clean_outcome(proc, " ".join(cmd))
        assert snapshot(canary) == before, cmd
    assert (repo / "d").is_symlink()


def test_a_link_swapped_in_while_checkout_runs_never_lets_a_write_out(repo: Path, tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    gen(repo, {f"d/{i:02}.bin": os.urandom(64) for i in range(30)})
    gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n"})
    run(["add", "d"], repo)
    before = snapshot(canary)
    stop = threading.Event()

    def swapper() -> None:
        d, aside = repo / "d", repo / "d-aside"
        while not stop.is_set():
            try:
                if d.is_dir() and not d.is_symlink():
                    os.rename(d, aside)
                    os.symlink(canary, d)
                elif d.is_symlink():
                    os.unlink(d)
                    if aside.exists():
                        os.rename(aside, d)
            except OSError:
                pass

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    try:
        for i in range(12):
            proc = run(["checkout", "--force"] if i % 2 else ["checkout"], repo, check=False)
            assert_clean_outcome(proc, f"checkout round {i}")
            assert snapshot(canary) == before, f"round {i}"
    finally:
        stop.set()
        t.join()
    assert snapshot(canary) == before


# --- property: every writing command over a repo full of links to a canary ----------------


def hostile_repo(repo: Path, tmp_path: Path) -> Path:
    """A repository with tracked data, then links to the canary everywhere: a tracked folder,
    a pointer target, a parent folder, a .gitignore, a stage output's folder."""
    canary = make_canary(tmp_path)
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n", "f.bin": b"f\n", "sub/g.bin": b"g\n",
               "params.yaml": "lr: 1\n",
               "mlver.yaml": "stages:\n  s:\n    cmd: mkdir -p m && echo 1 > m/o\n    params: [lr]\n    outs: [m]\n"})
    run(["add", "d", "f.bin", "sub/g.bin"], repo)
    run(["repro"], repo)
    run(["push"], repo)
    run(["install"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    escape_pointer(repo, canary)  # a pointer whose target is a link out
    shutil.rmtree(repo / "m")
    os.symlink(canary, repo / "m")  # a stage output folder
    os.unlink(repo / "sub/.gitignore")
    os.symlink(canary / "gitignore", repo / "sub/.gitignore")  # a .gitignore
    os.symlink(canary, repo / "up")  # a parent folder
    gen(repo, {"sub/new.bin": b"new\n"})
    return canary


WRITING_COMMANDS = [
    ["add", "sub/new.bin"], ["add", "up/x"], ["add", "escape-link"], ["commit"], ["commit", "s"],
    ["checkout"], ["checkout", "--force"], ["checkout", "--relink"], ["checkout", "escape-link"], ["pull"],
    ["pull", "--force"], ["move", "f.bin", "up/f.bin"], ["move", "sub/g.bin", "sub/h.bin"],
    ["remove", "sub/g.bin.mlver"], ["remove", "escape-link.mlver"], ["unprotect", "escape-link"],
    ["unprotect", "m"], ["get", "d", "-o", "up/got"], ["get", "d", "-o", "m/got", "--force"], ["repro"],
    ["repro", "--force"], ["status"], ["list"], ["gc", "-w", "-f"], ["hook", "post-checkout", "FIRST", "HEAD", "1"],
    ["hook", "post-merge", "0"],
]


def test_every_writing_command_leaves_the_canary_byte_identical(repo: Path, tmp_path: Path) -> None:
    canary = hostile_repo(repo, tmp_path)
    before = snapshot(canary)
    outcomes = {}
    first = git(["rev-list", "--max-parents=0", "HEAD"], repo).strip()
    head = git(["rev-parse", "HEAD"], repo).strip()
    for cmd in WRITING_COMMANDS:
        cmd = [{"FIRST": first, "HEAD": head}.get(a, a) for a in cmd]
        proc = run(cmd, repo, check=False)
        assert_clean_outcome(proc, " ".join(cmd))
        assert snapshot(canary) == before, f"mlver {' '.join(cmd)} changed the canary"
        outcomes[" ".join(cmd)] = proc.returncode
    # the links are refused by the commands that would go through them
    for cmd in ("checkout", "checkout --force", "pull", "unprotect escape-link", "remove escape-link.mlver",
                "get d -o up/got"):
        assert outcomes[cmd] == 3, (cmd, outcomes)
    # git commands that run the hooks
    for args in (["checkout", "-q", "-b", "other"], ["checkout", "-q", "main"], ["merge", "-q", "other"]):
        proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert snapshot(canary) == before, args


# --- a seeded CLI fuzzer ------------------------------------------------------------------


FUZZ_COMMANDS = [["checkout"], ["checkout", "--force"], ["pull"], ["status"], ["add", "d"], ["repro"],
                 ["commit"], ["gc", "-w", "-f"], ["unprotect", "d"], ["remove", "p.mlver"],
                 ["move", "p", "q"], ["hook", "post-merge", "0"], ["list"]]
LINK_NAMES = ["link", "d", "p", "q", "m", "link/in"]


def _fuzz_files(rnd: random.Random, digest: str, dir_digest: str) -> dict[str, str]:
    name = rnd.choice(LINK_NAMES + ["d/b", "link/../d", "./p", "m/o", ""])
    kind = rnd.choice(["file", "dir", "dir", "bogus"])
    files = {
        "p.mlver": (f"version: 1\npath: {name}\nkind: {kind}\nhash: xxh3-128\n"
                    f"digest: {rnd.choice([digest, dir_digest, '0' * 32, 'zz'])}\nsize: {rnd.randint(-1, 99)}\n"
                    + ("files: 2\n" if kind == "dir" else "")),
        "params.yaml": rnd.choice(["lr: 1\n", "lr: [1, 2\n", "lr: {a: 1}\n", ": :\n", "lr: 2\n"]),
        "mlver.yaml": rnd.choice([
            "stages:\n  s:\n    cmd: mkdir -p m && echo 1 > m/o\n    params: [lr]\n    outs: [m]\n",
            f"stages:\n  s:\n    cmd: echo 1\n    deps: [{name or 'x'}]\n    outs: [{rnd.choice(LINK_NAMES)}]\n",
            "stages: [\n",
        ]),
        ".mlverignore": rnd.choice(["", "*.tmp\n", "b/\n", "!a.bin\n*\n", "[\n", "link\n", "**/c.bin\n"]),
    }
    if rnd.random() < 0.5:
        files["mlver.lock"] = rnd.choice([
            "schema: '2.0'\nstages: {}\n", "garbage: [\n",
            f"schema: '2.0'\nstages:\n  s:\n    cmd: echo 1\n    outs:\n    - path: {name or 'm'}\n"
            f"      hash: xxh3-128\n      digest: {dir_digest}\n      size: 4\n      files: 2\n      kind: dir\n",
        ])
    return files


def test_seeded_cli_fuzzer_over_symlinked_folders(repo: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("MLVER_FUZZ_SEED", random.SystemRandom().randrange(1 << 30)))
    rnd = random.Random(seed)
    canary = make_canary(tmp_path)
    gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n", "f.bin": b"f\n"})
    run(["add", "d", "f.bin"], repo)
    dir_digest = (repo / "d.mlver").read_text().split("digest: ")[1].split("\n")[0]
    digest = (repo / "f.bin.mlver").read_text().split("digest: ")[1].split("\n")[0]
    before = snapshot(canary)
    for i in range(30):
        # a fresh arrangement of links to the canary
        for name in ("link", "p", "q", "m"):
            p = repo / name
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
        if (repo / "d").is_symlink():
            (repo / "d").unlink()
            gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n"})
        for name in rnd.sample(["link", "p", "q", "m", "d"], rnd.randint(1, 4)):
            p = repo / name
            if p.is_symlink() or p.is_file():  # a fuzzed pointer may have made `d` a file
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
            target = canary if rnd.random() < 0.8 else canary / rnd.choice(["a.bin", "x", "missing"])
            os.symlink(target, p)
        gen(repo, _fuzz_files(rnd, digest, dir_digest))
        cmd = rnd.choice(FUZZ_COMMANDS)
        proc = run(cmd, repo, check=False, timeout=60)
        what = f"seed {seed} (MLVER_FUZZ_SEED={seed}), run {i}: mlver {' '.join(cmd)}"
        assert_clean_outcome(proc, what)
        assert snapshot(canary) == before, f"{what} changed the canary"


# --- cache.type symlink with an object gone from the cache ----------------------------------


def test_dangling_cache_links_are_reported_and_pull_repairs_them(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    run(["config", "cache.type", "symlink"], repo)
    gen(repo, {"d/a.bin": b"data a\n", "d/b/c.bin": b"data c\n", "f.bin": b"f\n"})
    run(["add", "d", "f.bin"], repo)
    run(["push"], repo)
    assert (repo / "d/a.bin").is_symlink() and (repo / "f.bin").is_symlink()
    for link in (repo / "d/a.bin", repo / "f.bin"):
        obj = Path(os.readlink(link))
        obj.chmod(0o644)
        obj.unlink()
    doc = run_json(["status"], repo)
    states = {o["path"]: (o["state"], [f["path"] for f in o["files"]]) for o in doc["outputs"]}
    assert states == {"d": ("not_in_cache", ["d/a.bin"]), "f.bin": ("not_in_cache", [])}
    proc = run(["status", "--check"], repo, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    listing = run(["list"], repo)
    assert "not in cache" in listing.stdout
    proc = run(["checkout"], repo, check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]) == 1
    assert "mlver pull" in proc.stderr and "d" in proc.stderr and "f.bin" in proc.stderr
    for target, shown in (("d", "d/a.bin"), ("f.bin", "f.bin")):
        proc = run(["add", target], repo, check=False)
        assert_refused(proc, f"{shown}: is a link into the cache, and its object is no longer there")
        assert "mlver pull" in proc.stderr
    run(["pull"], repo)
    assert (repo / "d/a.bin").read_bytes() == b"data a\n" and (repo / "f.bin").read_bytes() == b"f\n"
    assert run_json(["status"], repo)["clean"] is True
