"""SQLite memo of file digests: path -> digest, trusted only while (inode, size,
mtime_ns, ctime_ns) still hold and the file was not modified within the timestamp
granularity of the moment it was recorded (Git's racy rule). Also remembers which
outputs mlver placed in the workspace, so data whose pointer vanished can be removed
safely after ``git checkout``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")

COARSE_WINDOW_NS = 2_000_000_000  # filesystems with second (or FAT's 2 s) timestamps
FINE_WINDOW_NS = 100_000_000  # ns timestamps still tick at the kernel clock: keep a margin
# A folder's stat rows are "rel\0ino\0size\0mtime_ns\0ctime_ns\0mode": no field is empty,
# so a double NUL (which no file name holds) separates rows unambiguously.
ROW_SEP = "\0\0"

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, inode INTEGER, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, digest TEXT, recorded_ns INTEGER);
CREATE TABLE IF NOT EXISTS dirs (
    path TEXT PRIMARY KEY, listing TEXT, digest TEXT, newest_ns INTEGER, recorded_ns INTEGER,
    rows TEXT, digests TEXT);
CREATE TABLE IF NOT EXISTS placed (
    path TEXT PRIMARY KEY, kind TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS parsed (
    kind TEXT PRIMARY KEY, key TEXT, data BLOB);
"""


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


class State:
    """Open lazily, write in batches (``flush``)."""

    def __init__(self, db_path: str, *, started_ns: int | None = None) -> None:
        self.db_path = db_path
        # when the command started, before it read any file: a folder record's rows are
        # checked against this moment, not the (possibly much later) moment of writing
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._dir_rows: dict[str, tuple[str | None, dict[str, str]]] = {}  # read once per command
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, int, str, int]] = []

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    # an older memo layout: the folder memo is rebuilt, file digests are kept
                    conn.executescript(f"DROP TABLE IF EXISTS dirs; PRAGMA user_version = {SCHEMA_VERSION};")
                conn.executescript(SCHEMA)
            except sqlite3.DatabaseError:
                # A damaged memo is only a memo: start again.
                conn.close()
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.unlink(self.db_path + suffix)
                    except OSError:
                        pass
                conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.executescript(f"{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};")
            self._conn = conn
        return self._conn

    def lookup_many(self, prefix: str) -> dict[str, tuple[int, int, int, int, str, int]]:
        """Every memo row for ``prefix`` itself and below it (one query)."""
        rows = self.conn.execute(
            "SELECT path, inode, size, mtime_ns, ctime_ns, digest, recorded_ns FROM hashes "
            "WHERE path = ? OR (path >= ? AND path < ?)",
            (prefix, prefix + "/", prefix + "0"),
        )
        return {r[0]: tuple(r[1:]) for r in rows}  # type: ignore[misc]

    @staticmethod
    def valid(row: tuple[int, int, int, int, str, int] | None, st: os.stat_result) -> str | None:
        if row is None or row[:4] != _key(st) or racy(st, row[5]):
            return None
        return row[4]

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        row = self.conn.execute(
            "SELECT inode, size, mtime_ns, ctime_ns, digest, recorded_ns FROM hashes WHERE path = ?", (path,)
        ).fetchone()
        return self.valid(row, st)

    def record(self, path: str, st: os.stat_result, digest: str, *, read_ns: int | None = None) -> None:
        """Remember ``digest`` for ``path`` at stat ``st``. ``read_ns``: a moment before
        the bytes were read (the racy rule is measured from it); by default now, right
        for bytes mlver itself has just written."""
        self._pending.append((path, *_key(st), digest, time.time_ns() if read_ns is None else read_ns))
        if len(self._pending) >= 5000:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?)", rows)
        except sqlite3.OperationalError:
            pass  # busy or read-only: the memo is an optimisation, never a requirement

    # --- whole folders ----------------------------------------------------------------
    # A folder's manifest digest, valid while the digest of its stat listing (every
    # file's path, inode, size, mtime_ns, ctime_ns, mode) is unchanged and no file in it
    # is racy. This lets an unchanged 20,000-file folder skip 20,000 memo lookups.
    # With it, each file's stat row and digest (racy files left out): after one file
    # changes, the other 19,999 are answered by one dictionary lookup each.

    def dir_lookup(self, path: str, listing: str) -> str | None:
        row = self.conn.execute("SELECT listing, digest, newest_ns, recorded_ns FROM dirs WHERE path = ?",
                                (path,)).fetchone()
        if row is None or row[0] != listing:
            return None
        return row[1] if row[2] < row[3] - _window(row[2]) else None

    def dir_rows(self, path: str) -> tuple[str | None, dict[str, str]]:
        """The manifest digest last recorded for the folder ``path``, and the stat row ->
        digest of its files (racy ones left out). Read from the database once per command."""
        if path not in self._dir_rows:
            row = self.conn.execute("SELECT digest, rows, digests FROM dirs WHERE path = ?", (path,)).fetchone()
            self._dir_rows[path] = (None, {}) if row is None else (
                row[0], dict(zip(row[1].split(ROW_SEP), row[2].split(","))) if row[1] else {})
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
        try:
            self.conn.execute("INSERT OR REPLACE INTO dirs VALUES (?,?,?,?,?,?,?)",
                              (path, listing, digest, newest_ns, now, ROW_SEP.join(rows), ",".join(digests)))
        except sqlite3.OperationalError:
            pass

    # --- parsed files ---------------------------------------------------------------------

    def parsed(self, kind: str, text: str, parse: Callable[[str], T], *,
               valid: Callable[[T], bool] | None = None) -> T:
        """``parse(text)``, remembered (pickled) for the last text of each ``kind`` (the
        pipeline, the lock): a command that finds them unchanged skips PyYAML entirely.
        Errors are not remembered; a memo this mlver cannot read, or that ``valid``
        rejects (it depended on other files that changed), is parsed again."""
        import pickle

        from mlver import __version__
        from mlver.hashing import digest_bytes

        key = f"{__version__} {digest_bytes(text.encode('utf-8', 'surrogateescape'))}"
        try:
            row = self.conn.execute("SELECT data FROM parsed WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            if row is not None:
                memo: T = pickle.loads(row[0])
                if valid is None or valid(memo):
                    return memo
        except Exception:  # noqa: BLE001 - a memo is never a reason to fail
            pass
        value = parse(text)
        try:
            self.conn.execute("INSERT OR REPLACE INTO parsed VALUES (?,?,?)", (kind, key, pickle.dumps(value)))
        except (sqlite3.OperationalError, pickle.PicklingError):
            pass
        return value

    # --- outputs placed in the workspace ------------------------------------------

    def placed(self) -> list[Placed]:
        return [Placed(*r) for r in self.conn.execute("SELECT path, kind, digest FROM placed")]

    def set_placed(self, path: str, kind: str, digest: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO placed VALUES (?,?,?)", (path, kind, digest))

    def forget_placed(self, path: str) -> None:
        self.conn.execute("DELETE FROM placed WHERE path = ?", (path,))

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
