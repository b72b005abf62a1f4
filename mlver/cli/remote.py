"""Commands: remote (see the module docstring of each command)."""

from __future__ import annotations
