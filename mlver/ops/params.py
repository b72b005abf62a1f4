"""``mlver params diff``: parameter values that differ between two revisions, or
between a revision and the workspace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlver.pipeline.revision import Values, compare_values, has_head, open_history, workspace_values
from mlver.repo import Repo


@dataclass
class ValuesDiff:
    old_rev: str
    new_rev: str
    changes: dict[str, dict[str, dict[str, Any]]]  # file -> key -> {"old", "new", "diff"}
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"version": 1, "changes": self.changes}


def values_pair(repo: Repo, rev_a: str | None, rev_b: str | None, *,
                strict_params: bool = False) -> tuple[Values, Values]:
    """(old, new): A (default HEAD) and B (default the workspace; ``strict_params``: a
    params file of the workspace that cannot be read is an error, not a warning)."""
    repo.require_scm("comparing revisions")
    with open_history(repo) as history:
        if rev_a is None and not has_head(repo):
            old = Values("HEAD")
        else:
            old = history.values(rev_a or "HEAD")
        new = history.values(rev_b) if rev_b else workspace_values(repo, strict_params=strict_params)
    return old, new


def params_diff(repo: Repo, rev_a: str | None = None, rev_b: str | None = None, *,
                include_unchanged: bool = False) -> ValuesDiff:
    # the user's own file, broken, is an error (as for repro and status); an old commit's is a warning
    old, new = values_pair(repo, rev_a, rev_b, strict_params=True)
    return ValuesDiff(old.rev, new.rev, compare_values(old.params, new.params, include_unchanged=include_unchanged),
                      old.errors + new.errors)
