"""Packs and the remote inventory: how many small objects travel to and live on a remote
(the local cache keeps whole-file objects; see SPEC "Remote layout and packs").

Layout on a remote, beside ``files/`` (loose objects, unchanged)::

    packs/<id>.pack      objects back to back (an id is 32 random hex digits)
    packs/<id>.idx       the pack's table: digest, manifest flag, offset, length (JSON)
    index/<digest>.json  an inventory record, named by the xxh3-128 digest of its bytes
    index/names          the records' names, one a line (for remotes that cannot be
                         listed: an http(s):// mirror reads the inventory through it)

A push writes each pack whole (a temporary then a rename, or one PUT / a multipart
upload that completes on close), then its table, then one inventory record naming the
packs (with their tables) and the loose files it added. Only a record makes a pack
visible: a pack without a record (a push killed before it) is absent, and ``gc --cloud``
removes it after ``gc.grace``. Records are append-only and readers take their union;
a record may also *mark* packs (``drop``: a gc repacked or emptied them; push treats
their objects as absent and uploads them again, fetch still reads them until a later gc
removes them after ``gc.grace``) and name packed copies found corrupt (``bad``: absent
from then on, so the next push writes a good copy loose). Records are named by their
digest, so each is verified when read and cached locally for good
(``.mlver/tmp/remotes/<key>/``): knowing what a remote holds costs one listing of
``index/`` plus the records not seen before.

Every object read out of a pack is verified against its digest before it is used.
``Inventory.locate`` says where an object is (loose path, or pack, offset and length):
the one place a reader asks.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from mlver import failpoint
from mlver.cache import Cache, ObjectRef, object_folders
from mlver.config import TRUE_WORDS, parse_size
from mlver.errors import ChecksumMismatch, RemoteError
from mlver.fsutil import atomic_write, unlink_quiet
from mlver.hashing import DEFAULT_ALGO, algo_of, digest_bytes, is_digest
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import Downloaded, Remote, Uploaded, checked_option, temporary_name

PACKS_DIR = "packs"
INDEX_DIR = "index"
PACK_SUFFIX = ".pack"
IDX_SUFFIX = ".idx"
RECORD_SUFFIX = ".json"
NAMES_REL = f"{INDEX_DIR}/names"
DEFAULT_PACK_THRESHOLD = 1 << 20  # remote.NAME.pack_threshold: smaller objects are packed
DEFAULT_PACK_SIZE = 64 << 20  # remote.NAME.pack_size: a pack is about this big
MIN_PACK_SIZE = 4 << 20  # packs are split across the jobs down to this size
COMPACT_ABOVE = 32  # gc --cloud folds the records into one when there are more than this
PACK_MIN_OBJECTS = 16  # a push with fewer small objects to send sends them loose
COALESCE_GAP = 256 << 10  # packed objects this close are fetched in one ranged read
RANGE_MAX = 8 << 20  # at most this many bytes per ranged read (times jobs: the memory a fetch holds)
OPTIONS = ("packs", "pack_threshold", "pack_size")
LOCKS_DIR = "locks"  # traces of `gc --cloud` runs, which a push checks at its end
GC_TRACE = "gc-"
DONE = ".done"
TRACE_MAX_AGE = 24 * 3600.0  # seconds a gc's trace is kept


# --- settings -----------------------------------------------------------------------

@dataclass(frozen=True)
class PackSettings:
    enabled: bool = True
    threshold: int = DEFAULT_PACK_THRESHOLD
    size: int = DEFAULT_PACK_SIZE


def settings(rem: Remote) -> PackSettings:
    o = rem.options
    for key in OPTIONS:
        checked_option(rem.name, o, key)
    enabled = o.get("packs", "true").strip().lower() in TRUE_WORDS
    return PackSettings(enabled and not rem.read_only,
                        parse_size(o["pack_threshold"], "pack_threshold") if "pack_threshold" in o
                        else DEFAULT_PACK_THRESHOLD,
                        parse_size(o["pack_size"], "pack_size") if "pack_size" in o else DEFAULT_PACK_SIZE)


# --- the inventory ------------------------------------------------------------------

class Packed(NamedTuple):
    """Where a packed object's bytes are. (A NamedTuple: an inventory holds one per
    packed object, tens of thousands, built on every read.)"""

    pack: str
    offset: int
    length: int

    @property
    def rel(self) -> str:
        return pack_rel(self.pack)


@dataclass(frozen=True)
class Location:
    """Where an object is on a remote: a loose file (``offset`` None), or a range of a pack."""

    rel: str
    offset: int | None = None
    length: int | None = None


def pack_rel(pack: str) -> str:
    return f"{PACKS_DIR}/{pack}{PACK_SUFFIX}"


def idx_rel(pack: str) -> str:
    return f"{PACKS_DIR}/{pack}{IDX_SUFFIX}"


@dataclass
class PackInfo:
    id: str
    size: int
    objects: list[tuple[ObjectRef, int, int]]  # (object, offset, length)
    added: float | None = None  # when the record that added it was written (remote clock)
    marked: float | None = None  # when a record marked it for removal (None: live)


@dataclass
class Inventory:
    """The union of a remote's inventory records."""

    records: dict[str, float | None] = field(default_factory=dict)  # name -> modification time
    packs: dict[str, PackInfo] = field(default_factory=dict)
    bad: set[tuple[ObjectRef, str]] = field(default_factory=set)  # (object, pack) found corrupt
    live: dict[ObjectRef, Packed] = field(default_factory=dict)  # in packs not marked
    marked: dict[ObjectRef, Packed] = field(default_factory=dict)  # only in marked packs (still readable)
    _pending_drops: dict[str, float | None] = field(default_factory=dict)  # marks read before their pack

    def locate(self, ref: ObjectRef, *, marked: bool = True) -> Location:
        """Where ``ref`` is: in a live pack, else (with ``marked``) in a pack marked for
        removal that is still there, else at its loose path (which may not exist)."""
        p = self.live.get(ref) or (self.marked.get(ref) if marked else None)
        if p is not None:
            return Location(p.rel, p.offset, p.length)
        return Location(ref.relpath)

    def index(self) -> None:
        self.live.clear()
        self.marked.clear()
        bad = self.bad
        for info in sorted(self.packs.values(), key=lambda i: i.id):
            into, pid = (self.live if info.marked is None else self.marked), info.id
            for ref, off, length in info.objects:
                if ref not in into and not (bad and (ref, pid) in bad):
                    into[ref] = Packed(pid, off, length)
        if self.marked:
            for ref in self.live:
                self.marked.pop(ref, None)

    def add_record(self, name: str, doc: dict, mtime: float | None) -> None:
        self.records[name] = mtime
        for p in doc.get("packs", []):  # objects as _parse typed them
            pid = str(p["id"])
            if pid not in self.packs:
                self.packs[pid] = PackInfo(pid, int(p.get("size", 0)), p["objects"], added=mtime)
            else:
                self.packs[pid].added = _earliest(self.packs[pid].added, mtime)
        for pid in doc.get("drop", []):
            known = self.packs.get(str(pid))
            if known is not None:
                known.marked = _earliest(known.marked, mtime) if known.marked is not None else mtime or time.time()
            else:  # marked in a record read before the one that adds it: remember the mark
                self._pending_drops[str(pid)] = mtime
        for d, m, pid in doc.get("bad", []):
            self.bad.add((ObjectRef(str(d), bool(m)), str(pid)))

    def settle(self) -> None:
        for pid, mtime in self._pending_drops.items():
            info = self.packs.get(pid)
            if info is not None:
                info.marked = mtime or time.time()
        self._pending_drops.clear()
        self.index()


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class Lazy:
    """The inventory of ``rem``, read at the first ``get()``."""

    def __init__(self, rem: Remote, tmp_dir: str | None) -> None:
        self.rem, self.tmp_dir = rem, tmp_dir
        self._inv: Inventory | None = None

    def get(self) -> Inventory:
        if self._inv is None:
            self._inv = load(self.rem, self.tmp_dir)
        return self._inv


def local_dir(tmp_dir: str, rem: Remote) -> str:
    """Where records of ``rem`` read before are kept (per remote: protocol and root)."""
    return os.path.join(tmp_dir, "remotes", digest_bytes(f"{rem.protocol}:{rem.root}".encode())[:16])


USED_MARK = "used"  # in local_dir: this clone has read or written the remote


def mark_used(tmp_dir: str, rem: Remote, *, why: str = "this clone has used it before") -> None:
    """Remember that ``rem`` was there (push then refuses to create it afresh when its
    folder vanishes: an unmounted drive is not an empty remote), and ``why`` it is
    known (said when it is missing)."""
    here = local_dir(tmp_dir, rem)
    if not os.path.exists(os.path.join(here, USED_MARK)):
        os.makedirs(here, exist_ok=True)
        atomic_write(os.path.join(here, USED_MARK), why.encode("utf-8"))


def was_used(tmp_dir: str, rem: Remote) -> str | None:
    """Why ``rem`` is known to exist (``mark_used``), None when it is not."""
    try:
        with open(os.path.join(local_dir(tmp_dir, rem), USED_MARK), "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "this clone has used it before"
    except FileNotFoundError:
        return None


def has_inventory(rem: Remote) -> bool:
    return any(n.endswith(RECORD_SUFFIX) for n, _, _ in rem.list_folder(INDEX_DIR))


def load(rem: Remote, tmp_dir: str | None) -> Inventory:
    """Read the remote's inventory: one listing of ``index/``, then the records not
    cached locally (each verified against its name); records gone from the remote are
    dropped from the local cache. A record that vanished between the listing and its
    read was folded into a new one by a gc (written before the old ones go): list again."""
    for _ in range(3):
        inv = _load(rem, tmp_dir)
        if inv is not None:
            return inv
    raise RemoteError(f"{rem.describe()}: the inventory under {INDEX_DIR}/ kept changing while it was read",
                      hint="is a `gc --cloud` running? run the command again")


def _records(rem: Remote) -> dict[str, float | None]:
    """The inventory records on the remote (name -> modification time): a listing of
    ``index/``, or, where the remote cannot be listed (http), its ``index/names``."""
    if rem.can_list:
        return {n[: -len(RECORD_SUFFIX)]: t for n, _, t in rem.list_folder(INDEX_DIR)
                if n.endswith(RECORD_SUFFIX) and is_digest(n[: -len(RECORD_SUFFIX)])}
    try:
        text = rem._retry(f"reading {NAMES_REL}", rem.fs.cat_file, rem.path(NAMES_REL))
    except FileNotFoundError:  # never pushed with packs: loose objects only
        return {}
    return {n: None for n in text.decode("ascii", "replace").split() if is_digest(n)}


def publish_names(rem: Remote) -> None:
    """Rewrite ``index/names`` from a listing of ``index/`` (after a record was added or
    records removed), so remotes served read-only over http can find the inventory. Two
    pushes at once may leave it one record short until the next push: an http reader
    then misses those packs and reports their objects as not found, never wrong bytes."""
    names = sorted(_records(rem))
    rem.put_bytes(NAMES_REL, "".join(f"{n}\n" for n in names).encode("ascii"))


def _load(rem: Remote, tmp_dir: str | None) -> Inventory | None:
    inv = Inventory()
    listed = _records(rem)
    here = local_dir(tmp_dir, rem) if tmp_dir else None
    docs: dict[str, dict] = {}
    todo = []
    for name in listed:
        data = _read_local(here, name) if here else None
        if data is None:
            todo.append(name)
        else:
            docs[name] = _parse(rem, name, data)

    def one(name: str, stop: threading.Event) -> tuple[str, bytes | None]:
        try:
            return name, rem._retry(f"reading {INDEX_DIR}/{name}{RECORD_SUFFIX}", rem.fs.cat_file,
                                    rem.path(f"{INDEX_DIR}/{name}{RECORD_SUFFIX}"), stop=stop)
        except FileNotFoundError:  # compacted meanwhile: its successor is listed next time
            return name, None

    for name, data in rem._parallel(sorted(todo), one):
        if data is None:
            return None
        if digest_bytes(data) != name:
            raise RemoteError(f"{rem.describe()}: inventory record {INDEX_DIR}/{name}{RECORD_SUFFIX} is damaged "
                              "(its bytes do not match its name)",
                              hint="move it aside on the remote, then run `mlver push` from a clone with the data")
        docs[name] = _parse(rem, name, data)
        if here:
            os.makedirs(here, exist_ok=True)
            atomic_write(os.path.join(here, name + RECORD_SUFFIX), data)
    if here and os.path.isdir(here):
        for f in os.listdir(here):
            if f.endswith(RECORD_SUFFIX) and f[: -len(RECORD_SUFFIX)] not in listed:
                unlink_quiet(os.path.join(here, f))
    for name in sorted(docs, key=lambda n: (listed.get(n) or 0, n)):
        inv.add_record(name, docs[name], listed.get(name))
    inv.settle()
    return inv


def _read_local(here: str, name: str) -> bytes | None:
    try:
        with open(os.path.join(here, name + RECORD_SUFFIX), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if digest_bytes(data) == name else None


def _parse(rem: Remote, name: str, data: bytes) -> dict:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("not a version 1 record")
        for p in doc.get("packs", []):  # checked and typed in one pass (20,000 entries a record)
            objs = []
            for d, m, o, n in p["objects"]:
                if not (isinstance(d, str) and is_digest(d)):
                    raise ValueError(f"bad digest {d!r}")
                objs.append((ObjectRef(d, bool(m)), int(o), int(n)))
            p["objects"] = objs
        return doc
    except (ValueError, KeyError, TypeError) as e:
        raise RemoteError(f"{rem.describe()}: inventory record {INDEX_DIR}/{name}{RECORD_SUFFIX} cannot be read "
                          f"({e})", hint="it was written by a newer mlver, or by another tool") from None


def compact(rem: Remote, inv: Inventory) -> int:
    """Fold the records ``inv`` was read from into one record saying the same of the packs
    that still exist, then remove them (readers take the union, so any moment in between
    reads the same inventory). Marks restart their gc.grace from now: later, never
    sooner. Returns how many records went."""
    present = {n[: -len(PACK_SUFFIX)] for n, _, _ in rem.list_folder(PACKS_DIR) if n.endswith(PACK_SUFFIX)}
    kept = [p for pid, p in sorted(inv.packs.items()) if pid in present]
    drop = [p.id for p in kept if p.marked is not None]
    bad = sorted((r, pid) for r, pid in inv.bad if pid in present)
    old = sorted(inv.records)
    new = write_record(rem, packs=kept, drop=drop, bad=bad) if kept else None
    gone = [f"{INDEX_DIR}/{n}{RECORD_SUFFIX}" for n in old if n != new]
    rem.remove_files(gone)
    publish_names(rem)
    return len(gone)


def write_record(rem: Remote, *, packs: Sequence[PackInfo] = (), loose: Sequence[tuple[ObjectRef, int]] = (),
                 drop: Sequence[str] = (), bad: Sequence[tuple[ObjectRef, str]] = ()) -> str:
    """Add one record (whole, named by its digest); returns its name."""
    doc: dict[str, Any] = {"version": 1, "hash": DEFAULT_ALGO, "written": round(time.time(), 3)}
    if packs:
        doc["packs"] = [{"id": p.id, "size": p.size,
                         "objects": [[r.digest, int(r.manifest), o, n] for r, o, n in p.objects]} for p in packs]
    if loose:
        doc["loose"] = [[r.digest, int(r.manifest), n] for r, n in loose]
    if drop:
        doc["drop"] = sorted(drop)
    if bad:
        doc["bad"] = [[r.digest, int(r.manifest), pid] for r, pid in sorted(bad)]
    data = json.dumps(doc, separators=(",", ":")).encode()
    name = digest_bytes(data)
    failpoint.hit("push-before-record")
    rem.put_bytes(f"{INDEX_DIR}/{name}{RECORD_SUFFIX}", data)
    publish_names(rem)
    return name


# --- writing packs --------------------------------------------------------------------

def plan_packs(refs: list[ObjectRef], sizes: dict[ObjectRef, int], size: int, jobs: int) -> list[list[ObjectRef]]:
    """``refs`` (in their order: a folder's files stay neighbours) cut into packs of about
    ``size`` bytes — smaller, down to ``MIN_PACK_SIZE``, to keep ``jobs`` uploads busy."""
    total = sum(sizes[r] for r in refs)
    count = max(-(-total // size), min(jobs, total // MIN_PACK_SIZE), 1)
    target = max(1, -(-total // count))
    out: list[list[ObjectRef]] = []
    cur: list[ObjectRef] = []
    filled = 0
    for r in refs:
        if cur and filled + sizes[r] > target:
            out.append(cur)
            cur, filled = [], 0
        cur.append(r)
        filled += sizes[r]
    if cur:
        out.append(cur)
    return out


def write_pack(rem: Remote, objects: Callable[[], Iterable[tuple[ObjectRef, bytes]]], *,
               stop: threading.Event | None = None) -> PackInfo:
    """Write the objects ``objects()`` yields as one new pack (whole), then its table.
    (``objects`` is called again when the upload is retried.)"""
    pid = uuid.uuid4().hex
    table: list[tuple[ObjectRef, int, int]] = []

    def fill(f: Any) -> None:
        table.clear()
        at = 0
        for ref, data in objects():
            f.write(data)
            table.append((ref, at, len(data)))
            at += len(data)

    rem._retry(f"uploading {pack_rel(pid)}", rem.put_stream, pack_rel(pid), fill, stop=stop)
    idx = json.dumps({"version": 1, "hash": DEFAULT_ALGO, "objects": [[r.digest, int(r.manifest), o, n]
                                                                  for r, o, n in table]},
                     separators=(",", ":")).encode()
    rem.put_bytes(idx_rel(pid), idx)
    return PackInfo(pid, sum(n for _, _, n in table), list(table))


def upload_packs(rem: Remote, cache: Cache, groups: list[list[ObjectRef]], sizes: dict[ObjectRef, int], *,
                 progress: Progress = NO_PROGRESS) -> tuple[list[PackInfo], Uploaded]:
    """Write each group as a pack (whole), then its table; objects whose bytes in the
    cache do not match their name are left out and listed in ``corrupt``. The packs stay
    invisible until ``write_record`` names them."""
    res = Uploaded()
    made: list[PackInfo] = []
    if not groups:
        return made, res
    progress.start(f"push to {rem.name}", total_files=sum(len(g) for g in groups),
                   total_bytes=sum(sizes[r] for g in groups for r in g))
    lock = threading.Lock()

    def one(group: list[ObjectRef], stop: threading.Event) -> None:
        corrupt: list[ObjectRef] = []

        def objects() -> Iterator[tuple[ObjectRef, bytes]]:
            corrupt.clear()
            for ref in group:
                try:
                    data = cache.read_bytes(ref.digest, ref.manifest)
                except FileNotFoundError:
                    corrupt.append(ref)
                    continue
                if digest_bytes(data, algo_of(ref.digest)) != ref.digest:  # never spread: left out, reported
                    corrupt.append(ref)
                    continue
                yield ref, data
                progress.advance(files=1, nbytes=len(data))
                failpoint.hit("pack-mid-write")

        info = write_pack(rem, objects, stop=stop)
        with lock:
            made.append(info)
            res.objects += len(info.objects)
            res.bytes += info.size
            res.corrupt.extend(corrupt)

    try:
        rem._parallel(groups, one)
    finally:
        progress.finish()
    made.sort(key=lambda p: p.id)
    res.corrupt.sort(key=lambda r: (r.digest, r.manifest))
    return made, res


# --- reading packed objects -------------------------------------------------------------

@dataclass
class _Range:
    pack: str
    start: int
    end: int
    objects: list[tuple[ObjectRef, int, int]]  # (object, offset, length)


def ranges(wanted: dict[ObjectRef, Packed], *, gap: int = COALESCE_GAP, most: int = RANGE_MAX) -> list[_Range]:
    """Ranged reads that cover ``wanted``: neighbours in a pack (at most ``gap`` bytes
    apart) share one read of at most ``most`` bytes."""
    by_pack: dict[str, list[tuple[ObjectRef, Packed]]] = {}
    for ref, p in wanted.items():
        by_pack.setdefault(p.pack, []).append((ref, p))
    out: list[_Range] = []
    for pack, items in sorted(by_pack.items()):
        items.sort(key=lambda kv: kv[1].offset)
        cur: _Range | None = None
        for ref, p in items:
            end = p.offset + p.length
            if cur is not None and p.offset - cur.end <= gap and end - cur.start <= most:
                cur.end = max(cur.end, end)
                cur.objects.append((ref, p.offset, p.length))
            else:
                cur = _Range(pack, p.offset, end, [(ref, p.offset, p.length)])
                out.append(cur)
    return out


def read_packed(rem: Remote, wanted: dict[ObjectRef, Packed]) -> Iterator[tuple[ObjectRef, bytes | None, str]]:
    """Each wanted object's bytes from its pack, verified: (object, bytes, "") or
    (object, None, why) — why is "missing" (the pack is gone) or a mismatch message."""
    for rng in ranges(wanted):
        try:
            data = rem.read_range(pack_rel(rng.pack), rng.start, rng.end)
        except FileNotFoundError:
            for ref, _, _ in rng.objects:
                yield ref, None, "missing"
            continue
        for ref, off, length in rng.objects:
            piece = data[off - rng.start: off - rng.start + length]
            actual = digest_bytes(piece, algo_of(ref.digest))
            if len(piece) != length or actual != ref.digest:
                yield ref, None, ChecksumMismatch(ref.relpath, ref.digest, actual,
                                                  where=f"in pack {rng.pack} on remote '{rem.name}'").message
            else:
                yield ref, piece, ""


def download_packed(rem: Remote, cache: Cache, wanted: dict[ObjectRef, Packed], *,
                    progress: Progress = NO_PROGRESS) -> Downloaded:
    """Bring packed objects into ``cache`` with ranged reads (neighbours coalesced), in
    parallel, each verified before it is stored."""
    res = Downloaded()
    if not wanted:
        return res
    rngs = ranges(wanted)
    progress.start(f"fetch from {rem.name}", total_files=len(wanted), total_bytes=sum(p.length for p in wanted.values()))
    lock = threading.Lock()

    def one(rng: _Range, stop: threading.Event) -> None:
        part = {ref: Packed(rng.pack, off, n) for ref, off, n in rng.objects}
        for ref, data, why in read_packed(rem, part):
            if data is None:
                with lock:
                    if why == "missing":
                        res.missing.append(ref)
                    else:
                        res.corrupt.append((ref, why))
                continue
            cache.store_stream_verified(iter((data,)), ref.digest, manifest=ref.manifest,
                                        where=f"on remote '{rem.name}'")
            failpoint.hit("remote-after-download")
            progress.advance(files=1, nbytes=len(data))
            with lock:
                res.objects += 1
                res.bytes += len(data)

    try:
        rem._parallel(rngs, one)
    finally:
        progress.finish()
    return res


def check_packed(rem: Remote, inv: Inventory, *, sample: int | None = None,
                 progress: Progress = NO_PROGRESS) -> tuple[int, list[tuple[ObjectRef, str]]]:
    """Re-hash packed objects of live packs (all, or ``sample`` of them): (checked,
    [(object, pack)] whose bytes do not match, or whose pack is gone)."""
    items = [(ref, Packed(info.id, o, n)) for info in inv.packs.values() if info.marked is None
             for ref, o, n in info.objects if (ref, info.id) not in inv.bad]
    if sample is not None and sample < len(items):
        import random

        items = random.sample(items, sample)
    by: dict[tuple[ObjectRef, str], Packed] = {(r, p.pack): p for r, p in items}
    rngs = [rr for pid in sorted({p.pack for _, p in items})  # an object may sit in two packs
            for rr in ranges({r: p for r, p in items if p.pack == pid})]
    progress.start(f"checking packs on {rem.name}", total_files=len(by), total_bytes=sum(p.length for p in by.values()))
    bad: list[tuple[ObjectRef, str]] = []
    lock = threading.Lock()

    def one(rng: _Range, stop: threading.Event) -> None:
        part = {ref: Packed(rng.pack, off, n) for ref, off, n in rng.objects}
        for ref, data, _why in read_packed(rem, part):
            progress.advance(files=1, nbytes=part[ref].length)
            if data is None:
                with lock:
                    bad.append((ref, rng.pack))

    try:
        rem._parallel(rngs, one)
    finally:
        progress.finish()
    return len(by), sorted(bad)


# --- gc traces: a push pays a second look only when a gc ran meanwhile -------------------
#
# ``gc --cloud`` writes ``locks/gc-NAME`` before it removes or marks anything, and
# ``locks/gc-NAME.done`` (dropping the first) when it is finished; traces stay a day. A
# push lists ``locks/`` before it looks at what the remote holds and again at its end:
# when a new trace appeared, or a gc is still under way, it looks again at everything it
# relies on and uploads what went (``transfer._confirm``); otherwise no gc removed
# anything since it looked, and the second listing of the objects is skipped.

def gc_traces(rem: Remote) -> set[str]:
    return {n for n, _, _ in rem.list_folder(LOCKS_DIR) if n.startswith(GC_TRACE)}


def gc_ran_since(rem: Remote, before: set[str]) -> bool:
    now = gc_traces(rem)
    return bool(now - before) or any(not n.endswith(DONE) for n in now)


def gc_begin(rem: Remote) -> str:
    name = f"{GC_TRACE}{temporary_name()}"
    rem.put_bytes(f"{LOCKS_DIR}/{name}", json.dumps({"started": time.time()}).encode())
    return name


def gc_end(rem: Remote, name: str) -> None:
    """The gc ``name`` is finished; traces older than a day (of killed gcs too) go."""
    rem.put_bytes(f"{LOCKS_DIR}/{name}{DONE}", json.dumps({"finished": time.time()}).encode())
    now = time.time()
    old = [f"{LOCKS_DIR}/{n}" for n, _, t in rem.list_folder(LOCKS_DIR)
           if n.startswith(GC_TRACE) and (n == name or (t is not None and now - t > TRACE_MAX_AGE))]
    rem.remove_files(old)


# --- pack-aware reads for commands beyond fetch (get, revisions, repro's checks) ----------

def download_any(rem: Remote, cache: Cache, refs: list[ObjectRef], tmp_dir: str | None, *,
                 progress: Progress = NO_PROGRESS) -> Downloaded:
    """Bring ``refs`` into ``cache`` from wherever the remote holds them (packs, then
    loose files), each verified."""
    inv = load(rem, tmp_dir)
    packed = {r: p for r in refs if (p := inv.live.get(r) or inv.marked.get(r)) is not None}
    got = download_packed(rem, cache, packed, progress=progress)
    rest: dict[ObjectRef, int | None] = {r: None for r in refs if r not in packed or r in got.missing}
    loose = rem.download(cache, rest, progress=progress)
    return Downloaded(got.objects + loose.objects, got.bytes + loose.bytes, loose.missing, got.corrupt + loose.corrupt)


def read_any(rem: Remote, ref: ObjectRef, inv: Inventory) -> bytes:
    """One object's bytes, verified, from its pack or its loose file (FileNotFoundError
    when the remote has neither; ChecksumMismatch when the bytes are wrong)."""
    p = inv.live.get(ref) or inv.marked.get(ref)
    if p is not None:
        try:
            data = rem.read_range(p.rel, p.offset, p.offset + p.length)
        except FileNotFoundError:  # the pack went (a gc): maybe loose
            return rem.read_object(ref)
        actual = digest_bytes(data, algo_of(ref.digest))
        if actual != ref.digest:
            raise ChecksumMismatch(ref.relpath, ref.digest, actual, where=f"in pack {p.pack} on remote '{rem.name}'")
        return data
    return rem.read_object(ref)


def held(rem: Remote, refs: Iterable[ObjectRef], tmp_dir: str | None) -> set[ObjectRef]:
    """Which of ``refs`` the remote holds (in a live pack, or loose)."""
    refs = list(refs)
    live = load(rem, tmp_dir).live
    out = {r for r in refs if r in live}
    rest = [r for r in refs if r not in out]
    if rest:
        listing = rem.list_objects(object_folders(rest))
        out.update(r for r in rest if r in listing)
    return out
