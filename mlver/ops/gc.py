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

from mlver.hashing import algo_of
from mlver.cache import ObjectRef, object_folders
from mlver.config import DEFAULT_GC_GRACE
from mlver.errors import ChecksumMismatch, MlverError, RemoteError
from mlver.fsutil import unlink_quiet
from mlver.ops.scope import (Scope, committed_refs, expand, local_manifest_reader, outputs_in_scope,
                             root_refs, run_cache_refs)
from mlver import packs
from mlver.ops.transfer import open_remote
from mlver.pipeline import runcache
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import Remote
from mlver.repo import MLVER_DIR, Repo

CLOUD_WARNING = ("gc --cloud keeps only what this clone knows about: teammates' branches are known "
                 "through refs/remotes/*, so run `git fetch --all` first (their shared experiments, "
                 "refs/exps/* of the Git remotes, are fetched here)")
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
    packs: PackPlan = field(default_factory=lambda: PackPlan())
    warnings: list[str] = field(default_factory=list)
    shared_with: list[str] = field(default_factory=list)  # other projects using this cache, whose data stays
    fetched_experiments: list[str] = field(default_factory=list)  # teammates' refs/exps fetched before --cloud

    @property
    def bytes(self) -> int:
        return _total(self.local)

    @property
    def remote_objects(self) -> int:
        return len(self.remote) + len(self.packs.leaving)

    @property
    def remote_bytes(self) -> int:
        return _total(self.remote) + _total(self.packs.leaving)

    @property
    def empty(self) -> bool:
        return not self.local and not self.remote and self.packs.empty

    def to_json(self) -> dict:
        doc: dict = {"version": 1, "objects": len(self.local), "bytes": self.bytes,
                     "kept_unpushed": _counts(self.kept_unpushed)}
        if self.shared_with:  # SPEC's document, plus this only where a cache is shared
            doc["shared_with"] = self.shared_with
        if self.remote_name is not None:
            doc["remote"] = {"name": self.remote_name, "objects": self.remote_objects, "bytes": self.remote_bytes,
                             "kept_unpushed": _counts(self.remote_unpushed),
                             "kept_recent": _counts(self.remote_recent)}
            if not self.packs.none:
                doc["remote"]["packs"] = self.packs.to_json()
        return doc


REPACK_SHARE = 0.5  # a pack whose unreferenced bytes exceed this share is rewritten
ORPHAN_AGE = 24 * 3600.0  # a pack no record names (a killed push) goes after max(gc.grace, this)


@dataclass
class PackPlan:
    """What gc --cloud does to packs (mlver.packs): mark emptied ones, rewrite mostly
    unreferenced ones (keeping their referenced objects), remove packs marked longer ago
    than gc.grace and packs no record names."""

    mark: list[str] = field(default_factory=list)  # every object unreferenced: marked for removal
    repack: dict[str, list[tuple[ObjectRef, int, int]]] = field(default_factory=dict)  # pack -> objects kept
    remove: list[str] = field(default_factory=list)  # marked before gc.grace, or orphans: removed now
    remove_bytes: int = 0
    rescue: dict[ObjectRef, packs.Packed] = field(default_factory=dict)  # referenced, only in a marked pack
    leaving: Sized = field(default_factory=list)  # unreferenced packed objects that leave the inventory
    held: set[ObjectRef] = field(default_factory=set)  # packed objects the remote still holds after this gc
    grace: float = 0.0
    all_packs: int = 0
    records: int = 0  # inventory records on the remote
    compact: bool = False  # more than packs.COMPACT_ABOVE: folded into one

    @property
    def empty(self) -> bool:
        return not self.mark and not self.repack and not self.remove and not self.compact and not self.rescue

    @property
    def none(self) -> bool:
        return self.all_packs == 0 and not self.remove

    def to_json(self) -> dict:
        return {"packs": self.all_packs, "mark": len(self.mark), "repack": len(self.repack),
                "remove": len(self.remove), "bytes_now": self.remove_bytes,
                "bytes_after_repack": _total(self.leaving), "records": self.records, "compact": self.compact,
                "rescue": len(self.rescue)}


def _counts(items: Sized) -> dict:
    return {"objects": len(items), "bytes": _total(items)}


@dataclass
class GcResult:
    removed: int = 0
    bytes: int = 0
    remote_name: str | None = None
    remote_removed: int = 0
    remote_bytes: int = 0
    runs_removed: int = 0  # run-cache entries whose objects are gone (`--no-run-cache`)


def referenced(repo: Repo, scope: Scope) -> tuple[dict[ObjectRef, str], dict[ObjectRef, str]]:
    """Objects in scope (manifests followed through the cache, each verified) and
    manifests that are not in the cache (their files cannot be known from here)."""
    roots = root_refs(outputs_in_scope(repo, scope))
    for ref in run_cache_refs(repo) if scope.run_cache else ():
        roots.setdefault(ref, "run cache")
    return expand(roots, _verified_reader(repo))


def _verified_reader(repo: Repo) -> Callable[[ObjectRef], Manifest | None]:
    read = local_manifest_reader(repo, strict=True)

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
            return parse_manifest(rem.read_object(ref, listing[ref]), f"manifest {ref.digest}", algo_of(ref.digest))
        except FileNotFoundError:
            return None
        except ChecksumMismatch as e:
            e.hint = MANIFEST_HINT
            raise

    return read


def grace_seconds(repo: Repo) -> float:
    return repo.config.get_duration("gc.grace", DEFAULT_GC_GRACE)


# What another project sharing the cache keeps: everything any of its commits or its
# workspace references (gc here cannot know its remote or its scope).
SHARING_SCOPE = Scope(head=True, branches=True, remote_branches=True, tags=True, stash=True, all_commits=True,
                      experiments=True)


def sharing_projects(repo: Repo) -> list[Repo]:
    """The other projects on this machine that keep their objects in this project's
    cache (``cache.dir``, registered by their commands under the clone's id, so a moved
    clone's next command moves its entry). A registration whose project now uses another
    cache is dropped; one whose folder is gone (deleted, or moved and not used since: its
    data would go with a guess) or that was made on another machine stops gc, naming it
    (what that project references cannot be read from here)."""
    if not repo.shares_cache:
        return []
    host = os.uname().nodename
    found = []
    for entry, root, on in repo.cache.projects():
        if os.path.realpath(root) == os.path.realpath(repo.root):
            continue
        if on != host:
            raise MlverError(f"the cache {repo.cache_dir} is shared with the project {root} on {on}: gc here "
                             "cannot see what that project references",
                             hint=f"run gc on {on}, or if that project is gone, remove {entry} and run gc again")
        if not os.path.isdir(os.path.join(root, MLVER_DIR)):
            raise MlverError(f"the cache {repo.cache_dir} is shared with the project {root}, which is not there "
                             "any more: gc cannot see what it references",
                             hint=f"if it moved, run `mlver checkout` in its new place (its entry follows it); "
                                  f"if it was deleted, remove {entry}; then run gc again")
        other = Repo(root)
        try:
            same = os.path.realpath(other.cache_dir) == os.path.realpath(repo.cache_dir)
        except MlverError:  # its config cannot be read: keep to the safe side
            raise MlverError(f"the cache {repo.cache_dir} is shared with the project {root}, whose config "
                             "cannot be read: gc would not know what it references",
                             hint=f"fix its config, or if that project is gone, remove {entry}") from None
        if not same:
            unlink_quiet(entry)  # it uses another cache now
            continue
        found.append(other)
    return found


def fetch_teammates_experiments(repo: Repo) -> list[str]:
    """Before `gc --cloud`: experiments teammates shared (`exp push`, Dask runs) live as
    ``refs/exps/*`` on the Git remotes, which `git fetch` does not bring; fetch the ones
    this clone lacks, so gc keeps their data. A Git remote that cannot be asked stops gc
    (what it holds would be collected unseen). Returns the refs fetched."""
    from mlver import git

    root = repo.scm_root
    if root is None:
        return []
    fetched: list[str] = []
    have = dict(git.list_refs(root, "refs/exps/"))
    for name in git.remote_names(root):
        try:
            theirs = git.remote_refs(root, name, "refs/exps/*")
        except MlverError as e:
            raise MlverError(f"{e.message}: gc --cloud must know the experiments teammates shared there",
                             hint=f"run it when '{name}' can be reached (or remove that Git remote)") from None
        wanted = [ref for ref, sha in theirs if have.get(ref) != sha and not ref.startswith("refs/exps/queue/")]
        if wanted:
            git.fetch_refs(root, name, [f"+{ref}:{ref}" for ref in wanted])
            fetched += wanted
    return fetched


def plan_gc(repo: Repo, *, scope: Scope, cloud: bool = False, remote: str | None = None,
            jobs: int | None = None, include_unpushed: bool = False, progress: Progress = NO_PROGRESS) -> GcPlan:
    plan = GcPlan()
    if cloud and scope.experiments:  # teammates' shared experiments are in scope: learn them first
        plan.fetched_experiments = fetch_teammates_experiments(repo)
    keep, unreadable = referenced(repo, scope)
    for other in sharing_projects(repo):
        try:
            theirs, their_unread = referenced(other, SHARING_SCOPE)
        finally:
            other.close()
        for ref, why in theirs.items():
            keep.setdefault(ref, f"{why} (in {other.root})")
        for ref, why in their_unread.items():
            unreadable.setdefault(ref, why)
        plan.shared_with.append(other.root)
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
        gone_from = (plan.remote_name, {r for r, _ in plan.remote} | {r for r, _ in plan.packs.leaving})
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
    _plan_packs(repo, rem, plan, keep, committed, stays_in_cache, grace, now, set(info))


def _plan_packs(repo: Repo, rem: Remote, plan: GcPlan, keep: dict[ObjectRef, str], committed: dict[ObjectRef, str],
                stays_in_cache: set[ObjectRef], grace: float, now: float, loose: set[ObjectRef]) -> None:
    inv = packs.load(rem, repo.tmp_dir)
    pp = plan.packs
    pp.grace = grace
    pp.all_packs = len(inv.packs)
    pp.records = len(inv.records)
    pp.compact = pp.records > packs.COMPACT_ABOVE
    listed = {n: (size, t) for n, size, t in rem.list_folder(packs.PACKS_DIR)}
    for pid, info in sorted(inv.packs.items()):
        if info.marked is not None:
            # a gc that did not know a commit marked its objects: this one does, and
            # copies those held nowhere else into a new pack before the mark expires
            for r, o, n in info.objects:
                if ((r in keep or (r in committed and r not in stays_in_cache)) and r not in inv.live
                        and r not in loose and (r, pid) not in inv.bad and r not in pp.rescue):
                    pp.rescue[r] = packs.Packed(pid, o, n)
                    pp.held.add(r)
            if grace <= 0 or now - info.marked >= grace:
                pp.remove.append(pid)
                pp.remove_bytes += listed.get(pid + packs.PACK_SUFFIX, (0, None))[0]
            continue
        objs = [(r, o, n) for r, o, n in info.objects if (r, pid) not in inv.bad]
        recent = grace > 0 and (info.added is None or now - info.added < grace)
        kept, gone = [], []
        for r, o, n in objs:
            if r in keep or (r in committed and r not in stays_in_cache):
                kept.append((r, o, n))
            else:
                gone.append((r, o, n))
        if recent:
            plan.remote_recent += [(r, n) for r, _, n in gone]
            plan.remote_kept += len(objs)
            pp.held.update(r for r, _, _ in objs)
            continue
        plan.remote_kept += len(kept)
        pp.held.update(r for r, _, _ in kept)
        unref = sum(n for _, _, n in gone)
        if not kept:
            pp.mark.append(pid)
        elif unref > REPACK_SHARE * max(1, sum(n for _, _, n in objs)):
            pp.repack[pid] = kept
        else:
            pp.held.update(r for r, _, _ in gone)
            continue
        pp.leaving += [(r, n) for r, _, n in gone]
    named = set(inv.packs)
    for name, (size, t) in sorted(listed.items()):
        pid = name.rsplit(".", 1)[0]
        if pid in named or not name.endswith(packs.PACK_SUFFIX):
            continue
        if t is not None and now - t > max(grace, ORPHAN_AGE):
            pp.remove.append(pid)
            pp.remove_bytes += size


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
            live = packs.load(rem, repo.tmp_dir).live
            loose = [r for r in refs if r not in live]
            listing = set(rem.list_objects(object_folders(loose))) if loose else set()
            listing |= {r for r in refs if r in live}
    except RemoteError as e:  # keeping is always safe; the next gc with the remote reachable can go on
        plan.warnings.append(f"{e.message}: committed data is kept as not on any remote")
        return set()
    held = {r for r in refs if r in listing}
    if gone_from is not None and gone_from[0] == name:
        held -= gone_from[1] - plan.packs.held
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
        res.runs_removed = runcache.prune(repo)
    if plan.remote_name is not None:
        with open_remote(repo, plan.remote_name, plan.remote_jobs) as rem:
            if plan.remote or not plan.packs.empty:
                trace = packs.gc_begin(rem)  # a push running now sees it at its end and looks again
                if plan.remote:
                    res.remote_removed = rem.remove_objects([r for r, _ in plan.remote], progress=progress)
                    res.remote_bytes = _total(plan.remote)
                if not plan.packs.empty:
                    n, b = _run_packs(rem, plan.packs, progress)
                    res.remote_removed += n
                    res.remote_bytes += b
                packs.gc_end(rem, trace)
            rem.remove_stale_temporaries()
    return res


def _run_packs(rem: Remote, pp: PackPlan, progress: Progress) -> tuple[int, int]:
    """Rewrite the packs to repack (their kept objects, verified, into new packs), then
    one record naming the new packs and marking the old and emptied ones; then remove
    the packs whose mark is older than gc.grace (with gc.grace 0: those just marked too)."""
    made: list[packs.PackInfo] = []
    marked = list(pp.mark)
    keep_packs: set[str] = set()  # a rescue failed: these stay, marked
    if pp.rescue:
        got: dict[ObjectRef, bytes] = {}
        for ref, data, _why in packs.read_packed(rem, pp.rescue):
            if data is not None:
                got[ref] = data
            else:
                keep_packs.add(pp.rescue[ref].pack)
        if got:
            made.append(packs.write_pack(rem, lambda: got.items()))
    for pid, kept in sorted(pp.repack.items()):
        wanted = {r: packs.Packed(pid, o, n) for r, o, n in kept}
        datas: dict[ObjectRef, bytes] = {}
        for ref, data, _why in packs.read_packed(rem, wanted):
            if data is not None:
                datas[ref] = data
        if len(datas) != len(wanted):  # something unreadable there: leave the pack as it is
            continue
        info = packs.write_pack(rem, lambda: datas.items())  # called at once: datas is this pack's
        made.append(info)
        marked.append(pid)
    if made or marked:
        packs.write_record(rem, packs=made, drop=marked)
    remove = [pid for pid in pp.remove if pid not in keep_packs] + (marked if pp.grace <= 0 else [])
    rels = [rel for pid in remove for rel in (packs.pack_rel(pid), packs.idx_rel(pid))]
    rem.remove_files(rels)
    if pp.compact:
        packs.compact(rem, packs.load(rem, None))  # read afresh: what this run wrote and removed counts
    left = {r for r, _ in pp.leaving}
    return len(left), _total(pp.leaving)
