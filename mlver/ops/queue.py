"""The experiment queue: ``exp run --queue`` snapshots params and modified files into a
commit (``refs/exps/queue/<name>``, parent: the baseline) and records an entry under
``.mlver/tmp/queue/<name>.json`` (atomic writes); ``queue start`` runs the entries N at a
time through a ``concurrent.futures.Executor``.

The executor seam: a task is a picklable ``Task``; ``run_local`` runs one in a scratch
Git worktree of this clone (sharing its cache), ``run_remote`` in a fresh clone of the
project's Git remote (pulling inputs from, and pushing results to, the default mlver
remote). Local runs go through a ``ThreadPoolExecutor``, Dask through
``distributed.Client.get_executor()``; any other engine that offers an ``Executor``
(Ray's, dask-jobqueue's Slurm cluster through a Dask client) plugs in the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from mlver import git
from mlver.errors import GitError, MlverError, RemoteError, UsageError
from mlver.fsutil import atomic_write_text
from mlver.ops.experiments import (QUEUE, SHORT, baseline_of, exp_ref, message_for, new_name, params_confine,
                                   snapshot_paths, top_relative)
from mlver.ops.commit import stored_input_pointers
from mlver.pipeline.setparams import Override, grid, render_overrides
from mlver.ops.verify import scratch_config
from mlver.repo import Repo

QUEUED, RUNNING, SUCCESS, FAILED = "queued", "running", "success", "failed"
HIDDEN = "refs/mlver-queue/"  # where a Dask submission puts a snapshot on the Git remote
SCRATCH_PREFIX = "exp-run-"  # scratch worktrees: .mlver/tmp/exp-run-<runner pid>-<name>-XXXX


@dataclass
class Entry:
    name: str
    baseline: str
    snapshot: str  # the commit holding the params and files to run with
    targets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    message: str | None = None
    status: str = QUEUED
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    error: str | None = None
    result: str | None = None  # the experiment commit, once it succeeded
    runner: dict[str, Any] | None = None  # {"pid", "host"} of the process running it

    def to_json(self) -> dict:
        return asdict(self)


def queue_dir(repo: Repo) -> str:
    return os.path.join(repo.tmp_dir, "queue")


def log_path(repo: Repo, name: str) -> str:
    return os.path.join(queue_dir(repo), f"{name}.log")


def _entry_path(repo: Repo, name: str) -> str:
    return os.path.join(queue_dir(repo), f"{name}.json")


def save_entry(repo: Repo, entry: Entry) -> None:
    os.makedirs(queue_dir(repo), exist_ok=True)
    atomic_write_text(_entry_path(repo, entry.name), json.dumps(entry.to_json(), indent=1) + "\n")


def sweep_scratch(repo: Repo) -> list[str]:
    """Remove the scratch worktrees that a runner killed mid-run left behind (their
    folder names the runner's pid, which is gone)."""
    root = repo.require_scm("queue start")
    gone = []
    try:
        names = os.listdir(repo.tmp_dir)
    except FileNotFoundError:
        return []
    for fn in names:
        if not fn.startswith(SCRATCH_PREFIX):
            continue
        pid = fn[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive({"pid": pid, "host": os.uname().nodename}):
            path = os.path.join(repo.tmp_dir, fn)
            git.worktree_remove(root, path)
            shutil.rmtree(path, ignore_errors=True)
            gone.append(fn)
    return gone


def _alive(runner: dict[str, Any] | None) -> bool:
    if not runner or runner.get("host") != os.uname().nodename:
        return runner is not None  # another host's runner: trust it
    try:
        os.kill(int(runner["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError):
        return False
    except PermissionError:
        return True
    return True


def load_entries(repo: Repo) -> list[Entry]:
    """Every entry, oldest first. An entry left ``running`` by a process that is gone
    (killed, crashed) is queued again."""
    folder = queue_dir(repo)
    if not os.path.isdir(folder):
        return []
    entries = []
    for fn in sorted(os.listdir(folder)):
        if not fn.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, fn), encoding="utf-8") as f:
                doc = json.load(f)
            entry = Entry(**doc)
        except (OSError, ValueError, TypeError):
            continue  # a damaged entry is skipped, never fatal
        if entry.status == RUNNING and not _alive(entry.runner):
            entry.status, entry.runner, entry.started = QUEUED, None, None
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.created, e.name))


def has_entry(repo: Repo, name: str) -> bool:
    return os.path.isfile(_entry_path(repo, name))


def get_entry(repo: Repo, name: str) -> Entry:
    for e in load_entries(repo):
        if e.name == name:
            return e
    raise MlverError(f"no queued experiment named '{name}'", hint="`mlver queue list` names them")


def remove(repo: Repo, names: list[str]) -> list[str]:
    root = repo.require_scm("queue remove")
    entries = {e.name: e for e in load_entries(repo)}
    for n in names:
        if n not in entries:
            raise MlverError(f"no queued experiment named '{n}'", hint="`mlver queue list` names them")
    for n in names:
        if entries[n].status == RUNNING:
            raise MlverError(f"experiment '{n}' is running", hint="wait for it to finish, then remove it")
    for n in names:
        _drop(repo, root, n)
    return list(names)


def clear(repo: Repo) -> list[str]:
    """Every entry that is not running."""
    root = repo.require_scm("queue clear")
    gone = [e.name for e in load_entries(repo) if e.status != RUNNING]
    for n in gone:
        _drop(repo, root, n)
    return gone


def discard_unrun(repo: Repo, names: list[str]) -> list[str]:
    """Of ``names``, drop the entries that are still queued (an interrupted `exp run
    --temp`: its runs were put back in the queue, and running the same command again
    must work, not find the name taken). Returns the names dropped."""
    root = repo.require_scm("exp run --temp")
    mine = {"pid": os.getpid(), "host": os.uname().nodename}  # this process's runs stop with it
    gone = [e.name for e in load_entries(repo) if e.name in names
            and (e.status == QUEUED or (e.status == RUNNING and e.runner == mine))]
    for n in gone:
        _drop(repo, root, n)
    return gone


def _drop(repo: Repo, root: str, name: str) -> None:
    if git.verify_commit(root, QUEUE + name):
        git.delete_ref(root, QUEUE + name)
    for path in (_entry_path(repo, name), log_path(repo, name)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# --- queueing ------------------------------------------------------------------------------

def enqueue(repo: Repo, overrides: list[Override], *, name: str | None = None, message: str | None = None,
            set_new: bool = False, targets: list[str] | None = None) -> list[Entry]:
    """One entry per combination of the overrides' values (a grid), each a snapshot of
    the workspace's modified files with its params set; the workspace is not written."""
    root = repo.require_scm("exp run --queue")
    baseline = baseline_of(root)
    combos = grid(overrides)
    inputs = stored_input_pointers(repo, targets=targets)  # changed input data, stored: the snapshot names it (workspace untouched)
    paths = snapshot_paths(repo, root)
    planned = []
    for combo in combos:  # every combination is checked before anything is queued
        texts = render_overrides(repo.root, combo, set_new=set_new, confine=params_confine(repo))
        planned.append((combo, top_relative(repo, root, {**inputs, **texts})))
    taken_names: set[str] = set()
    entries = []
    for i, (combo, contents) in enumerate(planned):
        wanted = None if name is None else (name if len(planned) == 1 else f"{name}-{i + 1}")
        seed = f"{time.time_ns()}:{i}:" + " ".join(o.text for o in combo)
        exp_name = new_name(root, baseline, wanted, seed)
        while exp_name in taken_names:  # pragma: no cover - auto names of one grid collide
            exp_name = new_name(root, baseline, None, seed + exp_name)
        taken_names.add(exp_name)
        shown = [f"{o.file + ':' if o.file != 'params.yaml' else ''}{o.key}={_yaml_text(o.values[0])}" for o in combo]
        snap = git.snapshot_commit(root, baseline, paths, message_for(exp_name, message, shown), contents=contents)
        git.update_ref(root, QUEUE + exp_name, snap)
        entry = Entry(exp_name, baseline, snap, list(targets or []), shown, message, created=time.time() + i * 1e-6)
        save_entry(repo, entry)
        entries.append(entry)
    return entries


def _yaml_text(value: Any) -> str:
    from mlver.pipeline.setparams import _yaml_flow

    return _yaml_flow(value)


# --- tasks: what one run needs, on this machine or a remote worker ----------------------------

@dataclass(frozen=True)
class Task:
    name: str
    baseline: str
    snapshot: str
    targets: tuple[str, ...]
    message: str
    prefix: str  # the project's folder inside the Git work tree ("." at the top)
    # local runs
    root: str | None = None  # this clone's Git work tree
    scratch_dir: str | None = None
    local_config: tuple[tuple[str, str], ...] = ()  # config.local of the scratch worktree
    log: str | None = None
    # remote runs
    git_url: str | None = None


@dataclass(frozen=True)
class TaskResult:
    name: str
    status: str  # success / failed
    exit_code: int | None
    commit: str | None = None
    error: str | None = None
    log: str = ""  # the run's output (remote runs; local runs write Task.log)
    host: str = ""


def _mlver(cwd: str, args: list[str], log: Any) -> int:
    log.write(f"$ mlver {' '.join(args)}\n")
    log.flush()
    env = {**os.environ, "MLVER_EXP_TASK": "1"}
    return subprocess.call([sys.executable, "-m", "mlver", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=env)


def _record(top: str, work_root: str, task: Task) -> str:
    """The experiment commit of a finished run in the scratch ``work_root``: the
    snapshot's tree plus what the run changed, parent the baseline; then its ref."""
    wrepo = Repo(top)
    try:
        paths = snapshot_paths(wrepo, work_root)
    finally:
        wrepo.close()
    sha = git.snapshot_commit(work_root, task.baseline, paths, task.message, base=task.snapshot)
    git.update_ref(work_root, exp_ref(task.baseline, task.name), sha)
    return sha


def _stages(top: str, task: Task, log: Any, *, remote: bool) -> int:
    """Inputs into the scratch checkout, then the stages; the exit code of the first
    step that failed."""
    if remote:
        rc = _mlver(top, ["pull", "-q"], log)
        if rc != 0:
            return rc
    else:
        _checkout(top, log)
    rc = _repro(top, task, log)
    if rc == 0 and remote:
        rc = _mlver(top, ["push", "-q"], log)
    return rc


def _repro(top: str, task: Task, log: Any) -> int:
    """``repro`` of the scratch checkout, in this process (no interpreter to start per
    experiment); the commands write to the log. Returns 0, or the failing command's exit
    code (3 when something else failed)."""
    from mlver.pipeline.run import ReproFailed, StageEvent, reproduce

    def note(e: StageEvent) -> None:
        if e.action in ("running", "restored"):
            verb = "Running" if e.action == "running" else "Restored from the run cache:"
            log.write(f"{verb} stage '{e.stage}'" + (f" ({'; '.join(e.reasons)})" if e.reasons else "") + "\n")
            if e.cmd and "\n" not in e.cmd:  # a list's commands come one by one, as they start
                log.write(f"> {e.cmd}\n")
            log.flush()
        elif e.action == "command":
            log.write(f"> {e.cmd}\n")
            log.flush()

    wrepo = Repo(top)
    try:
        with wrepo.lock("exp run"):
            reproduce(wrepo, list(task.targets) or None, on_event=note, output=log)
        return 0
    except ReproFailed as e:
        log.write(f"error: {e.message}\n")
        failed = e.result.failed
        return failed.exit_code if failed is not None and failed.exit_code else 3
    except MlverError as e:
        log.write(f"error: {e.message}\n")
        return 3
    finally:
        log.flush()
        wrepo.close()


def _checkout(top: str, log: Any) -> None:
    """The recorded data into the scratch worktree, from the shared cache, in this
    process (what the cache lacks is left to the stages, or to their error)."""
    from mlver.ops.checkout import checkout

    wrepo = Repo(top)
    try:
        res = checkout(wrepo, [top])
        for path in res.missing:
            log.write(f"not in the cache: {path}\n")
    except MlverError as e:
        log.write(f"checkout: {e.message}\n")
    finally:
        wrepo.close()


def run_local(task: Task) -> TaskResult:
    """Run one experiment in a scratch worktree of this clone that shares its cache."""
    assert task.root is not None and task.scratch_dir is not None and task.log is not None
    os.makedirs(task.scratch_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{task.name}-", dir=task.scratch_dir)
    os.rmdir(scratch)
    added = False
    try:
        with open(task.log, "w", encoding="utf-8", buffering=1) as log:
            try:
                git.worktree_add(task.root, scratch, task.snapshot)
                added = True
                top = scratch if task.prefix == "." else os.path.join(scratch, task.prefix)
                _write_local_config(top, task.local_config)
                rc = _stages(top, task, log, remote=False)
                if rc != 0:
                    return TaskResult(task.name, FAILED, rc, error=f"exited with code {rc}")
                return TaskResult(task.name, SUCCESS, 0, _record(top, scratch, task))
            except MlverError as e:
                log.write(f"error: {e.message}\n")
                return TaskResult(task.name, FAILED, None, error=e.message)
    finally:
        if added:
            git.worktree_remove(task.root, scratch)


def _write_local_config(top: str, values: tuple[tuple[str, str], ...]) -> None:
    from mlver.config import ConfigFile

    os.makedirs(os.path.join(top, ".mlver", "tmp"), exist_ok=True)
    local = ConfigFile(os.path.join(top, ".mlver", "config.local"))
    for k, v in values:
        local.set(k, v)
    local.save()


def run_remote(task: Task) -> TaskResult:
    """Run one experiment on a machine that shares nothing with the submitting clone:
    clone the Git remote, check out the snapshot, pull the inputs from the project's
    default mlver remote, run, push the outputs and the experiment ref back. Pushes are
    idempotent, so a retried task is harmless."""
    assert task.git_url is not None
    host = os.uname().nodename
    scratch = tempfile.mkdtemp(prefix=f"mlver-exp-{task.name}-")
    log_file = os.path.join(scratch, "log")

    def done(status: str, code: int | None, commit: str | None = None, error: str | None = None) -> TaskResult:
        with open(log_file, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return TaskResult(task.name, status, code, commit, error, text, host)

    try:
        with open(log_file, "w", encoding="utf-8", buffering=1) as log:
            try:
                work = os.path.join(scratch, "repo")
                git.clone(task.git_url, work, shallow=False)
                git.fetch_refs(work, "origin", [f"+{HIDDEN}{task.name}:{HIDDEN}{task.name}"])
                git.run(work, "-c", "core.hooksPath=/dev/null", "checkout", "-q", "--detach", task.snapshot)
                top = work if task.prefix == "." else os.path.join(work, task.prefix)
                os.makedirs(os.path.join(top, ".mlver", "tmp"), exist_ok=True)
                rc = _stages(top, task, log, remote=True)
                if rc != 0:
                    log.close()
                    return done(FAILED, rc, error=f"exited with code {rc}")
                sha = _record(top, work, task)
                git.push_refs(work, "origin", [f"+{sha}:{exp_ref(task.baseline, task.name)}"])
                log.close()
                return done(SUCCESS, 0, sha)
            except MlverError as e:
                log.write(f"error: {e.message}\n")
                log.close()
                return done(FAILED, None, error=e.message)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- running the queue ---------------------------------------------------------------------

@dataclass
class QueueRun:
    entries: list[Entry]  # as they ended

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.entries if e.status == FAILED]

    def error(self) -> MlverError | None:
        bad = self.failed
        if not bad:
            return None
        shown = ", ".join(f"{e.name} ({e.error or 'failed'})" for e in bad[:5])
        return MlverError(f"{len(bad)} of {len(self.entries)} experiment(s) failed: {shown}",
                          hint=f"see the log: `mlver queue logs {bad[0].name}`")

    def to_json(self) -> dict:
        return {"version": 1, "experiments": [e.to_json() for e in self.entries]}


def _tasks(repo: Repo, entries: list[Entry], *, remote_url: str | None) -> dict[str, Task]:
    root = repo.require_scm("queue start")
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    local = () if remote_url else tuple(scratch_config(repo))
    tasks = {}
    for e in entries:
        msg = message_for(e.name, e.message, e.overrides)
        tasks[e.name] = Task(e.name, e.baseline, e.snapshot, tuple(e.targets), msg, prefix,
                             root=None if remote_url else root,
                             scratch_dir=None if remote_url else repo.tmp_dir,
                             local_config=local, log=None if remote_url else log_path(repo, e.name),
                             git_url=remote_url)
    return tasks


def pending(repo: Repo, names: list[str] | None = None) -> list[Entry]:
    entries = load_entries(repo)
    if names:
        known = {e.name for e in entries}
        for n in names:
            if n not in known:
                raise MlverError(f"no queued experiment named '{n}'", hint="`mlver queue list` names them")
        entries = [e for e in entries if e.name in names]
    return [e for e in entries if e.status == QUEUED]


def start(repo: Repo, *, jobs: int = 1, names: list[str] | None = None, dask: str | None = None,
          on_update: Callable[[Entry], None] | None = None) -> QueueRun:
    """Run the queued entries, ``jobs`` at a time, locally or on a Dask cluster. A
    failed entry is recorded (exit code, log) and does not stop the others."""
    if dask is not None and not dask.strip():
        raise UsageError("--dask needs the scheduler's address", hint="e.g. --dask tcp://HOST:8786")
    sweep_scratch(repo)
    todo = pending(repo, names)
    if not todo:
        return QueueRun([])
    remote_url = None
    if dask:
        _check_remote(repo)  # one-line errors before connecting to anything
    executor, closer = _executor(dask, jobs)
    done_entries: list[Entry] = []
    try:
        if dask:
            remote_url = _prepare_remote(repo, todo)
        tasks = _tasks(repo, todo, remote_url=remote_url)
        fn: Callable[[Task], TaskResult] = run_remote if dask else run_local
        with repo.lock("queue start", name="cache.lock", shared=True):
            queue = list(todo)
            running: dict[Future, Entry] = {}
            while queue or running:
                while queue and len(running) < jobs:
                    e = queue.pop(0)
                    if not _claim(repo, e):
                        continue  # another `queue start` took it (or it was removed)
                    if on_update:
                        on_update(e)
                    running[executor.submit(fn, tasks[e.name])] = e
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    e = running.pop(fut)
                    _finish(repo, e, fut, remote_url)
                    done_entries.append(e)
                    if on_update:
                        on_update(e)
    finally:
        closer()
    return QueueRun(done_entries)


def _claim(repo: Repo, e: Entry) -> bool:
    """Mark ``e`` running by this process, unless another runner took it first (two
    `queue start` at once): the entry is read again and marked under a short lock of
    the queue, so each queued experiment runs once."""
    with repo.lock("queue start", name="queue.lock"):
        try:
            with open(_entry_path(repo, e.name), encoding="utf-8") as f:
                now = Entry(**json.load(f))
        except (OSError, ValueError, TypeError):
            return False
        if now.status == RUNNING and not _alive(now.runner):
            now.status = QUEUED  # its runner died: it is queued again (as load_entries says)
        if now.status != QUEUED:
            return False
        e.status, e.started, e.runner = RUNNING, time.time(), {"pid": os.getpid(), "host": os.uname().nodename}
        save_entry(repo, e)
    return True


def _finish(repo: Repo, e: Entry, fut: Future, remote_url: str | None) -> None:
    try:
        res: TaskResult = fut.result()
    except Exception as exc:  # the engine lost the task (a worker died too often, ...)
        res = TaskResult(e.name, FAILED, None, error=f"the task did not finish: {type(exc).__name__}: {exc}")
    if res.log:
        os.makedirs(queue_dir(repo), exist_ok=True)
        atomic_write_text(log_path(repo, e.name), res.log)
    if res.status == SUCCESS and remote_url and res.commit:
        root = repo.require_scm("queue start")
        ref = exp_ref(e.baseline, e.name)
        git.fetch_refs(root, remote_url, [f"+{ref}:{ref}"])
        try:  # the snapshot the workers fetched is done with: it does not pile up on the shared remote
            git.push_refs(root, remote_url, [f":{HIDDEN}{e.name}"])
        except GitError:
            pass  # left for the next successful run of that name to replace
    e.status, e.exit_code, e.error, e.result = res.status, res.exit_code, res.error, res.commit
    e.finished, e.runner = time.time(), None
    save_entry(repo, e)
    if res.status == SUCCESS:
        root = repo.require_scm("queue start")
        if git.verify_commit(root, QUEUE + e.name):
            git.delete_ref(root, QUEUE + e.name)


def _executor(dask: str | None, jobs: int) -> tuple[Executor, Callable[[], None]]:
    if not dask:
        from concurrent.futures import ThreadPoolExecutor

        ex = ThreadPoolExecutor(max_workers=jobs)
        return ex, lambda: ex.shutdown(wait=True)
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask needs the Dask client library", hint='pip install "mlver[dask]"') from None
    try:
        client = Client(dask, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise RemoteError(f"cannot reach the Dask scheduler at {dask}: {e}") from None
    except (ValueError, TypeError) as e:  # distributed's own address parsing
        raise UsageError(f"--dask {dask}: not a Dask scheduler address ({' '.join(str(e).split())})",
                         hint="give the scheduler's address, e.g. tcp://HOST:8786") from None
    ex = client.get_executor(retries=2, pure=False)

    def close() -> None:
        client.close()

    return ex, close


def _check_remote(repo: Repo) -> str:
    """What a worker needs, checked up front: a Git remote (``origin``) whose URL a
    worker can reach and a default mlver remote in the committed config. Returns the URL."""
    root = repo.require_scm("queue start --dask")
    url = git.remote_url(root, "origin")
    if url is None:
        raise MlverError("queue start --dask needs a Git remote named 'origin' that the workers can clone",
                         hint="`git remote add origin URL`")
    project_remote = _committed_remote(repo)
    if project_remote is None:
        raise MlverError("queue start --dask needs a default mlver remote in the committed .mlver/config",
                         hint="workers read it from there: `mlver remote add -d NAME URL`, then commit .mlver/config")
    return os.path.abspath(url) if os.path.isdir(url) else url


def _prepare_remote(repo: Repo, entries: list[Entry]) -> str:
    """Push the inputs and the snapshots (to hidden refs) so workers can start from them."""
    from mlver.ops.scope import Scope
    from mlver.ops.transfer import push

    root = repo.require_scm("queue start --dask")
    url = _check_remote(repo)
    push(repo, scope=Scope(revs=tuple(e.snapshot for e in entries), workspace=False))
    git.push_refs(root, url, [f"+{e.snapshot}:{HIDDEN}{e.name}" for e in entries])
    return url


def _committed_remote(repo: Repo) -> str | None:
    from mlver.config import ConfigFile

    return ConfigFile(repo.config_path).items().get("core.remote")


def short(sha: str | None) -> str:
    return (sha or "")[:SHORT]
