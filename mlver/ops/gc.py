"""``mlver gc``: delete objects that nothing in scope references, in the cache and, with
``--cloud``, on a remote. Scope (SPEC "gc scope"): the workspace always; with no flag
also HEAD, local and remote-tracking branches, tags and the stash; flags replace that
default by the union of what they name. Plan first (``plan_gc``), then act (``run_gc``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlver.cache import ObjectRef
from mlver.errors import ChecksumMismatch
from mlver.ops.scope import Scope, expand, local_manifest_reader, outputs_in_scope, root_refs, run_cache_refs
from mlver.ops.transfer import open_remote
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo

CLOUD_WARNING = ("gc --cloud keeps only what this clone knows about: teammates' branches are known "
                 "through refs/remotes/*, so run `git fetch --all` first")


@dataclass
class GcPlan:
    local: list[tuple[ObjectRef, int]] = field(default_factory=list)  # (object, bytes) to delete
    kept: int = 0  # objects in the cache that stay
    remote_name: str | None = None
    remote_jobs: int | None = None
    remote: list[tuple[ObjectRef, int]] = field(default_factory=list)
    remote_kept: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(s for _, s in self.local)

    @property
    def remote_bytes(self) -> int:
        return sum(s for _, s in self.remote)

    @property
    def empty(self) -> bool:
        return not self.local and not self.remote

    def to_json(self) -> dict:
        doc: dict = {"version": 1, "objects": len(self.local), "bytes": self.bytes}
        if self.remote_name is not None:
            doc["remote"] = {"name": self.remote_name, "objects": len(self.remote), "bytes": self.remote_bytes}
        return doc


@dataclass
class GcResult:
    removed: int = 0
    bytes: int = 0
    remote_name: str | None = None
    remote_removed: int = 0
    remote_bytes: int = 0


def referenced(repo: Repo, scope: Scope) -> tuple[dict[ObjectRef, str], dict[ObjectRef, str]]:
    """Objects in scope (manifests followed through the cache) and manifests that are
    not in the cache (their files cannot be known from here)."""
    roots = root_refs(outputs_in_scope(repo, scope))
    for ref in run_cache_refs(repo):
        roots.setdefault(ref, "run cache")
    return expand(roots, local_manifest_reader(repo))


def plan_gc(repo: Repo, *, scope: Scope, cloud: bool = False, remote: str | None = None,
            jobs: int | None = None, progress: Progress = NO_PROGRESS) -> GcPlan:
    keep, unreadable = referenced(repo, scope)
    plan = GcPlan()
    cache = repo.cache
    for ref in cache.iter_objects():
        if ref in keep:
            plan.kept += 1
            continue
        try:
            size = os.path.getsize(cache.path(ref.digest, ref.manifest))
        except OSError:
            continue
        plan.local.append((ref, size))
    if not cloud:
        return plan
    plan.warnings.append(CLOUD_WARNING)
    with open_remote(repo, remote, jobs) as rem:
        rem.require_writable()
        plan.remote_name = rem.name
        plan.remote_jobs = jobs
        listing = rem.list_objects()
        # a manifest in scope that only the remote holds still protects its files there
        missing_here = {r: p for r, p in unreadable.items() if r in listing}
        if missing_here:
            def read(ref: ObjectRef) -> Manifest | None:
                try:
                    return parse_manifest(rem.read_object(ref, listing[ref]), f"manifest {ref.digest}")
                except (FileNotFoundError, ChecksumMismatch):
                    return None

            extra, _ = expand(missing_here, read)
            keep = {**keep, **extra}
        for ref, size in sorted(listing.items(), key=lambda kv: (kv[0].digest, kv[0].manifest)):
            if ref in keep:
                plan.remote_kept += 1
            else:
                plan.remote.append((ref, size))
    return plan


def run_gc(repo: Repo, plan: GcPlan, *, progress: Progress = NO_PROGRESS) -> GcResult:
    res = GcResult(remote_name=plan.remote_name)
    cache = repo.cache
    if plan.local:
        progress.start("gc", total_files=len(plan.local))
        for ref, _size in plan.local:
            res.bytes += cache.remove(ref)
            res.removed += 1
            progress.advance(files=1)
        progress.finish()
    if plan.remote_name is not None:
        with open_remote(repo, plan.remote_name, plan.remote_jobs) as rem:
            if plan.remote:
                res.remote_removed = rem.remove_objects([r for r, _ in plan.remote], progress=progress)
                res.remote_bytes = plan.remote_bytes
            rem.remove_stale_temporaries()
    return res
