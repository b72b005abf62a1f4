"""What each Git hook does (``mlver hook NAME``), called by the scripts ``mlver install``
writes and by the pre-commit framework's ``mlver-*`` hooks.

* pre-commit: is any tracked data in the workspace different from the pointers and
  lock *being committed* (the index)? Read through one ``git ls-files`` and one
  ``git cat-file --batch``; unchanged files are answered from the state memo.
* post-checkout / post-merge: only the outputs whose pointers or lock entries differ
  between the two commits are synced (one ``git diff-tree``; nothing to do costs no
  hashing at all); data whose pointer vanished is removed when that is safe.
* pre-push: the objects of the commits being pushed go to the default remote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlver import git
from mlver.hashing import algo_of
from mlver.errors import FormatError, MlverError, PathError, RemoteError
from mlver.ops.common import stage_outputs
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.tracked import INDEX, missing, outputs_at, outputs_in_file, pathspecs, project_prefix
from mlver.workspace import (CheckoutResult, FileState, Output, check_writable, checkout_output, clean_vanished,
                             compare_manifests, current_dir_digest, current_file_digest, current_manifest,
                             load_output)

# --- pre-commit ----------------------------------------------------------------------

@dataclass(frozen=True)
class StaleOutput:
    output: Output  # as recorded in the index
    files: tuple[FileState, ...] = ()  # inside a folder, when its recorded manifest is cached
    recorded_unstaged: bool = False  # the workspace pointer (or lock) already matches: only `git add` is missing


@dataclass
class PreCommitResult:
    checked: list[str] = field(default_factory=list)  # outputs compared with the workspace
    missing: list[str] = field(default_factory=list)  # not in the workspace (never pulled): fine
    stale: list[StaleOutput] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stale


def pre_commit(repo: Repo, *, progress: Progress = NO_PROGRESS) -> PreCommitResult:
    """Compare workspace data with the pointers and lock in the index (``GIT_INDEX_FILE``
    is honoured, so ``git commit -a`` and ``git commit PATH`` are checked right)."""
    repo.require_scm("hook pre-commit")
    result = PreCommitResult()
    for out in outputs_at(repo, INDEX):
        if not os.path.lexists(repo.abs(out.path)):
            result.missing.append(out.path)
            continue
        result.checked.append(out.path)
        stale = _stale(repo, out, progress=progress)
        if stale is not None:
            result.stale.append(stale)
    repo.state.flush()
    return result


def _stale(repo: Repo, out: Output, *, progress: Progress) -> StaleOutput | None:
    path = repo.abs(out.path)
    files: tuple[FileState, ...] = ()
    if out.kind == "dir":
        if not os.path.isdir(path) or os.path.islink(path):
            current = None
        else:
            current, manifest = current_dir_digest(repo, out.path, progress=progress, algo=algo_of(out.digest))
            if current == out.digest:
                return None
            recorded = repo.cache.manifest(out.digest)
            if recorded is not None:
                if manifest is None:  # answered from the folder memo: list the files now
                    manifest = current_manifest(repo, out.path, algo=algo_of(out.digest))
                files = tuple(compare_manifests(out.path, recorded, manifest))
    else:
        if os.path.isdir(path) and not os.path.islink(path):
            current = None
        else:
            found = current_file_digest(repo, out.path, progress=progress, algo=algo_of(out.digest))
            current = found[0] if found else None
            if current == out.digest:
                return None
    return StaleOutput(out, files, _recorded_in_workspace(repo, out, current))


def _recorded_in_workspace(repo: Repo, out: Output, current: str | None) -> bool:
    """Does the workspace's own pointer (a stage output: ``mlver.lock``) already record
    ``current``? (`mlver commit` or `mlver repro` ran, `git add` did not.)"""
    if current is None:
        return False
    if out.stage is not None:
        try:
            return any(o.path == out.path and o.digest == current for o in stage_outputs(repo))
        except (FormatError, PathError):
            return False
    if out.pointer_file is None or not os.path.exists(repo.abs(out.pointer_file)):
        return False
    try:
        return load_output(repo, out.pointer_file).digest == current
    except (FormatError, PathError):
        return False


# --- post-checkout / post-merge --------------------------------------------------------

@dataclass
class SyncResult:
    checkout: CheckoutResult = field(default_factory=CheckoutResult)
    outputs: list[str] = field(default_factory=list)  # outputs whose pointer or lock entry changed
    vanished: list[str] = field(default_factory=list)  # outputs whose pointer or lock entry is gone
    fetched: int = 0  # objects fetched first (hooks.fetch)
    warnings: list[str] = field(default_factory=list)


def post_checkout(repo: Repo, old: str, new: str, branch_checkout: bool, *,
                  progress: Progress = NO_PROGRESS) -> SyncResult:
    """After ``git checkout``/``git switch`` of a branch or commit (not of files)."""
    if not branch_checkout or old == new:
        return SyncResult()
    root = repo.require_scm("hook post-checkout")
    return sync(repo, None if git.is_null_sha(old) else old, new, command="hook post-checkout", root=root,
                progress=progress)


def post_merge(repo: Repo, *, squash: bool = False, progress: Progress = NO_PROGRESS) -> SyncResult:
    """After ``git merge``/``git pull``: ORIG_HEAD -> HEAD (a squash merge moves only the
    index, so HEAD -> index then)."""
    root = repo.require_scm("hook post-merge")
    head = git.verify_commit(root, "HEAD")
    if squash:
        return sync(repo, head, None, command="hook post-merge", root=root, progress=progress)
    old = git.verify_commit(root, "ORIG_HEAD")
    if old is not None and old == head:
        return SyncResult()
    return sync(repo, old, head, command="hook post-merge", root=root, progress=progress)


def sync(repo: Repo, old: str | None, new: str | None, *, command: str, root: str,
         progress: Progress = NO_PROGRESS) -> SyncResult:
    """Bring the outputs whose pointers or lock entries differ between commit ``old``
    (None: nothing) and commit ``new`` (None: the index) into the workspace."""
    result = SyncResult()
    prefix = project_prefix(repo)
    changes = [c for c in git.changed_blobs(root, old, new, pathspecs(prefix)) if c.path.startswith(prefix)]
    if not changes:
        return result
    blobs = git.read_blobs(root, [n for c in changes for n in (c.old, c.new) if n])
    before: dict[str, Output] = {}
    after: dict[str, Output] = {}
    for c in changes:
        rel = c.path[len(prefix):]
        if c.old:
            before.update((o.path, o) for o in outputs_in_file(repo, rel, blobs[c.old], f"{old}:{rel}"))
        if c.new:
            after.update((o.path, o) for o in outputs_in_file(repo, rel, blobs[c.new], f"{new or 'index'}:{rel}"))
    wanted = [o for p, o in sorted(after.items())
              if p not in before or (before[p].kind, before[p].digest) != (o.kind, o.digest)]
    result.outputs = [o.path for o in wanted]
    result.vanished = sorted(p for p in before if p not in after)
    if not wanted and not result.vanished:
        return result
    with repo.lock(command):
        if wanted and repo.config.get_bool("hooks.fetch"):
            _fetch_missing(repo, wanted, result, progress=progress)
        for out in wanted:  # refuse a path that leads out of the repository before writing anything
            check_writable(repo, out)
        for out in wanted:
            result.checkout.merge(checkout_output(repo, out, progress=progress))
        if result.checkout.corrupt and repo.config.get_bool("hooks.fetch"):
            # objects found corrupt (and quarantined) while checking out: fetch good copies, once
            bad = [c.path for c in result.checkout.corrupt]
            again = [o for o in wanted if any(p == o.path or p.startswith(o.path + "/") for p in bad)]
            _fetch_missing(repo, again, result, progress=progress)
            redone = CheckoutResult()
            for out in again:
                redone.merge(checkout_output(repo, out, progress=progress))
            result.checkout.merge_retry(redone)
        if result.vanished:
            result.checkout.merge(clean_vanished(repo, list(after.values()), only=result.vanished))
        repo.state.flush()
    return result


def _fetch_missing(repo: Repo, outputs: list[Output], result: SyncResult, *, progress: Progress) -> None:
    """hooks.fetch: bring what ``outputs`` need from the default remote first (cache only
    when no remote is configured: a warning, not a failure)."""
    if not missing(repo.cache, outputs):
        return
    if not repo.config.get("core.remote"):
        result.warnings.append("hooks.fetch is set but no default remote is configured; using the cache only")
        return
    from mlver.ops.transfer import fetch

    try:
        # the workspace's pointers are the new commit's now: fetch just these outputs
        res = fetch(repo, [o.path for o in outputs], progress=progress)
    except RemoteError as e:
        result.warnings.append(f"fetch from the default remote failed: {e.message}")
        return
    result.fetched += res.transferred


# --- pre-push --------------------------------------------------------------------------

@dataclass(frozen=True)
class PushRef:
    """One line Git writes to a pre-push hook's stdin."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_push_refs(text: str) -> list[PushRef]:
    refs = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise FormatError("pre-push input", "expected '<local ref> <local sha> <remote ref> <remote sha>'", line=n)
        refs.append(PushRef(*parts))
    return refs


@dataclass
class PrePushResult:
    remote: str | None = None  # the mlver remote pushed to; None: none configured
    commits: list[str] = field(default_factory=list)
    pushed: int = 0  # objects sent
    already: int = 0  # objects the remote had
    missing: list[str] = field(default_factory=list)  # paths whose objects are not in the cache


def _refuse_failing_checks(repo: Repo, tips: list[PushRef]) -> None:
    """``hooks.check``: each pushed commit's checks, against the remote commit it replaces
    (a new branch: the default base); a failing or missing metric refuses the push."""
    from mlver.ops.check import run_checks

    for r in tips:
        base = None if git.is_null_sha(r.remote_sha) else r.remote_sha
        report = run_checks(repo, rev=r.local_sha, base=base)
        bad = [o for o in report.outcomes if not o.passed]
        if bad:
            raise MlverError(f"checks failed for {r.local_ref or r.local_sha[:7]}: "
                             + "; ".join(o.message if o.missing else f"{o.check.metric}: {o.message}" for o in bad),
                             hint="see `mlver check --rev REV`; push with --no-verify to skip the hooks")


def pre_push(repo: Repo, refs: list[PushRef], *, git_remote: str | None = None,
             progress: Progress = NO_PROGRESS) -> PrePushResult:
    """Push the objects of every commit ``refs`` would send to ``git_remote``."""
    root = repo.require_scm("hook pre-push")
    result = PrePushResult()
    tips = [r for r in refs if not git.is_null_sha(r.local_sha)]
    if not tips:
        return result  # only deletions
    if repo.config.get_bool("hooks.check"):
        _refuse_failing_checks(repo, tips)
    remote = repo.config.get("core.remote")
    if not remote:
        if repo.config.get_bool("hooks.require_push"):
            raise RemoteError("no default mlver remote, and hooks.require_push is set: data would not be pushed",
                              hint="add one with `mlver remote add -d NAME URL` (or push with --no-verify)")
        return result
    result.remote = remote
    commits: dict[str, None] = {}  # ordered set
    for r in tips:
        tip = git.verify_commit(root, r.local_sha)
        if tip is None:
            continue
        commits[tip] = None
        remote_sha = None if git.is_null_sha(r.remote_sha) else r.remote_sha
        commits.update((c, None) for c in git.commits_to_push(root, tip, remote_sha, git_remote))
    result.commits = list(commits)
    from mlver.ops.scope import Scope
    from mlver.ops.transfer import push

    with repo.lock("hook pre-push"):
        # the objects the pushed commits name, not the workspace's (uncommitted data stays local)
        res = push(repo, remote=remote, scope=Scope(revs=tuple(result.commits), workspace=False),
                   progress=progress)
    result.pushed, result.already = res.transferred, res.already
    result.missing = sorted({i.path for i in res.missing})
    return result
