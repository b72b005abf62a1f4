"""The one Git adapter. Porcelain verbs (ls-files, add, commit) run the ``git`` binary
once each; history is read through GitPython's object database (one ``cat-file --batch``
process per handle, closed after use), never one subprocess per blob.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from mlver.errors import GitError, UsageError

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
        literal: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``git ARGS`` in ``root``. ``literal``: the pathspecs are file names, never
    patterns (a data file named ``[xy]`` or ``*`` means itself): every call that passes
    paths a user gave sets it. ``env``: variables set for this call (GIT_INDEX_FILE)."""
    pre = ["--literal-pathspecs"] if literal else []
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(["git", *pre, *args], cwd=root, input=input, capture_output=True, env=full_env)
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


def ignore_sources(root: str, paths: list[str]) -> dict[str, str]:
    """For each of ``paths`` that a ``.gitignore`` hides (and Git does not track), the
    line hiding it: ``FILE:LINE:PATTERN``, as ``git check-ignore -v`` names it."""
    if not paths:
        return {}
    proc = run(root, "check-ignore", "-v", "-z", "--stdin",
               input="\0".join(paths).encode("utf-8", "surrogateescape"), check=False)
    if proc.returncode not in (0, 1):
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git check-ignore failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    fields = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    out = {}
    for i in range(0, len(fields) - 3, 4):
        source, line, pattern, path = fields[i:i + 4]
        if source and not pattern.startswith("!"):
            out[path] = f"{source}:{line}:{pattern}"
    return out


def ignored_files(root: str, *patterns: str) -> list[str]:
    """Untracked files matching ``patterns`` that a ``.gitignore`` hides."""
    out = run(root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--", *patterns).stdout
    return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})


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


def is_bare(root: str) -> bool:
    """A repository without a work tree (the bare clones mlver.api reads Git URLs through)."""
    return run(root, "rev-parse", "--is-bare-repository", check=False).stdout.strip() == b"true"


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
        root = str(repo.working_tree_dir or repo.git_dir)
        sha = experiment_commit(root, rev) or _remote_branch(root, rev)  # the rest of verify_commit's rule
        if sha is None:
            raise GitError(f"unknown revision '{rev}'") from None
        return sha


def experiment_commit(root: str, name: str) -> str | None:
    """The commit of the experiment ``name``: every command that takes a revision takes an
    experiment's name, as in DVC (Git's own names come first). ``NAME`` or ``BASE/NAME``
    (BASE a revision or a prefix of the baseline's commit id) over mlver's
    ``refs/exps/<baseline[:7]>/NAME`` and DVC's ``refs/exps/ab/cdef.../NAME``. One name on
    several baselines means the one of HEAD, else it is ambiguous (a ``UsageError``). This
    is the one home of that rule (``exp`` subcommands use it too); None when nothing matches."""
    base, _, short = name.rpartition("/")
    if not short or name.startswith("-") or short == "queue" or not valid_ref_name(short):
        return None
    proc = run(root, "for-each-ref", "--format=%(objectname) %(refname)",
               f"refs/exps/*/{short}", f"refs/exps/*/*/{short}", check=False)
    hits: dict[str, str] = {}  # commit -> the baseline prefix its ref names
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition(" ")
        baseline = ref[len("refs/exps/"):-len(short) - 1].replace("/", "")
        if ref.startswith("refs/exps/queue/") or not baseline or not _is_hex(baseline):
            continue
        hits.setdefault(sha, baseline)
    if base:
        full = _git_commit(root, base)
        want = full or base.lower()
        hits = {sha: b for sha, b in hits.items() if want.startswith(b) or b.startswith(want)}
    if len(hits) > 1:
        head = head_commit(root) or ""
        mine = [sha for sha, b in hits.items() if head.startswith(b)]
        if len(mine) == 1:
            return mine[0]
        raise UsageError(f"experiment name '{name}' is ambiguous", hint="name it with its baseline: "
                         + ", ".join(sorted(f"{b[:7]}/{short}" for b in hits.values())))
    return next(iter(hits), None)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


# --- hooks: paths, the index and blob reads through the git binary -------------------
# Hooks run inside Git commands, which may point GIT_INDEX_FILE at a temporary index
# (``git commit -a``, ``git commit PATH``); the git binary honours it, GitPython's index
# reader does not, so these helpers use plumbing commands: one process each, and one
# ``cat-file --batch`` for any number of blobs.

NULL_SHA_CHARS = frozenset("0")


def tree_blobs(root: str, rev: str, want: Callable[[str], bool]) -> dict[str, str]:
    """path (from the top) -> blob name, for every file at ``rev`` whose path passes
    ``want``: one ``git ls-tree -r`` (read the blobs with ``read_blobs``)."""
    return {e.path: e.sha for e in tree_entries(root, rev) if e.type == "blob" and want(e.path)}


@dataclass(frozen=True)
class TreeEntry:
    path: str  # from the top of the tree
    type: str  # "blob", "tree" or "commit" (a submodule)
    sha: str
    mode: str
    size: int | None  # blobs only


def tree_entries(root: str, rev: str, path: str = "", *, recursive: bool = True,
                 sizes: bool = False) -> list[TreeEntry]:
    """The entries of ``rev``'s tree (below folder ``path`` when given), through one
    ``git ls-tree``; an unknown revision is a ``GitError``."""
    args = ["ls-tree", "-z", "--full-tree"]
    if recursive:
        args.append("-r")
    if sizes:
        args.append("-l")
    if rev.startswith("-"):  # never an option
        raise GitError(f"unknown revision '{rev}'")
    proc = run(root, *args, f"{rev}^{{tree}}", *(["--", path] if path else []), check=False)
    if proc.returncode != 0:
        raise GitError(f"unknown revision '{rev}'")
    out: list[TreeEntry] = []
    for rec in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if not rec:
            continue
        meta, _, name = rec.partition("\t")
        parts = meta.split()
        size = int(parts[3]) if sizes and len(parts) > 3 and parts[3] != "-" else None
        out.append(TreeEntry(name, parts[1], parts[2], parts[0], size))
    return out


def is_null_sha(sha: str) -> bool:
    """Git's all-zero object name (no commit: a clone's first checkout, a new branch)."""
    return bool(sha) and set(sha) <= NULL_SHA_CHARS


def git_path(root: str, name: str) -> str:
    """Absolute path of ``$GIT_DIR/name`` as Git resolves it (``core.hooksPath`` for
    ``hooks``, the common dir for shared parts of a linked worktree)."""
    out = run(root, "rev-parse", "--git-path", name).stdout.decode("utf-8", "surrogateescape").strip()
    return os.path.normpath(os.path.join(root, out))


def verify_commit(root: str, rev: str) -> str | None:
    """The commit ``rev`` names (a Git revision, an experiment, or a branch that exists
    only as one remote's ``REMOTE/NAME``, as DVC's resolver finds it in a CI clone), or None."""
    return _git_commit(root, rev) or experiment_commit(root, rev) or _remote_branch(root, rev)


def _remote_branch(root: str, name: str) -> str | None:
    """The commit of ``refs/remotes/*/NAME`` when exactly one remote has that branch."""
    if name.startswith("-") or not name or any(c in name for c in "~^:?*[\\ ") or name == "HEAD":
        return None
    proc = run(root, "for-each-ref", "--format=%(objectname)", f"refs/remotes/*/{name}", check=False)
    found = set(proc.stdout.decode().split()) if proc.returncode == 0 else set()
    return found.pop() if len(found) == 1 else None


def _git_commit(root: str, rev: str) -> str | None:
    """The commit a Git revision names, or None."""
    if rev.startswith("-"):
        return None
    proc = run(root, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


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
    none; one ``git cat-file --batch-check`` process for any number of specs. A symlink
    in the commit's tree is followed to the blob it points to, as reading the file in a
    checkout would; one leading out of the tree (or dangling) names no blob."""
    wanted = list(dict.fromkeys(specs))
    if not wanted:
        return {}
    out = run(root, "cat-file", "--batch-check=%(objectname) %(objecttype)", "--follow-symlinks",
              input="".join(s + "\n" for s in wanted).encode("utf-8", "surrogateescape")).stdout
    lines = iter(out.decode("utf-8", "surrogateescape").split("\n"))
    names: dict[str, str | None] = {}
    for spec in wanted:
        parts = next(lines, "").split()
        if len(parts) == 2 and parts[0] in ("symlink", "dangling", "loop", "notdir") and parts[1].isdigit():
            next(lines, None)  # the link's target (or the path) follows on a line of its own
            names[spec] = None
        else:
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
        shas = []
        for r in revs:  # one at a time: an experiment's name resolves too
            sha = verify_commit(root, r)
            if sha is None:
                raise GitError(f"unknown revision '{r}'")
            shas.append(sha)
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
        raise clone_error(url, proc)


def clone_error(url: str, proc: subprocess.CompletedProcess[bytes]) -> GitError:
    return GitError(f"cannot clone '{url}': {failure(proc)}")


def failure(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The one line saying why a git command failed: its first ``fatal:`` line (the
    cause; the lines after it are advice such as "Please make sure you have the correct
    access rights"), else its last line."""
    lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").strip().splitlines() if ln.strip()]
    fatal = [ln[len("fatal:"):].strip() for ln in lines if ln.startswith("fatal:")]
    return fatal[0] if fatal else lines[-1] if lines else f"exit {proc.returncode}"


# --- experiments: commits built on a temporary index, refs under refs/exps/ ---------------

def modified_files(root: str) -> list[str]:
    """Files (from the top) that Git tracks, in HEAD or the index, whose workspace
    content differs from HEAD: edits, staged or not, staged additions and deletions."""
    if not has_head(root):
        return tracked(root, ["."])
    # `status` without optional locks does not write the index's refreshed stat data (`diff`
    # does): a read-only caller (`import-dvc --dry-run`) changes nothing under .git/
    out = run(root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "--untracked-files=no",
              "--ignore-submodules").stdout
    return sorted({entry[3:] for entry in out.decode("utf-8", "surrogateescape").split("\0") if len(entry) > 3})


def untracked(root: str, paths: list[str]) -> list[str]:
    """Which of ``paths`` exist, are not tracked and not ignored (``git add`` would take them)."""
    if not paths:
        return []
    out = run(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *paths, literal=True).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def _identity_env(root: str) -> dict[str, str]:
    """A committer for mlver's own commits when the user has none configured."""
    if run(root, "var", "GIT_COMMITTER_IDENT", check=False).returncode == 0:
        return {}
    return {"GIT_AUTHOR_NAME": "mlver", "GIT_AUTHOR_EMAIL": "mlver@localhost",
            "GIT_COMMITTER_NAME": "mlver", "GIT_COMMITTER_EMAIL": "mlver@localhost"}


def snapshot_commit(root: str, parent: str, paths: list[str], message: str, *, base: str | None = None,
                    contents: dict[str, bytes] | None = None) -> str:
    """A commit whose parent is ``parent`` and whose tree is ``base``'s (default
    ``parent``'s) with ``paths`` (from the top) taken from the workspace (a path that no
    longer exists is removed) and ``contents`` (path -> bytes) written as given; built on
    a temporary index: HEAD, the branches and the real index do not move."""
    index = git_path(root, f"mlver-exp-index-{os.getpid()}-{threading.get_ident()}")
    env = {"GIT_INDEX_FILE": index}
    contents = contents or {}
    try:
        run(root, "read-tree", base or parent, env=env)
        paths = sorted(set(paths) - set(contents))
        if paths:
            run(root, "update-index", "--add", "--remove", "-z", "--stdin",
                input=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths), env=env)
        for path, data in sorted(contents.items()):
            blob = run(root, "hash-object", "-w", "--stdin", input=data).stdout.decode().strip()
            run(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = run(root, "write-tree", env=env).stdout.decode().strip()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(index)
    return run(root, "commit-tree", tree, "-p", parent, "-m", message,
               env=_identity_env(root)).stdout.decode().strip()


def update_ref(root: str, ref: str, sha: str) -> None:
    run(root, "update-ref", ref, sha)


def delete_ref(root: str, ref: str) -> None:
    run(root, "update-ref", "-d", ref)


def valid_branch_name(name: str) -> bool:
    return not name.startswith("-") and run(".", "check-ref-format", "--branch", name, check=False).returncode == 0


def valid_ref_name(name: str) -> bool:
    return run(".", "check-ref-format", f"refs/exps/x/{name}", check=False).returncode == 0 and "/" not in name


def list_refs(root: str, prefix: str) -> list[tuple[str, str]]:
    """(ref, commit) for every ref under ``prefix`` (e.g. ``refs/exps/``)."""
    out = run(root, "for-each-ref", "--format=%(refname) %(objectname)", prefix).stdout.decode("utf-8", "replace")
    return [(parts[0], parts[1]) for parts in (line.rsplit(" ", 1) for line in out.splitlines()) if len(parts) == 2]


def remote_names(root: str) -> list[str]:
    """The Git remotes this clone knows (``git remote``)."""
    return run(root, "remote", check=False).stdout.decode().split()


def remote_refs(root: str, remote: str, pattern: str) -> list[tuple[str, str]]:
    """(ref, commit) of the refs matching ``pattern`` on a Git remote (name or URL)."""
    proc = run(root, "ls-remote", remote, pattern, check=False)
    if proc.returncode != 0:
        raise GitError(f"cannot list refs of Git remote '{remote}': {failure(proc)}")
    out = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref:
            out.append((ref, sha))
    return out


def push_refs(root: str, remote: str, refspecs: list[str]) -> None:
    proc = run(root, "-c", "core.hooksPath=/dev/null", "push", "-q", remote, *refspecs, check=False)
    if proc.returncode != 0:
        raise GitError(f"git push to '{remote}' failed: {failure(proc)}")


def fetch_refs(root: str, remote: str, refspecs: list[str]) -> None:
    proc = run(root, "fetch", "-q", remote, *refspecs, check=False)
    if proc.returncode != 0:
        raise GitError(f"git fetch from '{remote}' failed: {failure(proc)}")


def restore_files(root: str, source: str, paths: list[str]) -> None:
    """Write ``paths`` as they are at commit ``source`` into the workspace only (the
    index is not touched)."""
    if paths:
        run(root, "restore", "--worktree", f"--source={source}", "--", *paths, literal=True)


def remote_url(root: str, remote: str) -> str | None:
    proc = run(root, "remote", "get-url", remote, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def branch_create(root: str, name: str, commit: str) -> None:
    if run(root, "check-ref-format", "--branch", name, check=False).returncode != 0:
        raise GitError(f"'{name}' is not a valid branch name")
    if verify_commit(root, f"refs/heads/{name}") is not None:
        raise GitError(f"a branch named '{name}' already exists", hint="choose another name")
    run(root, "branch", name, commit)


def commit_parents(root: str, commits: list[str]) -> dict[str, str]:
    """commit -> its first parent ('' for a root commit), read in one call."""
    if not commits:
        return {}
    out = run(root, "rev-list", "--no-walk", "--format=%P", "--stdin",
              input="\n".join(commits).encode()).stdout.decode().splitlines()
    parents: dict[str, str] = {}
    current = None
    for line in out:
        if line.startswith("commit "):
            current = line.split()[1]
        elif current:
            parents[current] = (line.split() or [""])[0]
            current = None
    return parents


def commit_subjects(root: str, commits: list[str]) -> dict[str, CommitInfo]:
    """commit -> its date and subject, read in one call."""
    if not commits:
        return {}
    found = {}
    for c in commit_log(root, ["--no-walk", *commits], None):
        found[c.sha] = c
    return found
