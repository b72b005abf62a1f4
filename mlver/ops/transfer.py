"""``mlver push``, ``fetch``, ``pull`` and ``status -r``: move only the objects that are
missing, in parallel, following folder manifests. Plan first (what is in scope, what
each side holds), then act. Push confirms against a fresh listing of the remote every
time, because a teammate's ``gc --cloud`` may have removed objects."""

from __future__ import annotations

import os
from typing import Callable
from dataclasses import dataclass, field

from mlver.hashing import algo_of, digest_fields
from mlver import failpoint, packs
from mlver.cache import Cache, ObjectRef, object_folders
from mlver.errors import ChecksumMismatch, RemoteError
from mlver.ops.scope import (Scope, expand, local_manifest_reader, outputs_in_scope, root_refs, route,
                             run_cache_refs, runs_dir)
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import RUNS_DIR, Remote, local_tree_files, remote_config
from mlver.repo import Repo
from mlver.workspace import CheckoutResult, CorruptFile, Output


@dataclass(frozen=True)
class ObjectIssue:
    path: str  # a repo-relative path that needs the object
    digest: str
    message: str = ""

    def to_json(self) -> dict:
        return {"path": self.path, **digest_fields(self.digest)}


@dataclass
class TransferResult:
    remote: str
    transferred: int = 0  # objects sent or received
    bytes: int = 0
    already: int = 0  # objects in scope that needed no transfer
    missing: list[ObjectIssue] = field(default_factory=list)  # absent where they had to come from
    corrupt: list[ObjectIssue] = field(default_factory=list)  # refused: bytes did not match the digest
    runs: int = 0  # run-cache entries transferred
    created: str | None = None  # push made the remote's folder (its parent existed)
    temporaries_removed: int = 0  # push removed temporaries left on the remote by killed pushes
    others: dict[str, int] = field(default_factory=dict)  # objects moved with other remotes (``remote: NAME``)

    def absorb(self, other: "TransferResult") -> None:
        """Add another remote's transfer (outputs with their own ``remote:``) to this one."""
        if other.transferred:
            self.others[other.remote] = self.others.get(other.remote, 0) + other.transferred
        self.transferred += other.transferred
        self.bytes += other.bytes
        self.already += other.already
        self.missing += other.missing
        self.corrupt += other.corrupt

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    def to_json(self) -> dict:
        return {"version": 1, "remote": self.remote, "transferred": self.transferred, "bytes": self.bytes,
                "already": self.already, "missing": [m.to_json() for m in self.missing],
                "corrupt": [c.to_json() for c in self.corrupt], "run_cache": self.runs}


@dataclass
class PullResult:
    fetch: TransferResult
    checkout: CheckoutResult
    repaired: list[CorruptFile] = field(default_factory=list)  # corrupt in the cache, then fetched again

    def to_json(self) -> dict:
        c = self.checkout
        return {**self.fetch.to_json(), "checkout": {"added": c.added, "modified": c.modified,
                                                     "deleted": c.deleted, "kept": c.kept + c.orphaned,
                                                     "missing": c.missing,
                                                     "corrupt": [{"path": x.path, **digest_fields(x.digest)}
                                                                 for x in c.corrupt]}}


def open_remote(repo: Repo, name: str | None, jobs: int | None = None) -> Remote:
    rc = remote_config(repo.config.remotes(), repo.config.get("core.remote"), name)
    return Remote(rc, base_dir=repo.root, jobs=jobs)


def _issues(refs: dict[ObjectRef, str], which: list[ObjectRef]) -> list[ObjectIssue]:
    return sorted((ObjectIssue(refs[r], r.digest) for r in which), key=lambda i: (i.path, i.digest))


# --- push --------------------------------------------------------------------------

def push(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, jobs: int | None = None,
         scope: Scope = Scope(), run_cache: bool = False, progress: Progress = NO_PROGRESS) -> TransferResult:
    """Send the objects in scope that the remote lacks (outputs declared ``remote: NAME``
    go to NAME, ``push: false`` ones nowhere)."""
    found = outputs_in_scope(repo, scope, targets)
    return _routed(repo, remote, jobs, lambda rem, outs, first: _push_to(
        rem, repo, outs, run_cache=run_cache and first, progress=progress), found)


def fetch(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, jobs: int | None = None,
          scope: Scope = Scope(), run_cache: bool = False, progress: Progress = NO_PROGRESS) -> TransferResult:
    """Bring the objects in scope that the cache lacks, each from the remote it lives on."""
    found = outputs_in_scope(repo, scope, targets)
    return _routed(repo, remote, jobs, lambda rem, outs, first: _fetch_from(
        rem, repo, outs, run_cache=run_cache and first, progress=progress), found)


def _routed(repo: Repo, remote: str | None, jobs: int | None,
            move: Callable[[Remote, list[tuple[str, Output]], bool], TransferResult],
            found: list[tuple[str, Output]]) -> TransferResult:
    """``move`` the outputs each remote is for: the one asked for (or the default), then
    every remote an output names with ``remote: NAME`` (see scope.route)."""
    with open_remote(repo, remote, jobs) as rem:
        mine, others = route(repo, found, rem.name, explicit=remote is not None)
        res = move(rem, mine, True)
    for name in sorted(others):
        with open_remote(repo, name, jobs) as rem:
            declared, _ = route(repo, found, rem.name, explicit=True, declared_only=True)
            res.absorb(move(rem, declared, False))
    return res


def _push_to(rem: Remote, repo: Repo, found: list[tuple[str, Output]], *, run_cache: bool,
             progress: Progress) -> TransferResult:
    rem.require_writable()
    created = rem.ensure_exists(create=True, used=packs.was_used(repo.tmp_dir, rem))
    packs.mark_used(repo.tmp_dir, rem)
    roots = root_refs(found)
    if run_cache:
        for ref in run_cache_refs(repo):
            roots.setdefault(ref, f"run cache ({ref.digest[:10]})")
    read = local_manifest_reader(repo)
    wanted, unreadable = expand(roots, read)
    cache = repo.cache
    res = TransferResult(rem.name, created=created)
    stored = cache.present(wanted)
    present = {r: p for r, p in wanted.items() if r not in unreadable and r in stored}
    res.missing = _issues(wanted, [r for r in wanted if r not in present])
    traces = packs.gc_traces(rem) if present else set()  # before looking: a gc from now on is seen at the end
    inv = packs.load(rem, repo.tmp_dir) if present else packs.Inventory()
    in_packs = {r for r in present if r in inv.live}  # a copy in a marked pack does not count: sent again
    rest = [r for r in present if r not in in_packs]
    on_remote = set(rem.list_objects(object_folders(rest))) if rest else set()
    on_remote |= in_packs
    todo = [r for r in present if r not in on_remote]
    res.already = len(present) - len(todo)
    # files before the manifests that list them, and a manifest only when every file
    # it lists is sent or already there: a folder's manifest on the remote means its
    # files are there too (`status -r` relies on it). Packed files become visible with
    # the inventory record, which is written before any manifest.
    files = [r for r in todo if not r.manifest]
    manifests = [r for r in todo if r.manifest
                 and all(ObjectRef(e.digest, False) in present for e in read(r).entries)]  # type: ignore[union-attr]
    refused: set[ObjectRef] = set()
    sent_refs: list[ObjectRef] = []
    small = _to_pack(rem, cache, files)
    loose_files = [r for r in files if r not in small]
    sent = rem.upload(cache, sorted(loose_files, key=lambda r: r.digest), progress=progress)
    groups = packs.plan_packs(list(small), small, packs.settings(rem).size, rem.jobs) if small else []
    made, packed = packs.upload_packs(rem, cache, groups, small, progress=progress)
    for up in (sent, packed):
        res.transferred += up.objects
        res.bytes += up.bytes
        _refuse(cache, up.corrupt, wanted, refused, res)
    if made:
        packs.write_record(rem, packs=made, loose=[(r, _size(cache, r)) for r in loose_files if r not in refused])
    sent_refs += [r for r in files if r not in refused]
    batch = [r for r in manifests if not any(ObjectRef(e.digest, False) in refused
                                             for e in read(r).entries)]  # type: ignore[union-attr]
    sent = rem.upload(cache, sorted(batch, key=lambda r: r.digest), progress=progress)
    res.transferred += sent.objects
    res.bytes += sent.bytes
    _refuse(cache, sent.corrupt, wanted, refused, res)
    sent_refs += [r for r in batch if r not in refused]
    # every object this push relies on (skipped as already there, or sent) must still be
    # there at its end: a teammate's `gc --cloud` may have collected one meanwhile
    skipped = [r for r in present if r in on_remote]
    failpoint.hit("push-before-confirm")
    if present and packs.gc_ran_since(rem, traces):
        _confirm(rem, cache, skipped, sent_refs, res, progress, wanted, refused, tmp_dir=repo.tmp_dir)
    res.corrupt.sort(key=lambda i: (i.path, i.digest))
    if run_cache:
        local = local_tree_files(runs_dir(repo))
        new = sorted(local - rem.list_tree(RUNS_DIR))
        res.runs = rem.upload_tree(runs_dir(repo), RUNS_DIR, new)
    res.temporaries_removed = rem.remove_stale_temporaries()  # of pushes killed before us
    return res


def _size(cache: Cache, ref: ObjectRef) -> int:
    try:
        return os.path.getsize(cache.path(ref.digest, ref.manifest))
    except OSError:
        return 0


def _to_pack(rem: Remote, cache: Cache, files: list[ObjectRef]) -> dict[ObjectRef, int]:
    """The files of a push that travel in packs (with their sizes): those smaller than
    ``pack_threshold``, when packs are on and there are at least ``PACK_MIN_OBJECTS``."""
    cfg = packs.settings(rem)
    if not cfg.enabled or len(files) < packs.PACK_MIN_OBJECTS:
        return {}
    small = {}
    for r in files:
        n = _size(cache, r)
        if n < cfg.threshold:
            small[r] = n
    return small if len(small) >= packs.PACK_MIN_OBJECTS else {}


CONFIRM_ROUNDS = 3


def _lists_refused(cache: Cache, ref: ObjectRef, refused: set[ObjectRef]) -> bool:
    """Whether the manifest ``ref`` lists a file refused as corrupt (it is then held back)."""
    try:
        m = parse_manifest(cache.read_bytes(ref.digest, manifest=True), f"manifest {ref.digest}", algo_of(ref.digest))
    except Exception:  # noqa: BLE001 - unreadable here: push already judged it
        return False
    return any(ObjectRef(e.digest, False) in refused for e in m.entries)


def _refuse(cache: Cache, corrupt: list[ObjectRef], wanted: dict[ObjectRef, str], refused: set[ObjectRef],
            res: TransferResult) -> None:
    """Objects whose bytes in the cache do not match their name were not uploaded: they
    never spread. Each is moved to the cache's quarantine (or named as left in place)."""
    for ref in corrupt:
        if ref in refused:
            continue
        refused.add(ref)
        moved, why = cache.try_quarantine(ref)
        res.corrupt.append(ObjectIssue(wanted[ref], ref.digest, moved or f"left in place: {why}"))


def _confirm(rem: Remote, cache: Cache, skipped: list[ObjectRef], sent: list[ObjectRef], res: TransferResult,
             progress: Progress, wanted: dict[ObjectRef, str] | None = None,
             refused: set[ObjectRef] | None = None, *, tmp_dir: str | None = None) -> None:
    """Look again (the inventory, and a listing of the loose objects) for every object a
    push relies on (``skipped`` as already there, and ``sent``) and upload again, loose,
    whatever vanished or sits only in a pack a gc marked (files before manifests); a
    few rounds, then an error rather than a success for objects that are gone. An object
    found corrupt on its re-upload is refused (quarantined, listed) like in the push, and
    the manifests that list it are held back. Push calls it when a ``gc --cloud`` ran
    on the remote while it worked (``packs.gc_ran_since``)."""
    wanted = wanted if wanted is not None else {}
    refused = refused if refused is not None else set()
    relied = skipped + sent
    was_skipped = set(skipped)
    for _ in range(CONFIRM_ROUNDS):
        live = packs.load(rem, tmp_dir).live
        loose = [r for r in relied if r not in live]
        listing = rem.list_objects(object_folders(loose)) if loose else {}
        gone = [r for r in loose if r not in listing]
        if not gone:
            return
        for batch in ([r for r in gone if not r.manifest], [r for r in gone if r.manifest]):
            if refused:
                batch = [r for r in batch if r not in refused and not (r.manifest and _lists_refused(cache, r, refused))]
            up = rem.upload(cache, sorted(batch, key=lambda r: r.digest), progress=progress)
            res.bytes += up.bytes
            _refuse(cache, up.corrupt, {**{r: r.relpath for r in up.corrupt}, **wanted}, refused, res)
        gone = [r for r in gone if r not in refused and not (r.manifest and _lists_refused(cache, r, refused))]
        again = [r for r in gone if r in was_skipped]  # now sent, no longer "already there"
        res.transferred += len(again)
        res.already -= len(again)
        was_skipped.difference_update(again)
        relied = gone
    raise RemoteError(f"{len(relied)} object(s) pushed to {rem.describe()} kept vanishing "
                      f"(e.g. {relied[0].relpath}): is a `gc --cloud` with a short gc.grace running?",
                      hint="run `mlver push` again")


# --- fetch / pull ------------------------------------------------------------------

def _fetch_from(rem: Remote, repo: Repo, found: list[tuple[str, Output]], *, run_cache: bool,
                progress: Progress) -> TransferResult:
    rem.ensure_exists()  # even when the cache holds everything: "up to date with" a real remote
    packs.mark_used(repo.tmp_dir, rem)
    res = TransferResult(rem.name)
    if run_cache:
        os.makedirs(runs_dir(repo), exist_ok=True)
        new = sorted(rem.list_tree(RUNS_DIR) - local_tree_files(runs_dir(repo)))
        res.runs = rem.download_tree(runs_dir(repo), RUNS_DIR, new)
    roots = root_refs(found)
    if run_cache:
        for ref in run_cache_refs(repo):
            roots.setdefault(ref, f"run cache ({ref.digest[:10]})")
    # 1. manifests of folders, 2. the files they list
    manifests = {r: p for r, p in roots.items() if r.manifest}
    inv = packs.Lazy(rem, repo.tmp_dir)  # read only when the cache lacks something
    _bring(rem, repo, manifests, res, progress, inv)
    wanted, unreadable = expand(roots, local_manifest_reader(repo))
    files = {r: p for r, p in wanted.items() if not r.manifest and r not in unreadable}
    _bring(rem, repo, files, res, progress, inv)
    counted = {i.digest for i in res.missing} | {i.digest for i in res.corrupt}
    for ref, path in unreadable.items():  # a manifest we could not get: its folder is missing
        if ref.digest not in counted:
            res.missing.append(ObjectIssue(path, ref.digest))
    res.missing.sort(key=lambda i: (i.path, i.digest))
    res.corrupt.sort(key=lambda i: (i.path, i.digest))
    return res


def _bring(rem: Remote, repo: Repo, refs: dict[ObjectRef, str], res: TransferResult, progress: Progress,
           lazy: packs.Lazy | None = None) -> None:
    cache = repo.cache
    stored = cache.present(refs)
    need = {r: p for r, p in refs.items() if r not in stored}
    res.already += len(refs) - len(need)
    if not need:
        return
    absent: list[ObjectRef] = []
    corrupt: list[tuple[ObjectRef, str]] = []
    packed: dict[ObjectRef, packs.Packed] = {}
    inv = lazy.get() if lazy is not None else None  # http reads it through index/names
    if inv is not None:  # packed objects: ranged reads, neighbours coalesced
        for r in need:
            p = inv.live.get(r) or inv.marked.get(r)
            if p is not None:
                packed[r] = p
        got = packs.download_packed(rem, cache, packed, progress=progress)
        res.transferred += got.objects
        res.bytes += got.bytes
        corrupt += got.corrupt
        loose = [r for r in need if r not in packed or r in got.missing]  # a pack gone: maybe loose too
    else:
        loose = list(need)
    if rem.can_list:
        listing = rem.list_objects(object_folders(loose)) if loose else {}
        absent += [r for r in loose if r not in listing]
        sizes: dict[ObjectRef, int | None] = {r: listing[r] for r in loose if r in listing}
    else:  # http: no listing; a missing object shows up as "not found"
        sizes = {r: None for r in loose}
    got = rem.download(cache, sizes, progress=progress)
    res.transferred += got.objects
    res.bytes += got.bytes
    res.missing.extend(_issues(need, absent + got.missing))
    for ref, message in corrupt + got.corrupt:
        res.corrupt.append(ObjectIssue(need[ref], ref.digest, message))


def pull(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, jobs: int | None = None,
         scope: Scope = Scope(), run_cache: bool = False, force: bool = False,
         progress: Progress = NO_PROGRESS) -> PullResult:
    """fetch, then checkout of the workspace (keeping and listing local changes that
    are not in the cache, unless ``force``)."""
    from mlver.ops.checkout import checkout

    fetched = fetch(repo, targets, remote=remote, jobs=jobs, scope=scope, run_cache=run_cache, progress=progress)
    done = checkout(repo, targets, force=force, progress=progress)
    repaired: list[CorruptFile] = []
    if done.corrupt:
        # the fetch saw these objects in the cache, and the checkout found their bytes
        # corrupt and quarantined them: fetch good copies and check them out, once
        again = [repo.abs(c.path) for c in done.corrupt]
        refetched = fetch(repo, again, remote=remote, jobs=jobs, progress=progress)
        fetched.transferred += refetched.transferred
        fetched.bytes += refetched.bytes
        for name in ("missing", "corrupt"):
            seen = set(getattr(fetched, name))
            getattr(fetched, name).extend(i for i in getattr(refetched, name) if i not in seen)
        repaired = done.merge_retry(checkout(repo, again, force=force, progress=progress))
    return PullResult(fetched, done, repaired)


# --- status -r ---------------------------------------------------------------------

def remote_status(repo: Repo, remote_name: str | None, *, targets: list[str] | None = None,
                  progress: Progress = NO_PROGRESS) -> dict:
    """Objects of the workspace's outputs that are only in the cache, only on the remote,
    or in neither (each as ``{"path", "digest"}``)."""
    with open_remote(repo, remote_name) as rem:
        roots = root_refs(outputs_in_scope(repo, Scope(), targets))
        local_read = local_manifest_reader(repo)
        manifests = [r for r in roots if r.manifest]

        def lookup(refs: list[ObjectRef]) -> dict[ObjectRef, int]:  # http: no listing, a HEAD each
            if not refs:
                return {}
            return rem.list_objects(object_folders(refs)) if rem.can_list else rem.probe_objects(refs)

        listing = lookup(manifests)

        on_remote: set[ObjectRef] = set()

        def read(ref: ObjectRef) -> Manifest | None:
            m = local_read(ref)
            if m is None and ref in listing:
                try:
                    m = parse_manifest(rem.read_object(ref, listing[ref]), f"manifest {ref.digest}", algo_of(ref.digest))
                except (FileNotFoundError, ChecksumMismatch):
                    return None
            if m is not None and ref in listing:
                # push sends a folder's files before its manifest, and gc keeps the files of
                # a manifest it keeps: a manifest on the remote vouches for its files (as in
                # DVC); `mlver fsck -r` is the check of every object
                on_remote.update(ObjectRef(e.digest, False) for e in m.entries)
            return m

        wanted, _ = expand(roots, read)
        if any(r not in on_remote and r not in listing for r in wanted):  # not all vouched for: the inventory
            live = packs.load(rem, repo.tmp_dir).live  # (http reads it through index/names)
            on_remote.update(r for r in wanted if r in live)
        unknown = [r for r in wanted if r not in listing and r not in on_remote]
        listing.update(lookup(unknown))
        on_remote.update(listing)
        stored = repo.cache.present(wanted)
        doc: dict = {"name": rem.name, "url": rem.url, "local_only": [], "remote_only": [], "missing": [],
                     "in_sync": 0}
        differ: dict[str, list[tuple[str, str]]] = {"local_only": [], "remote_only": [], "missing": []}
        for ref, path in wanted.items():  # only what differs is sorted: in sync is usually nearly all
            local, remote = ref in stored, ref in on_remote
            if local and remote:
                doc["in_sync"] += 1
            else:
                differ["local_only" if local else "remote_only" if remote else "missing"].append((path, ref.digest))
        for key, rows in differ.items():
            doc[key] = [{"path": path, **digest_fields(digest)} for path, digest in sorted(rows)]
        return doc
