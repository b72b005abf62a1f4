"""Drawing: rich progress bars on a terminal's stderr, human sizes (binary units, one
formatter for bars and summaries alike)."""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterable, Sequence

from mlver.progress import NO_PROGRESS, Progress

MIN_FILES = 20  # below both thresholds no bar is drawn: it would only flicker
MIN_BYTES = 32 << 20
REDRAWS = 100  # a bar is redrawn each time another 1/REDRAWS of its total is done (and by rich's timer)


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
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        self._by_bytes = False
        self._done = 0
        self._step = 1
        self._next_redraw = 0

    def start(self, description: str, *, total_files: int | None = None, total_bytes: int | None = None) -> None:
        self.finish()
        if (total_files or 0) < MIN_FILES and (total_bytes or 0) < MIN_BYTES:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

        self._by_bytes = bool(total_bytes)
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if self._by_bytes:
            columns += list(_byte_columns())
        else:
            columns += [MofNCompleteColumn()]
        columns.append(TimeRemainingColumn())  # from the work done so far: bytes when the bar counts bytes
        total = (total_bytes if self._by_bytes else total_files) or 0
        self._done, self._step = 0, max(1, total // REDRAWS)
        self._next_redraw = self._step
        self._bar = Bar(*columns, console=Console(file=sys.stderr), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        if self._bar is None:
            return
        n = nbytes if self._by_bytes else files
        if not n:
            return
        with self._lock:
            self._done += n
            redraw = self._done >= self._next_redraw
            if redraw:
                self._next_redraw = self._done + self._step
            self._bar.update(self._task, advance=n, refresh=redraw)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _byte_columns() -> tuple[Any, Any]:
    """Bytes done out of the total, and the speed, in the units of ``human_size``
    (rich's own columns print decimal MB)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Done(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{human_size(int(task.completed))}/{human_size(int(task.total or 0))}",
                        style="progress.download")

    class Speed(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{human_size(int(speed))}/s", style="progress.data.speed")

    return Done(), Speed()


def console() -> Any:
    """A rich console on stdout for tables and trees (no guessing of highlights)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def natural_width(renderable: Any) -> int:
    """How wide ``renderable`` is when nothing squeezes it."""
    from rich.measure import Measurement

    c = console()
    return Measurement.get(c, c.options.update(width=100_000), renderable).maximum


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (for a pull request), ``|`` in cells escaped."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def print_table(renderable: Any) -> None:
    """Print a table on stdout. On a terminal rich fits it to the width; piped or
    redirected it is printed at its natural width: cutting values to 80 columns would
    hide the data the table is for."""
    from rich.console import Console

    c = console()
    if not c.is_terminal:
        width = natural_width(renderable)
        if width > c.width:
            c = Console(highlight=False, soft_wrap=True, width=width)
    c.print(renderable)


def progress_for(quiet: bool) -> Progress:
    if quiet or not sys.stderr.isatty():
        return NO_PROGRESS
    return RichProgress()
