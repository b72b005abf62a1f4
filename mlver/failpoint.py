"""Failpoints for crash tests: ``MLVER_FAILPOINT=name`` makes mlver SIGKILL itself the
first time it reaches the step called ``name`` (``name:N`` on the N-th time)."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("MLVER_FAILPOINT", "")
_counts: dict[str, int] = {}


def hit(name: str) -> None:
    if not _SPEC:
        return
    want, _, nth = _SPEC.partition(":")
    if want != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
