"""The one Git adapter. Porcelain verbs (ls-files, add, commit) run the ``git`` binary
once each; history is read through GitPython's object database (one ``cat-file --batch``
process per handle, closed after use), never one subprocess per blob.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from mlver.errors import GitError

if TYPE_CHECKING:  # pragma: no cover
    import git as gitpython


def find_root(start: str) -> str | None:
    """The top of the Git work tree containing ``start`` (a ``.git`` dir or file)."""
    d = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def run(root: str, *args: str, input: bytes | None = None, check: bool = True,
        literal: bool = False) -> subprocess.CompletedProcess[bytes]:
    """``git ARGS`` in ``root``. ``literal``: the pathspecs are file names, never
    patterns (a data file named ``[xy]`` or ``*`` means itself): every call that passes
    paths a user gave sets it."""
    pre = ["--literal-pathspecs"] if literal else []
    try:
        proc = subprocess.run(["git", *pre, *args], cwd=root, input=input, capture_output=True)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc


def tracked(root: str, paths: list[str]) -> list[str]:
    """Which of ``paths`` (or files below them) Git tracks in the index."""
    if not paths:
        return []
    out = run(root, "ls-files", "-z", "--", *paths, literal=True).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def ignored(root: str, paths: list[str]) -> list[str]:
    """Which of ``paths`` (relative to ``root``) a ``.gitignore`` hides, so that `git add`
    would refuse them (a file Git already tracks is not hidden)."""
    if not paths:
        return []
    proc = run(root, "check-ignore", "-z", "--stdin", input="\0".join(paths).encode("utf-8", "surrogateescape"),
               check=False)
    if proc.returncode not in (0, 1):
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git check-ignore failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def list_files(root: str, *patterns: str) -> list[str]:
    """Files matching one of ``patterns`` that are tracked, or untracked and not ignored."""
    out = run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *patterns).stdout
    return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})


def stage(root: str, paths: list[str]) -> None:
    if paths:
        run(root, "add", "--", *paths, literal=True)


def has_staged_changes(root: str) -> bool:
    return run(root, "diff", "--cached", "--quiet", check=False).returncode == 1


def commit(root: str, message: str) -> str:
    run(root, "commit", "-q", "-m", message)
    return run(root, "rev-parse", "HEAD").stdout.decode().strip()


def has_head(root: str) -> bool:
    return run(root, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0


@contextlib.contextmanager
def open_repo(root: str) -> Iterator["gitpython.Repo"]:
    import git as gitpython  # only the commands that read history pay for GitPython

    try:
        repo = gitpython.Repo(root)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
        raise GitError(f"{root} is not a Git repository") from None
    try:
        yield repo
    finally:
        repo.close()


def resolve(repo: "gitpython.Repo", rev: str) -> str:
    import gitdb.exc
    import git as gitpython

    try:
        return repo.commit(rev).hexsha
    except (gitpython.BadName, ValueError, gitdb.exc.BadName, gitdb.exc.BadObject):
        raise GitError(f"unknown revision '{rev}'") from None


@dataclass(frozen=True)
class Snapshot:
    """Selected files of one commit, read from Git objects without a checkout."""

    rev: str
    files: dict[str, bytes]


def read_tree(repo: "gitpython.Repo", rev: str, want: Callable[[str], bool]) -> Snapshot:
    """Every blob at ``rev`` whose path passes ``want``."""
    sha = resolve(repo, rev)
    tree = repo.commit(sha).tree
    files: dict[str, bytes] = {}
    for item in tree.traverse():
        # gitpython types traverse()'s items as a union with tuples, and a path as
        # str | PathLike: a blob's is a str
        if item.type == "blob" and want(item.path):  # type: ignore[union-attr, arg-type]
            files[item.path] = item.data_stream.read()  # type: ignore[union-attr, index]
    return Snapshot(sha, files)


# --- hooks: paths, the index and blob reads through the git binary -------------------
# Hooks run inside Git commands, which may point GIT_INDEX_FILE at a temporary index
# (``git commit -a``, ``git commit PATH``); the git binary honours it, GitPython's index
# reader does not, so these helpers use plumbing commands: one process each, and one
# ``cat-file --batch`` for any number of blobs.

NULL_SHA_CHARS = frozenset("0")


def is_null_sha(sha: str) -> bool:
    """Git's all-zero object name (no commit: a clone's first checkout, a new branch)."""
    return bool(sha) and set(sha) <= NULL_SHA_CHARS


def git_path(root: str, name: str) -> str:
    """Absolute path of ``$GIT_DIR/name`` as Git resolves it (``core.hooksPath`` for
    ``hooks``, the common dir for shared parts of a linked worktree)."""
    out = run(root, "rev-parse", "--git-path", name).stdout.decode("utf-8", "surrogateescape").strip()
    return os.path.normpath(os.path.join(root, out))


def verify_commit(root: str, rev: str) -> str | None:
    """The commit ``rev`` names, or None when it names none."""
    proc = run(root, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def merge_base(root: str, a: str, b: str) -> str | None:
    """The best common ancestor of two revisions, or None (unrelated, or one is unknown)."""
    proc = run(root, "merge-base", a, b, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def index_blobs(root: str, pathspecs: list[str]) -> dict[str, str]:
    """path (from the top) -> blob name, for merged index entries matching ``pathspecs``."""
    out = run(root, "ls-files", "-s", "-z", "--full-name", "--", *pathspecs).stdout
    blobs: dict[str, str] = {}
    for rec in out.decode("utf-8", "surrogateescape").split("\0"):
        if not rec:
            continue
        meta, _, path = rec.partition("\t")
        mode, sha, stage = meta.split()
        if stage == "0" and mode != "160000":
            blobs[path] = sha
    return blobs


@dataclass(frozen=True)
class BlobChange:
    path: str  # from the top of the work tree
    old: str | None  # blob name before, None when added
    new: str | None  # blob name after, None when deleted


def empty_tree(root: str) -> str:
    return run(root, "hash-object", "-t", "tree", "/dev/null").stdout.decode().strip()


def changed_blobs(root: str, old: str | None, new: str | None, pathspecs: list[str]) -> list[BlobChange]:
    """Files matching ``pathspecs`` that differ between commit ``old`` (None: nothing)
    and commit ``new`` (None: the index), without renames."""
    base = old or empty_tree(root)
    if new is None:
        args = ["diff-index", "--cached", "-r", "-z", "--no-renames", base]
    else:
        args = ["diff-tree", "-r", "-z", "--no-renames", base, new]
    out = run(root, *args, "--", *pathspecs).stdout.decode("utf-8", "surrogateescape")
    parts = out.split("\0")
    changes: list[BlobChange] = []
    i = 0
    while i + 1 < len(parts):
        meta, path = parts[i], parts[i + 1]
        i += 2
        if not meta.startswith(":"):
            continue
        old_mode, new_mode, old_sha, new_sha, _status = meta[1:].split()
        changes.append(BlobChange(
            path,
            None if is_null_sha(old_sha) or old_mode in ("000000", "160000") else old_sha,
            None if is_null_sha(new_sha) or new_mode in ("000000", "160000") else new_sha,
        ))
    return changes


def read_blobs(root: str, names: list[str]) -> dict[str, bytes]:
    """Content of each named blob, through one ``git cat-file --batch`` process."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    out = run(root, "cat-file", "--batch", input="".join(n + "\n" for n in wanted).encode()).stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    for name in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        pos = end + 1
        if len(header) != 3:  # "<name> missing"
            raise GitError(f"git object {name} is missing")
        size = int(header[2])
        blobs[name] = out[pos:pos + size]
        pos += size + 1
    return blobs


def commits_to_push(root: str, tip: str, remote_sha: str | None, remote_name: str | None) -> list[str]:
    """Commits reachable from ``tip`` that the remote lacks: not reachable from
    ``remote_sha`` (when this clone has it) nor from the remote-tracking branches."""
    args = ["rev-list", tip, "--not"]
    if remote_sha and verify_commit(root, remote_sha):
        args.append(remote_sha)
    if remote_name:
        args.append(f"--remotes={remote_name}")
    out = run(root, *args).stdout.decode()
    return out.split()


# --- refs and history (scopes of push, fetch and gc) ---------------------------------

def head_commit(root: str) -> str | None:
    """The commit HEAD names, or None in a repository without commits."""
    proc = run(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def ref_commits(root: str, *namespaces: str) -> list[str]:
    """Commits named by the refs under ``namespaces`` (e.g. ``refs/heads``); annotated
    tags are peeled, refs to trees or blobs are skipped."""
    if not namespaces:
        return []
    fmt = "%(objectname) %(objecttype) %(*objectname) %(*objecttype)"
    out = run(root, "for-each-ref", f"--format={fmt}", *namespaces).stdout.decode()
    commits: list[str] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "commit":
            commits.append(parts[0])
        elif len(parts) >= 4 and parts[3] == "commit":
            commits.append(parts[2])
    return sorted(set(commits))


def stash_commits(root: str) -> list[str]:
    """Every stash entry's commit and its index commit (both hold pointer files)."""
    proc = run(root, "log", "--walk-reflogs", "--format=%H %P", "refs/stash", check=False)
    if proc.returncode != 0:
        return []
    commits: list[str] = []
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        commits.extend(parts[:1] + parts[2:3])  # the stash commit and its index commit
    return sorted(set(commits))


def all_commits(root: str) -> list[str]:
    """Every commit reachable from any ref (branches, remote-tracking branches, tags, stash)."""
    proc = run(root, "rev-list", "--all", check=False)
    return sorted(set(proc.stdout.decode().split())) if proc.returncode == 0 else []


def history_blobs(root: str, want: Callable[[str], bool], extra: tuple[str, ...] = ()) -> dict[str, str]:
    """blob name -> a path it has, for every blob whose path passes ``want`` in any commit
    reachable from any ref or from ``extra`` commits: one ``rev-list --objects`` walk,
    which names each blob once however many commits share it (read them with
    ``read_blobs``)."""
    proc = run(root, "rev-list", "--objects", "--filter=object:type=blob", "--all", *extra)
    blobs: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        sha, sep, path = line.partition(" ")
        if sep and path and want(path):
            blobs.setdefault(sha, path)
    return blobs


def commit_trees(root: str, commits: list[str]) -> dict[str, str]:
    """commit -> tree, read in one call (commits with the same tree need reading once)."""
    if not commits:
        return {}
    out = run(root, "rev-list", "--no-walk", "--format=%T", "--stdin",
              input="\n".join(commits).encode()).stdout.decode().splitlines()
    trees: dict[str, str] = {}
    current = None
    for line in out:
        if line.startswith("commit "):
            current = line.split()[1]
        elif current:
            trees[current] = line.strip()
            current = None
    return trees


# --- history tables, scratch worktrees, clones (exp show, plots, repro --verify, get) -----

def object_names(root: str, specs: list[str]) -> dict[str, str | None]:
    """``REV:PATH`` (or any object expression) -> the blob it names, None when there is
    none; one ``git cat-file --batch-check`` process for any number of specs."""
    wanted = list(dict.fromkeys(specs))
    if not wanted:
        return {}
    out = run(root, "cat-file", "--batch-check=%(objectname) %(objecttype)",
              input="".join(s + "\n" for s in wanted).encode("utf-8", "surrogateescape")).stdout
    lines = out.decode("utf-8", "surrogateescape").split("\n")
    names: dict[str, str | None] = {}
    for spec, line in zip(wanted, lines):
        parts = line.split()
        names[spec] = parts[0] if len(parts) == 2 and parts[1] == "blob" else None
    return names


def resolve_commits(root: str, revs: list[str]) -> list[tuple[str, str]]:
    """(commit id, subject) of each revision, in the order given (two processes for any
    number); an unknown revision is a GitError naming it."""
    if not revs:
        return []
    proc = run(root, "rev-parse", *[f"{r}^{{commit}}" for r in revs], check=False)
    shas = proc.stdout.decode().split()
    if proc.returncode != 0 or len(shas) != len(revs):
        for r in revs:
            if verify_commit(root, r) is None:
                raise GitError(f"unknown revision '{r}'")
        raise GitError(f"cannot resolve {' '.join(revs)}")
    out = run(root, "log", "--no-walk=unsorted", "--format=%H%x1f%s", *dict.fromkeys(shas), "--").stdout
    subjects = dict(line.split("\x1f", 1) for line in out.decode("utf-8", "replace").splitlines() if "\x1f" in line)
    return [(sha, subjects.get(sha, "")) for sha in shas]


def tree_files(root: str, commit: str, path: str) -> list[str]:
    """Paths (relative to ``root``, POSIX) of the blobs at or below ``path`` in ``commit``."""
    out = run(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, "--", path).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    date: str  # committer date, ISO 8601
    timestamp: int
    subject: str


def commit_log(root: str, revs: list[str], count: int | None) -> list[CommitInfo]:
    """Commits reachable from ``revs``, newest first (``count`` of them, all when None)."""
    args = ["log", "--format=%H%x1f%cI%x1f%ct%x1f%s%x1e"]
    if count is not None:
        args.append(f"--max-count={count}")
    out = run(root, *args, *revs, "--").stdout.decode("utf-8", "replace")
    commits: list[CommitInfo] = []
    for rec in out.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        sha, date, ts, subject = rec.split("\x1f", 3)
        commits.append(CommitInfo(sha, date, int(ts), subject))
    return commits


def refs_by_commit(root: str) -> dict[str, list[str]]:
    """commit -> short names of the local branches and tags pointing at it (annotated
    tags peeled), branches first."""
    fmt = "%(objectname) %(*objectname) %(refname)"
    out = run(root, "for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags").stdout.decode("utf-8", "replace")
    refs: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.split(" ")
        if len(parts) < 3:
            continue
        target = parts[1] or parts[0]
        name = " ".join(parts[2:])
        for prefix in ("refs/heads/", "refs/tags/"):
            if name.startswith(prefix):
                refs.setdefault(target, []).append(name[len(prefix):])
    return refs


def branch_names(root: str) -> list[str]:
    out = run(root, "for-each-ref", "--format=%(refname)", "refs/heads").stdout.decode("utf-8", "replace")
    return [line for line in out.splitlines() if line]


def worktree_add(root: str, path: str, commit: str) -> None:
    """A detached scratch worktree of ``commit`` at ``path``. Hooks are switched off for
    it: the checkout is mlver's own, not the user's."""
    proc = run(root, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--force", "-q", path,
               commit, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git worktree add failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")


def worktree_remove(root: str, path: str) -> None:
    """Remove a scratch worktree and prune Git's record of it (best effort)."""
    run(root, "worktree", "remove", "--force", "--force", path, check=False)
    run(root, "worktree", "prune", check=False)


def clone(url: str, dest: str, *, shallow: bool) -> None:
    """``git clone --no-checkout`` of ``url`` into ``dest`` (history only, no files)."""
    args = ["clone", "-q", "--no-checkout"]
    if shallow:
        args.append("--depth=1")
    if os.path.isdir(url):
        url = os.path.abspath(url)
        if shallow:
            url = "file://" + url  # --depth is ignored for plain local paths
    proc = run(os.path.dirname(dest) or ".", *args, url, dest, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"cannot clone '{url}': {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
