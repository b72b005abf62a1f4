"""Experiments as Git commits under ``refs/exps/<baseline sha[:7]>/<name>`` (SPEC
"Experiments"): saving the workspace as one (``exp run``, ``exp save``), finding them by
name, and ``exp apply / branch / remove / diff / list / push / pull``. An experiment
commit's parent is its baseline; it is built on a temporary index, so HEAD, the branches
and the index never move.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from mlver import git
from mlver.errors import GitError, MlverError, UsageError
from mlver.fsutil import inside_root, refuse_leaving
from mlver.pipeline.model import LOCK_FILE, PIPELINE_FILE
from mlver.ops.commit import modified_tracked, record_changed_inputs, refuse_missing_inputs, stored_pointer_texts
from mlver.pipeline.setparams import Override, apply_overrides
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo

EXPS = "refs/exps/"
QUEUE = "refs/exps/queue/"  # snapshots of queued experiments ("queue" is no sha prefix)
SHORT = 7

_ADJECTIVES = ("amber", "brave", "calm", "dusty", "eager", "fuzzy", "gold", "hazy", "icy", "jolly", "keen",
               "lush", "mild", "noble", "odd", "pale", "quick", "rapid", "shy", "tidy", "urban", "vivid",
               "warm", "young", "zesty", "bold", "crisp", "deft", "fair", "grim")
_NOUNS = ("acre", "bath", "cusk", "dado", "elm", "fern", "gaur", "hoop", "iris", "jute", "kiln", "lava",
          "mold", "newt", "oboe", "pony", "quay", "reed", "silo", "tuba", "urn", "vole", "wren", "yawl",
          "zinc", "bass", "cove", "dory", "fawn", "gust")


@dataclass(frozen=True)
class Experiment:
    name: str
    baseline: str  # full id of the parent commit
    commit: str  # full id of the experiment commit
    ref: str
    recorded: list[str] = field(default_factory=list)  # pointers written into it for changed data (exp save)

    def to_json(self) -> dict:
        doc: dict[str, Any] = {"name": self.name, "baseline": self.baseline, "rev": self.commit, "ref": self.ref}
        if self.recorded:
            doc["recorded"] = self.recorded
        return doc


def exp_ref(baseline: str, name: str) -> str:
    return f"{EXPS}{baseline[:SHORT]}/{name}"


def list_experiments(root: str) -> list[Experiment]:
    """Every experiment of this clone (queued snapshots excluded), by ref name."""
    refs = [(ref, sha) for ref, sha in git.list_refs(root, EXPS) if not ref.startswith(QUEUE)]
    parents = git.commit_parents(root, [sha for _, sha in refs])
    out = []
    for ref, sha in refs:
        name = _name_in(ref[len(EXPS):])
        if name is not None:
            out.append(Experiment(name, parents.get(sha, ""), sha, ref))
    return out


def _name_in(rest: str) -> str | None:
    """The experiment name of a ref below ``refs/exps/``: mlver's ``<sha[:7]>/NAME``, or
    DVC's ``<sha[:2]>/<sha[2:]>/NAME`` (experiments made before ``import-dvc``); None for
    anything else there (DVC's own ``exec/``, ``celery/``, ``temp/`` refs)."""
    parts = rest.split("/")
    hexes = all(c in "0123456789abcdef" for c in "".join(parts[:-1]))
    if len(parts) == 2 and hexes and 4 <= len(parts[0]) <= 40:
        return parts[1]
    if len(parts) == 3 and hexes and len(parts[0]) == 2 and len(parts[1]) == 38:
        return parts[2]
    return None


def check_name(name: str) -> str:
    if not name or name.startswith("-") or not git.valid_ref_name(name) or name == "queue":
        raise UsageError(f"'{name}' is not a valid experiment name",
                         hint="use letters, digits, '-', '_' and '.', starting with a letter, digit or '_', "
                              "without '/', spaces or a '.lock' ending")
    return name


def taken_names(root: str, baseline: str) -> set[str]:
    """Names used by the experiments of ``baseline`` and by queued ones."""
    names = {e.name for e in list_experiments(root) if e.baseline == baseline}
    names |= {ref[len(QUEUE):] for ref, _ in git.list_refs(root, QUEUE)}
    return names


def auto_name(seed: str, taken: set[str]) -> str:
    """A readable word-word name (DVC-like), derived from ``seed``, not in ``taken``."""
    h = hashlib.sha1(seed.encode()).digest()
    for i in range(len(_ADJECTIVES) * len(_NOUNS)):
        a = _ADJECTIVES[(h[0] + i) % len(_ADJECTIVES)]
        n = _NOUNS[(h[1] + i * 7) % len(_NOUNS)]
        if f"{a}-{n}" not in taken:
            return f"{a}-{n}"
    return f"exp-{h.hex()[:8]}"  # pragma: no cover - 900 names of one baseline


def find(root: str, name: str) -> Experiment:
    """The experiment ``name`` means: its ref, its name or ``BASELINE/NAME`` (the rule of
    ``git.experiment_commit``: several of one name mean the one of HEAD, else an error), or
    a prefix of its commit id."""
    exps = list_experiments(root)
    if name.startswith(EXPS):
        hits = [e for e in exps if e.ref == name]
    else:
        commit = git.experiment_commit(root, name)
        short = name.rpartition("/")[2]
        hits = [e for e in exps if e.commit == commit and e.name == short] if commit else []
    if not hits and re.fullmatch(r"[0-9a-f]{4,40}", name):
        hits = [e for e in exps if e.commit.startswith(name)]
        if len({e.commit for e in hits}) > 1:
            raise UsageError(f"experiment id '{name}' is ambiguous",
                             hint="give more of it: " + ", ".join(sorted(e.commit[:12] for e in hits)))
    if not hits:
        raise MlverError(f"no experiment named '{name}'", hint="`mlver exp list` names them")
    return hits[0]


# --- saving the workspace as an experiment -----------------------------------------------

def _top(repo: Repo, rel: str) -> str:
    """A project path -> the same path from the top of the Git work tree."""
    root = repo.require_scm("exp")
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    return rel if prefix == "." else f"{prefix}/{rel}"


def snapshot_paths(repo: Repo, root: str) -> list[str]:
    """What an experiment commit takes from a workspace (paths from the top): every file
    Git tracks that differs from HEAD, and mlver's own files that Git would take but does
    not track yet (the lock, pointers, ``.gitignore`` entries, metrics kept in Git)."""
    wanted = [_top(repo, LOCK_FILE), _top(repo, PIPELINE_FILE)]
    wanted += [p for p in git.list_files(root, "*.mlver") + git.list_files(root, "*.gitignore")]
    wanted += [_top(repo, m) for m in _metrics_and_params(repo)]
    existing = [p for p in dict.fromkeys(wanted) if os.path.isfile(os.path.join(root, *p.split("/")))]
    return sorted(set(git.modified_files(root)) | set(git.untracked(root, existing))
                  | set(git.tracked(root, existing)))


def _metrics_and_params(repo: Repo) -> list[str]:
    if not os.path.isfile(repo.abs(PIPELINE_FILE)):
        return []
    from mlver.pipeline.plan import load_pipeline
    from mlver.pipeline.revision import metrics_files

    try:
        pipeline = load_pipeline(repo)
    except MlverError:
        return []
    cached = {o.path for s in pipeline.stages for o in s.outs if o.cache}
    params = [ref.file for s in pipeline.stages for ref in s.params] + list(pipeline.params_files)
    return [m for m in metrics_files(pipeline) if m not in cached] + params


def baseline_of(root: str) -> str:
    head = git.head_commit(root)
    if head is None:
        raise GitError("experiments need a baseline commit, and this repository has none yet",
                       hint="commit your project first (`git commit`)")
    return head


def new_name(root: str, baseline: str, name: str | None, seed: str) -> str:
    taken = taken_names(root, baseline)
    if name is None:
        return auto_name(f"{baseline}:{seed}", taken)
    check_name(name)
    if name in taken:
        if git.verify_commit(root, QUEUE + name):  # queued names are one set, whatever their baseline
            raise MlverError(f"a queued experiment is already named '{name}' (queued names are unique across "
                             "baselines)", hint=f"choose another name, or `mlver queue remove {name}` first")
        raise MlverError(f"experiment '{name}' already exists for baseline {baseline[:SHORT]}",
                         hint=f"choose another name, or remove it first (`mlver exp remove {name}`)")
    return name


def message_for(name: str, message: str | None, overrides: list[str]) -> str:
    if message:
        return message
    return f"exp {name}" + (": " + " ".join(overrides) if overrides else "")


def save(repo: Repo, *, name: str | None = None, message: str | None = None,
         overrides: list[str] | None = None, record_data: bool = False,
         progress: Progress = NO_PROGRESS) -> Experiment:
    """The workspace as an experiment of HEAD (``exp save``; the end of ``exp run``).
    ``record_data`` (``exp save``): tracked data changed in the workspace is stored in the
    cache and its new pointer goes into the experiment (the workspace's pointer stays, as
    for a queued experiment), so the experiment names the data as it is."""
    root = repo.require_scm("exp save")
    baseline = baseline_of(root)
    if name is not None:
        new_name(root, baseline, name, "")  # refuse a bad or taken name before storing anything
    contents = top_relative(repo, root, stored_pointer_texts(repo, modified_tracked(repo), progress)) \
        if record_data else {}
    paths = snapshot_paths(repo, root)
    seed = "\0".join(paths) + str(os.getpid()) + str(os.times().elapsed)
    name = new_name(root, baseline, name, seed)
    sha = git.snapshot_commit(root, baseline, paths, message_for(name, message, overrides or []), contents=contents)
    ref = exp_ref(baseline, name)
    git.update_ref(root, ref, sha)
    return Experiment(name, baseline, sha, ref, sorted(contents))


def top_relative(repo: Repo, root: str, texts: dict[str, str]) -> dict[str, bytes]:
    """Project-relative path -> text, as the Git top-relative path -> bytes a snapshot takes."""
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    return {(rel if prefix == "." else f"{prefix}/{rel}"): t.encode("utf-8") for rel, t in texts.items()}


@dataclass
class ExpRunResult:
    experiment: Experiment
    changed_params: list[str]
    repro: Any  # pipeline.run.ReproResult

    def to_json(self) -> dict:
        return {"version": 1, **self.experiment.to_json(), "params_files": self.changed_params,
                "ran": self.repro.ran, "restored": self.repro.restored, "skipped": self.repro.skipped}


def params_confine(repo: Repo) -> Callable[[str], str]:
    """A params file named in ``-S FILE:KEY=VALUE`` (relative to the project root) ->
    the checked project-relative path to write. A params file that is a symlink to a
    file in the repository is written through (its target changes, the link stays, as an
    editor does); one leading out of it is refused."""
    def confine(f: str) -> str:
        rel = inside_root(repo.root, os.path.join(repo.root, f), shown=f)
        path = os.path.join(repo.root, *rel.split("/"))
        if not os.path.islink(path):
            return rel
        refuse_leaving(repo.root, path)
        return inside_root(repo.root, os.path.realpath(path), shown=f)

    return confine


def run_in_workspace(repo: Repo, overrides: list[Override], *, name: str | None = None, message: str | None = None,
                     set_new: bool = False, targets: list[str] | None = None, force: bool = False,
                     run_cache: bool = True, progress: Progress = NO_PROGRESS,
                     on_event: Callable[[Any], None] | None = None) -> ExpRunResult:
    """``exp run``: set the params, repro (results stay in the workspace, as after
    ``repro``), then save the workspace as an experiment of HEAD."""
    from mlver.pipeline.run import reproduce

    root = repo.require_scm("exp run")
    baseline = baseline_of(root)
    if name is not None:
        new_name(root, baseline, name, "")  # refuse a bad or taken name before running anything
    refuse_missing_inputs(repo, targets)  # before the params are written
    changed = apply_overrides(repo.root, overrides, set_new=set_new, confine=params_confine(repo))
    record_changed_inputs(repo, progress, targets)
    if on_event is None:
        result = reproduce(repo, targets, force=force, run_cache=run_cache, progress=progress)
    else:
        result = reproduce(repo, targets, force=force, run_cache=run_cache, progress=progress, on_event=on_event)
    exp = save(repo, name=name, message=message, overrides=[o.text for o in overrides])
    return ExpRunResult(exp, changed, result)


# --- keeping and cleaning ----------------------------------------------------------------

@dataclass
class ApplyResult:
    experiment: Experiment
    files: list[str] = field(default_factory=list)  # Git files written (from the top)
    checkout: Any = None  # workspace.CheckoutResult of the data

    def to_json(self) -> dict:
        co = self.checkout
        return {"version": 1, **self.experiment.to_json(), "files": self.files,
                "kept": sorted(co.kept) if co is not None else []}


def apply(repo: Repo, name: str, *, force: bool = False, progress: Progress = NO_PROGRESS) -> ApplyResult:
    """The experiment's files (params, code, lock, pointers, metrics) into the workspace,
    then its data from the cache. The index and HEAD stay; a file with uncommitted edits
    that the experiment would overwrite is refused unless ``force``."""
    from mlver.ops.checkout import checkout

    root = repo.require_scm("exp apply")
    exp = find(root, name)
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    config = f"{exp.commit}:{'' if prefix == '.' else prefix + '/'}.mlver/config"
    if git.object_names(root, [config]).get(config) is None:  # nothing written yet
        raise MlverError(f"'{name}' is a DVC experiment from before `mlver import-dvc`: applying it would put "
                         "DVC's files back over this project's",
                         hint=f"its params and metrics show in `mlver exp show`; to work on it, `mlver exp branch "
                              f"{name} BRANCH` and convert that branch with `mlver import-dvc`")
    head = git.head_commit(root) or exp.baseline
    changes = git.changed_blobs(root, head, exp.commit, [])
    touched = {c.path for c in changes}
    if not force:
        # mlver's own records (lock, pointers, .gitignore) are replaced: checkout keeps data
        clash = sorted(p for p in set(git.modified_files(root)) & touched
                       if not p.endswith((".mlver", LOCK_FILE, ".gitignore")) and not _same_as(root, exp.commit, p))
        if clash:
            raise MlverError(f"exp apply would overwrite uncommitted edits to {len(clash)} file(s): "
                             + ", ".join(clash[:5]) + (" ..." if len(clash) > 5 else ""),
                             hint="commit or stash them first, or pass --force to overwrite them")
    present = [c.path for c in changes if c.new is not None]
    git.restore_files(root, exp.commit, present)
    for c in changes:
        if c.new is None:
            path = os.path.join(root, *c.path.split("/"))
            if os.path.isfile(path):
                os.unlink(path)
    res = checkout(repo, [repo.root], force=force, progress=progress)  # --force: data edits too, as the hint says
    if res.missing and repo.config.remotes():
        # data the cache lacks (an experiment run on Dask, or pulled with `exp pull` but
        # not fetched): brought from its remote, as `repro --verify` reads it
        from mlver.ops.transfer import fetch

        wanted = sorted(set(res.missing))
        try:
            fetch(repo, wanted, progress=progress)
        except MlverError:  # the remote is down or lacks it: listed as missing, with `mlver pull` as the hint
            pass
        else:
            again = checkout(repo, wanted, force=force, progress=progress)
            res.missing = [p for p in res.missing if p not in set(again.added) | set(again.modified)]
            res.merge_retry(again)
    return ApplyResult(exp, sorted(touched), res)


def _same_as(root: str, commit: str, path: str) -> bool:
    """Whether the workspace file ``path`` already holds its content at ``commit``."""
    full = os.path.join(root, *path.split("/"))
    blob = git.object_names(root, [f"{commit}:{path}"]).get(f"{commit}:{path}")
    if blob is None:
        return not os.path.exists(full)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob


def branch(repo: Repo, name: str, branch_name: str) -> Experiment:
    root = repo.require_scm("exp branch")
    if not git.valid_branch_name(branch_name):
        raise UsageError(f"'{branch_name}' is not a valid branch name", hint="see `git check-ref-format --help`")
    exp = find(root, name)
    git.branch_create(root, branch_name, exp.commit)
    return exp


def remove(repo: Repo, names: list[str], *, queue: bool = False, all_: bool = False) -> tuple[list[str], list[str]]:
    """Delete experiment refs (their objects stay in the cache until gc); ``queue``:
    every queue entry that is not running (waiting ones and finished records); ``all_``:
    every experiment and the queue. Returns (experiments removed, queue entries removed)."""
    from mlver.ops import queue as q

    root = repo.require_scm("exp remove")
    if not (names or queue or all_):
        raise UsageError("name the experiments to remove, or pass --queue or --all")
    gone: list[str] = []
    queued = [n for n in names if q.has_entry(repo, n)]
    if all_:
        exps = list_experiments(root)
    else:  # a name may have both: a queue record and the experiment it ran (queue, --temp)
        exps = []
        for n in names:
            try:
                exps.append(find(root, n))
            except MlverError:
                if n not in queued:
                    raise
    if queue or all_:
        cleared = q.clear(repo)
    else:
        cleared = q.remove(repo, queued) if queued else []  # refuses a running one before anything goes
    for e in exps:
        git.delete_ref(root, e.ref)
        gone.append(e.name)
    return gone, list(cleared)


# --- comparing and sharing ----------------------------------------------------------------

def resolve_rev(root: str, name: str) -> str:
    """An experiment name (a queued one: its snapshot), or any Git revision -> a commit id."""
    try:
        return find(root, name).commit
    except UsageError:  # an ambiguous name: say so (not "no such experiment")
        raise
    except MlverError:
        sha = git.verify_commit(root, QUEUE + name) if git.valid_ref_name(name) else None
        sha = sha or git.verify_commit(root, name)
        if sha is None:
            raise MlverError(f"no experiment or revision named '{name}'",
                             hint="`mlver exp list` names the experiments") from None
        return sha


@dataclass
class ExpDiff:
    a: str
    b: str
    params: dict[str, dict[str, dict[str, Any]]]
    metrics: dict[str, dict[str, dict[str, Any]]]

    def to_json(self) -> dict:
        return {"version": 1, "a": self.a, "b": self.b, "params": self.params, "metrics": self.metrics}


def diff(repo: Repo, a: str, b: str | None) -> ExpDiff:
    """Params and metrics that differ between two experiments (or revisions); without
    ``b``, the experiment ``a`` against its baseline."""
    import contextlib

    from mlver.pipeline.revision import History, compare_values

    root = repo.require_scm("exp diff")
    sha_a = resolve_rev(root, a)
    if b is None:
        sha_b, sha_a = sha_a, git.commit_parents(root, [sha_a]).get(sha_a) or sha_a
    else:
        sha_b = resolve_rev(root, b)
    with contextlib.closing(History(repo, None)) as history:
        va, vb = history.values_many([sha_a, sha_b])
    return ExpDiff(sha_a, sha_b, compare_values(va.params, vb.params), compare_values(va.metrics, vb.metrics))


@dataclass
class RemoteExperiment:
    name: str
    baseline: str  # short id, from the ref
    commit: str
    ref: str

    def to_json(self) -> dict:
        return {"name": self.name, "baseline": self.baseline, "rev": self.commit, "ref": self.ref}


def list_remote(repo: Repo, remote: str) -> list[RemoteExperiment]:
    root = repo.require_scm("exp list")
    out = []
    for ref, sha in git.remote_refs(root, remote, EXPS + "*"):
        parts = ref[len(EXPS):].split("/", 1)
        if len(parts) == 2 and parts[0] != "queue":
            out.append(RemoteExperiment(parts[1], parts[0], sha, ref))
    return sorted(out, key=lambda e: e.ref)


@dataclass
class ShareResult:
    experiments: list[str]
    transfer: Any = None  # ops.transfer.TransferResult of their data (None: no mlver remote)

    def to_json(self) -> dict:
        t = self.transfer
        return {"version": 1, "experiments": self.experiments,
                "objects": None if t is None else t.to_json()}


def _has_mlver_remote(repo: Repo) -> bool:
    return bool(repo.config.get("core.remote"))


def push(repo: Repo, remote: str, names: list[str], *, progress: Progress = NO_PROGRESS) -> ShareResult:
    """The experiments' refs to the Git remote, then their data to the default mlver remote."""
    from mlver.ops.scope import Scope
    from mlver.ops.transfer import push as push_objects

    root = repo.require_scm("exp push")
    exps = list_experiments(root) if not names else [find(root, n) for n in names]
    if not exps:
        raise MlverError("there are no experiments to push")
    transfer = None
    if _has_mlver_remote(repo):
        transfer = push_objects(repo, scope=Scope(revs=tuple(e.commit for e in exps), workspace=False),
                                progress=progress)
    git.push_refs(root, remote, [f"{e.commit}:{e.ref}" for e in exps])
    return ShareResult([e.name for e in exps], transfer)


def pull(repo: Repo, remote: str, names: list[str], *, progress: Progress = NO_PROGRESS) -> ShareResult:
    """The experiments' refs from the Git remote, then their data from the default mlver remote."""
    from mlver.ops.scope import Scope
    from mlver.ops.transfer import fetch as fetch_objects

    root = repo.require_scm("exp pull")
    there = list_remote(repo, remote)
    if names:
        picked = []
        for n in names:
            hits = [e for e in there if n in (e.name, f"{e.baseline}/{e.name}", e.ref) or e.commit.startswith(n)]
            if not hits:
                raise MlverError(f"Git remote '{remote}' has no experiment named '{n}'",
                                 hint=f"`mlver exp list {remote}` names them")
            picked += hits
        there = picked
    if not there:
        raise MlverError(f"Git remote '{remote}' has no experiments")
    git.fetch_refs(root, remote, [f"+{e.ref}:{e.ref}" for e in there])
    transfer = None
    if _has_mlver_remote(repo):
        transfer = fetch_objects(repo, scope=Scope(revs=tuple(e.commit for e in there), workspace=False),
                                 progress=progress)
    return ShareResult([e.name for e in there], transfer)
