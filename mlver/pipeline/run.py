"""``repro``: plan which stages to run, then run them in dependency order.

For each stage in scope, in topological order: decide whether it changed (plan.py); a
changed stage is restored from the run cache when an entry for exactly these inputs
exists, otherwise its command runs through the shell in ``wdir`` with the user's
environment, its output streaming to the terminal. Dependencies are hashed before the
command and checked again after it; if one changed meanwhile nothing is recorded. Before
outputs are removed, content the cache does not have is stored (hand edits stay
recoverable). After each stage its outputs are cached and ``mlver.lock`` is rewritten
atomically, so a failure later keeps every earlier stage's record.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from mlver.hashing import digest_fields
from mlver.errors import MlverError, PathError, StageFailed
from mlver.pipeline import runcache
from mlver.pipeline.graph import Graph, overlaps
from mlver.pipeline.lockfile import LockEntry, StageLock, read_lock, write_lock
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE, Stage
from mlver.pipeline.params import Parsed, workspace_reader
from mlver.pipeline.plan import (MISSING_DEP, MISSING_PRODUCT, StageCheck, check_stage, ignore_outputs, load_graph,
                                 record_stage, same_value)
from mlver.pipeline.record import (Inspector, clear_products, keep_edits, products_restorable, refuse_git_tracked,
                                   restore_plain)
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import Output, checkout_output


@dataclass(frozen=True)
class StageEvent:
    """Something a user should hear about while ``repro`` works."""

    stage: str
    action: str  # "up-to-date", "running", "command" (one of a list's, as it starts), "restored", "kept", ...
    reasons: tuple[str, ...] = ()
    cmd: str = ""
    path: str = ""  # kept: the output whose edited content went into the cache
    digest: str = ""


@dataclass(frozen=True)
class PlannedStage:
    name: str
    action: str  # "run", "restore" (from the run cache), "skip"
    reasons: tuple[str, ...]
    cmd: str


@dataclass(frozen=True)
class FailedStage:
    stage: str
    message: str
    exit_code: int | None  # the command's own exit code, when the command failed


@dataclass
class ReproResult:
    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (output path, digest of kept content)
    files: list[str] = field(default_factory=list)  # mlver files rewritten (lock, .gitignore)
    to_add: list[str] = field(default_factory=list)  # what to `git add`: files, and mlver.yaml if Git lacks it
    plan: list[PlannedStage] = field(default_factory=list)  # with dry_run
    failed: FailedStage | None = None  # the stage that stopped the run (the first failure with keep_going)
    failures: list[FailedStage] = field(default_factory=list)  # every failure (keep_going)
    blocked: list[str] = field(default_factory=list)  # not run: an upstream stage failed (keep_going)
    allowed_missing: list[str] = field(default_factory=list)  # not run: only outputs missing (allow_missing)
    dry_run: bool = False

    def to_json(self) -> dict:
        if self.dry_run:
            return {"version": 1, "stages": [{"name": p.name, "action": p.action, "reasons": list(p.reasons)}
                                             for p in self.plan]}
        failed = None if self.failed is None else {"stage": self.failed.stage, "message": self.failed.message,
                                                   "exit_code": self.failed.exit_code}
        return {"version": 1, "ran": self.ran, "restored": self.restored, "skipped": self.skipped,
                "kept": [{"path": p, **digest_fields(d)} for p, d in self.kept], "failed": failed,
                "failures": [{"stage": f.stage, "message": f.message, "exit_code": f.exit_code}
                             for f in self.failures],
                "blocked": self.blocked, "allowed_missing": self.allowed_missing}


class ReproFailed(MlverError):
    """A stage failed: the error as it was, and what the run did before it."""

    def __init__(self, error: MlverError, result: ReproResult) -> None:
        super().__init__(error.message, hint=error.hint)
        self.exit_code = error.exit_code
        self.error = error
        self.result = result


class DepChangedDuringRun(MlverError):
    def __init__(self, stage: str, paths: list[str]) -> None:
        super().__init__(f"stage '{stage}': {', '.join(paths)} changed while the command was running; "
                         "its outputs were not recorded",
                         hint=f"run `mlver repro {stage}` again once nothing else is writing its dependencies")
        self.stage = stage
        self.paths = paths


def _on_nothing(event: StageEvent) -> None:
    pass


def select(graph: Graph, targets: list[str] | None, *, downstream: bool, single: bool = False) -> list[Stage]:
    """Stages in scope, in run order: the targets and what they depend on, or with
    ``downstream`` the targets and everything that depends on them, or with ``single``
    the targets alone (the stages a frozen stage depends on are not reached through it). A target is a stage name (a foreach/matrix name: every stage it
    generates) or the path of a stage output."""
    if not targets:
        return graph.stages_in_order()
    names: list[str] = []
    for t in targets:
        named = graph.pipeline.named(t)
        if named:
            names.extend(s.name for s in named)
            continue
        norm = t.rstrip("/")
        owners = [s.name for s in graph.pipeline.stages if any(o.path == norm for o in s.products)]
        if not owners:
            raise MlverError(f"no stage '{t}' in {PIPELINE_FILE}",
                             hint="stages: " + (", ".join(graph.pipeline.names) or "none"))
        names.extend(owners)
    return graph.stages_in_order(set(names) if single else graph.closure(names, down=downstream, through_frozen=False))


def _run_cacheable(stage: Stage) -> bool:
    """May the run cache stand in for running ``stage``? Not without dependencies (it
    always runs), nor with a ``persist`` output: that output accumulates across runs, and
    an old snapshot must not replace it."""
    return bool(stage.deps or stage.params) and not stage.always_changed and not any(o.persist for o in stage.products)


def _restorable_entry(repo: Repo, stage: Stage, key: str) -> runcache.RunEntry | None:
    entry = runcache.lookup(repo, key)
    if entry is None:
        return None
    if sorted(e.path for e in entry.products) != sorted(o.path for o in stage.products):
        return None
    return entry if products_restorable(repo, list(entry.products)) else None


def _missing_but_recorded(check: StageCheck, locked: StageLock | None) -> list[LockEntry] | None:
    """For ``--allow-missing``: when a stage's only changes are outputs or dependencies
    missing from the workspace that its lock records, the recorded entries whose objects
    must be at hand (cached outputs, and those dependencies); None when it changed otherwise."""
    if locked is None or not check.changed:
        return None
    recorded_deps = {e.path: e for e in locked.deps}
    deps = []
    for r in check.reasons:
        if r.startswith(MISSING_PRODUCT):
            continue
        if r.startswith(MISSING_DEP) and r[len(MISSING_DEP):] in recorded_deps:
            deps.append(recorded_deps[r[len(MISSING_DEP):]])
            continue
        return None
    return [e for e in locked.products if e.cache] + deps


def plan(repo: Repo, graph: Graph, stages: list[Stage], *, force: bool, run_cache: bool,
         progress: Progress = NO_PROGRESS,
         allow_missing: Callable[[list[LockEntry]], bool] | None = None) -> list[PlannedStage]:
    """What ``repro`` would do, with reasons, running nothing. A stage the run cache will
    restore has known outputs: stages downstream of it are judged against those (so they
    may be restored or skipped too, as the run will find); downstream of a stage that
    will run, nothing is known and they will run."""
    locked = read_lock(repo)
    inspector = Inspector(repo, progress)
    reader = workspace_reader(repo.root)
    running: set[str] = set()
    restoring: dict[str, set[str]] = {}  # stage -> the output paths the restore brings back
    out = []
    for stage in stages:
        # deps inside or around (not exactly) a restored output are not predicted: they
        # count as changing, like the outputs of a stage that runs
        unknown = [u for u in graph.upstream[stage.name] if u in running or (
            u in restoring and any(overlaps(d.path, p) and d.path not in restoring[u]
                                   for d in stage.deps for p in restoring[u]))]
        check = check_stage(stage, locked.get(stage.name), inspector, reader, strict=False)
        if stage.frozen:
            out.append(PlannedStage(stage.name, "frozen", check.reasons, stage.cmd))
            continue
        recorded = _missing_but_recorded(check, locked.get(stage.name)) if allow_missing and not force else None
        if recorded is not None and not unknown and allow_missing is not None and allow_missing(recorded):
            out.append(PlannedStage(stage.name, "skip", tuple(f"allowed missing: {r.split(': ', 1)[1]}"
                                                                  for r in check.reasons), stage.cmd))
            continue
        reasons = list(check.reasons) + [f"upstream stage will change: {u}" for u in unknown]
        if force and not reasons:
            reasons.append("forced")
        if not reasons:
            out.append(PlannedStage(stage.name, "skip", (), stage.cmd))
            continue
        entry = None
        if run_cache and not force and not unknown and _run_cacheable(stage) and not check.missing_deps:
            key = runcache.run_key(stage, [d for d in check.deps if d is not None], check.params)
            entry = _restorable_entry(repo, stage, key)
        if entry is None:
            running.add(stage.name)
        else:
            restoring[stage.name] = {e.path for e in entry.products}
            for e in entry.products:
                inspector.assume(e)
        out.append(PlannedStage(stage.name, "run" if entry is None else "restore", tuple(reasons), stage.cmd))
    return out


class _Runner:
    def __init__(self, repo: Repo, graph: Graph, *, force: bool, run_cache: bool, progress: Progress,
                 on_event: Callable[[StageEvent], None],
                 allow_missing: Callable[[list[LockEntry]], bool] | None = None, output: IO[Any] | None = None) -> None:
        self.repo = repo
        self.output = output  # where stage commands write (None: this process's stdout and stderr)
        self.allow_missing = allow_missing
        self.graph = graph
        self.force = force
        self.run_cache = run_cache
        self.progress = progress
        self.on_event = on_event
        self.locked = read_lock(repo)
        self.inspector = Inspector(repo, progress)
        self.result = ReproResult()
        # params files are read again for every stage (an upstream stage may rewrite
        # one), but parsed once per distinct content: 200 stages over one params.yaml
        self.parsed_params: Parsed = {}

    def stage(self, stage: Stage) -> None:
        if stage.frozen:  # never run; its lock entry is kept as it is
            if self.locked.get(stage.name) is None and stage.products:
                self._record_frozen(stage)
                return
            self.result.skipped.append(stage.name)
            self.on_event(StageEvent(stage.name, "frozen"))
            return
        check = check_stage(stage, self.locked.get(stage.name), self.inspector, workspace_reader(self.repo.root, self.parsed_params))
        recorded = _missing_but_recorded(check, self.locked.get(stage.name)) if not self.force else None
        if self.allow_missing is not None and recorded is not None and self.allow_missing(recorded):
            self.result.allowed_missing.append(stage.name)
            self.on_event(StageEvent(stage.name, "allowed-missing", check.reasons))
            return
        if check.missing_deps:
            dep = check.missing_deps[0]
            raise missing_dep(self.repo, stage.name, dep)
        if not check.changed and not self.force:
            self.result.skipped.append(stage.name)
            self.on_event(StageEvent(stage.name, "up-to-date"))
            return
        refuse_git_tracked(self.repo, stage)  # before anything is announced or replaced
        deps = [d for d in check.deps if d is not None]
        key = runcache.run_key(stage, deps, check.params) if self.run_cache and _run_cacheable(stage) else None
        if key is not None and not self.force:
            entry = _restorable_entry(self.repo, stage, key)
            if entry is not None:
                self._restore(stage, check, entry)
                return
        self._run(stage, check, key)

    def _keep_edits(self, stage: Stage) -> None:
        """Before outputs are replaced, content the cache lacks goes into it (``kept``:
        edited since recorded; ``kept-unrecorded``: never recorded, e.g. left by a failed
        run)."""
        old = self.locked.get(stage.name)
        recorded = {e.path: e for e in old.products} if old else {}
        for path, digest in keep_edits(self.repo, stage, recorded):
            self.result.kept.append((path, digest))
            action = "kept" if path in recorded else "kept-unrecorded"
            self.on_event(StageEvent(stage.name, action, path=path, digest=digest))

    def _restore(self, stage: Stage, check: StageCheck, entry: runcache.RunEntry) -> None:
        self._keep_edits(stage)
        for e in entry.products:
            if e.cache:
                out = Output(e.path, e.kind, e.digest, e.size, e.files, stage=stage.name)
                res = checkout_output(self.repo, out, force=True, progress=self.progress)
                if res.missing or res.kept:  # pragma: no cover - checked by _restorable_entry
                    raise MlverError(f"stage '{stage.name}': could not restore {e.path} from the run cache")
            else:
                restore_plain(self.repo, e)
        new = StageLock(stage.name, stage.cmd, tuple(d for d in check.deps if d is not None), check.params,
                        entry.outs, entry.metrics)
        self._record(stage, new)
        self.result.restored.append(stage.name)
        self.on_event(StageEvent(stage.name, "restored", check.reasons or ("forced",), stage.cmd))

    def _run(self, stage: Stage, check: StageCheck, key: str | None) -> None:
        wdir = self.repo.abs(stage.wdir)
        if not os.path.isdir(wdir):  # before anything is announced or removed
            raise PathError(stage.wdir, f"is the wdir of stage '{stage.name}' and is not a folder")
        self.on_event(StageEvent(stage.name, "running", check.reasons or ("forced",), stage.cmd))
        self._keep_edits(stage)
        clear_products(self.repo, stage)
        self.repo.state.flush()
        many = len(stage.argv) > 1
        for command in stage.argv:  # a list of commands runs in order, stopping at the first failure
            if many:  # each echoed as it starts, not all before the first (as DVC)
                self.on_event(StageEvent(stage.name, "command", (), command))
            proc = subprocess.run(command, shell=True, cwd=wdir, stdout=self.output, stderr=self.output)
            if proc.returncode != 0:
                raise StageFailed(stage.name, proc.returncode, command if many else None)
        self.inspector.forget()
        self._check_inputs_held(stage, check)
        missing = [o.path for o in stage.products if not os.path.lexists(self.repo.abs(o.path))]
        if missing:
            raise MlverError(f"stage '{stage.name}': the command did not create {', '.join(missing)}",
                             hint="make the command write every path listed in 'outs' and 'metrics'")
        new = record_stage(self.repo, stage, check, self.inspector, snapshot=key is not None, progress=self.progress)
        self._record(stage, new)
        if key is not None:
            runcache.save(self.repo, key, stage.name, new.outs, new.metrics)
        self.result.ran.append(stage.name)

    def _check_inputs_held(self, stage: Stage, before: StageCheck) -> None:
        """Dependencies and params must be what they were when the command started."""
        moved = []
        for dep, was in zip(stage.deps, before.deps):
            now = self.inspector.entry(dep.path)
            if now is None or was is None or (now.kind, now.digest) != (was.kind, was.digest):
                moved.append(dep.path)
        params = workspace_reader(self.repo.root, self.parsed_params).stage_params(stage, stage.file)
        for file in sorted(set(params) | set(before.params)):
            old, new = before.params.get(file, {}), params.get(file, {})
            moved += [f"{file}:{k}" for k in sorted(set(old) | set(new)) if not same_value(old.get(k), new.get(k))]
        if moved:
            raise DepChangedDuringRun(stage.name, moved)

    def _record_frozen(self, stage: Stage) -> None:
        """A frozen stage with no lock entry (outputs put in place by hand, the usual way a
        frozen stage starts): its outputs are recorded as they are, as DVC's "verifying
        outputs in frozen stage" does; outputs that are not there stop the run."""
        missing = [o.path for o in stage.products if not os.path.lexists(self.repo.abs(o.path))]
        if missing:
            raise MlverError(f"stage '{stage.name}' is frozen and was never recorded, and {', '.join(missing)} "
                             "does not exist", hint="put the data there (or unfreeze the stage and `mlver repro` it)")
        check = check_stage(stage, None, self.inspector, workspace_reader(self.repo.root, self.parsed_params))
        if check.missing_deps:
            raise missing_dep(self.repo, stage.name, check.missing_deps[0])
        refuse_git_tracked(self.repo, stage)
        self._record(stage, record_stage(self.repo, stage, check, self.inspector, snapshot=False,
                                         progress=self.progress))
        self.result.skipped.append(stage.name)
        self.on_event(StageEvent(stage.name, "frozen-recorded"))

    def _record(self, stage: Stage, new: StageLock) -> None:
        self.locked[stage.name] = new
        self.result.files += [f for f in write_lock(self.repo, self.locked, self.graph.pipeline.names)
                              if f not in self.result.files]
        kept_in_git = [o.path for o in stage.products if not o.cache and os.path.exists(self.repo.abs(o.path))]
        for f in ignore_outputs(self.repo, stage) + kept_in_git:  # metrics & co. are committed in Git
            if f not in self.result.files:
                self.result.files.append(f)
        self.repo.state.flush()
        self.inspector.forget()


def reproduce(repo: Repo, targets: list[str] | None = None, *, force: bool = False, dry_run: bool = False,
              downstream: bool = False, single: bool = False, keep_going: bool = False,
              allow_missing: Callable[[list[LockEntry]], bool] | None = None, run_cache: bool = True,
              progress: Progress = NO_PROGRESS, on_event: Callable[[StageEvent], None] = _on_nothing,
              output: IO[Any] | None = None) -> ReproResult:
    """Run the changed stages in scope. ``keep_going``: after a failure, go on with the
    stages that do not depend on a failed one, and fail at the end naming every failure.
    ``allow_missing(entries)``: a stage whose only change is missing cached outputs is
    not run when it says those recorded objects can be had (cache or remote).
    ``output``: a file the commands' stdout and stderr go to (experiment logs)."""
    graph = load_graph(repo)
    stages = select(graph, targets, downstream=downstream, single=single)
    if dry_run:
        result = ReproResult(plan=plan(repo, graph, stages, force=force, run_cache=run_cache, progress=progress,
                                       allow_missing=allow_missing), dry_run=True)
        repo.state.flush()
        return result
    runner = _Runner(repo, graph, force=force, run_cache=run_cache, progress=progress, on_event=on_event,
                     allow_missing=allow_missing, output=output)
    result = runner.result
    try:
        for stage in stages:
            if any(u in {f.stage for f in result.failures} or u in result.blocked for u in graph.upstream[stage.name]):
                result.blocked.append(stage.name)
                on_event(StageEvent(stage.name, "blocked"))
                continue
            try:
                runner.stage(stage)
            except MlverError as e:
                failure = FailedStage(stage.name, e.message, getattr(e, "returncode", None))
                result.failed = result.failed or failure
                result.failures.append(failure)
                if not keep_going:
                    raise ReproFailed(e, result) from e
                on_event(StageEvent(stage.name, "failed", (e.message,)))
    finally:
        repo.state.flush()
    if result.failures:
        names = ", ".join(f"'{f.stage}'" + (f" (exit {f.exit_code})" if f.exit_code is not None else "")
                          for f in result.failures)
        blocked = f"; not run because an upstream stage failed: {', '.join(result.blocked)}" if result.blocked else ""
        raise ReproFailed(MlverError(f"{len(result.failures)} stage(s) failed: {names}{blocked}"), result)
    # stages that left mlver.yaml leave the lock too
    if not targets and set(runner.locked) - set(graph.pipeline.names):
        runner.result.files += [f for f in write_lock(repo, runner.locked, graph.pipeline.names)
                                if f not in runner.result.files]
    if any(f.rsplit("/", 1)[-1] == LOCK_FILE for f in runner.result.files):
        read_lock(repo)  # parse the new lock once now, so the next command finds it memoised
    return runner.result


def missing_dep(repo: Repo, stage: str, dep: str) -> PathError:
    """The error for a dependency that does not exist, with the way to bring it: tracked
    data the cache holds comes back with `checkout`, other tracked data with `pull`."""
    from mlver.workspace import pointer_outputs

    tracked = [o for o in pointer_outputs(repo) if overlaps(o.path, dep)]
    if not tracked:
        hint = "create it, or add the stage that makes it"
    elif all(repo.cache.has(o.digest, manifest=o.kind == "dir") for o in tracked):
        hint = f"it is tracked and in the cache: `mlver checkout {dep}` brings it back"
    else:
        hint = f"it is tracked but not in the cache: `mlver pull {dep}` fetches it"
    return PathError(dep, f"is a dependency of stage '{stage}' and does not exist", hint=hint)
