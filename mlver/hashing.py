"""Digests: a digest is a string that carries its algorithm. Bare lower-case hex is
xxh3-128 (the default, and what every pointer, lock, manifest and memo written before
other algorithms existed holds); any other algorithm is ``"<algo>:<hex>"``: ``md5:1a97…``
(DVC's digests, kept by ``import-dvc``), ``sha256:<64 hex>``. Everything that stores or
compares digests treats them as opaque strings; only the edges (hashing, object paths,
file formats, ``--json``) split them. Bytes are streamed in large chunks so memory stays
flat.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, BinaryIO, Callable

import xxhash

DEFAULT_ALGO = "xxh3-128"
LEGACY_MD5 = "md5-dos2unix"  # DVC 2's digests: md5 of a text file with CRLF read as LF
ALGORITHMS = ("xxh3-128", "md5", "sha256", LEGACY_MD5)  # what a `hash:` may name
NEW_ALGORITHMS = ("xxh3-128", "md5", "sha256")  # what `core.hash` may choose for new outputs
DVC_LISTED = ("md5", LEGACY_MD5)  # algorithms whose folders are DVC's `.dir` listings (no sizes, no exec bits)
HEX_LEN = {"xxh3-128": 32, "md5": 32, "sha256": 64, LEGACY_MD5: 32}
CHUNK = 4 << 20  # 4 MiB: large enough to amortise syscalls, small enough to stay flat
SMALL = 1 << 20  # files up to this size are read in one call


class _Dos2UnixMd5:
    """DVC 2's ``md5-dos2unix``, exactly as DVC 2 computed it: a file whose first 512
    bytes look like text (no NUL, at most 30 % other than printable ASCII and
    ``\n\r\t\f\b``) is hashed 1 MiB at a time with each piece's CRLF pairs read as LF
    (a pair split between two pieces stays as it is); any other file is plain md5."""

    PIECE = 1 << 20  # DVC 2's LOCAL_CHUNK_SIZE
    BLOCK = 512
    TEXT = bytes(range(32, 127)) + b"\n\r\t\f\b"

    def __init__(self, data: bytes | memoryview = b"") -> None:
        import hashlib

        self._md5 = hashlib.md5()
        self._buf = bytearray()
        self._text: bool | None = None
        if data:
            self.update(data)

    def _decide(self) -> None:
        block = bytes(self._buf[:self.BLOCK])
        self._text = not block or (b"\0" not in block
                                   and len(block.translate(None, self.TEXT)) / len(block) <= 0.30)

    def update(self, data: bytes | memoryview) -> None:
        if self._text is False:
            self._md5.update(data)
            return
        self._buf += data
        if self._text is None:
            if len(self._buf) < self.BLOCK:
                return
            self._decide()
            if not self._text:
                self._md5.update(self._buf)
                self._buf = bytearray()
                return
        n = len(self._buf) - len(self._buf) % self.PIECE
        for at in range(0, n, self.PIECE):
            self._md5.update(bytes(self._buf[at:at + self.PIECE]).replace(b"\r\n", b"\n"))
        del self._buf[:n]

    def hexdigest(self) -> str:
        md5 = self._md5.copy()
        if self._text is None:
            self._decide()
        if self._buf:
            md5.update(bytes(self._buf).replace(b"\r\n", b"\n") if self._text else self._buf)
        return md5.hexdigest()


def _hashlib(name: str) -> Callable[..., Any]:
    """``hashlib``'s ``name``, imported on first use (OpenSSL costs start-up time and
    memory every command would pay for the xxh3-128 default)."""
    def make(data: bytes | memoryview = b"") -> Any:
        import hashlib

        return getattr(hashlib, name)(data)

    return make


_FACTORY: dict[str, Callable[..., Any]] = {"xxh3-128": xxhash.xxh3_128, "md5": _hashlib("md5"),
                                           "sha256": _hashlib("sha256"), LEGACY_MD5: _Dos2UnixMd5}


def algo_of(digest: str) -> str:
    """The algorithm a digest was made with."""
    i = digest.find(":")
    return DEFAULT_ALGO if i < 0 else digest[:i]


def hex_of(digest: str) -> str:
    """The digest's hex, without its algorithm (what pointer and lock files write)."""
    return digest[digest.find(":") + 1:]


def qualify(algo: str, hexdigest: str) -> str:
    """The digest ``hexdigest`` of algorithm ``algo`` (bare for the default)."""
    return hexdigest if algo == DEFAULT_ALGO else f"{algo}:{hexdigest}"


class Hasher:
    """A running digest of one algorithm; ``hexdigest()`` gives the digest in mlver's
    form (with its algorithm unless it is the default)."""

    __slots__ = ("algo", "update", "_h")

    def __init__(self, algo: str = DEFAULT_ALGO, data: bytes | memoryview = b"") -> None:
        self.algo = algo
        self._h = _FACTORY[algo](data)
        self.update = self._h.update  # bound once: called per chunk

    def hexdigest(self) -> str:
        return qualify(self.algo, self._h.hexdigest())


def new_hasher(algo: str = DEFAULT_ALGO) -> Hasher:
    return Hasher(algo)


def digest_bytes(data: bytes | memoryview, algo: str = DEFAULT_ALGO) -> str:
    if algo == DEFAULT_ALGO:
        return xxhash.xxh3_128_hexdigest(data)
    return qualify(algo, _FACTORY[algo](data).hexdigest())


def check_value(text: str) -> int:
    """A 63-bit check value of ``text`` (fits an SQLite integer), to detect damaged records."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogateescape")) & 0x7FFF_FFFF_FFFF_FFFF


def check_fields(fields: tuple[object, ...]) -> int:
    """``check_value`` of a record's fields, each hashed as it is (its length, then its
    bytes): no text rendering of large fields (a folder memo's rows run to megabytes)."""
    h = xxhash.xxh3_64()
    for v in fields:
        b = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else repr(v).encode("ascii", "replace")
        h.update(b"%d:" % len(b))
        h.update(b)
    return h.intdigest() & 0x7FFF_FFFF_FFFF_FFFF


def digest_stream(f: BinaryIO, *, head: bytes = b"", on_bytes: Callable[[int], None] | None = None,
                  algo: str = DEFAULT_ALGO) -> tuple[str, int]:
    """Digest and byte count of ``head`` then everything left in ``f``; ``on_bytes`` is
    told each chunk's size as it is hashed (progress)."""
    h = Hasher(algo, head)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = len(head)
    while True:
        n = f.readinto(buf)  # type: ignore[attr-defined]
        if not n:
            break
        h.update(view[:n])
        size += n
        if on_bytes is not None:
            on_bytes(n)
    return h.hexdigest(), size


def digest_file(path: str | os.PathLike[str], *, on_bytes: Callable[[int], None] | None = None,
                algo: str = DEFAULT_ALGO) -> tuple[str, int]:
    """Digest and size of the file at ``path``. A small file is read in one call (no
    chunk buffer to allocate: 20,000 small files must not cost 20,000 of them).
    ``on_bytes``: as for ``digest_stream``."""
    with open(path, "rb", buffering=0) as f:
        return digest_open(f, on_bytes=on_bytes, algo=algo)


def digest_open(f: BinaryIO, *, on_bytes: Callable[[int], None] | None = None,
                algo: str = DEFAULT_ALGO) -> tuple[str, int]:
    """``digest_file`` of a file already open (unbuffered), from its current position."""
    size = os.fstat(f.fileno()).st_size
    if size <= SMALL:
        data = f.read(size + 1)
        if len(data) <= size:  # a short read of a regular file: its end
            return digest_bytes(data, algo), len(data)
        return digest_stream(f, head=data, on_bytes=on_bytes, algo=algo)  # it grew
    return digest_stream(f, on_bytes=on_bytes, algo=algo)


_DIGEST = re.compile(r"[0-9a-f]{32}|md5:[0-9a-f]{32}|sha256:[0-9a-f]{64}|md5-dos2unix:[0-9a-f]{32}")


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


class VerifiedReader(io.RawIOBase):
    """A read-only, seekable view of an object's bytes (a cache file, a remote file)
    that checks the digest once every byte from the start has been read: the read that
    completes the object raises ``mismatch(actual)`` when the bytes are not the object.
    Seeks and ranged reads are allowed; bytes are hashed as they extend the run read
    from offset 0, so reading out of order simply leaves the object unverified."""

    def __init__(self, f: BinaryIO, digest: str, size: int, *, name: str,
                 mismatch: Callable[[str], Exception]) -> None:
        super().__init__()
        self._f = f
        self.digest = digest
        self.size = size
        self.name = name
        self._mismatch = mismatch
        self._pos = 0
        self._hashed = 0  # bytes [0, _hashed) went into the hasher
        self._hasher = new_hasher(algo_of(digest))
        self.verified = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _take(self, data: bytes | memoryview) -> None:
        start, end = self._pos, self._pos + len(data)
        if start <= self._hashed < end:
            self._hasher.update(data[self._hashed - start:])
            self._hashed = end
        self._pos = end
        if self._hashed >= self.size and not self.verified:
            actual = self._hasher.hexdigest()
            if actual != self.digest:
                raise self._mismatch(actual)
            self.verified = True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = max(self.size - self._pos, 0)
        if self._f.tell() != self._pos:
            self._f.seek(self._pos)
        data = self._f.read(n) if n else b""
        self._take(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        # straight into the caller's buffer (BufferedReader's): one copy, no allocation
        view = memoryview(b).cast("B")
        want = min(len(view), max(self.size - self._pos, 0))
        if not want:
            return 0
        if self._f.tell() != self._pos:
            self._f.seek(self._pos)
        n = self._f.readinto(view[:want]) or 0  # type: ignore[attr-defined]
        self._take(view[:n])
        return n

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def digest_fields(digest: str | None) -> dict[str, str | None]:
    """How a digest appears in ``--json`` documents: its hex as ``digest``, with its
    algorithm as ``hash`` beside it (md5 and xxh3-128 are both 32 hex digits)."""
    if digest is None:
        return {"digest": None, "hash": None}
    return {"digest": hex_of(digest), "hash": algo_of(digest)}
