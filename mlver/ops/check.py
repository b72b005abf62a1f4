"""``mlver check``: the ``checks:`` of mlver.yaml evaluated on the workspace (or a
revision) against their limits and a base revision — the guard that stops a worse model.

The base is ``--base``, else ``checks.base`` in config, else the merge-base of HEAD with
``origin/HEAD`` (the remote's default branch), else HEAD. A metric absent at the base
skips its drop/rise limits with a note; a metric absent (or not a number) where it is
checked is an error (exit 3), a limit that fails is a difference (exit 1).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import Any

from mlver import git
from mlver.errors import MlverError
from mlver.pipeline.model import PIPELINE_FILE, Check
from mlver.pipeline.params import Flat, flatten, parse_values
from mlver.pipeline.revision import WORKSPACE, History, open_history, workspace_values
from mlver.repo import Repo
from mlver.workspace import has_pipeline


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    value: float | None
    base_value: float | None
    passed: bool
    message: str  # why it failed, or a note ("no base value: drop/rise not checked")
    missing: bool = False  # the metric is absent or not a number where it is checked

    @property
    def change(self) -> float | None:
        return None if self.value is None or self.base_value is None else self.value - self.base_value

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.check.metric, "value": self.value, "base_value": self.base_value,
                "change": self.change, "limits": self.check.limits, "passed": self.passed, "message": self.message}


@dataclass
class CheckReport:
    rev: str
    base: str | None
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def missing(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.missing]

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "passed": self.passed, "rev": self.rev, "base": self.base,
                "checks": [o.to_json() for o in self.outcomes]}


class ChecksMissing(MlverError):
    """A checked metric is absent or unreadable (exit 3)."""


def default_base(repo: Repo, rev: str = "HEAD") -> str | None:
    """``checks.base``, else the merge-base of ``rev`` with the remote's default branch:
    ``origin/HEAD``, else (a repository made with `git init` + `git remote add`, which
    has no ``origin/HEAD``) ``origin/main`` or ``origin/master``; else HEAD."""
    configured = repo.config.get("checks.base")
    if configured:
        return str(configured)
    root = repo.scm_root
    if root is None or not git.has_head(root):
        return None
    for default in ("origin/HEAD", "origin/main", "origin/master"):
        if git.verify_commit(root, default):
            return git.merge_base(root, rev, default) or "HEAD"
    return "HEAD"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return value


def evaluate(check: Check, value: Any, base_value: Any) -> CheckOutcome:
    """One check against its limits (pure)."""
    if value is None:
        return CheckOutcome(check, None, _number(base_value), False, f"{check.metric} is missing", missing=True)
    v = _number(value)
    if v is None:
        return CheckOutcome(check, None, _number(base_value), False, f"{check.metric} is not a number: {value!r}",
                            missing=True)
    b = _number(base_value)
    failures = []
    if check.min is not None and v < check.min:
        failures.append(f"below min {check.min:g}")
    if check.max is not None and v > check.max:
        failures.append(f"above max {check.max:g}")
    notes = []
    if check.max_drop is not None or check.max_rise is not None:
        if b is None:
            notes.append("no base value: max_drop/max_rise not checked")
        else:
            if check.max_drop is not None and b - v > check.max_drop.of(b) + 1e-12:
                failures.append(f"dropped {b - v:g} from {b:g} (max_drop {check.max_drop})")
            if check.max_rise is not None and v - b > check.max_rise.of(b) + 1e-12:
                failures.append(f"rose {v - b:g} from {b:g} (max_rise {check.max_rise})")
    return CheckOutcome(check, v, b, not failures, "; ".join(failures + notes))


def run_checks(repo: Repo, *, rev: str | None = None, base: str | None = None) -> CheckReport:
    """Every check of the workspace's mlver.yaml, on ``rev`` (None: the workspace)."""
    from mlver.pipeline.plan import load_pipeline

    if not has_pipeline(repo):
        raise MlverError(f"no {PIPELINE_FILE}, so no checks", hint="add a top-level `checks:` list to mlver.yaml")
    checks = load_pipeline(repo).checks
    if not checks:
        raise MlverError(f"{PIPELINE_FILE} has no checks",
                         hint="add e.g. `checks: [{metric: eval/metrics.json:acc, min: 0.9}]` to mlver.yaml")
    base = base or default_base(repo, rev or "HEAD")
    with open_history(repo) if (rev or base) else contextlib.nullcontext() as history:
        if rev is None:
            current = workspace_values(repo)
        else:
            assert history is not None  # opened whenever a revision is asked for
            current = history.values(rev)
        base_values = history.values(base) if base and history is not None else None
        # a check names its file: read it even where no `metrics:` declares it
        problems: dict[str, str] = {}
        now = _with_named_files(repo, history, rev, current.metrics, checks, problems)
        then = _with_named_files(repo, history, base, base_values.metrics, checks, {}) \
            if base and base_values is not None else {}
    report = CheckReport(WORKSPACE if rev is None else current.rev, base)
    for check in checks:
        outcome = evaluate(check, now.get(check.file, {}).get(check.key), then.get(check.file, {}).get(check.key))
        problem = problems.get(check.file) or next((e for e in current.errors if e.startswith(check.file + ":")
                                                    or f":{check.file}:" in e), None)
        if outcome.value is None and outcome.missing and problem and check.file not in now:
            outcome = replace(outcome, message=f"{check.metric} cannot be read: {problem}")  # the file is there
        report.outcomes.append(outcome)
    return report


def _with_named_files(repo: Repo, history: History | None, rev: str | None, metrics: dict[str, Flat],
                      checks: tuple[Check, ...], problems: dict[str, str]) -> dict[str, Flat]:
    """``metrics`` plus the files that checks name and the pipeline did not declare, read
    at ``rev`` (None: the workspace); a file absent or unreadable there is left out (an
    unreadable one's error goes into ``problems``)."""
    out = dict(metrics)
    for file in dict.fromkeys(c.file for c in checks if c.file not in metrics):
        try:
            if rev is None:
                try:
                    with open(repo.abs(file), "rb") as f:
                        data: bytes | None = f.read()
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    data = None
            else:
                assert history is not None
                data = history.read_file(rev, file)
            if data is not None:
                out[file] = flatten(parse_values(data, file))
        except MlverError as e:
            problems[file] = e.message  # reported by its check, with why
    return out
