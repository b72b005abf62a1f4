"""``mlver import-dvc``: turn a DVC project into an mlver project in place, keeping its
data where it is (DVC's MD5 digests, DVC's cache objects, DVC's remotes).

Plan, then act: ``plan_import`` reads every DVC file and computes every file to write,
remote to add and object to link, refusing (before anything is written) a project whose
DVC files it cannot read or whose mlver files would collide. ``import_dvc`` applies a
plan: writes, links DVC's cache objects into mlver's cache, configures remotes, replaces
DVC's .gitignore entries, ``git rm``s DVC's files (unless ``keep_dvc``) and stages the
result; it commits nothing.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable

from mlver import git
from mlver.errors import FormatError, MlverError, UsageError
from mlver.fsutil import atomic_write_text, check_relative, refuse_leaving, unlink_quiet
from mlver.ops.dvc_storage import (CacheObject, ObjectCounts, RemotePlan, Unconverted, apply_remotes, link_objects,
                                   plan_storage, seed_state)
from mlver.pipeline.dvcfiles import (DVC_DIR, DVC_IGNORE, DVC_LOCK, DVC_PIPELINE, DVC_SUFFIX, DvcFile, DvcImport,
                                     is_dvc_file, parse_dvc_file, parse_dvc_lock, read_dvc_pipeline, read_text)
from mlver.pipeline.lockfile import StageLock, dump_lock
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE, Pipeline
from mlver.pointer import POINTER_SUFFIX, Pointer

IGNORE_FILE = ".mlverignore"


@dataclass(frozen=True)
class Write:
    """A file the import writes: its repo-relative path, text, and the DVC file it comes from."""

    path: str
    text: str
    source: str


@dataclass(frozen=True)
class Imported:
    """``dvc import``ed data, now plain tracked data whose bytes the next push uploads."""

    path: str
    source: DvcImport
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        from mlver.hashing import algo_of, hex_of

        return {"path": self.path, "hash": algo_of(self.digest), "digest": hex_of(self.digest), "size": self.size,
                "source": {"url": self.source.url, "path": self.source.path, "rev_lock": self.source.rev_lock}}


@dataclass
class ImportPlan:
    root: str  # the project (the folder holding .dvc/)
    scm_root: str
    writes: list[Write] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)  # files already as the import would write them
    kept: list[str] = field(default_factory=list)  # mlver's own newer records, committed: not overwritten
    remotes: list[RemotePlan] = field(default_factory=list)
    pointers: list[str] = field(default_factory=list)  # data paths tracked by pointers
    stage_files: list[str] = field(default_factory=list)  # mlver.yaml files written
    stages: int = 0
    objects: list[CacheObject] = field(default_factory=list)
    dvc_cache: str = ""
    remove_dvc_cache: bool = True  # False when workspace files may be symlinks into it
    removed: list[str] = field(default_factory=list)  # DVC files to `git rm` (unless keep_dvc)
    imported: list[Imported] = field(default_factory=list)
    unconverted: list[Unconverted] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    init: bool = False  # `.mlver/` is created
    keep_dvc: bool = False
    pipeline: Pipeline | None = None  # every converted pipeline file, merged (its graph checked)
    state: list[Any] = field(default_factory=list)  # DVC's state database rows for this project


@dataclass(frozen=True)
class ImportResult:
    plan: ImportPlan
    dry_run: bool
    objects: ObjectCounts = ObjectCounts()
    staged: tuple[str, ...] = ()
    memo: int = 0  # files whose digest came from DVC's state database (not read again)

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {"version": 1, "dry_run": self.dry_run, "root": p.root, "keep_dvc": p.keep_dvc,
                "written": [{"path": w.path, "from": w.source} for w in p.writes], "kept": p.kept,
                "pointers": p.pointers, "pipelines": p.stage_files, "stages": p.stages,
                "remotes": [r.to_json() for r in p.remotes],
                "objects": {"planned": len(p.objects), "linked": self.objects.linked, "copied": self.objects.copied,
                            "present": self.objects.present},
                "known_from_dvc_state": self.memo,
                "removed": [] if p.keep_dvc else p.removed,
                "imported": [i.to_json() for i in p.imported],
                "unconverted": [u.to_json() for u in p.unconverted],
                "warnings": p.warnings}


# --- finding the project ---------------------------------------------------------------

def find_dvc_root(start: str) -> tuple[str, str]:
    """(project root holding .dvc/, Git root) for ``start``; a usage error when there is none."""
    here = os.path.realpath(start)
    scm_root = git.find_root(here)
    d = here
    while True:
        if os.path.isdir(os.path.join(d, DVC_DIR)):
            break
        parent = os.path.dirname(d)
        if parent == d or (scm_root is not None and d == scm_root):
            raise UsageError(f"{here} is not a DVC project (no {DVC_DIR}/ folder here or above)",
                             hint="run `mlver import-dvc` in the folder of a DVC project (where `dvc init` ran)")
        d = parent
    if scm_root is None:
        raise UsageError(f"{d} is not inside a Git repository",
                         hint="mlver import-dvc converts DVC projects kept in Git")
    return d, scm_root


def _dvc_files(root: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """(*.dvc files, dvc.yaml files, dvc.lock files, .dvcignore files) of the project,
    tracked or untracked and not ignored, outside .dvc/."""
    found = [p for p in git.list_files(root, f"*{DVC_SUFFIX}", f"*{DVC_PIPELINE}", f"*{DVC_LOCK}", f"*{DVC_IGNORE}")
             if not p.startswith(DVC_DIR + "/") and os.path.isfile(os.path.join(root, p))]

    def named(n: str) -> list[str]:
        return sorted((p for p in found if p.rsplit("/", 1)[-1] == n), key=lambda p: (p.count("/"), p))

    dvc = [p for p in found if is_dvc_file(p)]
    return dvc, named(DVC_PIPELINE), named(DVC_LOCK), named(DVC_IGNORE)


# --- pipeline files --------------------------------------------------------------------

def _with_untracked_params(lock: StageLock, stage: Any, reader: Any, shown: str, folder: str) -> StageLock:
    """``lock`` with the params mlver records for ``stage`` and DVC does not (a ``foreach``
    over ``${models}`` makes ``models`` a parameter of each generated stage in mlver, not
    in DVC) at their current values: DVC held the stage up to date with them, and so
    does mlver after the import."""
    from dataclasses import replace

    params = {f: dict(v) for f, v in lock.params.items()}
    for file, values in reader.stage_params(stage, shown, strict=False).items():
        kept = params.setdefault(posixpath.relpath(file, folder or "."), {})
        for key, value in values.items():
            kept.setdefault(key, value)
    return replace(lock, params={f: v for f, v in params.items() if v or f in lock.params})


def _declared(pipeline: Pipeline, folder: str) -> dict[str, Any]:
    """Per stage (its name in the lock): its wdir and output paths (relative to the
    lock's folder) -> (metric, cache), from the parsed pipeline."""
    from mlver.pipeline.dvcfiles import Declared

    def rel(p: str) -> str:
        return posixpath.relpath(p, folder or ".")

    out = {}
    for s in pipeline.stages:
        outputs = {rel(o.path): (False, o.cache) for o in s.outs}
        outputs.update({rel(m.path): (True, m.cache) for m in s.metrics})
        out[s.short_name] = Declared(rel(s.wdir), outputs)
    return out


# --- the plan --------------------------------------------------------------------------

def plan_import(start: str, *, keep_dvc: bool = False) -> ImportPlan:
    """Everything ``import-dvc`` would do, computed from the DVC project around ``start``
    without changing anything. Refuses a collision with existing mlver files or a DVC
    file it cannot read."""
    from mlver.pipeline.params import workspace_reader

    root, scm_root = find_dvc_root(start)
    plan = ImportPlan(root=root, scm_root=scm_root, keep_dvc=keep_dvc)
    plan.init = not os.path.isdir(os.path.join(root, ".mlver"))
    dvc_files, pipelines, locks, ignores = _dvc_files(root)
    collisions: list[str] = []

    def write(rel: str, text: str, source: str) -> None:
        if os.path.lexists(os.path.join(root, rel)):
            if os.path.isfile(os.path.join(root, rel)) and read_text(root, rel) == text:
                plan.in_place.append(rel)  # written by an earlier `import-dvc` (--keep-dvc, or killed)
                return
            if not plan.init and git.tracked(root, [os.path.join(root, rel)]):
                # committed in an mlver project: mlver's own record, newer than DVC's (work done
                # with mlver after `import-dvc --keep-dvc`): kept as it is
                plan.kept.append(rel)
                return
            collisions.append(rel)
        plan.writes.append(Write(rel, text, source))

    # *.dvc -> *.mlver
    for rel in dvc_files:
        dvc = parse_dvc_file(read_text(root, rel), rel)
        _plan_pointers(plan, rel, dvc, write)

    # dvc.yaml -> mlver.yaml, dvc.lock -> mlver.lock
    reader = workspace_reader(root)
    lock_set = set(locks)
    parsed: list[Pipeline] = []
    for rel in pipelines:
        parsed.append(_plan_pipeline(plan, rel, reader, lock_set, write))
    for lock_rel in sorted(lock_set):
        plan.unconverted.append(Unconverted(f"{lock_rel} without a {DVC_PIPELINE} beside it", lock_rel,
                                            "nothing to convert: it is removed with the other DVC files"))

    # .dvcignore -> .mlverignore (one, at the top)
    for rel in ignores:
        if rel == DVC_IGNORE:
            lines = read_text(root, rel).splitlines()
            patterns = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            if patterns:
                write(IGNORE_FILE, f"# from {DVC_IGNORE} (mlver import-dvc)\n" + "\n".join(patterns) + "\n", rel)
        else:
            plan.unconverted.append(Unconverted(f"{rel} (a .dvcignore below the top)", rel,
                                                f"mlver reads one {IGNORE_FILE} at the top: add its patterns there, "
                                                "prefixed with their folder"))

    if parsed:
        from mlver.pipeline.graph import build_graph
        from mlver.pipeline.model import merge_pipelines

        plan.pipeline = merge_pipelines(parsed)
        build_graph(plan.pipeline)  # a cycle or two stages writing one path: refused before writing
    if collisions:
        shown = ", ".join(sorted(collisions)[:5]) + (f" and {len(collisions) - 5} more" if len(collisions) > 5 else "")
        raise MlverError(f"{shown} already exists: mlver import-dvc would overwrite it",
                         hint="move it away (or finish a partial conversion by hand), then import again")

    existing: dict[str, dict[str, str]] = {}
    if not plan.init:
        from mlver.repo import Repo

        existing = Repo(root).config.remotes()
    storage = plan_storage(root, existing=existing, keep_dvc=keep_dvc)
    plan.remotes, plan.objects, plan.dvc_cache = storage.remotes, storage.objects, storage.dvc_cache
    plan.remove_dvc_cache = storage.removable
    # data reached through a link out of the repository (guarantee 4): refused now, not
    # converted into pointers every later command refuses (links into DVC's cache are fine)
    allowed = (os.path.realpath(plan.dvc_cache),) if plan.dvc_cache else ()
    products = [o.path for s in (plan.pipeline.stages if plan.pipeline else ()) for o in s.products]
    real_root = os.path.realpath(root)
    for data in plan.pointers + products:
        refuse_leaving(real_root, os.path.join(real_root, data), allowed=allowed)
    plan.state = storage.state
    plan.unconverted += storage.unconverted
    plan.warnings += storage.warnings
    present = {o.digest for o in plan.objects}
    for imp in plan.imported:
        if imp.digest not in present:
            plan.unconverted.append(Unconverted(f"{imp.path}: its data is not in DVC's cache",
                                                f"{imp.path}{DVC_SUFFIX}",
                                                "run `dvc pull` (or `dvc update`) before importing, or "
                                                f"`mlver add {imp.path}` afterwards"))
    _plan_removals(plan, dvc_files, pipelines, locks, ignores)
    _plan_leftovers(plan)
    plan.warnings = _traps(plan)
    dirty = [p for p in git.modified_files(plan.root) if p.endswith((DVC_LOCK, DVC_PIPELINE, DVC_SUFFIX))
             or posixpath.basename(p).startswith("params.")]
    if dirty:  # e.g. a `dvc exp run` left in the workspace: its lock would go in, its params not
        plan.warnings.append(f"uncommitted changes to {', '.join(dirty[:4])}{' ...' if len(dirty) > 4 else ''}: the "
                             "import converts the workspace as it is and stages only what it writes; commit or "
                             "stash them first (`git stash`) for an import commit that matches a DVC commit")
    return plan


def _plan_pipeline(plan: ImportPlan, rel: str, reader: Any, lock_set: set[str],
                   write: Callable[[str, str, str], None]) -> Pipeline:
    """``rel`` (a dvc.yaml) as ``mlver.yaml`` beside it, and its ``dvc.lock`` (taken out of
    ``lock_set``) as ``mlver.lock``; returns the pipeline it defines."""
    root = plan.root
    folder = posixpath.dirname(rel)
    target = posixpath.join(folder, PIPELINE_FILE)
    text, pipeline, dropped = read_dvc_pipeline(read_text(root, rel), rel, reader.doc, folder or ".")
    plan.unconverted += [Unconverted(f"field '{d.key}' ({d.where})", f"{rel}:{d.line}",
                                     "mlver has no equivalent: it is kept as a comment") for d in dropped]
    write(target, text, rel)
    plan.stage_files.append(target)
    plan.stages += len(pipeline.stages)
    for s in pipeline.stages:
        if s.deps or s.frozen or s.always_changed or any(not p.interpolated for p in s.params):
            continue
        where = f"{rel}:{s.line}" if s.line else rel
        if not s.params and s.products:  # DVC: run once, then its outputs count
            plan.unconverted.append(Unconverted(
                f"stage '{s.name}' has no dependencies", where,
                "DVC runs it once, mlver on every `repro`: give it a `deps:` entry (its script) or `frozen: true`"))
        elif s.params and not s.products:  # DVC: no deps, no outs -> every repro
            plan.unconverted.append(Unconverted(
                f"stage '{s.name}' has no dependencies and no outputs", where,
                "DVC runs it on every `repro`; mlver counts the params its `${}` reads as dependencies and runs it "
                "when they change: add `always_changed: true` for DVC's behaviour"))
    lock_rel = posixpath.join(folder, DVC_LOCK)
    if lock_rel in lock_set:
        lock_set.discard(lock_rel)
        conv = parse_dvc_lock(read_text(root, lock_rel), lock_rel, declared=_declared(pipeline, folder), folder=folder)
        order = [s.short_name for s in pipeline.stages]
        stale = [n for n in conv.stages if n not in order]
        for name in stale:
            plan.unconverted.append(Unconverted(f"stage '{name}' of {lock_rel}", lock_rel,
                                                f"no longer in {rel}: left out of mlver's lock"))
        stages: list[StageLock] = [_with_untracked_params(conv.stages[s.short_name], s, reader, rel, folder)
                                   for s in pipeline.stages if s.short_name in conv.stages]
        write(posixpath.join(folder, LOCK_FILE), dump_lock(stages), lock_rel)
    return pipeline


def _plan_pointers(plan: ImportPlan, rel: str, dvc: DvcFile, write: Callable[[str, str, str], None]) -> None:
    folder = posixpath.dirname(rel)
    if dvc.cmd is not None:
        plan.unconverted.append(Unconverted(f"{rel}: a DVC 1 stage file (`cmd:` in a .dvc file)", rel,
                                            f"write the stage into {PIPELINE_FILE} (`mlver stage add`)"))
        return
    for out in dvc.outs:
        data = posixpath.normpath(posixpath.join(folder, dvc.wdir, out.path))
        if check_relative(data):
            raise FormatError(rel, f"'{out.path}' leaves the repository")
        if not out.digest:
            plan.unconverted.append(Unconverted(f"{data}: never hashed by DVC", rel, f"`mlver add {data}` it"))
            continue
        desc = out.desc or dvc.desc
        if dvc.imported is not None:
            origin = dvc.imported.describe()
            desc = f"{desc} ({origin})" if desc else origin
            plan.imported.append(Imported(data, dvc.imported, out.digest, out.size or 0))
        elif dvc.url_dep is not None:
            origin = f"imported from {dvc.url_dep}"
            desc = f"{desc} ({origin})" if desc else origin
            plan.unconverted.append(Unconverted(f"{data}: `dvc import-url` from {dvc.url_dep}", rel,
                                                "now plain tracked data (its pointer's desc names the URL); "
                                                "mlver does not re-download it: fetch the URL and `mlver add` again "
                                                "to update"))
        pointer = Pointer(path=posixpath.basename(data), kind=out.kind, digest=out.digest, size=out.size or 0,
                          files=out.files if out.kind == "dir" else None, desc=desc)
        write(data + POINTER_SUFFIX, pointer.dumps(), rel)
        plan.pointers.append(data)
    for out in dvc.outs:
        if not out.push or out.remote:
            plan.unconverted.append(Unconverted(f"{rel}: output option {'push: false' if not out.push else 'remote'}",
                                                rel, "pointers have no per-output remote options: push it with "
                                                "`mlver push -r REMOTE TARGET`"))


def _plan_removals(plan: ImportPlan, dvc_files: list[str], pipelines: list[str], locks: list[str],
                   ignores: list[str]) -> None:
    tracked_dvc_dir = [p for p in git.list_files(plan.root, f"{DVC_DIR}/*") if p.startswith(DVC_DIR + "/")]
    plan.removed = sorted(set(dvc_files + pipelines + locks + ignores + tracked_dvc_dir))


def _plan_leftovers(plan: ImportPlan) -> None:
    """What DVC leaves that mlver cannot take over: dvc.api in code, experiments."""
    proc = git.run(plan.root, "grep", "-n", "-I", "-E", r"dvc\.api|from dvc(\.| import)|import dvc\b|dvclive",
                   "--", "*.py", check=False)
    hits = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln]
    for ln in hits[:50]:
        path, line, code = (ln.split(":", 2) + ["", ""])[:3]
        code = code.strip()
        if "dvclive" in code:
            todo = "use mlver.live.Live (log_metric, next_step, log_plot write the same files)"
        elif "dvc.api" in code or "from dvc" in code or "import dvc" in code:
            todo = ("use mlver.api: open, read, get_url, params_show, metrics_show "
                    "(path, repo, rev, remote as in dvc.api)")
        else:  # pragma: no cover
            continue
        plan.unconverted.append(Unconverted(f"DVC in code: {code[:80]}", f"{path}:{line}", todo))
    if len(hits) > 50:
        plan.unconverted.append(Unconverted(f"{len(hits) - 50} more uses of DVC in code", "*.py",
                                            "`git grep -n dvc -- '*.py'` lists them"))
    refs = git.list_refs(plan.root, "refs/exps/")
    dvc_exps = [name for name, _ in refs if len(name.split("/")) >= 5 and len(name.split("/")[2]) == 2]
    if dvc_exps:
        plan.unconverted.append(Unconverted(f"{len(dvc_exps)} DVC experiment(s) in refs/exps", "refs/exps",
                                            "`mlver exp show` lists them with their params and metrics; to keep "
                                            "working on one, `dvc exp branch NAME BRANCH` before the import makes it "
                                            "a branch; `dvc exp remove -A` drops them"))
    hooks = git.git_path(plan.root, "hooks")
    for name in ("pre-commit", "post-checkout", "pre-push"):
        try:
            with open(os.path.join(hooks, name), encoding="utf-8", errors="replace") as f:
                script = f.read()
        except OSError:
            continue
        if "dvc git-hook" in script:
            # once .dvc/ is gone, DVC's hook fails and blocks the commit, checkout or push
            plan.unconverted.append(Unconverted(f"DVC's {name} Git hook (`dvc install`)", f".git/hooks/{name}",
                                                "remove the `dvc git-hook` line from it, then `mlver install` "
                                                "(mlver's hooks: status, checkout, push)"))
    framework = read_text(plan.root, ".pre-commit-config.yaml", missing_ok=True)
    if "iterative/dvc" in framework:
        plan.unconverted.append(Unconverted("DVC's hooks in the pre-commit framework's config",
                                            ".pre-commit-config.yaml",
                                            "replace the iterative/dvc repository's hooks by mlver's: mlver-status, "
                                            "mlver-checkout, mlver-push (see docs/hooks.md)"))


def _traps(plan: ImportPlan) -> list[str]:
    """The doctor's trap warnings for the converted project (a metrics file or
    mlver.yaml that a .gitignore line hides from Git; dvclive installed)."""
    from mlver.ops.doctor import kept_metrics, traps

    metrics = kept_metrics(plan.pipeline) if plan.pipeline is not None else []
    # a metrics file DVC cached is hidden by DVC's own `/NAME` entry, which the import takes
    # out of that .gitignore: no warning for it
    dvc_entry = {path for path, source in git.ignore_sources(plan.root, metrics).items()
                 if source.rsplit(":", 1)[-1] == "/" + posixpath.relpath(
                     path, posixpath.dirname(source.split(":", 1)[0]) or ".")}
    return plan.warnings + traps(plan.root, [m for m in metrics if m not in dvc_entry], plan.stage_files)


# --- acting ----------------------------------------------------------------------------

def import_dvc(start: str, *, dry_run: bool = False, keep_dvc: bool = False) -> ImportResult:
    plan = plan_import(start, keep_dvc=keep_dvc)
    if dry_run:
        return ImportResult(plan, True)
    from mlver.ops.init import init
    from mlver.repo import Repo

    if plan.init:
        init(plan.root)
    repo = Repo.find(plan.root)
    try:
        with repo.lock("import-dvc"):
            return _apply(repo, plan)
    finally:
        repo.close()


def _apply(repo: Any, plan: ImportPlan) -> ImportResult:
    """Write, link, configure, stage, then remove DVC's files. A run killed at any step is
    finished by running ``import-dvc`` again: files it wrote count as in place, and
    everything the import makes is staged before DVC's files go."""
    from mlver import failpoint
    from mlver.gitignore import gitignore_add
    from mlver.pipeline.plan import ignore_outputs

    root = plan.root
    for w in plan.writes:
        atomic_write_text(repo.abs(w.path), w.text, fsync=repo.fsync, inside=root)
    counts = link_objects(repo.cache, plan.objects)
    memo = seed_state(repo, plan.state)
    failpoint.hit("import-dvc-written")
    apply_remotes(repo, plan.remotes)
    _mark_used(repo, plan.remotes)
    data = list(plan.pointers)
    in_git: list[str] = []  # metrics and plots mlver keeps in Git (DVC cached them by default)
    for data_rel in plan.pointers:
        gitignore_add(repo, data_rel)
    for stage in plan.pipeline.stages if plan.pipeline is not None else ():
        ignore_outputs(repo, stage)
        data += [o.path for o in stage.products]
        in_git += [o.path for o in stage.products if not o.cache]
    ignores = {posixpath.join(posixpath.dirname(p), ".gitignore") for p in data}
    staged = [w.path for w in plan.writes] + plan.in_place + [".mlver/config", *sorted(ignores), *in_git]
    paths = sorted({p for p in staged if os.path.exists(repo.abs(p))})
    hidden = set(git.ignored(root, paths))  # `git add` refuses them: the trap warnings name them
    paths = [p for p in paths if p not in hidden]
    # a .gitignore the import emptied is deleted: its deletion is staged too (`git add` of a
    # tracked path that is gone records the removal)
    gone = git.tracked(root, sorted(repo.abs(p) for p in set(staged) if not os.path.lexists(repo.abs(p))))
    git.stage(root, [repo.abs(p) for p in paths] + [os.path.join(root, g) for g in gone])
    _warn_of_missing_objects(repo, plan)
    failpoint.hit("import-dvc-staged")
    if not plan.keep_dvc:
        _remove_dvc(repo, plan)
    return ImportResult(plan, False, counts, tuple(paths), memo)


def _warn_of_missing_objects(repo: Any, plan: ImportPlan) -> None:
    """Data the DVC records name but DVC's cache did not hold (never pulled, or removed):
    said now, before DVC's files go, since `status` checks a folder's manifest only."""
    from mlver.ops.common import all_outputs
    from mlver.workspace import missing

    lacking = [o.path for o in all_outputs(repo) if missing(repo.cache, [o])]
    if lacking:
        shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        plan.warnings.append(f"DVC's cache lacks data of {len(lacking)} output(s) ({shown}): mlver's cache does "
                             "not have it either; `mlver pull` brings it from the remote (`mlver status -r` says "
                             "what the remote holds)")


def _mark_used(repo: Any, remotes: list[Any]) -> None:
    """DVC's remotes hold the team's data: if one's folder is missing at the first
    ``mlver push`` (a drive not mounted), push refuses instead of starting it empty."""
    from mlver import packs
    from mlver.ops.transfer import open_remote

    for r in remotes:
        try:
            packs.mark_used(repo.tmp_dir, open_remote(repo, r.name), why="it holds the DVC project's data")
        except MlverError:  # a backend not installed: push will say so
            continue


def _remove_dvc(repo: Any, plan: ImportPlan) -> None:
    """``git rm`` DVC's files, then what is left of ``.dvc/`` (its cache, once linked into
    mlver's; its tmp; config.local, whose credentials moved to mlver's)."""
    from mlver.fsutil import remove_path

    root = plan.root
    tracked = set(git.tracked(root, plan.removed)) if plan.removed else set()
    if tracked:
        git.run(root, "rm", "-q", "-f", "--", *sorted(tracked), literal=True)
    for rel in plan.removed:
        if rel not in tracked:
            unlink_quiet(os.path.join(root, rel))
    dvc_dir = os.path.join(root, DVC_DIR)
    if plan.remove_dvc_cache:
        remove_path(dvc_dir, inside=root)
    else:
        for name in os.listdir(dvc_dir) if os.path.isdir(dvc_dir) else []:
            if name != "cache":
                remove_path(os.path.join(dvc_dir, name), inside=root)
