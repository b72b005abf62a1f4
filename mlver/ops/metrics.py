"""``mlver metrics show`` and ``mlver metrics diff``: the values in the pipeline's
metrics files, in the workspace and across commits."""

from __future__ import annotations

from dataclasses import dataclass

from mlver.ops.params import ValuesDiff, values_pair
from mlver.pipeline.revision import Values, compare_values, open_history, workspace_values
from mlver.repo import Repo


@dataclass
class MetricsShow:
    revisions: list[Values]

    def to_json(self) -> dict:
        return {"version": 1, "revisions": [{"rev": v.rev, "metrics": v.metrics} for v in self.revisions]}

    @property
    def errors(self) -> list[str]:
        return [e for v in self.revisions for e in v.errors]


def metrics_show(repo: Repo, *, count: int | None = None, all_commits: bool = False) -> MetricsShow:
    """The workspace, then ``count`` commits from HEAD (or every commit)."""
    revisions = [workspace_values(repo)]
    if count or all_commits:
        with open_history(repo) as history:
            revisions += history.values_many(history.commits(count=count, all_commits=all_commits))
    return MetricsShow(revisions)


def metrics_diff(repo: Repo, rev_a: str | None = None, rev_b: str | None = None, *,
                 include_unchanged: bool = False) -> ValuesDiff:
    old, new = values_pair(repo, rev_a, rev_b)
    return ValuesDiff(old.rev, new.rev, compare_values(old.metrics, new.metrics, include_unchanged=include_unchanged),
                      old.errors + new.errors)
