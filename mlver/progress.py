"""The progress protocol: library code reports work through a ``Progress`` it is given;
the default does nothing, the CLI passes one that draws a rich bar on a terminal.
"""

from __future__ import annotations


class Progress:
    """Do-nothing progress; subclasses draw."""

    def start(self, description: str, *, total_files: int | None = None, total_bytes: int | None = None) -> None:
        pass

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


NO_PROGRESS = Progress()
