"""Failpoints for crash tests: ``MLVER_FAILPOINT=name`` makes mlver SIGKILL itself the
first time it reaches the step called ``name`` (``name:N`` on the N-th time);
``name:raise`` raises a ``FailpointBug`` there instead, standing in for a bug in mlver
(the CLI's boundary turns it into an internal error, exit 4)."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("MLVER_FAILPOINT", "")
_counts: dict[str, int] = {}


class FailpointBug(RuntimeError):
    """Raised by a ``name:raise`` failpoint: deliberately not an MlverError."""


def hit(name: str) -> None:
    if not _SPEC:
        return
    want, _, nth = _SPEC.partition(":")
    if want != name:
        return
    if nth == "raise":
        raise FailpointBug(f"failpoint {name} reached")
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
