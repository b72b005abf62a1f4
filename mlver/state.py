"""SQLite memo of file digests: path -> digest, trusted only while (inode, size,
mtime_ns, ctime_ns) still hold and the file was not modified within the timestamp
granularity of the moment it was recorded (Git's racy rule). Also remembers which
outputs mlver placed in the workspace, so data whose pointer vanished can be removed
safely after ``git checkout``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from mlver.errors import MlverError
from mlver.hashing import check_fields, check_value, digest_bytes, is_digest

T = TypeVar("T")

COARSE_WINDOW_NS = 2_000_000_000  # filesystems with second (or FAT's 2 s) timestamps
FINE_WINDOW_NS = 100_000_000  # ns timestamps still tick at the kernel clock: keep a margin
# A folder's stat rows are "rel\0ino\0size\0mtime_ns\0ctime_ns\0mode": no field is empty,
# so a double NUL (which no file name holds) separates rows unambiguously.
ROW_SEP = "\0\0"

SCHEMA_VERSION = 4  # 3: every memo row carries a check value over its fields; 4: folder rows' check over raw fields
SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, inode INTEGER, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, digest TEXT, recorded_ns INTEGER, chk INTEGER);
CREATE TABLE IF NOT EXISTS dirs (
    path TEXT PRIMARY KEY, listing TEXT, digest TEXT, newest_ns INTEGER, recorded_ns INTEGER,
    rows TEXT, digests TEXT, chk INTEGER);
CREATE TABLE IF NOT EXISTS placed (
    path TEXT PRIMARY KEY, kind TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS parsed (
    kind TEXT PRIMARY KEY, key TEXT, data BLOB, chk TEXT);
"""
CORRUPT_SUFFIX = ".corrupt-"


# Bumped whenever what a parse means changes within one version (2: several pipeline
# files, YAML 1.2 types in mlver.yaml and params files): older memos are parsed again.
PARSE_RULES = 3


@dataclass(frozen=True)
class Placed:
    path: str
    kind: str
    digest: str


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _window(mtime_ns: int) -> int:
    return COARSE_WINDOW_NS if mtime_ns % 1_000_000_000 == 0 else FINE_WINDOW_NS


def racy(st: os.stat_result, recorded_ns: int) -> bool:
    window = _window(st.st_mtime_ns)
    return st.st_mtime_ns >= recorded_ns - window or st.st_ctime_ns >= recorded_ns - window


def _row_check(row: tuple[object, ...]) -> int:
    """The check value of a memo row: SQLite has no page checksums, and a flipped byte in
    a digest would otherwise be believed."""
    return check_value(repr(row))


def _dir_check(row: tuple[object, ...]) -> int:
    """The check value of a folder memo row (its listing runs to megabytes: hashed as bytes)."""
    return check_fields(row)


class _Damaged(Exception):
    """A row that does not match its check value, or does not have the memo's shape."""


class StateError(MlverError):
    """A record mlver must keep (which outputs it placed) could not be written."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(f"{reason} writing {shown}" if reason == "no space left on device"
                         else f"cannot write {shown}: {reason}",
                         hint="free some space (or make the folder writable) and run the command again")
        self.path = shown
        self.reason = reason


def _classify(e: BaseException) -> str | None:
    """'busy', 'unavailable' (full disk, read-only, cannot open), 'corrupt', or None for
    an exception that is not about the database."""
    if isinstance(e, UnicodeEncodeError):  # a file name that is not UTF-8: not storable
        return "unavailable"
    pickle = sys.modules.get("pickle")  # imported where a memo is unpickled, so loaded for its errors
    if isinstance(e, (_Damaged, UnicodeDecodeError, ValueError, TypeError, AttributeError, IndexError,
                      KeyError, EOFError)) or (pickle is not None and isinstance(e, pickle.UnpicklingError)):
        return "corrupt"
    if not isinstance(e, sqlite3.DatabaseError):
        return None
    name = getattr(e, "sqlite_errorname", "") or ""
    msg = str(e).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg or "busy" in msg:
        return "busy"
    if name.startswith(("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR",
                        "SQLITE_NOMEM", "SQLITE_AUTH")) or any(
            m in msg for m in ("disk is full", "readonly", "read-only", "unable to open", "disk i/o", "out of memory")):
        return "unavailable"
    return "corrupt"  # SQLITE_CORRUPT, SQLITE_NOTADB, undecodable text, anything else it says


def _reason(e: BaseException) -> str:
    if isinstance(e, sqlite3.DatabaseError) and (
            getattr(e, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(e)):
        return "no space left on device"
    if isinstance(e, _Damaged):
        return "a row does not match its check value"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class State:
    """Open lazily, write in batches (``flush``). A damaged database is moved aside and
    started again (it only remembers digests); one that cannot be written (a full disk, a
    read-only folder) is worked around: digests are computed again. Both add a line to
    ``warnings`` for the command line to show; only the record of placed outputs, which
    later removals rely on, must be written or the command fails (StateError)."""

    def __init__(self, db_path: str, *, started_ns: int | None = None, shown: str | None = None,
                 create: bool = True) -> None:
        self.db_path = db_path
        self.create = create  # False (mlver.api's reads): an absent database is not made, reads miss
        self.shown = shown or db_path
        # when the command started, before it read any file: a folder record's rows are
        # checked against this moment, not the (possibly much later) moment of writing
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._dir_rows: dict[str, tuple[str | None, dict[str, str]]] = {}  # read once per command
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, int, str, int, int]] = []
        self._rebuilt = False
        self._disabled = False  # could not be opened: every read misses, writes are dropped
        self._write_warned = False
        self.warnings: list[str] = []

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
            conn = self._connect()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    self._upgrade(conn)
                conn.executescript(SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> None:
        """An older memo layout: the folder and parse memos are rebuilt; file digests and
        placed outputs are kept, file digests gaining their check values."""
        with conn:
            conn.execute("BEGIN")
            conn.execute("DROP TABLE IF EXISTS dirs")
            conn.execute("DROP TABLE IF EXISTS parsed")
            cols = [r[1] for r in conn.execute("PRAGMA table_info(hashes)")]
            if cols and "chk" not in cols:
                conn.execute("ALTER TABLE hashes ADD COLUMN chk INTEGER")
                rows = conn.execute("SELECT path, inode, size, mtime_ns, ctime_ns, digest, recorded_ns "
                                    "FROM hashes").fetchall()
                conn.executemany("UPDATE hashes SET chk = ? WHERE path = ?", [(_row_check(r), r[0]) for r in rows])
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, default: T, write: bool = False,
             required: bool = False) -> T:
        """``fn(conn)``, surviving the database: a damaged one is moved aside and ``fn``
        run again on a new one; a busy, full or read-only one gives ``default`` (a write
        that is ``required`` raises StateError instead)."""
        while True:
            if self._disabled and not required:
                return default
            if not self.create and self._conn is None and not required and not os.path.exists(self.db_path):
                return default
            try:
                if self._disabled:
                    raise sqlite3.OperationalError("unable to open database file")
                return fn(self.conn)
            except Exception as e:  # noqa: BLE001 - classified below
                kind = _classify(e)
                if kind is None:
                    raise
                if kind == "corrupt" and not self._rebuilt:
                    self._move_aside(e)
                    continue
                if required:
                    raise StateError(self.shown, _reason(e)) from None
                if kind == "busy":
                    return default  # another mlver is writing: the memo is an optimisation
                if kind == "corrupt" or self._conn is None:
                    self._disable(e)
                elif write and not self._write_warned:
                    self._write_warned = True
                    self.warnings.append(f"could not write the state database {self.shown} ({_reason(e)}); "
                                         "file digests will be computed again next time")
                return default

    def _disable(self, e: BaseException) -> None:
        if not self._disabled:
            self._disabled = True
            self.warnings.append(f"cannot use the state database {self.shown} ({_reason(e)}); "
                                 "file digests are computed again in this command")
        self._close_quietly()

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def _move_aside(self, e: BaseException) -> None:
        """Keep the damaged database for a post-mortem (only the latest one), start anew."""
        self._rebuilt = True
        self._close_quietly()
        self._dir_rows.clear()
        folder, base = os.path.split(self.db_path)
        aside = f"{self.db_path}{CORRUPT_SUFFIX}{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            for name in os.listdir(folder):
                if name.startswith(base + CORRUPT_SUFFIX):
                    os.unlink(os.path.join(folder, name))
            os.replace(self.db_path, aside)
        except FileNotFoundError:
            pass
        except OSError:  # cannot move it: go on without a memo
            self._disable(e)
            return
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(self.db_path + suffix)
            except OSError:
                pass
        shown_aside = self.shown + aside[len(self.db_path):]
        self.warnings.append(f"the state database {self.shown} was damaged ({_reason(e)}); moved it to "
                             f"{shown_aside} and started a new one (file digests are computed again)")

    # --- file digests -----------------------------------------------------------------

    @staticmethod
    def _checked(r: tuple[object, ...]) -> tuple[int, int, int, int, str, int]:
        """A hashes row (path, inode, size, mtime_ns, ctime_ns, digest, recorded_ns, chk)
        without its path and check, or _Damaged."""
        if r[-1] != _row_check(r[:-1]) or not isinstance(r[5], str) or not is_digest(r[5]):
            raise _Damaged(r[0])
        return r[1:7]  # type: ignore[return-value]

    def lookup_many(self, prefix: str) -> dict[str, tuple[int, int, int, int, str, int]]:
        """Every memo row for ``prefix`` itself and below it (one query)."""
        def fn(conn: sqlite3.Connection) -> dict[str, tuple[int, int, int, int, str, int]]:
            rows = conn.execute(
                "SELECT path, inode, size, mtime_ns, ctime_ns, digest, recorded_ns, chk FROM hashes "
                "WHERE path = ? OR (path >= ? AND path < ?)",
                (prefix, prefix + "/", prefix + "0"),
            ).fetchall()
            return {r[0]: self._checked(r) for r in rows}

        return self._run(fn, default={})

    @staticmethod
    def valid(row: tuple[int, int, int, int, str, int] | None, st: os.stat_result) -> str | None:
        if row is None or row[:4] != _key(st) or racy(st, row[5]):
            return None
        return row[4]

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        def fn(conn: sqlite3.Connection) -> str | None:
            r = conn.execute("SELECT path, inode, size, mtime_ns, ctime_ns, digest, recorded_ns, chk FROM hashes "
                             "WHERE path = ?", (path,)).fetchone()
            return None if r is None else self.valid(self._checked(r), st)

        return self._run(fn, default=None)

    def record(self, path: str, st: os.stat_result, digest: str, *, read_ns: int | None = None) -> None:
        """Remember ``digest`` for ``path`` at stat ``st``. ``read_ns``: a moment before
        the bytes were read (the racy rule is measured from it); by default now, right
        for bytes mlver itself has just written."""
        row = (path, *_key(st), digest, time.time_ns() if read_ns is None else read_ns)
        self._pending.append((*row, _row_check(row)))
        if len(self._pending) >= 5000:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []

        def fn(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?,?)", rows)

        self._run(fn, default=None, write=True)

    # --- whole folders ----------------------------------------------------------------
    # A folder's manifest digest, valid while the digest of its stat listing (every
    # file's path, inode, size, mtime_ns, ctime_ns, mode) is unchanged and no file in it
    # is racy. This lets an unchanged 20,000-file folder skip 20,000 memo lookups.
    # With it, each file's stat row and digest (racy files left out): after one file
    # changes, the other 19,999 are answered by one dictionary lookup each.

    def _dir_row(self, conn: sqlite3.Connection, path: str) -> tuple[str, str, int, int, str, str] | None:
        r = conn.execute("SELECT path, listing, digest, newest_ns, recorded_ns, rows, digests, chk FROM dirs "
                         "WHERE path = ?", (path,)).fetchone()
        if r is None:
            return None
        if r[-1] != _dir_check(r[:-1]) or not isinstance(r[2], str) or not is_digest(r[2]):
            raise _Damaged(path)
        return r[1:7]

    def dir_lookup(self, path: str, listing: str) -> str | None:
        def fn(conn: sqlite3.Connection) -> str | None:
            row = self._dir_row(conn, path)
            if row is None or row[0] != listing:
                return None
            return row[1] if row[2] < row[3] - _window(row[2]) else None

        return self._run(fn, default=None)

    def dir_rows(self, path: str) -> tuple[str | None, dict[str, str]]:
        """The manifest digest last recorded for the folder ``path``, and the stat row ->
        digest of its files (racy ones left out). Read from the database once per command."""
        def fn(conn: sqlite3.Connection) -> tuple[str | None, dict[str, str]]:
            row = self._dir_row(conn, path)
            if row is None:
                return None, {}
            rows, digests = row[4].split(ROW_SEP), row[5].split(",")
            if row[4] and (len(rows) != len(digests) or not all(map(is_digest, digests))):
                raise _Damaged(path)
            return row[1], dict(zip(rows, digests)) if row[4] else {}

        if path not in self._dir_rows:
            none: tuple[str | None, dict[str, str]] = (None, {})
            self._dir_rows[path] = self._run(fn, default=none)
        return self._dir_rows[path]

    def dir_record(self, path: str, listing: str, digest: str,
                   rows: list[str], digests: list[str], stats: list[os.stat_result]) -> None:
        """Remember folder ``path``: its stat ``listing`` digest, its manifest ``digest``,
        and each file's stat row and digest (``stats`` give the racy rule its times)."""
        self._dir_rows.pop(path, None)
        newest_ns = max((max(st.st_mtime_ns, st.st_ctime_ns) for st in stats), default=0)
        now = self.started_ns  # every file was read after it
        if newest_ns >= now - _window(newest_ns):  # some files are racy: leave those out
            keep = [i for i, st in enumerate(stats) if not racy(st, now)]
            rows, digests = [rows[i] for i in keep], [digests[i] for i in keep]
        row = (path, listing, digest, newest_ns, now, ROW_SEP.join(rows), ",".join(digests))
        self._run(lambda conn: conn.execute("INSERT OR REPLACE INTO dirs VALUES (?,?,?,?,?,?,?,?)",
                                            (*row, _dir_check(row))), default=None, write=True)

    # --- parsed files ---------------------------------------------------------------------

    def parsed(self, kind: str, text: str, parse: Callable[[str], T], *,
               valid: Callable[[T], bool] | None = None) -> T:
        """``parse(text)``, remembered (pickled) for the last text of each ``kind`` (the
        pipeline, the lock): a command that finds them unchanged skips PyYAML entirely.
        Errors are not remembered; a memo this mlver cannot read, or that ``valid``
        rejects (it depended on other files that changed), is parsed again."""
        from mlver import __version__

        key = f"{__version__}/{PARSE_RULES} {digest_bytes(text.encode('utf-8', 'surrogateescape'))}"

        def read(conn: sqlite3.Connection) -> tuple[bool, T | None]:
            row = conn.execute("SELECT data, chk FROM parsed WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            if row is None:
                return False, None
            if not isinstance(row[0], bytes) or row[1] != digest_bytes(row[0]):
                raise _Damaged(kind)
            import pickle

            return True, pickle.loads(row[0])

        not_found: tuple[bool, T | None] = (False, None)
        found, value = self._run(read, default=not_found)
        if found and (valid is None or valid(value)):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        value = parse(text)
        import pickle

        try:
            data = pickle.dumps(value)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
            return value
        self._run(lambda conn: conn.execute("INSERT OR REPLACE INTO parsed VALUES (?,?,?,?)",
                                            (kind, key, data, digest_bytes(data))), default=None, write=True)
        return value

    # --- outputs placed in the workspace ------------------------------------------

    def placed(self) -> list[Placed]:
        def fn(conn: sqlite3.Connection) -> list[Placed]:
            out = []
            for r in conn.execute("SELECT path, kind, digest FROM placed").fetchall():
                if not (isinstance(r[0], str) and r[1] in ("file", "dir") and isinstance(r[2], str)
                        and is_digest(r[2])):
                    raise _Damaged(r[0])
                out.append(Placed(*r))
            return out

        return self._run(fn, default=[])

    def set_placed(self, path: str, kind: str, digest: str) -> None:
        self._run(lambda conn: conn.execute("INSERT OR REPLACE INTO placed VALUES (?,?,?)", (path, kind, digest)),
                  default=None, required=True)

    def forget_placed(self, path: str) -> None:
        self._run(lambda conn: conn.execute("DELETE FROM placed WHERE path = ?", (path,)),
                  default=None, required=True)

    def close(self) -> None:
        self.flush()
        self._close_quietly()
