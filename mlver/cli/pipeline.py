"""Commands of pipelines: stage add, repro, dag, params diff, metrics show / diff."""

from __future__ import annotations

import contextlib
import shlex
from typing import Any, Iterator

import click

from mlver.cli import App, cli, pass_app, project
from mlver.cli.data import json_option
from mlver.cli.render import console as render_console, markdown_table, print_table

MAX_REASONS = 3


def _reasons(reasons: tuple[str, ...] | list[str]) -> str:
    shown = list(reasons[:MAX_REASONS])
    if len(reasons) > MAX_REASONS:
        shown.append(f"and {len(reasons) - MAX_REASONS} more")
    return "; ".join(shown)


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = f"{v:.6g}"
        # a float stays visibly a float (1 -> 1.0 is a change, and must not read "1 -> 1")
        return text if any(c in text for c in ".eninf") else text + ".0"
    if isinstance(v, (list, dict, set)):
        import json

        from mlver.values import jsonable

        return json.dumps(jsonable(v))
    return str(v)


# --- stage add -----------------------------------------------------------------------------

@cli.group()
def stage() -> None:
    """Write pipeline stages into mlver.yaml."""


@stage.command(name="add")
@click.option("-n", "--name", required=True, help="Stage name.")
@click.option("-d", "--deps", "deps", multiple=True, metavar="PATH", help="A dependency (repeatable).")
@click.option("-o", "--outs", "outs", multiple=True, metavar="PATH", help="An output, cached (repeatable).")
@click.option("-O", "--outs-no-cache", "outs_no_cache", multiple=True, metavar="PATH",
              help="An output that stays in Git (repeatable).")
@click.option("-p", "--params", "params", multiple=True, metavar="[FILE:]KEY[,KEY]",
              help="Parameter keys or sections of params.yaml, or FILE:KEYS (repeatable).")
@click.option("-M", "--metrics", "metrics", multiple=True, metavar="PATH", help="A metrics file (repeatable).")
@click.option("-w", "--wdir", help="Working folder of the command (deps and outs are relative to it).")
@click.option("--desc", help="A description of the stage.")
@click.option("-f", "--force", is_flag=True, help="Replace a stage of the same name.")
@click.argument("command", nargs=-1, required=True)
@pass_app
def stage_add(app: App, name: str, deps: tuple[str, ...], outs: tuple[str, ...], outs_no_cache: tuple[str, ...],
              params: tuple[str, ...], metrics: tuple[str, ...], wdir: str | None, desc: str | None,
              force: bool, command: tuple[str, ...]) -> None:
    """Add stage NAME running COMMAND (give it after `--`)."""
    from mlver.ops.stage import add_stage

    cmd = command[0] if len(command) == 1 else shlex.join(command)
    with project(lock="stage add") as repo:
        res = add_stage(repo, name, cmd, deps=deps, outs=outs, outs_no_cache=outs_no_cache, params=params,
                        metrics=metrics, wdir=wdir, desc=desc, force=force)
    app.say(f"{'Replaced' if res.replaced else 'Added'} stage '{res.name}' in {res.file}; "
            f"run it with `mlver repro {res.name}`")
    if res.to_add:
        app.git_add_hint(repo.root, list(res.to_add))


# --- repro ---------------------------------------------------------------------------------

def _render_event(app: App, event: Any) -> None:
    if event.action == "up-to-date":
        app.say(f"Stage '{event.stage}' is up to date")
    elif event.action == "frozen-recorded":
        app.say(f"Stage '{event.stage}' is frozen and was never recorded: its outputs are recorded as they are "
                "(not run)")
    elif event.action == "frozen":
        app.say(f"Stage '{event.stage}' is frozen: not run, nor are its dependencies reproduced for it")
    elif event.action == "allowed-missing":
        app.say(f"Stage '{event.stage}' not run: its missing data is recorded and stored ({_reasons(event.reasons)})")
    elif event.action == "blocked":
        app.say(f"Stage '{event.stage}' not run: an upstream stage failed")
    elif event.action == "failed":
        app.warn(f"stage '{event.stage}' failed ({event.reasons[0]}); going on with stages that do not depend on it")
    elif event.action == "running":  # a list's commands are echoed one by one as they start ("command")
        shown = "" if "\n" in event.cmd else f"\n> {event.cmd}"
        app.say(f"Running stage '{event.stage}' ({_reasons(event.reasons)}):{shown}")
    elif event.action == "command":
        app.say(f"> {event.cmd}")
    elif event.action == "restored":
        app.say(f"Restored stage '{event.stage}' from the run cache ({_reasons(event.reasons)})")
    elif event.action == "kept":
        app.warn(f"{event.path} was edited since it was recorded; its content is kept in the cache "
                 f"(object {event.digest}) before stage '{event.stage}' replaces it")
    elif event.action == "kept-unrecorded":
        app.warn(f"{event.path} is not from a recorded run of stage '{event.stage}'; its content is kept in the "
                 f"cache (object {event.digest}) before the stage replaces it")


@cli.command()
@click.argument("stages", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Run the stages even if nothing changed.")
@click.option("--dry-run", "--dry", "dry_run", is_flag=True, help="Print what would run and why; run nothing "
              "(`--dry`, DVC's spelling, too).")
@click.option("--downstream", is_flag=True, help="Run STAGES and every stage that depends on them.")
@click.option("--no-run-cache", is_flag=True, help="Neither restore from nor save to the run cache.")
@click.option("-s", "--single-item", "single", is_flag=True, help="Run STAGES only, not the stages they depend on.")
@click.option("-k", "--keep-going", is_flag=True,
              help="After a failure, go on with stages that do not depend on it; fail at the end naming each failure.")
@click.option("--pull", "pull_first", is_flag=True,
              help="First fetch and check out recorded outputs missing from the workspace (default remote).")
@click.option("--allow-missing", is_flag=True,
              help="Do not run a stage whose only change is cached outputs missing here but in the cache or on the remote.")
@click.option("--verify", is_flag=True,
              help="Re-run every stage of a commit in a scratch Git worktree and check its outputs reproduce.")
@click.option("--rev", metavar="REV", help="With --verify: the commit to verify (default HEAD).")
@click.option("--keep", is_flag=True, help="With --verify: keep the scratch worktree and print its path.")
@click.option("-P", "--all-pipelines", is_flag=True,
              help="Every pipeline file, also when run from a subfolder that has its own mlver.yaml.")
@click.option("--check", "strict_checks", is_flag=True,
              help="Exit 1 when a check of mlver.yaml fails after the run (3 when a checked metric is missing).")
@json_option
@pass_app
@click.pass_context
def repro(ctx: click.Context, app: App, stages: tuple[str, ...], force: bool, dry_run: bool, downstream: bool,
          no_run_cache: bool, single: bool, keep_going: bool, pull_first: bool, allow_missing: bool,
          verify: bool, rev: str | None, keep: bool, all_pipelines: bool, strict_checks: bool, as_json: bool) -> None:
    """Run changed pipeline stages in dependency order and record them in mlver.lock.

    With --verify, check out REV (default HEAD) in a scratch Git worktree that uses this
    clone's cache and remotes, run every stage there (run cache off) and report, per
    output, whether it reproduces the digest in REV's mlver.lock. The workspace, the
    index and branches are not touched. Exit 0: all reproduced; 1: an output differs;
    3: something could not run.

    After a run, the checks of mlver.yaml (if any) are evaluated and their table printed;
    they change the exit code only with --check."""
    if not verify and (rev or keep):
        raise click.UsageError("--rev and --keep go with --verify")
    if verify:
        if force or dry_run or downstream or no_run_cache or single or keep_going or pull_first or allow_missing \
                or all_pipelines:
            raise click.UsageError("--verify always runs every stage with the run cache off; "
                                   "it takes no --force, --dry-run, --downstream, --no-run-cache, -s, -k, "
                                   "--pull or --allow-missing")
        code = _verify(app, stages, rev, keep, as_json)
        if code:
            ctx.exit(code)
        return
    if single and downstream:
        raise click.UsageError("-s/--single-item and --downstream do not go together")
    if strict_checks and dry_run:
        raise click.UsageError("--check evaluates the checks after a run; a --dry-run runs nothing")
    from mlver.ops.repro import repro as do_repro

    from mlver.pipeline.run import ReproFailed

    try:
        # with --json, stdout carries the document alone: the stages' own output goes to stderr
        with project(lock=None if dry_run else "repro") as repo, \
                (_stage_output_to_stderr() if as_json else contextlib.nullcontext()):
            res, staged = do_repro(repo, list(stages), force=force, dry_run=dry_run, downstream=downstream,
                                   single=single, keep_going=keep_going, pull=pull_first, allow_missing=allow_missing,
                                   run_cache=not no_run_cache, all_pipelines=all_pipelines, progress=app.progress(),
                                   on_event=lambda e: _render_event(app, e))
    except ReproFailed as e:
        if as_json:  # what ran before the failure, and the failure, for scripts
            app.json(e.result.to_json())
        raise e.error from None
    if dry_run:
        if as_json:
            app.json(res.to_json())
            return
        for p in res.plan:
            if p.action == "skip":
                app.out(f"Stage '{p.name}' is up to date" + (f" ({_reasons(p.reasons)})" if p.reasons else ""))
                continue
            if p.action == "frozen":
                app.out(f"Stage '{p.name}' is frozen: would not run" + (":" if p.reasons else ""))
                for r in p.reasons:
                    app.out(f"    {r}")
                continue
            verb = "Would restore stage '{}' from the run cache" if p.action == "restore" else "Would run stage '{}'"
            app.out(verb.format(p.name) + ":")
            for r in p.reasons:
                app.out(f"    {r}")
        return
    report = _checks_after_run(app, strict=strict_checks)
    if as_json:
        doc = res.to_json()
        if report is not None:
            doc["checks"] = report.to_json()
        app.json(doc)
    elif report is not None and not app.quiet:
        render_checks(app, report)
    if not res.ran and not res.restored:
        app.say("Data and pipelines are up to date.")
    elif staged:
        app.say("Staged: " + " ".join(staged))
    elif res.to_add and repo.scm_root:
        app.git_add_hint(repo.root, res.to_add)
    if report is not None:
        _check_verdict(ctx, app, report, strict=strict_checks)


def _checks_after_run(app: App, *, strict: bool) -> Any:
    """The check report of the workspace after a run; None when mlver.yaml has no checks."""
    from mlver.ops.check import run_checks

    from mlver.pipeline.plan import load_pipeline

    with project() as repo:
        if not load_pipeline(repo).checks:
            if strict:
                app.warn("--check: mlver.yaml has no checks, so none were evaluated")
            return None
        return run_checks(repo)


def _check_verdict(ctx: click.Context, app: App, report: Any, *, strict: bool) -> None:
    """After the table: the summary line, and with ``strict`` the exit code of `mlver check`."""
    from mlver.ops.check import ChecksMissing

    failed = [o for o in report.outcomes if not o.passed and not o.missing]
    missing = report.missing
    if missing:
        message = "; ".join(o.message for o in missing)
        if strict:
            unreadable = any("cannot be read" in o.message for o in missing)
            raise ChecksMissing(message, hint="fix the file, or run the stage that writes it again (`mlver repro`)"
                                if unreadable else "run the stage that writes it (`mlver repro`), "
                                                   "or fix the metric name in mlver.yaml")
        app.warn(f"check: {message}")
    if failed:
        app.say(f"{len(failed)} of {len(report.outcomes)} check(s) failed" + ("" if strict else
                " (`mlver repro --check` makes that fail the run)"))
        if strict:
            ctx.exit(1)


@contextlib.contextmanager
def _stage_output_to_stderr() -> Iterator[None]:
    """Stage commands inherit stdout; while verifying, stdout carries the report only."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _verify(app: App, stages: tuple[str, ...], rev: str | None, keep: bool, as_json: bool) -> int:
    from mlver.ops.verify import verify as do_verify

    with project() as repo, _stage_output_to_stderr():
        res = do_verify(repo, rev, list(stages) or None, keep=keep, progress=app.progress(),
                        on_event=lambda e: _render_event(app, e))
    if as_json:
        app.json(res.to_json())
    else:
        width = max((len(f"{o.stage}:{o.path}") for o in res.outputs), default=0)
        for o in res.outputs:
            line = f"{o.status:<10} {(o.stage + ':' + o.path):<{width}}"
            if o.status == "differs":
                line += f"  recorded {o.expected}, now {o.actual}"
            if o.message:
                line += f"  ({o.message})" if o.status != "error" else f"  {o.message}"
            app.out(line.rstrip())
        total = len(res.outputs)
        bad = sum(o.status != "reproduced" for o in res.outputs)
        if not total:
            app.say(f"{res.rev[:7]}: no stage outputs to verify")
        elif res.reproduced:
            app.say(f"{res.rev[:7]}: all {total} output(s) reproduced")
        else:
            app.say(f"{res.rev[:7]}: {bad} of {total} output(s) did not reproduce")
    if res.worktree:
        app.say(f"Kept the scratch worktree at {res.worktree}; remove it with `git worktree remove --force "
                f"{res.worktree}`")
    error = res.error()
    if error is not None:  # after the report: the one `mlver: error:` line, exit 3
        raise error
    return res.exit_code


@stage.command(name="list")
@json_option
@pass_app
def stage_list(app: App, as_json: bool) -> None:
    """List the stages of mlver.yaml after templating (foreach/matrix stages by name)."""
    from mlver.ops.stage import list_stages

    with project() as repo:
        stages = list_stages(repo)
    if as_json:
        app.json({"version": 1, "stages": [{"name": s.name, "desc": s.desc, "cmd": s.cmd, "deps": list(s.deps),
                                             "outs": list(s.outs), "frozen": s.frozen} for s in stages]})
        return
    if not stages:
        app.out("No stages in mlver.yaml.")
    width = max((len(s.name) for s in stages), default=0)
    for s in stages:
        note = " (frozen)" if s.frozen else ""
        app.out(f"{s.name:<{width}}  {s.desc or ' '.join(s.outs) or s.cmd.splitlines()[0]}{note}".rstrip())


@cli.group()
def artifacts() -> None:
    """Named artifacts declared in mlver.yaml."""


@artifacts.command(name="list")
@json_option
@pass_app
def artifacts_list(app: App, as_json: bool) -> None:
    """List the artifacts of mlver.yaml (name, path, type, description, labels)."""
    from mlver.ops.stage import list_artifacts

    with project() as repo:
        found = list_artifacts(repo)
    if as_json:
        app.json({"version": 1, "artifacts": [{"name": a.name, "path": a.path, "type": a.type, "desc": a.desc,
                                                "labels": list(a.labels), "meta": a.meta} for a in found]})
        return
    if not found:
        app.out("No artifacts in mlver.yaml.")
    for a in found:
        extra = ", ".join(x for x in (a.type, a.desc, " ".join(a.labels)) if x)
        app.out(f"{a.name}  {a.path}" + (f"  ({extra})" if extra else ""))


# --- dag -------------------------------------------------------------------------------------

@cli.command()
@click.argument("targets", nargs=-1)
@json_option
@click.option("--mermaid", is_flag=True, help="Print a Mermaid flowchart.")
@pass_app
def dag(app: App, targets: tuple[str, ...], as_json: bool, mermaid: bool) -> None:
    """Show the stage graph (with TARGETS: those stages and what they depend on)."""
    from mlver.ops.common import full_stage_names
    from mlver.ops.stage import dag as do_dag

    with project() as repo:
        res = do_dag(repo, full_stage_names(repo, list(targets)) or list(targets) or None)
    if as_json:
        app.json(res.to_json())
        return
    if mermaid:
        ids = {s["name"]: f"s{i}" for i, s in enumerate(res.stages)}
        app.out("flowchart TD")
        for s in res.stages:
            app.out(f"    {ids[s['name']]}[\"{s['name']}\"]")
        for a, b in res.edges:
            app.out(f"    {ids[a]} --> {ids[b]}")
        return
    if not res.stages:
        app.out("No stages in mlver.yaml.")
        return
    from rich.tree import Tree

    console = render_console()
    shown: set[str] = set()

    def grow(node: Any, name: str) -> None:
        for child in res.children(name):
            if child in shown:
                node.add(f"{child} (see above)")
                continue
            shown.add(child)
            grow(node.add(child), child)

    for root in res.roots:
        shown.add(root)
        tree = Tree(root)
        grow(tree, root)
        console.print(tree)


# --- params / metrics ------------------------------------------------------------------------

def _render_changes(app: App, res: Any, what: str, md: bool) -> None:
    rows = [(file, key, _value(c["old"]), _value(c["new"]), _value(c["diff"]))
            for file, keys in res.changes.items() for key, c in keys.items()]
    header = ("Path", what, res.old_rev, res.new_rev, "Change")
    if md:
        for md_line in markdown_table(header, rows):
            app.out(md_line)
        return
    if not rows:
        app.out(f"No {what.lower()} changes.")
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if i >= 2 else "left")
    for r in rows:
        table.add_row(*r)
    print_table(table)


def _warn_errors(app: App, errors: Any) -> None:
    for e in errors:
        app.warn(f"skipped: {e}")


@cli.group()
def params() -> None:
    """Compare pipeline parameters across revisions."""


@params.command(name="diff")
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list parameters that did not change.")
@click.option("--md", is_flag=True, help="Print a Markdown table.")
@json_option
@pass_app
def params_diff(app: App, rev_a: str | None, rev_b: str | None, show_all: bool, md: bool, as_json: bool) -> None:
    """Parameters that differ: HEAD vs workspace, REV_A vs workspace, or REV_A vs REV_B."""
    from mlver.ops.params import params_diff as do_diff

    with project() as repo:
        res = do_diff(repo, rev_a, rev_b, include_unchanged=show_all)
    _warn_errors(app, res.errors)
    if as_json:
        app.json(res.to_json())
    else:
        _render_changes(app, res, "Param", md)


@cli.group()
def metrics() -> None:
    """Show and compare pipeline metrics."""


@metrics.command(name="show")
@click.option("-n", "count", type=click.IntRange(min=1), help="Also show the last N commits.")
@click.option("-A", "--all-commits", is_flag=True, help="Also show every commit.")
@click.option("--md", is_flag=True, help="Print a Markdown table.")
@json_option
@pass_app
def metrics_show(app: App, count: int | None, all_commits: bool, md: bool, as_json: bool) -> None:
    """Metrics of the workspace (and of commits with -n / --all-commits)."""
    from mlver.ops.metrics import metrics_show as do_show

    with project() as repo:
        res = do_show(repo, count=count, all_commits=all_commits)
    _warn_errors(app, res.errors)
    if as_json:
        app.json(res.to_json())
        return
    keys = list(dict.fromkeys(k for v in res.revisions for f in v.metrics.values() for k in f))
    rows = [(v.rev if v.rev == "workspace" else v.rev[:7], file, *(_value(vals.get(k)) for k in keys))
            for v in res.revisions for file, vals in v.metrics.items()]
    header = ("Revision", "Path", *keys)
    if md:
        for md_line in markdown_table(header, rows):
            app.out(md_line)
        return
    if not rows:
        app.out("No metrics found.")
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if i >= 2 else "left")
    for r in rows:
        table.add_row(*r)
    print_table(table)


@metrics.command(name="diff")
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list metrics that did not change.")
@click.option("--md", is_flag=True, help="Print a Markdown table.")
@json_option
@pass_app
def metrics_diff(app: App, rev_a: str | None, rev_b: str | None, show_all: bool, md: bool, as_json: bool) -> None:
    """Metrics that differ: HEAD vs workspace, REV_A vs workspace, or REV_A vs REV_B."""
    from mlver.ops.metrics import metrics_diff as do_diff

    with project() as repo:
        res = do_diff(repo, rev_a, rev_b, include_unchanged=show_all)
    _warn_errors(app, res.errors)
    if as_json:
        app.json(res.to_json())
    else:
        _render_changes(app, res, "Metric", md)


# --- check ---------------------------------------------------------------------------------

def _print_table(app: App, header: tuple[str, ...], rows: list[tuple[str, ...]], *, md: bool,
                 right_from: int = 1) -> None:
    """Rows as a Markdown table (``md``) or a rich table on stdout."""
    if md:
        for md_line in markdown_table(header, rows):
            app.out(md_line)
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if right_from <= i < len(header) - 1 else "left")
    for r in rows:
        table.add_row(*r)
    print_table(table)


def render_checks(app: App, report: Any, *, md: bool = False) -> None:
    header = ("Metric", "Value", f"Base ({_short(report.base)})", "Change", "Limits", "Result")
    rows: list[tuple[str, ...]] = []
    for o in report.outcomes:
        limits = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                           for k, v in o.check.limits.items())
        result = ("pass" if o.passed else "FAIL") + (f": {o.message}" if o.message else "")
        rows.append((o.check.metric, _value(o.value), _value(o.base_value), _value(o.change), limits, result))
    _print_table(app, header, rows, md=md)


def _short(rev: str | None) -> str:
    if rev is None:
        return "none"
    return rev[:7] if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev) else rev


@cli.command()
@click.option("--rev", metavar="REV", help="Check this commit instead of the workspace.")
@click.option("--base", metavar="REV",
              help="Compare with this revision (default: checks.base, else the merge-base with origin/HEAD, else HEAD).")
@click.option("--md", is_flag=True, help="Print a Markdown table (for a pull request).")
@json_option
@pass_app
@click.pass_context
def check(ctx: click.Context, app: App, rev: str | None, base: str | None, md: bool, as_json: bool) -> None:
    """Evaluate the checks of mlver.yaml: exit 0 when all pass, 1 when one fails, 3 when a
    metric is missing or not a number."""
    from mlver.ops.check import run_checks

    with project() as repo:
        report = run_checks(repo, rev=rev, base=base)
    if as_json:
        app.json(report.to_json())
    else:
        render_checks(app, report, md=md)
    _check_verdict(ctx, app, report, strict=True)
