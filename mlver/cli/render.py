"""Drawing: rich progress bars on a terminal's stderr, human sizes."""

from __future__ import annotations

import sys
import threading

from mlver.progress import NO_PROGRESS, Progress

MIN_FILES = 20  # below both thresholds no bar is drawn: it would only flicker
MIN_BYTES = 32 << 20


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class RichProgress(Progress):
    """One bar at a time on stderr; thread-safe ``advance`` (workers call it)."""

    def __init__(self) -> None:
        self._bar = None
        self._task = None
        self._lock = threading.Lock()
        self._by_bytes = False

    def start(self, description: str, *, total_files: int | None = None, total_bytes: int | None = None) -> None:
        self.finish()
        if (total_files or 0) < MIN_FILES and (total_bytes or 0) < MIN_BYTES:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as Bar,
                                   TextColumn, TimeRemainingColumn, TransferSpeedColumn)

        self._by_bytes = bool(total_bytes)
        columns = [TextColumn("{task.description}"), BarColumn()]
        if self._by_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn()]
        columns.append(TimeRemainingColumn())
        self._bar = Bar(*columns, console=Console(file=sys.stderr), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total_bytes if self._by_bytes else total_files)

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._bar.advance(self._task, nbytes if self._by_bytes else files)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def progress_for(quiet: bool) -> Progress:
    if quiet or not sys.stderr.isatty():
        return NO_PROGRESS
    return RichProgress()
