"""``mlver gc``: delete objects that nothing in scope references, in the cache and, with
``--cloud``, on a remote. Scope (SPEC "gc scope"): the workspace always; with no flag
also HEAD, local and remote-tracking branches, tags and the stash; flags replace that
default by the union of what they name. Plan first (``plan_gc``), then act (``run_gc``).

Whatever the scope, gc never deletes the last copy of committed data: an object that
any commit reachable from a ref or the stash records (``committed_refs``, folders
followed through their manifests) is deleted from the cache only when the default remote
holds it — checked by listing the remote now, never from a local record — and from a
remote only while the cache keeps it, unless ``include_unpushed``. Every manifest that
decides what is referenced is verified (its digest is its name) before anything goes.
On a remote, only objects older than ``gc.grace`` go, so a teammate's push in flight
(which sends a folder's files before its manifest) is never collected."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from mlver.cache import ObjectRef
from mlver.config import DEFAULT_GC_GRACE
from mlver.errors import ChecksumMismatch, RemoteError
from mlver.ops.scope import (Scope, committed_refs, expand, local_manifest_reader, outputs_in_scope, prefixes,
                             root_refs, run_cache_refs)
from mlver.ops.transfer import open_remote
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import Remote
from mlver.repo import Repo

CLOUD_WARNING = ("gc --cloud keeps only what this clone knows about: teammates' branches are known "
                 "through refs/remotes/*, so run `git fetch --all` first")
UNPUSHED = "not on any remote"
MANIFEST_HINT = ("gc deletes nothing while a manifest it needs is damaged: `mlver fsck` quarantines it, "
                 "then `mlver pull` (or a push from a clone with a good copy) repairs it")

Sized = list[tuple[ObjectRef, int]]


def _total(items: Sized) -> int:
    return sum(s for _, s in items)


def sized(items: Sized) -> tuple[int, int]:
    """(objects, bytes) of a list of (object, bytes)."""
    return len(items), _total(items)


@dataclass
class GcPlan:
    local: Sized = field(default_factory=list)  # (object, bytes) to delete
    kept: int = 0  # objects in the cache that stay
    kept_unpushed: Sized = field(default_factory=list)  # out of scope, but the last copy of committed data
    unpushed_paths: dict[ObjectRef, str] = field(default_factory=dict)  # what each kept one is
    remote_name: str | None = None
    remote_jobs: int | None = None
    remote: Sized = field(default_factory=list)
    remote_kept: int = 0
    remote_unpushed: Sized = field(default_factory=list)  # committed, and the cache does not hold it
    remote_recent: Sized = field(default_factory=list)  # younger than gc.grace (or of unknown age)
    warnings: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return _total(self.local)

    @property
    def remote_bytes(self) -> int:
        return _total(self.remote)

    @property
    def empty(self) -> bool:
        return not self.local and not self.remote

    def to_json(self) -> dict:
        doc: dict = {"version": 1, "objects": len(self.local), "bytes": self.bytes,
                     "kept_unpushed": _counts(self.kept_unpushed)}
        if self.remote_name is not None:
            doc["remote"] = {"name": self.remote_name, "objects": len(self.remote), "bytes": self.remote_bytes,
                             "kept_unpushed": _counts(self.remote_unpushed),
                             "kept_recent": _counts(self.remote_recent)}
        return doc


def _counts(items: Sized) -> dict:
    return {"objects": len(items), "bytes": _total(items)}


@dataclass
class GcResult:
    removed: int = 0
    bytes: int = 0
    remote_name: str | None = None
    remote_removed: int = 0
    remote_bytes: int = 0


def referenced(repo: Repo, scope: Scope) -> tuple[dict[ObjectRef, str], dict[ObjectRef, str]]:
    """Objects in scope (manifests followed through the cache, each verified) and
    manifests that are not in the cache (their files cannot be known from here)."""
    roots = root_refs(outputs_in_scope(repo, scope))
    for ref in run_cache_refs(repo):
        roots.setdefault(ref, "run cache")
    return expand(roots, _verified_reader(repo))


def _verified_reader(repo: Repo) -> Callable[[ObjectRef], Manifest | None]:
    read = local_manifest_reader(repo, verify=True)

    def checked(ref: ObjectRef) -> Manifest | None:
        try:
            return read(ref)
        except ChecksumMismatch as e:
            e.hint = MANIFEST_HINT
            raise

    return checked


def _remote_reader(rem: Remote, listing: dict[ObjectRef, int]) -> Callable[[ObjectRef], Manifest | None]:
    """Manifests only the remote holds, verified (a damaged one stops gc, naming it)."""

    def read(ref: ObjectRef) -> Manifest | None:
        if ref not in listing:
            return None
        try:
            return parse_manifest(rem.read_object(ref, listing[ref]), f"manifest {ref.digest}")
        except FileNotFoundError:
            return None
        except ChecksumMismatch as e:
            e.hint = MANIFEST_HINT
            raise

    return read


def grace_seconds(repo: Repo) -> float:
    return repo.config.get_duration("gc.grace", DEFAULT_GC_GRACE)


def plan_gc(repo: Repo, *, scope: Scope, cloud: bool = False, remote: str | None = None,
            jobs: int | None = None, include_unpushed: bool = False, progress: Progress = NO_PROGRESS) -> GcPlan:
    keep, unreadable = referenced(repo, scope)
    plan = GcPlan()
    cache = repo.cache
    in_cache: dict[ObjectRef, int] = {}
    for ref in cache.iter_objects():
        if ref in keep:
            plan.kept += 1
            continue
        try:
            in_cache[ref] = os.path.getsize(cache.path(ref.digest, ref.manifest))
        except OSError:
            continue
    committed: dict[ObjectRef, str] = {}
    committed_unread: dict[ObjectRef, str] = {}
    if not include_unpushed and (in_cache or cloud):  # nothing at stake: no history walk
        committed, committed_unread = expand(committed_refs(repo), _verified_reader(repo))
    stays_in_cache = set(keep) | {r for r in in_cache if r in committed}  # at most: refined below
    gone_from: tuple[str, set[ObjectRef]] | None = None  # (remote, objects this gc removes there)
    if cloud:
        plan.warnings.append(CLOUD_WARNING)
        with open_remote(repo, remote, jobs) as rem:
            rem.require_writable()
            plan.remote_name = rem.name
            plan.remote_jobs = jobs
            _plan_remote(repo, rem, plan, keep, unreadable, committed, committed_unread, stays_in_cache)
        gone_from = (plan.remote_name, {r for r, _ in plan.remote})
    on_remote = _on_default_remote(repo, [r for r in in_cache if r in committed], gone_from, jobs, plan)
    for ref, size in sorted(in_cache.items(), key=lambda kv: (kv[0].digest, kv[0].manifest)):
        if ref in committed and ref not in on_remote:
            plan.kept_unpushed.append((ref, size))
            plan.unpushed_paths[ref] = committed[ref]
            plan.kept += 1
        else:
            plan.local.append((ref, size))
    return plan


def _plan_remote(repo: Repo, rem: Remote, plan: GcPlan, keep: dict[ObjectRef, str],
                 unreadable: dict[ObjectRef, str], committed: dict[ObjectRef, str],
                 committed_unread: dict[ObjectRef, str], stays_in_cache: set[ObjectRef]) -> None:
    info = rem.list_object_info()
    listing = {r: s for r, (s, _) in info.items()}
    read = _remote_reader(rem, listing)
    # a manifest in scope (or committed) that only the remote holds still protects its files there
    missing_here = {r: p for r, p in unreadable.items() if r in listing}
    if missing_here:
        extra, _ = expand(missing_here, read)
        keep = {**keep, **extra}
    unread_here = {r: p for r, p in committed_unread.items() if r in listing}
    if unread_here:
        extra, _ = expand(unread_here, read)
        committed.update({r: p for r, p in extra.items() if r not in committed})
    grace = grace_seconds(repo)
    now = time.time()
    untimed = 0
    for ref, (size, mtime) in sorted(info.items(), key=lambda kv: (kv[0].digest, kv[0].manifest)):
        if ref in keep:
            plan.remote_kept += 1
        elif ref in committed and ref not in stays_in_cache:
            plan.remote_unpushed.append((ref, size))  # the last copy: the cache does not hold it
            plan.remote_kept += 1
        elif grace > 0 and (mtime is None or now - mtime < grace):
            untimed += mtime is None
            plan.remote_recent.append((ref, size))
            plan.remote_kept += 1
        else:
            plan.remote.append((ref, size))
    if untimed:
        plan.warnings.append(f"remote '{rem.name}' gives no modification times for {untimed} object(s): "
                             "keeping them, as gc.grace cannot be checked")


def _on_default_remote(repo: Repo, refs: list[ObjectRef], gone_from: tuple[str | None, set[ObjectRef]] | None,
                       jobs: int | None, plan: GcPlan) -> set[ObjectRef]:
    """Which of ``refs`` the default remote holds now (and keeps after this gc). With no
    remote configured, none: nothing committed is on a remote."""
    if not refs:
        return set()
    default = repo.config.get("core.remote")
    if not default:
        if repo.config.remotes():
            plan.warnings.append("no default remote is set: committed data is kept as not on any remote "
                                 "(`mlver remote default NAME`)")
        return set()
    try:
        with open_remote(repo, default, jobs) as rem:
            name = rem.name
            if not rem.can_list:
                plan.warnings.append(f"remote '{name}' cannot be listed ({rem.protocol}://): committed data "
                                     "is kept as not on any remote")
                return set()
            listing = rem.list_objects(prefixes(refs))
    except RemoteError as e:  # keeping is always safe; the next gc with the remote reachable can go on
        plan.warnings.append(f"{e.message}: committed data is kept as not on any remote")
        return set()
    held = {r for r in refs if r in listing}
    if gone_from is not None and gone_from[0] == name:
        held -= gone_from[1]
    return held


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
