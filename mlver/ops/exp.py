"""``mlver exp show``: one table of experiments, a row for the workspace and one per
commit (rev, refs, date, subject) with a column per parameter and metric, read from Git
objects through ``mlver.pipeline.revision`` (batched, cached per blob; no checkout)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from mlver import git
from mlver.errors import UsageError
from mlver.pipeline.params import Flat
from mlver.hashing import digest_fields
from mlver.pipeline.revision import WORKSPACE, History, workspace_deps, workspace_values
from mlver.repo import Repo

DEFAULT_COUNT = 10
KINDS = ("params", "metrics", "deps")
DEPS = "deps"  # the "file" of dependency columns (``deps:data/raw.csv``): their digests


@dataclass(frozen=True)
class ExpRow:
    rev: str  # full commit id, or "workspace"
    refs: tuple[str, ...] = ()
    date: str | None = None  # committer date, ISO 8601 (None for the workspace)
    subject: str | None = None
    params: dict[str, Flat] = field(default_factory=dict)
    metrics: dict[str, Flat] = field(default_factory=dict)
    deps: dict[str, Flat] = field(default_factory=dict)  # {DEPS: {path: digest}}, with ``--deps``
    errors: tuple[str, ...] = ()
    experiment: str | None = None  # experiment rows: its name, its baseline commit, its state
    baseline: str | None = None
    status: str | None = None  # queued / running / success / failed

    def to_json(self) -> dict:
        doc = {"rev": self.rev, "refs": list(self.refs), "date": self.date, "subject": self.subject,
               "params": self.params, "metrics": self.metrics}
        if self.deps:
            doc["deps"] = {p: digest_fields(d) for p, d in self.deps[DEPS].items()}
        if self.experiment is not None:  # only experiment rows carry these (commit rows keep their shape)
            doc.update(experiment=self.experiment, baseline=self.baseline, status=self.status)
        return doc

    def get(self, column: Column) -> tuple[bool, Any]:
        vals = getattr(self, column.kind).get(column.file, {})
        return (column.key in vals, vals.get(column.key))


@dataclass(frozen=True)
class Column:
    kind: str  # "params", "metrics" or "deps"
    file: str
    key: str
    label: str  # the key alone when no other column has it, else FILE:KEY

    @property
    def name(self) -> str:
        """The full name ``FILE:KEY`` (``params.yaml:train.lr``) that --keep and --drop
        match against."""
        return f"{self.file}:{self.key}"


@dataclass
class ExpTable:
    rows: list[ExpRow]

    def to_json(self) -> dict:
        return {"version": 1, "rows": [r.to_json() for r in self.rows]}

    @property
    def errors(self) -> list[str]:
        return list(dict.fromkeys(e for r in self.rows for e in r.errors))

    @property
    def columns(self) -> list[Column]:
        """Params columns, then metrics columns; files and keys in order of appearance."""
        seen: dict[tuple[str, str, str], None] = {}
        for kind in KINDS:
            for row in self.rows:
                for file, vals in getattr(row, kind).items():
                    for key in vals:
                        seen.setdefault((kind, file, key), None)
        counts: dict[str, int] = {}
        for _, _, key in seen:
            counts[key] = counts.get(key, 0) + 1
        return [Column(kind, file, key, key if counts[key] == 1 else f"{file}:{key}") for kind, file, key in seen]

    def changed(self, index: int, column: Column) -> bool:
        """Whether row ``index`` holds a value that differs from the next (older) row's."""
        if index + 1 >= len(self.rows):
            return False
        here, there = self.rows[index].get(column), self.rows[index + 1].get(column)
        if not here[0]:
            return False
        return not there[0] or type(here[1]) is not type(there[1]) or here[1] != there[1]

    def unchanged(self, column: Column) -> bool:
        """Whether every row that has a value in ``column`` holds the same one (rows
        from before the parameter or metric existed do not count)."""
        seen = {(type(v), repr(v)) for present, v in (r.get(column) for r in self.rows) if present}
        return len(seen) <= 1

    def select(self, *, keep: Sequence[str] = (), drop: Sequence[str] = (),
               only_changed: bool = False) -> "ExpTable":
        """The table with fewer columns: without those whose full name (``FILE:KEY``) a
        ``drop`` regex matches or (``only_changed``) whose value is the same in every row;
        a column a ``keep`` regex matches stays whatever the other two say (as in DVC).
        A regex matches when it is found anywhere in the name (anchor with ^ and $)."""
        keeps, drops = _patterns("--keep", keep), _patterns("--drop", drop)
        if not (drops or only_changed):
            return self
        gone = {(c.kind, c.file, c.key) for c in self.columns
                if not any(p.search(c.name) for p in keeps)
                and (any(p.search(c.name) for p in drops) or (only_changed and self.unchanged(c)))}
        if not gone:
            return self

        def kept(kind: str, values: dict[str, Flat]) -> dict[str, Flat]:
            out = {}
            for file, vals in values.items():
                left = {k: v for k, v in vals.items() if (kind, file, k) not in gone}
                if left:
                    out[file] = left
            return out

        return ExpTable([replace(r, params=kept("params", r.params), metrics=kept("metrics", r.metrics),
                                 deps=kept("deps", r.deps)) for r in self.rows])

    def find_column(self, name: str) -> Column:
        """The column ``name`` means: its label, ``FILE:KEY``, or a key of one column."""
        cols = self.columns
        for c in cols:
            if name in (c.label, f"{c.file}:{c.key}"):
                return c
        hits = [c for c in cols if c.key == name]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise UsageError(f"'{name}' is ambiguous", hint="one of: " + ", ".join(f"{c.file}:{c.key}" for c in hits))
        known = ", ".join(c.label for c in cols) or "none"
        raise UsageError(f"no parameter or metric '{name}'", hint=f"columns: {known}")


def _patterns(option: str, texts: Sequence[str]) -> list[re.Pattern[str]]:
    out = []
    for text in texts:
        try:
            out.append(re.compile(text))
        except re.error as e:
            raise UsageError(f"{option} {text!r} is not a regular expression: {e}",
                             hint="columns are named FILE:KEY, e.g. 'params.yaml:train\\.' or 'metrics.json:acc$'") from None
    return out


def _sort_key(value: tuple[bool, Any]) -> tuple:
    present, v = value
    if not present or v is None:
        return (2, 0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, "")
    return (1, 0, str(v))


def sort_rows(table: ExpTable, name: str, *, descending: bool = False) -> ExpTable:
    """Commits ordered by one column (the workspace row stays first; rows without the
    value last, whatever the order)."""
    column = table.find_column(name)
    head, rest = table.rows[:1], table.rows[1:]

    def ordered(rows: list[ExpRow]) -> list[ExpRow]:
        have = [r for r in rows if _sort_key(r.get(column))[0] < 2]
        lack = [r for r in rows if _sort_key(r.get(column))[0] == 2]
        have.sort(key=lambda r: _sort_key(r.get(column)), reverse=descending)
        return have + lack

    # experiments stay under their baseline (as in DVC): commits are sorted among
    # themselves, each commit's experiments among themselves
    commits = [r for r in rest if r.experiment is None]
    shown = {r.rev for r in commits}
    under: dict[str, list[ExpRow]] = {}
    for r in rest:
        if r.experiment is not None:
            under.setdefault(r.baseline if r.baseline in shown else "", []).append(r)
    out = list(head)
    for c in ordered(commits):
        out += [c, *ordered(under.get(c.rev, []))]
    return ExpTable(out + ordered(under.get("", [])))


def history_commits(root: str, *, count: int, all_branches: bool, revs: Sequence[str] = (),
                    all_commits: bool = False) -> list[git.CommitInfo]:
    """``count`` commits from HEAD (or from ``revs``), newest first; with
    ``all_branches`` also ``count`` from each local branch (so every branch's tip is
    there), ordered by date; ``all_commits``: every commit of every branch and tag."""
    if not git.has_head(root):
        return []
    starts = []
    for rev in revs:
        sha = git.verify_commit(root, rev)
        if sha is None:
            raise UsageError(f"--rev {rev}: unknown revision")
        starts.append(sha)
    if all_commits:
        return git.commit_log(root, ["HEAD", "--branches", "--tags"], None)
    if not all_branches:
        return git.commit_log(root, starts or ["HEAD"], count)
    found: dict[str, git.CommitInfo] = {}
    for ref in [*(starts or ["HEAD"]), *git.branch_names(root)]:
        for c in git.commit_log(root, [ref], count):
            found.setdefault(c.sha, c)
    return sorted(found.values(), key=lambda c: -c.timestamp)


@dataclass(frozen=True)
class _ExpCommit:
    name: str
    baseline: str
    commit: str
    status: str
    order: float = 0.0  # queue entries: when queued (finished ones: their commit's time)


def _experiments(repo: Repo, root: str, baselines: set[str]) -> dict[str, list[_ExpCommit]]:
    """baseline -> its experiments (finished ones from refs/exps, then queue entries
    not finished), oldest first."""
    from mlver.ops import queue
    from mlver.ops.experiments import list_experiments

    found: dict[str, list[_ExpCommit]] = {}
    for e in list_experiments(root):
        if e.baseline in baselines:
            found.setdefault(e.baseline, []).append(_ExpCommit(e.name, e.baseline, e.commit, "success"))
    for q in queue.load_entries(repo):
        if q.baseline in baselines and q.status != queue.SUCCESS:
            found.setdefault(q.baseline, []).append(_ExpCommit(q.name, q.baseline, q.snapshot, q.status, q.created))
    return found


def exp_show(repo: Repo, *, count: int = DEFAULT_COUNT, all_branches: bool = False, sort_by: str | None = None,
             descending: bool = False, keep: Sequence[str] = (), drop: Sequence[str] = (),
             only_changed: bool = False, experiments: bool = False, revs: Sequence[str] = (),
             all_commits: bool = False, deps: bool = False) -> ExpTable:
    """The table; with ``experiments``, each commit's experiments follow it; with
    ``deps``, a column per stage dependency holding its digest as the lock records it."""
    ws = workspace_values(repo)
    rows = [ExpRow(WORKSPACE, params=ws.params, metrics=ws.metrics, errors=ws.errors,
                   deps=_deps_of(workspace_deps(repo)) if deps else {})]
    if repo.scm_root is not None:
        root = repo.scm_root
        commits = history_commits(root, count=count, all_branches=all_branches, revs=revs, all_commits=all_commits)
        if commits:
            refs = git.refs_by_commit(root)
            exps = _experiments(repo, root, {c.sha for c in commits}) if experiments else {}
            exp_commits = [x.commit for group in exps.values() for x in group]
            info = git.commit_subjects(root, exp_commits)
            # batch reads by commit id need no GitPython handle (nor its import time)
            every = [c.sha for c in commits] + exp_commits
            with contextlib.closing(History(repo, None)) as history:
                values = history.values_many(every)
                dep_digests = dict(zip(every, history.deps_many(every))) if deps else {}
            by_commit = dict(zip(every, values))
            for c in commits:
                v = by_commit[c.sha]
                rows.append(ExpRow(c.sha, tuple(refs.get(c.sha, ())), c.date, c.subject, v.params, v.metrics,
                                   _deps_of(dep_digests.get(c.sha, {})), v.errors))
                group = sorted(exps.get(c.sha, []), key=lambda x: (x.order or (info[x.commit].timestamp
                                                                             if x.commit in info else 0), x.name))
                for x in group:
                    v, ci = by_commit[x.commit], info.get(x.commit)
                    rows.append(ExpRow(x.commit, (), ci.date if ci else None, ci.subject if ci else None,
                                       v.params, v.metrics if x.status == "success" else {},
                                       _deps_of(dep_digests.get(x.commit, {})), v.errors,
                                       experiment=x.name, baseline=x.baseline, status=x.status))
    table = ExpTable(rows)
    if sort_by:
        table = sort_rows(table, sort_by, descending=descending)  # before columns go: --drop may hide the key
    return table.select(keep=keep, drop=drop, only_changed=only_changed)


def _deps_of(digests: dict[str, str]) -> dict[str, Flat]:
    return {DEPS: dict(sorted(digests.items()))} if digests else {}
