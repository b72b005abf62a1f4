"""`.mlverignore` matching: the same answers as `git check-ignore` on generated patterns and
names (Git is real here), linear time on patterns that made the old regex translation
backtrack for minutes, and malformed patterns as one error line naming file and line."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import gen, git, run, run_json
from mlver.errors import FormatError
from mlver.ignore import IgnoreSpec

PIECES = ["a", "b", "ab", ".", "x", "*", "*", "**", "?", "[ab]", "[!a]", "[^b]", "[a-b]", "[b-a]",
          "[[:alpha:]]", "[[:digit:]]", "[]a]", "[a-]", "\\*", "\\?", "\\[", "/", "/", "-", " ", "\\ "]
NAME_CHARS = "ab.x*?[]!- 1"


def _pattern(rng: random.Random) -> str:
    p = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.15:
        p = "/" + p
    if rng.random() < 0.15:
        p = "**/" + p
    if rng.random() < 0.1:
        p = p + "/**"
    if rng.random() < 0.2:
        p = p + "/"
    if rng.random() < 0.2:
        p = "!" + p
    return p


def _name(rng: random.Random) -> str:
    while True:
        n = "".join(rng.choice(NAME_CHARS) for _ in range(rng.randint(1, 5)))
        if n not in (".", "..", ".git") and not n.startswith(".git"):
            return n


def _tree(rng: random.Random, root: Path) -> tuple[list[str], set[str]]:
    files: set[str] = set()
    dirs: set[str] = set()
    for _ in range(40):
        parts = [_name(rng) for _ in range(rng.randint(1, 4))]
        path = "/".join(parts)
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if path in dirs or path in files or prefixes & files:
            continue
        files.add(path)
        dirs |= prefixes
    for f in files:
        p = root.joinpath(*f.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return sorted(files | dirs), dirs


def _git_ignored(root: Path, paths: list[str]) -> set[str]:
    proc = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-z"], cwd=root,
                          input="\0".join(paths).encode() + b"\0", capture_output=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return {p.decode() for p in proc.stdout.split(b"\0") if p}


@pytest.mark.parametrize("seed", range(6))
def test_matches_git_check_ignore(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    compared = 0
    for trial in range(12):
        root = tmp_path / f"t{trial}"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        paths, dirs = _tree(rng, root)
        lines = []
        for _ in range(rng.randint(1, 5)):
            if rng.random() < 0.5 and paths:  # a pattern built from a real name matches more often
                lines.append(rng.choice(paths).replace("*", "\\*").replace("?", "\\?").replace("[", "\\["))
            else:
                lines.append(_pattern(rng))
        try:
            spec = IgnoreSpec(lines)
        except FormatError:
            continue  # a pattern Git never matches: refused by mlver (tested below)
        (root / ".gitignore").write_text("\n".join(lines) + "\n")
        expected = _git_ignored(root, paths)
        got = {p for p in paths if spec.ignored(p, p in dirs)}
        assert got == expected, f"seed {seed} trial {trial}: patterns {lines!r}"
        compared += 1
    assert compared >= 6, f"seed {seed}: too few comparisons"


@pytest.mark.parametrize("pattern,path,is_dir,ignored", [
    ("[[:alpha:]]*", "x1", False, True),
    ("[[:alpha:]]*", "1x", False, False),
    ("[!a]b", "cb", False, True),
    ("[!a]b", "ab", False, False),
    ("[z-a]", "m", False, False),
    ("[z-a]", "z", False, True),  # as in Git: the first character of a reversed range
    ("\\!keep", "!keep", False, True),
    ("\\#x", "#x", False, True),
    ("a\\ ", "a ", False, True),
    ("a ", "a", False, True),
    ("a/**", "a", True, False),
    ("a/**", "a/b/c", False, True),
    ("**/b", "b", False, True),
    ("**/b", "x/y/b", False, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("a**b", "a/x/b", False, False),
    ("/a/b", "x/a/b", False, False),
    ("d/", "d/f", False, True),  # inside an ignored folder
])
def test_gitignore_semantics(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreSpec([pattern]).ignored(path, is_dir) is ignored


def test_a_file_in_an_ignored_folder_cannot_be_re_included() -> None:
    spec = IgnoreSpec(["build/", "!build/keep"])
    assert spec.ignored("build/keep", False)
    spec = IgnoreSpec(["build/*", "!build/keep"])
    assert not spec.ignored("build/keep", False) and spec.ignored("build/other", False)


PATHOLOGICAL = [
    ("*" * 24 + "a", "b" * 60),
    ("*a" * 30 + "b", "a" * 5000),
    ("**/" * 20 + "x", "/".join(["a"] * 200)),
    ("a/**/" * 15 + "b", "/".join(["a"] * 300)),
]


def test_pathological_patterns_are_linear() -> None:
    """Each of these ran for seconds to minutes through the old regex translation; the
    subprocess's generous timeout fails the test if matching backtracks again."""
    code = ("from mlver.ignore import IgnoreSpec\n"
            f"cases = {PATHOLOGICAL!r}\n"
            "for pattern, name in cases:\n"
            "    for _ in range(50):\n"
            "        assert IgnoreSpec([pattern]).ignored(name, False) is False\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("line,problem", [
    ("data/[!]", "never closed"),
    ("x[abc", "never closed"),
    ("[[:bogus:]]", "unknown character class"),
    ("trailing\\", "trailing backslash"),
])
def test_malformed_pattern_is_one_line_naming_file_and_line(repo: Path, line: str, problem: str) -> None:
    gen(repo, {".mlverignore": f"*.tmp\n{line}\n", "ds/a.csv": "a"})
    proc = run(["add", "ds"], repo, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("mlver: error: .mlverignore:2: invalid pattern") and problem in lines[0]
    assert sum(ln.startswith("mlver: error:") for ln in lines) == 1 and "Traceback" not in proc.stderr
    assert not (repo / "ds.mlver").exists()


def test_non_utf8_and_posix_classes_in_ignore_file(repo: Path) -> None:
    """Bytes that are not UTF-8 match the same bytes in file names; `[[:alpha:]]` works
    without any Python warning."""
    gen(repo, {"ds/keep.csv": "k", "ds/1.csv": "1"})
    (repo / "ds" / "caf\xe9.bin".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"x")
    (repo / ".mlverignore").write_bytes(b"caf\xe9.bin\n[[:digit:]].csv\n")
    proc = run(["add", "ds"], repo, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "mlver: error" not in proc.stderr
    assert "files: 1\n" in (repo / "ds.mlver").read_text()


def test_a_nested_repository_folder_is_not_data(repo: Path) -> None:
    """As DVC: a `.git` or `.mlver` folder below a tracked folder (a vendored clone, a
    nested project) is left out of the folder's manifest, and checkout leaves it be."""
    (repo / "vendor").mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo / "vendor", check=True)
    (repo / "vendor" / "f.txt").write_text("n\n")
    (repo / "vendor" / ".mlver").mkdir()
    (repo / "vendor" / ".mlver" / "config").write_text("[core]\n")
    run(["add", "vendor"], repo)
    assert "files: 1\n" in (repo / "vendor.mlver").read_text()
    (repo / "vendor" / "f.txt").unlink()
    run(["checkout"], repo)
    assert (repo / "vendor" / "f.txt").read_text() == "n\n" and (repo / "vendor" / ".git" / "HEAD").exists()
    git(["-C", "vendor", "status"], repo)  # the nested repository's own writes change nothing tracked
    assert run_json(["status"], repo)["clean"]
