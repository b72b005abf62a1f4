"""Loading the pipeline and deciding which stages changed.

A stage is *changed* (SPEC) when its command differs from the lock, any dependency
digest or listed parameter value differs, or an output or metrics file is missing or
differs; a stage with no dependencies always runs. Each reason is one short line
(``dep changed: data/raw.csv``) so ``status`` and ``repro --dry-run`` can show why.
"""

from __future__ import annotations

import functools
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable

from mlver.errors import FormatError, MlverError, PathError, StaleStage
from mlver.fsutil import inside_root
from mlver.pipeline.graph import Graph, build_graph
from mlver.pipeline.lockfile import LockEntry, StageLock, read_lock, write_lock
from mlver.pipeline.model import PIPELINE_FILE, Pipeline, Stage, merge_pipelines, parse_pipeline
from mlver.pipeline.params import ParamsReader, workspace_reader
from mlver.pipeline.record import Inspector, record_product
from mlver.pointer import POINTER_SUFFIX
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.gitignore import gitignore_add, gitignore_remove


def pipeline_texts(repo: Repo) -> list[tuple[str, str]]:
    """(repo-relative path, text) of every pipeline file: ``mlver.yaml`` at the top (when
    there is one) and in subfolders, each a pipeline of its own."""
    from mlver.workspace import pipeline_files

    files = pipeline_files(repo, PIPELINE_FILE)
    if PIPELINE_FILE not in files and os.path.isfile(repo.abs(PIPELINE_FILE)):
        files.insert(0, PIPELINE_FILE)  # the top file counts even when Git ignores it
    texts = []
    for rel in files:
        try:
            with open(repo.abs(rel), encoding="utf-8") as f:
                texts.append((rel, f.read()))
        except FileNotFoundError:
            continue
        except UnicodeDecodeError:
            raise FormatError(rel, "not UTF-8 text") from None
    if not texts:
        raise MlverError(f"no {PIPELINE_FILE} in {repo.root}",
                         hint="add a stage with `mlver stage add -n NAME -d DEP -o OUT -- CMD`")
    return texts


def check_workspace_paths(repo: Repo, pipeline: Pipeline) -> None:
    """Paths that leave the repository through a symlink, and outputs that a pointer
    file already tracks."""
    resolved: dict[str, str] = {}  # realpath of the root and of parent folders, shared
    for stage in pipeline.stages:
        for path, line in [(d.path, d.line) for d in stage.deps] + [(o.path, o.line) for o in stage.products]:
            try:
                inside_root(repo.root, repo.abs(path), shown=path, resolved=resolved)
            except PathError as e:
                raise FormatError(pipeline.shown, f"stage '{stage.name}': {e.message}", line=line) from None
        for out in stage.products:
            parts = out.path.split("/")
            for i in range(len(parts), 0, -1):
                tracked = "/".join(parts[:i])
                if os.path.isfile(repo.abs(tracked + POINTER_SUFFIX)):
                    raise FormatError(pipeline.shown, f"stage '{stage.name}': output '{out.path}' is already tracked "
                                      f"by {tracked}{POINTER_SUFFIX}", line=out.line or stage.line,
                                      hint=f"stop tracking it first: `mlver remove {tracked}{POINTER_SUFFIX}`")


def load_graph(repo: Repo) -> Graph:
    """Parse and validate every pipeline file against the workspace; one stage graph."""
    texts = pipeline_texts(repo)
    # The memo's key is the text itself for the usual single top file, else every file
    # with its path (so moving a file is a change).
    key = texts[0][1] if len(texts) == 1 and texts[0][0] == PIPELINE_FILE else \
        "\0".join(f"{rel}\n{text}" for rel, text in texts)
    parsed = repo.state.parsed("pipeline", key, functools.partial(_parse_workspace, repo.root, texts),
                               valid=functools.partial(_inputs_hold, repo.root))
    check_workspace_paths(repo, parsed.graph.pipeline)
    return parsed.graph


@dataclass(frozen=True)
class ParsedPipeline:
    """A graph and the files its templating read (``vars``, params.yaml) with the digest
    of their bytes (None: absent), so a memo is reused only while they hold."""

    graph: Graph
    inputs: tuple[tuple[str, str | None], ...] = ()


def _read_file(root: str, rel: str) -> bytes | None:
    try:
        with open(os.path.join(root, *rel.split("/")), "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _inputs_hold(root: str, parsed: ParsedPipeline) -> bool:
    from mlver.hashing import digest_bytes

    for rel, digest in parsed.inputs:
        data = _read_file(root, rel)
        if (None if data is None else digest_bytes(data)) != digest:
            return False
    return True


def _parse_workspace(root: str, texts: list[tuple[str, str]], _key: str) -> ParsedPipeline:
    from mlver.hashing import digest_bytes

    inputs: dict[str, str | None] = {}

    def read(rel: str) -> bytes | None:
        data = _read_file(root, rel)
        inputs[rel] = None if data is None else digest_bytes(data)
        return data

    graph = build_graph(parse_pipelines(texts, ParamsReader(read).doc))
    return ParsedPipeline(graph, tuple(sorted(inputs.items())))


def parse_pipelines(texts: list[tuple[str, str]], load: Callable[[str], Any] | None) -> Pipeline:
    """Pipeline files (path, text) parsed, each relative to its folder, and merged."""
    return merge_pipelines([parse_pipeline(text, rel, load, base=posixpath.dirname(rel) or ".")
                            for rel, text in texts])


def load_pipeline(repo: Repo) -> Pipeline:
    return load_graph(repo).pipeline


# --- change detection ------------------------------------------------------------------

MISSING_PRODUCT = "out missing: "  # the reason an output is absent from the workspace
MISSING_DEP = "dep missing: "  # the reason a dependency is absent

@dataclass(frozen=True)
class StageCheck:
    stage: Stage
    reasons: tuple[str, ...]
    deps: tuple[LockEntry | None, ...]  # current, in mlver.yaml order (None: missing)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the reasons that concern what the stage ran with (never run, command, deps, params),
    # not its outputs: recording the outputs as they are would pair them with other inputs
    input_reasons: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.reasons)

    @property
    def missing_deps(self) -> list[str]:
        return [d.path for d, now in zip(self.stage.deps, self.deps) if now is None]


def same_value(a: Any, b: Any) -> bool:
    """Equal values of the same types, all the way down (1, 1.0 and true differ; NaN is
    the same as NaN, as the same text in a params file is)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _only_removed(stage: Stage, now: dict[str, Any], locked: StageLock) -> bool:
    """Whether every listed params key (or file) missing now is one the lock recorded:
    removed since the last run, which reports show as a change."""
    def had(file: str, key: str | None) -> bool:
        old = locked.params.get(file)
        return old is not None and (key is None or any(k == key or k.startswith(key + ".") for k in old))

    for ref in stage.params:
        vals = now.get(ref.file, {})
        if not ref.keys:
            if ref.file not in now and not had(ref.file, None):
                return False
            continue
        for key in ref.keys:
            if not any(k == key or k.startswith(key + ".") for k in vals) and not had(ref.file, key):
                return False
    return True


def check_stage(stage: Stage, locked: StageLock | None, inspector: Inspector, params: ParamsReader,
                shown: str | None = None, *, strict: bool = True) -> StageCheck:
    """Why ``stage`` changed. ``strict``: a listed params key or file that is gone is an
    error (a run cannot use it); reports (``status``, ``--dry-run``) pass False and see
    it as ``param removed``."""
    deps_now = tuple(inspector.entry(d.path) for d in stage.deps)
    try:
        params_now = params.stage_params(stage, shown or stage.file)
    except FormatError:
        if strict or locked is None:
            raise
        params_now = params.stage_params(stage, shown or stage.file, strict=False)
        if not _only_removed(stage, params_now, locked):
            raise  # a listed params file or key that never was: a mistake in mlver.yaml
    reasons: list[str] = []
    if stage.always_changed:
        reasons.append("always changed")
    elif not stage.deps and not stage.params:
        reasons.append("always runs: the stage has no dependencies")
    if locked is None:
        reasons.append("never run")
        return StageCheck(stage, tuple(reasons), deps_now, params_now, ("never run",))
    if locked.cmd != stage.cmd:
        reasons.append("command changed")
    old_deps = {e.path: e for e in locked.deps}
    for dep, now in zip(stage.deps, deps_now):
        old = old_deps.pop(dep.path, None)
        if now is None:
            reasons.append(MISSING_DEP + dep.path)
        elif old is None:
            reasons.append(f"dep added: {dep.path}")
        elif (old.kind, old.digest) != (now.kind, now.digest):
            reasons.append(f"dep changed: {dep.path}")
    reasons += [f"dep removed: {p}" for p in sorted(old_deps)]
    for file in sorted(set(params_now) | set(locked.params)):
        now_vals, old_vals = params_now.get(file, {}), locked.params.get(file, {})
        for key in sorted(set(now_vals) | set(old_vals)):
            if key not in old_vals:
                reasons.append(f"param added: {file}:{key}")
            elif key not in now_vals:
                reasons.append(f"param removed: {file}:{key}")
            elif not same_value(now_vals[key], old_vals[key]):
                reasons.append(f"param changed: {file}:{key}")
    inputs = tuple(reasons[1:] if stage.always_changed or not (stage.deps or stage.params) else reasons)  # (not "always runs")
    old_products = {e.path: e for e in locked.products}
    for out in stage.products:
        label = "metrics" if out.metric else "out"
        old = old_products.pop(out.path, None)
        now = inspector.entry(out.path)
        if old is None:
            reasons.append(f"{label} added: {out.path}")
        elif now is None:
            reasons.append(f"{label} missing: {out.path}")
        elif (old.kind, old.digest) != (now.kind, now.digest) or old.cache != out.cache:
            reasons.append(f"{label} changed: {out.path}")
    reasons += [f"out removed: {p}" for p in sorted(old_products)]
    return StageCheck(stage, tuple(reasons), deps_now, params_now, inputs)


def _matches(repo: Repo, stage: Stage, targets: list[str]) -> bool:
    for t in targets:
        if stage.is_named(t):
            return True
        try:
            rel = repo.rel(t)
        except PathError:
            continue
        paths = [d.path for d in stage.deps] + [o.path for o in stage.products]
        if rel == "." or any(p == rel or p.startswith(rel + "/") or rel.startswith(p + "/") for p in paths):
            return True
    return False


def stage_status(repo: Repo, targets: list[str] | None = None,
                 *, progress: Progress = NO_PROGRESS) -> list[tuple[str, bool, list[str]]]:
    """(stage, changed, reasons) for every stage, or those named by / touching ``targets``."""
    graph = load_graph(repo)
    locked = read_lock(repo)
    inspector = Inspector(repo, progress)
    reader = workspace_reader(repo.root)
    result = []
    for stage in graph.stages_in_order():
        if targets and not _matches(repo, stage, targets):
            continue
        check = check_stage(stage, locked.get(stage.name), inspector, reader, strict=False)
        reasons = list(check.reasons)
        if stage.frozen and reasons:
            reasons.insert(0, "frozen: repro does not run it")
        result.append((stage.name, check.changed, reasons))
    return result


# --- recording without running (``mlver commit``) --------------------------------------

def record_stage(repo: Repo, stage: Stage, check: StageCheck, inspector: Inspector, *, snapshot: bool,
                 progress: Progress = NO_PROGRESS) -> StageLock:
    """The lock entry for a stage whose outputs are in the workspace now; cached outputs
    are stored like ``mlver add`` data."""
    deps = tuple(d for d in check.deps if d is not None)
    outs = tuple(record_product(repo, o, inspector, snapshot=snapshot, progress=progress) for o in stage.outs)
    metrics = tuple(record_product(repo, o, inspector, snapshot=snapshot, progress=progress) for o in stage.metrics)
    return StageLock(stage.name, stage.cmd, deps, check.params, outs, metrics)


def ignore_outputs(repo: Repo, stage: Stage) -> list[str]:
    """Keep cached outputs out of Git, and let an output that stopped being cached
    (``cache: false``: it stays in Git) be committed again; returns the .gitignore files
    that changed."""
    changed = []
    for out in stage.products:
        rel = gitignore_add(repo, out.path) if out.cache else gitignore_remove(repo, out.path)
        if rel and rel not in changed:
            changed.append(rel)
    return changed


@dataclass
class StageCommit:
    """What ``mlver commit`` will record for stages, decided before anything is written
    (all or nothing: a refused stage stops the whole commit)."""

    graph: Graph
    locked: dict[str, StageLock]
    inspector: Inspector
    checks: list[StageCheck]  # the stages to record, in run order
    forced: list[tuple[str, tuple[str, ...]]]  # recorded although their inputs changed (--force)
    prune: bool  # drop lock entries of stages that left mlver.yaml


def plan_stage_commit(repo: Repo, names: list[str] | None, *, force: bool = False,
                      progress: Progress = NO_PROGRESS) -> StageCommit:
    """Check the stages ``mlver commit`` would record. ``names`` None: every stage whose
    dependencies and outputs all exist; named stages must have them. A stage whose
    command, dependencies or parameters differ from its lock, or that never ran, is
    refused (``StaleStage``, naming every such stage) unless ``force``: its outputs did
    not come from these inputs. Hand-edited outputs of an unchanged stage are fine, and a
    stage without dependencies is not refused for always running."""
    graph = load_graph(repo)
    pipeline = graph.pipeline
    if names is not None:
        wanted: list[str] = []
        for n in names:
            named = pipeline.named(n)
            if not named:
                raise MlverError(f"no stage '{n}' in {PIPELINE_FILE}")
            wanted += [s.name for s in named]
        names = wanted
    locked = read_lock(repo)
    inspector = Inspector(repo, progress)
    reader = workspace_reader(repo.root)
    checks: list[StageCheck] = []
    stale: list[tuple[str, tuple[str, ...]]] = []
    for stage in graph.stages_in_order(set(names) if names is not None else None):
        check = check_stage(stage, locked.get(stage.name), inspector, reader)
        missing = check.missing_deps + [o.path for o in stage.products if inspector.entry(o.path) is None]
        if missing:
            if names is None:
                continue
            raise PathError(missing[0], f"is missing, so stage '{stage.name}' cannot be recorded",
                            hint=f"run the stage with `mlver repro {stage.name}`")
        if check.input_reasons:
            stale.append((stage.name, check.input_reasons))
        checks.append(check)
    if stale and not force:
        raise StaleStage(stale)
    return StageCommit(graph, locked, inspector, checks, stale, prune=names is None)


def commit_stage_outputs(repo: Repo, plan: StageCommit, *,
                         progress: Progress = NO_PROGRESS) -> tuple[list[str], list[str], list[str]]:
    """Record the workspace's current outputs of the planned stages into the lock without
    running them. Returns (outputs recorded, stages whose lock entry changed, mlver files
    rewritten).

    No run-cache entry is saved: nothing proves these outputs came from these inputs."""
    pipeline = plan.graph.pipeline
    locked = plan.locked
    recorded: list[str] = []
    stages: list[str] = []
    files: list[str] = []
    for check in plan.checks:
        stage = check.stage
        new = record_stage(repo, stage, check, plan.inspector, snapshot=False, progress=progress)
        old = locked.get(stage.name)
        if new != old:  # (deps may only be ordered differently: the lock text decides)
            locked[stage.name] = new
            written = write_lock(repo, locked, pipeline.names)
            if written:
                old_products = {e.path: e for e in old.products} if old else {}
                recorded += [e.path for e in new.products if old_products.get(e.path) != e]
                stages.append(stage.name)
                files += [f for f in written if f not in files]
        files += ignore_outputs(repo, stage)
    # prune stages that left mlver.yaml
    if plan.prune and set(locked) - set(pipeline.names):
        files += [f for f in write_lock(repo, locked, pipeline.names) if f not in files]
    repo.state.flush()
    return recorded, stages, files
