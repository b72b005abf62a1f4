"""Failpoints for crash and race tests, set through the environment (never in normal use).

- ``MLVER_FAILPOINT=name`` makes mlver SIGKILL itself the first time it reaches the step
  called ``name`` (``name:N`` on the N-th time).
- ``MLVER_PAUSEPOINT=name:FILE`` makes mlver pause the first time it reaches the step
  called ``name``: it creates ``FILE.paused`` (so a test knows it got there), then waits
  until ``FILE`` exists and goes on. A test uses it to run another real process (a
  teammate's ``gc --cloud``) at an exact instant of this one. The wait gives up after
  ten minutes, so a broken test cannot leave a process behind for ever.
- ``MLVER_FAILPOINT=name:raise`` raises a ``FailpointBug`` there instead, standing in for
  a bug in mlver (the CLI's boundary turns it into an internal error, exit 4).
"""

from __future__ import annotations

import os
import signal
import time

_SPEC = os.environ.get("MLVER_FAILPOINT", "")
_PAUSE = os.environ.get("MLVER_PAUSEPOINT", "")
_counts: dict[str, int] = {}
_paused: set[str] = set()
PAUSE_LIMIT = 600.0  # seconds


class FailpointBug(RuntimeError):
    """Raised by a ``name:raise`` failpoint: deliberately not an MlverError."""


def hit(name: str) -> None:
    if _PAUSE:
        _pause(name)
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


def _pause(name: str) -> None:
    want, _, release = _PAUSE.partition(":")
    if want != name or not release or name in _paused:
        return
    _paused.add(name)
    with open(release + ".paused", "w"):
        pass
    deadline = time.monotonic() + PAUSE_LIMIT
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
