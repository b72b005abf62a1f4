"""The one hash: xxh3-128, streamed in large chunks so memory stays flat."""

from __future__ import annotations

import os
import re
from typing import BinaryIO, Callable

import xxhash

HASH_NAME = "xxh3-128"
DIGEST_LEN = 32
CHUNK = 4 << 20  # 4 MiB: large enough to amortise syscalls, small enough to stay flat
SMALL = 1 << 20  # files up to this size are read in one call


def new_hasher() -> "xxhash.xxh3_128":
    return xxhash.xxh3_128()


def digest_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def check_value(text: str) -> int:
    """A 63-bit check value of ``text`` (fits an SQLite integer), to detect damaged records."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogateescape")) & 0x7FFF_FFFF_FFFF_FFFF


def digest_stream(f: BinaryIO, *, head: bytes = b"",
                  on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Digest and byte count of ``head`` then everything left in ``f``; ``on_bytes`` is
    told each chunk's size as it is hashed (progress)."""
    h = xxhash.xxh3_128(head)
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


def digest_file(path: str | os.PathLike[str], *,
                on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Digest and size of the file at ``path``. A small file is read in one call (no
    chunk buffer to allocate: 20,000 small files must not cost 20,000 of them).
    ``on_bytes``: as for ``digest_stream``."""
    with open(path, "rb", buffering=0) as f:
        return digest_open(f, on_bytes=on_bytes)


def digest_open(f: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """``digest_file`` of a file already open (unbuffered), from its current position."""
    size = os.fstat(f.fileno()).st_size
    if size <= SMALL:
        data = f.read(size + 1)
        if len(data) <= size:  # a short read of a regular file: its end
            return digest_bytes(data), len(data)
        return digest_stream(f, head=data, on_bytes=on_bytes)  # it grew
    return digest_stream(f, on_bytes=on_bytes)


_DIGEST = re.compile(r"[0-9a-f]{32}")


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
