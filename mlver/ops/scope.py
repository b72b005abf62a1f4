"""Which objects a command is about: the outputs of the workspace and of Git revisions
(read from Git objects, never checked out), the run cache's references, and the
expansion of folder manifests into the file objects they list. Shared by push, fetch,
pull, ``status -r``, gc and fsck."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from mlver import git
from mlver.cache import ObjectRef
from mlver.errors import ChecksumMismatch, FormatError, GitError, PathError
from mlver.ops.common import all_outputs, full_stage_names
from mlver.pointer import POINTER_SUFFIX, Manifest
from mlver.repo import Repo
from mlver.tracked import outputs_at, outputs_in_file, record_paths
from mlver.workspace import Output, has_pipeline, select_outputs

WORKSPACE = "workspace"


@dataclass(frozen=True)
class Scope:
    """Revisions whose outputs are in scope, besides the workspace (always in)."""

    revs: tuple[str, ...] = ()
    workspace: bool = True  # off only for the pre-push hook: what the pushed commits name
    head: bool = False
    branches: bool = False  # refs/heads
    remote_branches: bool = False  # refs/remotes
    tags: bool = False
    stash: bool = False
    all_commits: bool = False
    experiments: bool = False  # refs/exps: experiments and queued snapshots
    run_cache: bool = True  # gc: objects the run cache's entries name (off: `gc --no-run-cache`)

    @property
    def workspace_only(self) -> bool:
        return not (self.revs or self.head or self.branches or self.remote_branches or self.tags
                    or self.stash or self.all_commits or self.experiments)

    @classmethod
    def for_transfer(cls, *, rev: str | None = None, all_branches: bool = False, all_tags: bool = False,
                     all_commits: bool = False) -> "Scope":
        """push / fetch / pull: the workspace, plus what the flags name (branches are
        this clone's local branches)."""
        return cls(revs=(rev,) if rev else (), branches=all_branches, tags=all_tags, all_commits=all_commits)

    @classmethod
    def for_gc(cls, *, workspace: bool = False, all_branches: bool = False, all_tags: bool = False,
               all_commits: bool = False, all_experiments: bool = False, run_cache: bool = True) -> "Scope":
        """gc: with no flag, HEAD, local and remote-tracking branches, tags, the stash
        and experiments (``refs/exps``, queued ones too); flags replace that default by
        the union of what they name (the workspace is always kept). ``--all-branches``
        keeps remote-tracking branches too, so a teammate's data is never collected
        because of a narrower flag. The run cache's objects are kept unless ``run_cache``
        is off, whatever the scope."""
        if not (workspace or all_branches or all_tags or all_commits or all_experiments):
            return cls(head=True, branches=True, remote_branches=True, tags=True, stash=True, experiments=True,
                       run_cache=run_cache)
        return cls(head=all_branches, branches=all_branches, remote_branches=all_branches, tags=all_tags,
                   all_commits=all_commits, experiments=all_experiments, run_cache=run_cache)


def revision_commits(repo: Repo, scope: Scope) -> list[str]:
    """The commits ``scope`` names (deduplicated by tree: same tree, same outputs)."""
    if scope.workspace_only:
        return []
    root = repo.scm_root
    if root is None:
        raise GitError("a revision scope (-a, -T, -A, --rev, --all-experiments) needs Git, and this project "
                       "was initialised with --no-scm", hint="without Git the workspace is all there is: leave "
                       "those flags out")
    commits: set[str] = set()
    if scope.revs:
        with git.open_repo(root) as grepo:
            commits.update(git.resolve(grepo, r) for r in scope.revs)
    if scope.head:
        head = git.head_commit(root)
        if head:
            commits.add(head)
    namespaces = [ns for flag, ns in ((scope.branches, "refs/heads"), (scope.remote_branches, "refs/remotes"),
                                      (scope.tags, "refs/tags"), (scope.experiments, "refs/exps")) if flag]
    commits.update(git.ref_commits(root, *namespaces))
    if scope.stash:
        commits.update(git.stash_commits(root))
    if scope.all_commits:
        commits.update(git.all_commits(root))
    by_tree: dict[str, str] = {}
    for commit, tree in sorted(git.commit_trees(root, sorted(commits)).items()):
        by_tree.setdefault(tree, commit)
    return sorted(by_tree.values())


def _matches(repo: Repo, out: Output, rel: str) -> bool:
    return (rel == "." or out.path == rel or out.path.startswith(rel + "/") or rel.startswith(out.path + "/")
            or out.pointer_file == rel or out.stage == rel)


def outputs_in_scope(repo: Repo, scope: Scope, targets: list[str] | None = None) -> list[tuple[str, Output]]:
    """(where, output) for the workspace and every revision in ``scope``; ``where`` is
    ``workspace`` or a short commit id. TARGETS select outputs by path, pointer file or
    stage name; one that names nothing in the workspace nor any revision is an error."""
    found: list[tuple[str, Output]] = []
    targets = full_stage_names(repo, targets) if targets else targets
    commits = revision_commits(repo, scope)
    if scope.workspace:
        ws = all_outputs(repo)
        if targets and not commits:
            ws = select_outputs(repo, ws, targets)  # names the unknown target in its error
        elif targets:
            ws = [o for o in ws if any(_matches(repo, o, _target_rel(repo, t)) for t in targets)]
        found.extend((WORKSPACE, o) for o in ws)
    if commits:
        for commit in commits:
            outs = outputs_at(repo, commit, skip_bad=True)
            if targets:
                outs = [o for o in outs if any(_matches(repo, o, _target_rel(repo, t)) for t in targets)]
            found.extend((commit[:10], o) for o in outs)
        if targets:
            for t in targets:
                rel = _target_rel(repo, t)
                if not any(_matches(repo, o, rel) for _, o in found):
                    raise PathError(t, "is not tracked by mlver in the workspace nor in the revisions asked for")
    return found


def _target_rel(repo: Repo, target: str) -> str:
    rel = repo.rel(target)
    return rel[: -len(POINTER_SUFFIX)] if rel.endswith(POINTER_SUFFIX) and not os.path.isdir(repo.abs(rel)) else rel


def root_refs(outputs: list[tuple[str, Output]]) -> dict[ObjectRef, str]:
    """The object each output names (a folder's manifest) -> a path to show for it."""
    refs: dict[ObjectRef, str] = {}
    for _where, o in outputs:
        refs.setdefault(ObjectRef(o.digest, o.kind == "dir"), o.path)
    return refs


def run_cache_refs(repo: Repo) -> list[ObjectRef]:
    """Objects the run cache's entries reference (none until the pipeline provides it)."""
    try:
        from mlver.pipeline import runcache  # the pipeline's run cache, when it exists
    except ModuleNotFoundError as e:
        if e.name in ("mlver.pipeline", "mlver.pipeline.runcache"):
            return []
        raise
    return list(runcache.referenced_objects(repo))


def runs_dir(repo: Repo) -> str:
    return os.path.join(repo.cache.root, "runs")


def expand(roots: dict[ObjectRef, str], read: Callable[[ObjectRef], Manifest | None]
           ) -> tuple[dict[ObjectRef, str], dict[ObjectRef, str]]:
    """Roots plus every file object their manifests list -> path. Returns (objects,
    manifests that could not be read)."""
    objects: dict[ObjectRef, str] = {}
    unreadable: dict[ObjectRef, str] = {}
    for ref, path in roots.items():
        objects.setdefault(ref, path)
        if not ref.manifest:
            continue
        manifest = read(ref)
        if manifest is None:
            unreadable[ref] = path
            continue
        for e in manifest.entries:
            objects.setdefault(ObjectRef(e.digest, False), f"{path}/{e.path}")
    return objects, unreadable


def local_manifest_reader(repo: Repo, *, strict: bool = False) -> Callable[[ObjectRef], Manifest | None]:
    """Manifests from the cache (None when absent), each verified against its name when
    first read (``Cache.manifest``: a damaged one is quarantined). A damaged one reads as
    absent (a fetch then brings a good copy), or with ``strict`` raises its
    ``ChecksumMismatch`` — gc must not delete what a damaged manifest would hide."""
    cache = repo.cache
    memo: dict[str, Manifest | None] = {}  # absent ones too, and beyond the cache's own memo

    def read(ref: ObjectRef) -> Manifest | None:
        if ref.digest not in memo:
            try:
                memo[ref.digest] = cache.manifest(ref.digest, quarantine=not strict)
            except ChecksumMismatch:
                if strict:
                    raise
                memo[ref.digest] = None
        return memo[ref.digest]

    return read


def committed_refs(repo: Repo) -> dict[ObjectRef, str]:
    """The object of every output that any commit reachable from a ref (local and
    remote-tracking branches, tags, HEAD) or from a stash entry records -> a path to show.
    One walk of the history; each distinct pointer or lock blob is read once, however
    many commits share it. Manifests are not followed here (``expand`` does)."""
    root = repo.scm_root
    if root is None:
        return {}
    prefix, want = record_paths(repo)
    blobs = git.history_blobs(root, want, tuple(git.stash_commits(root)))
    refs: dict[ObjectRef, str] = {}
    for sha, data in sorted(git.read_blobs(root, list(blobs)).items()):
        rel = blobs[sha][len(prefix):]
        try:
            outs = outputs_in_file(repo, rel, data, f"{rel} (Git blob {sha[:10]})")
        except FormatError as e:  # history cannot be mended: a record that cannot be read names nothing
            repo.skipped.append(f"skipped a commit's record that cannot be read (it names no data): {e.message}")
            continue
        for o in outs:
            refs.setdefault(ObjectRef(o.digest, o.kind == "dir"), o.path)
    return refs


def declared_routes(repo: Repo) -> dict[str, tuple[bool, str | None]]:
    """Output path -> (push, remote) for stage outputs whose ``mlver.yaml`` entry sets
    ``push: false`` or ``remote: NAME`` (read from the workspace's pipeline, for every
    revision: the options say where a path's data lives, not what it held)."""
    if not has_pipeline(repo):
        return {}
    from mlver.pipeline.plan import load_pipeline

    return {o.path: (o.push, o.remote) for s in load_pipeline(repo).stages for o in s.outs
            if not o.push or o.remote}


def route(repo: Repo, found: list[tuple[str, Output]], remote: str, *, explicit: bool, declared_only: bool = False
          ) -> tuple[list[tuple[str, Output]], set[str]]:
    """The outputs that travel to or from ``remote``, and the other remotes some outputs
    name. ``push: false`` outputs travel nowhere; an output with ``remote: NAME`` goes to
    NAME; the others go to the remote asked for (``explicit``) or the default one."""
    routes = declared_routes(repo)
    if not routes:
        return ([] if declared_only else found), set()
    mine: list[tuple[str, Output]] = []
    others: set[str] = set()
    for where, o in found:
        push, own = routes.get(o.path, (True, None))
        if not push:
            continue
        if own is None:
            if not declared_only:
                mine.append((where, o))
        elif own == remote:
            mine.append((where, o))
        elif not explicit:
            others.add(own)
    return mine, others
