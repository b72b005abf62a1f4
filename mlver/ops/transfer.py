"""``mlver push``, ``fetch``, ``pull`` and ``status -r``: move only the objects that are
missing, in parallel, following folder manifests. Plan first (what is in scope, what
each side holds), then act. Push confirms against a fresh listing of the remote every
time, because a teammate's ``gc --cloud`` may have removed objects."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlver.cache import ObjectRef
from mlver.errors import ChecksumMismatch
from mlver.ops.scope import (Scope, expand, local_manifest_reader, outputs_in_scope, prefixes, root_refs,
                             run_cache_refs, runs_dir)
from mlver.pointer import Manifest, parse_manifest
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import RUNS_DIR, Remote, local_tree_files, remote_config
from mlver.repo import Repo
from mlver.workspace import CheckoutResult, CorruptFile


@dataclass(frozen=True)
class ObjectIssue:
    path: str  # a repo-relative path that needs the object
    digest: str
    message: str = ""

    def to_json(self) -> dict:
        return {"path": self.path, "digest": self.digest}


@dataclass
class TransferResult:
    remote: str
    transferred: int = 0  # objects sent or received
    bytes: int = 0
    already: int = 0  # objects in scope that needed no transfer
    missing: list[ObjectIssue] = field(default_factory=list)  # absent where they had to come from
    corrupt: list[ObjectIssue] = field(default_factory=list)  # refused: bytes did not match the digest
    runs: int = 0  # run-cache entries transferred

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
                                                     "corrupt": [{"path": x.path, "digest": x.digest}
                                                                 for x in c.corrupt]}}


def open_remote(repo: Repo, name: str | None, jobs: int | None = None) -> Remote:
    rc = remote_config(repo.config.remotes(), repo.config.get("core.remote"), name)
    return Remote(rc, base_dir=repo.root, jobs=jobs)


def _issues(refs: dict[ObjectRef, str], which: list[ObjectRef]) -> list[ObjectIssue]:
    return sorted((ObjectIssue(refs[r], r.digest) for r in which), key=lambda i: (i.path, i.digest))


# --- push --------------------------------------------------------------------------

def push(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, jobs: int | None = None,
         scope: Scope = Scope(), run_cache: bool = False, progress: Progress = NO_PROGRESS) -> TransferResult:
    with open_remote(repo, remote, jobs) as rem:
        rem.require_writable()
        roots = root_refs(outputs_in_scope(repo, scope, targets))
        if run_cache:
            for ref in run_cache_refs(repo):
                roots.setdefault(ref, f"run cache ({ref.digest[:10]})")
        read = local_manifest_reader(repo)
        wanted, unreadable = expand(roots, read)
        cache = repo.cache
        res = TransferResult(rem.name)
        stored = cache.present(wanted)
        present = {r: p for r, p in wanted.items() if r not in unreadable and r in stored}
        res.missing = _issues(wanted, [r for r in wanted if r not in present])
        on_remote = rem.list_objects(prefixes(present)) if present else {}
        todo = [r for r in present if r not in on_remote]
        res.already = len(present) - len(todo)
        # files before the manifests that list them, and a manifest only when every file
        # it lists is sent or already there: a folder's manifest on the remote means its
        # files are there too (`status -r` relies on it)
        files = [r for r in todo if not r.manifest]
        manifests = [r for r in todo if r.manifest
                     and all(ObjectRef(e.digest, False) in present for e in read(r).entries)]  # type: ignore[union-attr]
        refused: set[ObjectRef] = set()
        for batch in (files, manifests):
            if refused:  # a folder whose file was refused: its manifest stays back too
                batch = [r for r in batch if not any(ObjectRef(e.digest, False) in refused
                                                     for e in read(r).entries)]  # type: ignore[union-attr]
            sent = rem.upload(cache, sorted(batch, key=lambda r: r.digest), progress=progress)
            res.transferred += sent.objects
            res.bytes += sent.bytes
            for ref in sent.corrupt:  # bytes that do not match their name never spread
                refused.add(ref)
                moved, why = cache.try_quarantine(ref)
                res.corrupt.append(ObjectIssue(wanted[ref], ref.digest, moved or f"left in place: {why}"))
        res.corrupt.sort(key=lambda i: (i.path, i.digest))
        if run_cache:
            local = local_tree_files(runs_dir(repo))
            new = sorted(local - rem.list_tree(RUNS_DIR))
            res.runs = rem.upload_tree(runs_dir(repo), RUNS_DIR, new)
        return res


# --- fetch / pull ------------------------------------------------------------------

def fetch(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, jobs: int | None = None,
          scope: Scope = Scope(), run_cache: bool = False, progress: Progress = NO_PROGRESS) -> TransferResult:
    with open_remote(repo, remote, jobs) as rem:
        res = TransferResult(rem.name)
        if run_cache:
            os.makedirs(runs_dir(repo), exist_ok=True)
            new = sorted(rem.list_tree(RUNS_DIR) - local_tree_files(runs_dir(repo)))
            res.runs = rem.download_tree(runs_dir(repo), RUNS_DIR, new)
        roots = root_refs(outputs_in_scope(repo, scope, targets))
        if run_cache:
            for ref in run_cache_refs(repo):
                roots.setdefault(ref, f"run cache ({ref.digest[:10]})")
        # 1. manifests of folders, 2. the files they list
        manifests = {r: p for r, p in roots.items() if r.manifest}
        _bring(rem, repo, manifests, res, progress)
        wanted, unreadable = expand(roots, local_manifest_reader(repo))
        files = {r: p for r, p in wanted.items() if not r.manifest and r not in unreadable}
        _bring(rem, repo, files, res, progress)
        counted = {i.digest for i in res.missing} | {i.digest for i in res.corrupt}
        for ref, path in unreadable.items():  # a manifest we could not get: its folder is missing
            if ref.digest not in counted:
                res.missing.append(ObjectIssue(path, ref.digest))
        res.missing.sort(key=lambda i: (i.path, i.digest))
        res.corrupt.sort(key=lambda i: (i.path, i.digest))
        return res


def _bring(rem: Remote, repo: Repo, refs: dict[ObjectRef, str], res: TransferResult, progress: Progress) -> None:
    cache = repo.cache
    stored = cache.present(refs)
    need = {r: p for r, p in refs.items() if r not in stored}
    res.already += len(refs) - len(need)
    if not need:
        return
    if rem.can_list:
        listing = rem.list_objects(prefixes(need))
        absent = [r for r in need if r not in listing]
        sizes: dict[ObjectRef, int | None] = {r: listing[r] for r in need if r in listing}
    else:  # http: no listing; a missing object shows up as "not found"
        absent = []
        sizes = {r: None for r in need}
    got = rem.download(cache, sizes, progress=progress)
    res.transferred += got.objects
    res.bytes += got.bytes
    res.missing.extend(_issues(need, absent + got.missing))
    for ref, message in got.corrupt:
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
        listing = rem.list_objects(prefixes(manifests)) if manifests and rem.can_list else {}

        on_remote: set[ObjectRef] = set()

        def read(ref: ObjectRef) -> Manifest | None:
            m = local_read(ref)
            if m is None and ref in listing:
                try:
                    m = parse_manifest(rem.read_object(ref, listing[ref]), f"manifest {ref.digest}")
                except (FileNotFoundError, ChecksumMismatch):
                    return None
            if m is not None and ref in listing:
                # push sends a folder's files before its manifest, and gc keeps the files of
                # a manifest it keeps: a manifest on the remote vouches for its files (as in
                # DVC); `mlver fsck -r` is the check of every object
                on_remote.update(ObjectRef(e.digest, False) for e in m.entries)
            return m

        wanted, _ = expand(roots, read)
        unknown = [r for r in wanted if r not in listing and r not in on_remote]
        listing.update(rem.list_objects(prefixes(unknown)) if unknown and rem.can_list else {})
        on_remote.update(listing)
        stored = repo.cache.present(wanted)
        doc: dict = {"name": rem.name, "url": rem.url, "local_only": [], "remote_only": [], "missing": [],
                     "in_sync": 0}
        for ref, path in sorted(wanted.items(), key=lambda kv: (kv[1], kv[0].digest)):
            local, remote = ref in stored, ref in on_remote
            key = ("local_only" if local and not remote else "remote_only" if remote and not local
                   else "missing" if not local else None)
            if key is None:
                doc["in_sync"] += 1
            else:
                doc[key].append({"path": path, "digest": ref.digest})
        return doc
