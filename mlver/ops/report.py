"""``mlver report --md``: what a pull request changes, ready to post as a comment from CI
— the params diff, the metrics diff and the checks between a base revision and the
workspace, and an image of each plot (base and workspace overlaid) when asked.

The base is ``--base``, else the checks' default (``checks.base``, else the merge-base
with ``origin/HEAD``, else HEAD). Failing checks are reported, not raised: the report is
for people; ``mlver check`` is the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlver.errors import MlverError
from mlver.ops.check import CheckReport, default_base, run_checks
from mlver.ops.metrics import metrics_diff
from mlver.ops.params import ValuesDiff, params_diff
from mlver.repo import Repo


@dataclass
class PullRequestReport:
    base: str | None
    params: ValuesDiff
    metrics: ValuesDiff
    checks: CheckReport | None  # None: mlver.yaml has no checks
    images: list[tuple[str, str]] = field(default_factory=list)  # (plot name, image path)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "base": self.base, "params": self.params.changes, "metrics": self.metrics.changes,
                "checks": self.checks.to_json() if self.checks else None,
                "images": [{"name": n, "path": p} for n, p in self.images]}


def report(repo: Repo, *, base: str | None = None, png_dir: str | None = None,
           svg_dir: str | None = None) -> PullRequestReport:
    repo.require_scm("a report against a base revision")
    base = base or default_base(repo)
    params = params_diff(repo, base)
    metrics = metrics_diff(repo, base)
    checks = None
    notes = list(params.errors + metrics.errors)
    from mlver.workspace import has_pipeline

    pipeline_there = has_pipeline(repo)
    if pipeline_there:
        from mlver.pipeline.plan import load_pipeline

        if load_pipeline(repo).checks:
            checks = run_checks(repo, base=base)
    images: list[tuple[str, str]] = []
    if (png_dir or svg_dir) and pipeline_there:
        from mlver.ops.plots_diff import write_plots

        try:
            written = write_plots(repo, [base or "HEAD", "workspace"], None, out=None, png_dir=png_dir,
                                  svg_dir=svg_dir)
        except MlverError as e:
            if "no plots are defined" not in e.message:
                raise
            notes.append("no plots are defined in mlver.yaml")
        else:
            images = written.images
    return PullRequestReport(base, params, metrics, checks, images, notes)
