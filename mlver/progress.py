"""The progress protocol: library code reports work through a ``Progress`` it is given;
the default does nothing, the CLI passes one that draws a rich bar on a terminal.

Bytes advance as they are hashed, copied, sent or received, not when a file ends: a
worker takes ``progress.file(size)``, passes it as the ``on_bytes`` callback of the
streaming functions (hashing, fsutil.copy_file, remote transfers), then calls its
``done()``, which counts the file and whatever bytes were not reported (all of them when
the work was skipped: a digest the state database remembered, a hardlink).
"""

from __future__ import annotations

from typing import Callable

ByteCallback = Callable[[int], None]
"""Called with the number of bytes just processed (a chunk)."""


class Progress:
    """Do-nothing progress; subclasses draw."""

    def start(self, description: str, *, total_files: int | None = None, total_bytes: int | None = None) -> None:
        pass

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass

    def file(self, size: int) -> "FileProgress":
        """The share of one file of ``size`` bytes in the current bar."""
        return FileProgress(self, size)


class FileProgress:
    """One file's bytes: call it with each chunk's byte count (never counted beyond
    ``size``, so a retried transfer or a copy-then-hash does not overshoot), then
    ``done()`` once."""

    __slots__ = ("_progress", "_size", "_sent")

    def __init__(self, progress: Progress, size: int) -> None:
        self._progress = progress
        self._size = size
        self._sent = 0

    def __call__(self, nbytes: int) -> None:
        n = min(nbytes, self._size - self._sent)
        if n > 0:
            self._sent += n
            self._progress.advance(nbytes=n)

    def done(self) -> None:
        self._progress.advance(files=1, nbytes=max(0, self._size - self._sent))
        self._sent = self._size


NO_PROGRESS = Progress()
