"""Commands of experiments (``exp run / save / apply / branch / remove / diff / list /
push / pull``) and of their queue (``queue list / status / logs / remove / clear /
start``). ``exp show`` lives with the other history tables in ``cli/history.py``."""

from __future__ import annotations

from typing import Any

import click

from mlver.cli import App, cli, pass_app, project
from mlver.cli.data import json_option
from mlver.cli.history import exp
from mlver.cli.pipeline import _render_event, _stage_output_to_stderr

SHORT = 7


def _overrides(texts: tuple[str, ...]) -> list:
    from mlver.pipeline.setparams import parse_override

    return [parse_override(t) for t in texts]


@exp.command(name="run")
@click.argument("stages", nargs=-1)
@click.option("-S", "--set-param", "set_params", multiple=True, metavar="[FILE:]KEY=VALUE",
              help="Set a parameter for this experiment (repeatable; VALUE is YAML). With --queue, "
                   "a,b,c queues one experiment per value.")
@click.option("-n", "--name", help="The experiment's name (default: a generated one).")
@click.option("-m", "--message", help="The experiment commit's message.")
@click.option("--queue", "queue_it", is_flag=True, help="Queue the experiment instead of running it.")
@click.option("--temp", is_flag=True, help="Run it in a scratch worktree; the workspace is left alone.")
@click.option("--run-all", is_flag=True, help="Run every queued experiment (as `mlver queue start`).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --run-all: experiments at a time.")
@click.option("--set-new", is_flag=True, help="Allow -S to add keys that the params file does not have.")
@click.option("-f", "--force", is_flag=True, help="Run every stage even if nothing changed.")
@click.option("--no-run-cache", is_flag=True, help="Neither restore from nor save to the run cache.")
@json_option
@pass_app
def exp_run(app: App, stages: tuple[str, ...], set_params: tuple[str, ...], name: str | None, message: str | None,
            queue_it: bool, temp: bool, run_all: bool, jobs: int, set_new: bool, force: bool, no_run_cache: bool,
            as_json: bool) -> None:
    """Run the pipeline with parameters set by -S, then save the result as an
    experiment: a commit under refs/exps/<baseline>/<name> whose parent is HEAD. HEAD,
    the branch and the index do not move; the workspace keeps the results (as after
    repro) unless --temp or --queue."""
    if run_all:
        if set_params or name or message or queue_it or temp or stages:
            raise click.UsageError("--run-all runs the queue: it takes no -S, -n, -m, --queue, --temp or STAGES")
        _start(app, jobs, (), None, as_json)
        return
    if queue_it and temp:
        raise click.UsageError("choose one of --queue and --temp")
    overrides = _overrides(set_params)
    from mlver.ops import queue as q

    if queue_it or temp:
        with project(lock="exp run --queue") as repo:
            entries = q.enqueue(repo, overrides, name=name, message=message, set_new=set_new,
                                targets=list(stages))
        if queue_it:
            if as_json:
                app.json({"version": 1, "queued": [e.to_json() for e in entries]})
                return
            for e in entries:
                app.report(f"Queued experiment '{e.name}'" + (f": {' '.join(e.overrides)}" if e.overrides else ""))
            app.say("Run them with `mlver queue start` (or `mlver exp run --run-all`)")
            return
        try:
            _start(app, 1, tuple(e.name for e in entries), None, as_json)
        except KeyboardInterrupt:  # --temp leaves no queue entry behind: the same command runs again
            with project() as repo:
                q.discard_unrun(repo, [e.name for e in entries])
            raise
        return
    if any(len(o.values) > 1 for o in overrides):
        raise click.UsageError("-S with several values (a sweep) needs --queue")
    from mlver.ops.experiments import run_in_workspace
    from mlver.pipeline.run import ReproFailed

    try:
        with project(lock="exp run") as repo, _stage_output_to_stderr():
            res = run_in_workspace(repo, overrides, name=name, message=message, set_new=set_new,
                                   targets=list(stages) or None, force=force, run_cache=not no_run_cache,
                                   progress=app.progress(), on_event=lambda e: _render_event(app, e))
    except ReproFailed as e:
        if as_json:  # as `repro --json`: what ran, and the failure, for scripts (no experiment was saved)
            app.json(e.result.to_json())
        raise e.error from None
    if as_json:
        app.json(res.to_json())
        return
    made = res.experiment
    app.report(f"Experiment '{made.name}' of {made.baseline[:SHORT]}: {made.ref}")
    app.say(f"Keep it with `mlver exp branch {made.name} BRANCH`, compare with `mlver exp show`")


@exp.command(name="save")
@click.option("-n", "--name", help="The experiment's name (default: a generated one).")
@click.option("-m", "--message", help="The experiment commit's message.")
@json_option
@pass_app
def exp_save(app: App, name: str | None, message: str | None, as_json: bool) -> None:
    """Save the workspace as it is (params, code edits, lock, pointers, metrics) as an
    experiment of HEAD, without running anything."""
    from mlver.ops.experiments import save

    with project(lock="exp save") as repo:
        e = save(repo, name=name, message=message, record_data=True, progress=app.progress())
    if as_json:
        app.json({"version": 1, **e.to_json()})
        return
    for pointer in e.recorded:
        app.report(f"recorded {pointer} (the data changed; the workspace's pointer stays as it is)")
    app.report(f"Experiment '{e.name}' of {e.baseline[:SHORT]}: {e.ref}")


@exp.command(name="apply")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Overwrite uncommitted edits to the files the experiment changed.")
@json_option
@pass_app
def exp_apply(app: App, name: str, force: bool, as_json: bool) -> None:
    """Bring an experiment's files (params, code, lock, pointers, metrics) and data into
    the workspace. HEAD and the index stay; `git diff` shows what it changed."""
    from mlver.cli.data import render_checkout
    from mlver.errors import Unfinished
    from mlver.ops.experiments import apply

    with project(lock="exp apply") as repo:
        res = apply(repo, name, force=force, progress=app.progress())
    if as_json:
        app.json(res.to_json())
    else:
        app.report(f"Applied experiment '{res.experiment.name}' ({len(res.files)} file(s) changed)")
    problems = render_checkout(app, res.checkout, changes=not as_json)
    if problems:
        raise Unfinished(problems)


@exp.command(name="branch")
@click.argument("name")
@click.argument("branch")
@pass_app
def exp_branch(app: App, name: str, branch: str) -> None:
    """Make a Git branch of an experiment (its commit on top of its baseline)."""
    from mlver.ops.experiments import branch as do_branch

    with project() as repo:
        e = do_branch(repo, name, branch)
    app.report(f"Branch '{branch}' is experiment '{e.name}' ({e.commit[:SHORT]})")


@exp.command(name="remove")
@click.argument("names", nargs=-1)
@click.option("--queue", "queue_only", is_flag=True, help="Remove every queued experiment.")
@click.option("-A", "--all", "all_", is_flag=True, help="Remove every experiment and the queue.")
@pass_app
def exp_remove(app: App, names: tuple[str, ...], queue_only: bool, all_: bool) -> None:
    """Remove experiments (or queued ones). Their data stays in the cache until gc."""
    from mlver.ops.experiments import remove

    with project(lock="exp remove") as repo:
        gone, entries = remove(repo, list(names), queue=queue_only, all_=all_)
    if gone or not entries:
        app.report(f"Removed {len(gone)} experiment(s)" + (": " + " ".join(gone) if gone else ""))
    if entries:  # the queue's records (waiting, or of finished runs); the experiments they made stay
        app.report(f"Removed {len(entries)} queue entr{'y' if len(entries) == 1 else 'ies'}: " + " ".join(entries))


@exp.command(name="diff")
@click.argument("a")
@click.argument("b", required=False)
@click.option("--md", is_flag=True, help="Print a Markdown table.")
@json_option
@pass_app
def exp_diff(app: App, a: str, b: str | None, md: bool, as_json: bool) -> None:
    """Params and metrics that differ between two experiments (or revisions); with one,
    between the experiment and its baseline."""
    from mlver.cli.pipeline import _value
    from mlver.ops.experiments import diff

    with project() as repo:
        res = diff(repo, a, b)
    if as_json:
        app.json(res.to_json())
        return
    rows = [[kind, file, key, _value(c["old"]), _value(c["new"]), _value(c.get("diff"))]
            for kind, changes in (("param", res.params), ("metric", res.metrics))
            for file, keys in changes.items() for key, c in keys.items()]
    header = ["Kind", "Path", "Key", a if b is not None else res.a[:SHORT], b if b is not None else a, "Change"]
    if not rows:
        app.say("No params or metrics differ")
        return
    from mlver.cli.render import markdown_table

    if md:
        for line in markdown_table(header, rows):
            app.out(line)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        app.out("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


@exp.command(name="list")
@click.argument("git_remote", required=False)
@click.option("--names-only", is_flag=True, help="Only the names.")
@json_option
@pass_app
def exp_list(app: App, git_remote: str | None, names_only: bool, as_json: bool) -> None:
    """Experiments of this clone, or of a Git remote, by baseline."""
    from mlver.ops.experiments import list_experiments, list_remote

    found: list[tuple[str, Any]]
    with project() as repo:
        if git_remote:
            found = [(e.baseline[:SHORT], e) for e in list_remote(repo, git_remote)]
        else:
            found = [(e.baseline[:SHORT], e) for e in list_experiments(repo.require_scm("exp list"))]
    if as_json:
        app.json({"version": 1, "experiments": [e.to_json() for _, e in found]})
        return
    last = None
    for base, e in found:
        if names_only:
            app.out(e.name)
            continue
        if base != last:
            app.out(f"{base}:")
            last = base
        app.out(f"    {e.name}")


@exp.command(name="push")
@click.argument("git_remote")
@click.argument("names", nargs=-1)
@json_option
@pass_app
def exp_push(app: App, git_remote: str, names: tuple[str, ...], as_json: bool) -> None:
    """Push experiments (all without NAMES) to a Git remote, and their data to the
    default mlver remote."""
    from mlver.ops.experiments import push

    with project(lock="exp push") as repo:
        res = push(repo, git_remote, list(names), progress=app.progress())
    _shared(app, res, f"Pushed {len(res.experiments)} experiment(s) to {git_remote}", as_json)


@exp.command(name="pull")
@click.argument("git_remote")
@click.argument("names", nargs=-1)
@json_option
@pass_app
def exp_pull(app: App, git_remote: str, names: tuple[str, ...], as_json: bool) -> None:
    """Fetch experiments (all without NAMES) from a Git remote, and their data from the
    default mlver remote."""
    from mlver.ops.experiments import pull

    with project(lock="exp pull") as repo:
        res = pull(repo, git_remote, list(names), progress=app.progress())
    _shared(app, res, f"Pulled {len(res.experiments)} experiment(s) from {git_remote}", as_json)


def _shared(app: App, res, line: str, as_json: bool) -> None:
    if as_json:
        app.json(res.to_json())
        return
    app.report(line + ": " + " ".join(res.experiments))
    if res.transfer is None:
        app.warn("no default mlver remote is configured: only the Git refs travelled, not the data")


# --- the queue ------------------------------------------------------------------------------

@cli.group()
def queue() -> None:
    """Queued experiments: list, run (N at a time, locally or on Dask), inspect, clear."""


def _status_rows(app: App, as_json: bool) -> None:
    from mlver.ops import queue as q

    with project() as repo:
        entries = q.load_entries(repo)
    if as_json:
        app.json({"version": 1, "experiments": [e.to_json() for e in entries]})
        return
    if not entries:
        app.say("The queue is empty")
        return
    rows = [["Name", "Baseline", "Status", "Exit", "Params"]]
    for e in entries:
        rows.append([e.name, e.baseline[:SHORT], e.status, "" if e.exit_code is None else str(e.exit_code),
                     " ".join(e.overrides)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        app.out("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@queue.command(name="list")
@json_option
@pass_app
def queue_list(app: App, as_json: bool) -> None:
    """Every queued, running and finished entry."""
    _status_rows(app, as_json)


@queue.command(name="status")
@json_option
@pass_app
def queue_status(app: App, as_json: bool) -> None:
    """Every entry with its state (queued, running, success, failed) and exit code."""
    _status_rows(app, as_json)


@queue.command(name="logs")
@click.argument("name")
@pass_app
def queue_logs(app: App, name: str) -> None:
    """The output of an entry's run."""
    import os

    from mlver.errors import MlverError
    from mlver.ops import queue as q

    with project() as repo:
        entry = q.get_entry(repo, name)
        path = q.log_path(repo, name)
    if not os.path.isfile(path):
        raise MlverError(f"experiment '{name}' has no log yet (it is {entry.status})")
    with open(path, encoding="utf-8", errors="replace") as f:
        click.echo(f.read(), nl=False)


@queue.command(name="remove")
@click.argument("names", nargs=-1, required=True)
@pass_app
def queue_remove(app: App, names: tuple[str, ...]) -> None:
    """Remove entries from the queue (with their logs)."""
    from mlver.ops import queue as q

    with project(lock="queue remove") as repo:
        gone = q.remove(repo, list(names))
    app.report(f"Removed {len(gone)} queued experiment(s)")


@queue.command(name="clear")
@pass_app
def queue_clear(app: App) -> None:
    """Remove every entry that is not running."""
    from mlver.ops import queue as q

    with project(lock="queue clear") as repo:
        gone = q.clear(repo)
    app.report(f"Removed {len(gone)} queued experiment(s)")


@queue.command(name="start")
@click.argument("names", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Experiments at a time.")
@click.option("--dask", metavar="ADDRESS", help="Run each experiment as a task on this Dask scheduler "
              "(tcp://HOST:PORT; needs mlver[dask]).")
@json_option
@pass_app
def queue_start(app: App, names: tuple[str, ...], jobs: int, dask: str | None, as_json: bool) -> None:
    """Run the queued experiments (or NAMES), JOBS at a time, each in its own scratch
    worktree sharing this clone's cache. A failure is recorded and the others go on."""
    _start(app, jobs, names, dask, as_json)


def _start(app: App, jobs: int, names: tuple[str, ...], dask: str | None, as_json: bool) -> None:
    from mlver.ops import queue as q

    def update(e: q.Entry) -> None:
        if e.status == q.RUNNING:
            app.say(f"Running experiment '{e.name}'")
        elif e.status == q.SUCCESS:
            app.say(f"Experiment '{e.name}' succeeded: {e.result[:SHORT] if e.result else ''}")
        else:
            app.say(f"Experiment '{e.name}' failed: {e.error}")

    with project() as repo:
        res = q.start(repo, jobs=jobs, names=list(names), dask=dask, on_update=None if as_json else update)
    if as_json:
        app.json(res.to_json())
    elif not res.entries:
        app.say("Nothing is queued")
    else:
        ok = len(res.entries) - len(res.failed)
        app.report(f"{ok} of {len(res.entries)} experiment(s) succeeded")
    error = res.error()
    if error is not None:
        raise error
