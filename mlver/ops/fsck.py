"""``mlver fsck``: re-hash every object in the cache (and on a remote with ``-r``) in
parallel. A corrupt object is moved to ``quarantine/`` (under the cache, or on the
remote), out of the layout: the next ``pull`` fetches a good copy into the cache, and the
next ``push`` from a clone that has one sends it to the remote again."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from mlver.hashing import digest_fields
from mlver import packs
from mlver.cache import ObjectRef
from mlver.errors import MlverError
from mlver.fsutil import parallel_map
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import WORKERS

if TYPE_CHECKING:  # pragma: no cover
    from mlver.remote import Remote

WHERE_CACHE = "cache"


@dataclass(frozen=True)
class Corrupt:
    digest: str
    where: str  # "cache" or "remote:NAME"
    manifest: bool = False
    quarantined: str | None = None  # where it was moved (None: left in place)
    pack: str | None = None  # a packed copy on a remote: the pack that holds it


@dataclass
class FsckResult:
    checked: int = 0
    corrupt: list[Corrupt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a quarantine a read-only cache refused

    def to_json(self) -> dict:
        return {"version": 1, "checked": self.checked,
                "corrupt": [{**digest_fields(c.digest), "where": c.where, **({"pack": c.pack} if c.pack else {})}
                            for c in self.corrupt]}


def fsck(repo: Repo, *, remote: str | None = None, cloud: bool = False, jobs: int | None = None,
         sample: int | None = None, progress: Progress = NO_PROGRESS) -> FsckResult:
    res = FsckResult()
    cache = repo.cache
    refs = list(cache.iter_objects())
    sizes = {}
    for r in refs:
        try:
            sizes[r] = os.path.getsize(cache.path(r.digest, r.manifest))
        except OSError:
            sizes[r] = 0
    progress.start("checking the cache", total_files=len(refs), total_bytes=sum(sizes.values()))

    def check(ref: ObjectRef) -> tuple[ObjectRef, bool]:
        try:
            good = cache.verify(ref)
        except FileNotFoundError:  # removed meanwhile
            good = True
        progress.advance(files=1, nbytes=sizes[ref])
        return ref, good

    checked = parallel_map(check, refs, jobs or WORKERS)
    progress.finish()
    res.checked += len(checked)
    for ref, good in checked:  # report first; quarantine where the cache lets us
        if not good:
            moved, why = cache.try_quarantine(ref)
            if moved is None:
                res.warnings.append(f"could not move corrupt object {ref.digest} to quarantine ({why}); "
                                    "it stays in the cache")
            res.corrupt.append(Corrupt(ref.digest, WHERE_CACHE, ref.manifest, moved))
    if remote is not None or cloud:  # also the remote (the default one with --cloud)
        from mlver.ops.transfer import open_remote

        with open_remote(repo, remote, jobs) as rem:
            listing = rem.list_objects()
            bad = rem.check_objects(listing, progress=progress)
            res.checked += len(listing)
            for r in bad:
                try:
                    moved = rem.quarantine(r)
                except (OSError, MlverError) as e:  # reported all the same
                    moved = None
                    res.warnings.append(f"could not move corrupt object {r.digest} on remote '{rem.name}' to "
                                        f"quarantine ({e}); it stays there")
                res.corrupt.append(Corrupt(r.digest, f"remote:{rem.name}", r.manifest, moved))
            _check_packs(repo, rem, res, progress, sample)
    return res


def _check_packs(repo: Repo, rem: "Remote", res: FsckResult, progress: Progress, sample: int | None) -> None:
    """Packed objects: each re-hashed from its pack. A corrupt packed copy cannot be
    moved out of its pack: an inventory record names it as bad, so readers skip it and the
    next push from a clone with a good copy sends the object again."""
    inv = packs.load(rem, repo.tmp_dir)
    if not inv.packs:
        return
    checked, bad = packs.check_packed(rem, inv, sample=sample, progress=progress)
    res.checked += checked
    if not bad:
        return
    note: str | None = None
    try:
        if not rem.read_only:
            packs.write_record(rem, bad=bad)
            note = "marked bad in the inventory"
    except (OSError, MlverError) as e:
        res.warnings.append(f"could not mark corrupt packed objects on remote '{rem.name}' ({e})")
    for ref, pid in bad:
        res.corrupt.append(Corrupt(ref.digest, f"remote:{rem.name}", ref.manifest, note, pack=pid))
