"""Commands that share data through remotes: remote (add, modify, list, remove, default),
push, fetch, pull, gc and fsck. Each parses, calls one operation in ``mlver.ops`` and
renders its result; operations are imported inside the commands so that ``mlver --help``
never imports fsspec, GitPython or YAML."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from mlver.cli import App, cli, pass_app, project
from mlver.errors import EXIT_DIFF, Problem, Unfinished, UsageError

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


# --- remote ------------------------------------------------------------------------

@cli.group()
def remote() -> None:
    """Configure remote storage (folders, s3://, gs://, az://, ssh://, http(s)://)."""


def _level(local: bool, global_: bool) -> str:
    if local and global_:
        raise UsageError("--local and --global cannot be used together")
    return "local" if local else "global" if global_ else "project"


@remote.command("add")
@click.option("-d", "--default", "default", is_flag=True, help="Also make it the default remote.")
@click.option("-f", "--force", is_flag=True, help="Replace a remote of the same name.")
@click.option("--local", is_flag=True, help="Write to .mlver/config.local (this clone only).")
@click.argument("name")
@click.argument("url")
@pass_app
def remote_add(app: App, default: bool, force: bool, local: bool, name: str, url: str) -> None:
    """Add remote NAME at URL (a folder, s3://bucket/prefix, ssh://user@host/path, ...)."""
    from mlver.ops import remote_config as ops

    with project(check_config=False) as repo:
        path, url = ops.add(repo, name, url, default=default, force=force, level="local" if local else "project")
    app.say(f"Added remote '{name}' -> {ops.masked_url(url)} in {path}{' (default)' if default else ''}")


@remote.command("modify")
@click.option("--local", is_flag=True, help="Write to .mlver/config.local (credentials go here).")
@click.option("--global", "global_", is_flag=True, help="Write to your user config (~/.config/mlver/config).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
@click.argument("name")
@click.argument("key")
@click.argument("value", required=False)
@pass_app
def remote_modify(app: App, local: bool, global_: bool, unset: bool, name: str, key: str, value: str | None) -> None:
    """Set option KEY of remote NAME (endpoint_url, region, profile, user, keyfile, ...)."""
    from mlver.ops import remote_config as ops

    if value is None and not unset:
        raise click.UsageError("missing argument 'VALUE' (or use --unset)")
    if value is not None and unset:
        raise click.UsageError("--unset takes no VALUE")
    with project(check_config=False) as repo:
        path = ops.modify(repo, name, key, value, level=_level(local, global_))
    app.say(f"{'Unset' if unset else 'Set'} remote.{name}.{key} in {path}")


@remote.command("list")
@json_option
@pass_app
def remote_list(app: App, as_json: bool) -> None:
    """List remotes (credentials are masked)."""
    from mlver.ops import remote_config as ops

    with project() as repo:
        infos = ops.list_remotes(repo)
    if as_json:
        app.json({"version": 1, "remotes": [i.to_json() for i in infos]})
        return
    if not infos:
        app.say("No remotes (`mlver remote add -d NAME URL` to add one).")
    for i in infos:
        note = "" if i.installed else f"  [missing: pip install \"mlver[{i.extra}]\"]"
        app.out(f"{i.name}\t{i.url}{'  (default)' if i.default else ''}{note}")


@remote.command("remove")
@click.argument("name")
@pass_app
def remote_remove(app: App, name: str) -> None:
    """Remove remote NAME from the config (the stored data is not touched)."""
    from mlver.ops import remote_config as ops

    with project(check_config=False) as repo:
        ops.remove(repo, name)
    app.say(f"Removed remote '{name}'")


@remote.command("default")
@click.option("--local", is_flag=True, help="Set it in .mlver/config.local (this clone only).")
@click.option("--unset", is_flag=True, help="Clear the default.")
@click.argument("name", required=False)
@pass_app
def remote_default(app: App, local: bool, unset: bool, name: str | None) -> None:
    """Make NAME the default remote (without NAME: print the default)."""
    from mlver.ops import remote_config as ops

    level = "local" if local else "project"
    with project(check_config=False) as repo:
        current = ops.get_default(repo)
        if unset:
            ops.set_default(repo, None, level=level)
        elif name is not None:
            ops.set_default(repo, name, level=level)
    if unset:
        app.say("Cleared the default remote")
    elif name is None:
        if current is None:
            from mlver.errors import MlverError

            raise MlverError("no default remote is set", hint="`mlver remote default NAME`")
        app.out(current)
    else:
        app.say(f"Default remote: {name}")


# --- push / fetch / pull -----------------------------------------------------------

def transfer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.argument("targets", nargs=-1),
        click.option("-r", "--remote", help="Remote to use (default: core.remote)."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel transfers (default 4 per CPU, at least 8)."),
        click.option("--rev", help="Also the outputs recorded at this Git revision."),
        click.option("-a", "--all-branches", is_flag=True, help="Also every local branch."),
        click.option("-T", "--all-tags", is_flag=True, help="Also every tag."),
        click.option("-A", "--all-commits", is_flag=True, help="Also every commit reachable from a ref."),
        click.option("--run-cache", is_flag=True, help="Also the run cache's entries and their objects."),
        json_option,
    ]):
        f = opt(f)
    return f


def _scope(rev: str | None, all_branches: bool, all_tags: bool, all_commits: bool):
    from mlver.ops.scope import Scope

    return Scope.for_transfer(rev=rev, all_branches=all_branches, all_tags=all_tags, all_commits=all_commits)


def _render_transfer(app: App, res, verb: str, preposition: str) -> list[Problem]:
    """Summary on stderr; returns the missing and corrupt objects, which the caller
    raises as one error."""
    from mlver.cli.render import human_size

    if res.created:
        app.say(f"Created the folder {res.created} for remote '{res.remote}'")
    if res.transferred or not res.ok:
        here = res.transferred - sum(res.others.values())
        where = f"'{res.remote}'" + "".join(f", {n} {preposition} '{name}'" for name, n in sorted(res.others.items()))
        app.say(f"{here if res.others else res.transferred} object(s) {verb} {preposition} {where} "
                f"({human_size(res.bytes)}), {res.already} already there")
    else:
        app.say(f"Everything is up to date with '{res.remote}' ({res.already} object(s) in scope)")
    if res.runs:
        app.say(f"{res.runs} run-cache entr{'y' if res.runs == 1 else 'ies'} {verb}")
    problems = []
    if res.missing:
        where = "in the cache" if verb == "pushed" else f"on remote '{res.remote}'"
        problems.append(Problem(f"{len(res.missing)} object(s) are not {where}, so not {verb}",
                                tuple(f"{m.path} ({m.digest})" for m in res.missing),
                                "fetch them first (`mlver fetch`), or re-create them" if verb == "pushed"
                                else "push them from a clone that has them"))
    if res.corrupt and verb == "pushed":
        problems.append(Problem(f"{len(res.corrupt)} object(s) in the cache are corrupt (their bytes do not match "
                                "their digest), so not pushed; they were moved to the cache's quarantine/",
                                tuple(f"{c.path} ({c.digest})"
                                      + (f" [{c.message}]" if c.message.startswith("left in place") else "")
                                      for c in res.corrupt),
                                "`mlver pull` fetches a good copy where a remote has one; else re-create the data "
                                "(`mlver add`, `mlver repro`)"))
    elif res.corrupt:
        problems.append(Problem(f"{len(res.corrupt)} object(s) on remote '{res.remote}' are corrupt and were "
                                "not stored", tuple(f"{c.path} ({c.digest})" for c in res.corrupt),
                                f"run `mlver fsck -r {res.remote}`, then push a good copy from a clone that "
                                "has one"))
    return problems


@cli.command()
@transfer_options
@pass_app
def push(app: App, targets: tuple[str, ...], remote: str | None, jobs: int | None,
         rev: str | None, all_branches: bool, all_tags: bool, all_commits: bool, run_cache: bool,
         as_json: bool) -> None:
    """Send the objects the remote lacks."""
    from mlver.ops.transfer import push as do_push

    with project(lock="push") as repo:
        res = do_push(repo, list(targets), remote=remote, jobs=jobs,
                      scope=_scope(rev, all_branches, all_tags, all_commits), run_cache=run_cache,
                      progress=app.progress())
    if as_json:
        app.json(res.to_json())
    problems = _render_transfer(app, res, "pushed", "to")
    if problems:
        raise Unfinished(problems)


@cli.command()
@transfer_options
@pass_app
def fetch(app: App, targets: tuple[str, ...], remote: str | None, jobs: int | None,
          rev: str | None, all_branches: bool, all_tags: bool, all_commits: bool, run_cache: bool,
          as_json: bool) -> None:
    """Bring the objects the cache lacks (the workspace is not touched)."""
    from mlver.ops.transfer import fetch as do_fetch

    with project(lock="fetch") as repo:
        res = do_fetch(repo, list(targets), remote=remote, jobs=jobs,
                       scope=_scope(rev, all_branches, all_tags, all_commits), run_cache=run_cache,
                       progress=app.progress())
    if as_json:
        app.json(res.to_json())
    problems = _render_transfer(app, res, "fetched", "from")
    if problems:
        raise Unfinished(problems)


@cli.command()
@transfer_options
@click.option("-f", "--force", is_flag=True, help="Replace local changes (their content is cached first).")
@pass_app
def pull(app: App, targets: tuple[str, ...], remote: str | None, jobs: int | None,
         rev: str | None, all_branches: bool, all_tags: bool, all_commits: bool, run_cache: bool,
         as_json: bool, force: bool) -> None:
    """Fetch, then check out: make the workspace match the pointers."""
    from mlver.cli.data import render_checkout
    from mlver.ops.transfer import pull as do_pull

    with project(lock="pull") as repo:
        res = do_pull(repo, list(targets), remote=remote, jobs=jobs,
                      scope=_scope(rev, all_branches, all_tags, all_commits), run_cache=run_cache,
                      force=force, progress=app.progress())
    if as_json:
        app.json(res.to_json())
    problems = _render_transfer(app, res.fetch, "fetched", "from")
    for c in res.repaired:
        app.warn(f"{c.path}: its object {c.digest} in the cache was corrupt (moved to quarantine); "
                 "checked out a good copy fetched again")
    # what the fetch could not bring is listed once: the checkout names only the rest;
    # with --json the checkout's lists are in the JSON and only its problems go to stderr
    told = {i.path for i in res.fetch.missing + res.fetch.corrupt}
    problems += render_checkout(app, res.checkout, already_listed=told, changes=not as_json)
    if problems:
        raise Unfinished(problems)


# --- gc ----------------------------------------------------------------------------

@cli.command()
@click.option("-w", "--workspace", is_flag=True, help="Keep only what the workspace references.")
@click.option("-a", "--all-branches", is_flag=True, help="Keep what local and remote-tracking branches reference.")
@click.option("-T", "--all-tags", is_flag=True, help="Keep what tags reference.")
@click.option("-A", "--all-commits", is_flag=True, help="Keep what any commit reachable from a ref references.")
@click.option("--all-experiments", is_flag=True, help="Keep what experiments and queued ones (refs/exps) reference.")
@click.option("-c", "--cloud", is_flag=True, help="Also collect on the remote.")
@click.option("-r", "--remote", help="The remote for --cloud (default: core.remote).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel requests to the remote.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
@click.option("-f", "--force", is_flag=True, help="Delete without asking.")
@click.option("--include-unpushed", is_flag=True,
              help="Also delete committed data that is on no remote (its last copy).")
@click.option("--no-run-cache", "drop_run_cache", is_flag=True,
              help="Also delete objects only the run cache names, and its entries that name them.")
@json_option
@pass_app
def gc(app: App, workspace: bool, all_branches: bool, all_tags: bool, all_commits: bool, all_experiments: bool,
       cloud: bool,
       remote: str | None, jobs: int | None, dry_run: bool, force: bool, include_unpushed: bool,
       drop_run_cache: bool, as_json: bool) -> None:
    """Delete objects that nothing in scope references.

    With no scope flag, gc keeps what the workspace, HEAD, every local branch, every
    remote-tracking branch, every tag, the stash and every experiment reference. Scope flags replace that
    default by the union of what they name; the workspace is always kept. Whatever the
    scope, data that a commit references and the default remote does not hold is kept
    (its last copy) unless --include-unpushed; with --cloud it leaves the remote only
    while the cache keeps it, and only remote objects older than gc.grace (default 1d)
    are deleted. Objects the run cache names are kept unless --no-run-cache.
    """
    from mlver.cli.render import human_size
    from mlver.ops.gc import UNPUSHED, plan_gc, run_gc
    from mlver.ops.scope import Scope

    if remote and not cloud:
        raise click.UsageError("-r/--remote needs --cloud")
    scope = Scope.for_gc(workspace=workspace, all_branches=all_branches, all_tags=all_tags, all_commits=all_commits,
                         all_experiments=all_experiments, run_cache=not drop_run_cache)
    with project(lock="gc") as repo, repo.lock("gc", name="cache.lock"):  # not while experiments run
        if repo.scm_root is None and not (workspace or all_branches or all_tags or all_commits or all_experiments):
            scope = Scope.for_gc(workspace=True, run_cache=not drop_run_cache)  # no Git: the workspace is all there is
        plan = plan_gc(repo, scope=scope, cloud=cloud, remote=remote, jobs=jobs,
                       include_unpushed=include_unpushed, progress=app.progress())
        for w in plan.warnings:
            app.warn(w)
        for line in _gc_kept(plan, human_size):
            app.say(line)
        if dry_run:
            if as_json:
                app.json(plan.to_json())
                return
            for ref, size in plan.local:
                app.out(f"cache\t{ref.relpath}\t{size}")
            for ref, size in plan.remote:
                app.out(f"remote:{plan.remote_name}\t{ref.relpath}\t{size}")
            for ref, size in plan.packs.leaving:
                app.out(f"remote:{plan.remote_name}\tpacked {ref.relpath}\t{size}")
            for ref, size in plan.kept_unpushed:
                app.out(f"kept: {UNPUSHED}\tcache\t{ref.relpath}\t{size}\t{plan.unpushed_paths[ref]}")
            for ref, size in plan.remote_unpushed:
                app.out(f"kept: not in the cache\tremote:{plan.remote_name}\t{ref.relpath}\t{size}")
            for ref, size in plan.remote_recent:
                app.out(f"kept: younger than gc.grace\tremote:{plan.remote_name}\t{ref.relpath}\t{size}")
            app.say(_gc_summary(plan, human_size, "Would delete"))
            return
        if plan.empty:
            if plan.remote_name is not None:
                run_gc(repo, plan, progress=app.progress())  # still sweeps the remote's day-old temporaries
            if as_json:
                app.json(plan.to_json())
            app.say("Nothing to delete.")
            return
        if not force:
            if not sys.stdin.isatty():
                raise UsageError(f"gc would delete {_gc_counts(plan, human_size)}; refusing without -f "
                                 "when not on a terminal", hint="review with `mlver gc --dry-run`, then add -f")
            if not click.confirm(f"Delete {_gc_counts(plan, human_size)}?", default=False, err=True):
                app.say("Nothing deleted.")
                return
        res = run_gc(repo, plan, progress=app.progress())
    if as_json:
        app.json(plan.to_json())
    app.say(f"Deleted {res.removed} object(s) ({human_size(res.bytes)}) from the cache"
            + (f", {res.remote_removed} ({human_size(res.remote_bytes)}) from remote '{res.remote_name}'"
               if res.remote_name else "")
            + (f", and {res.runs_removed} run-cache entr{'y' if res.runs_removed == 1 else 'ies'} whose outputs "
               "went with them" if res.runs_removed else ""))


def _gc_counts(plan, human_size) -> str:
    text = f"{len(plan.local)} object(s) ({human_size(plan.bytes)}) from the cache"
    if plan.remote_name is not None:
        text += f" and {plan.remote_objects} ({human_size(plan.remote_bytes)}) from remote '{plan.remote_name}'"
    return text


def _gc_summary(plan, human_size, verb: str) -> str:
    return f"{verb} {_gc_counts(plan, human_size)}; keeping {plan.kept} in the cache" + (
        f" and {plan.remote_kept} on the remote" if plan.remote_name is not None else "")


def _gc_kept(plan, human_size) -> list[str]:
    """What stays for the safety rules rather than the scope (SPEC "gc scope")."""
    from mlver.ops.gc import UNPUSHED, sized

    lines: list[str] = []
    if plan.fetched_experiments:
        lines.append(f"fetched {len(plan.fetched_experiments)} experiment ref(s) teammates shared on the Git "
                     "remote(s), so gc keeps their data")
    if plan.shared_with:
        lines.append(f"kept: what {len(plan.shared_with)} other project(s) sharing this cache reference: "
                     + ", ".join(plan.shared_with))
    hint = " (--include-unpushed deletes them)"
    if plan.kept_unpushed:
        n, b = sized(plan.kept_unpushed)
        lines.append(f"kept: {UNPUSHED}: {n} object(s) ({human_size(b)}) in the cache that commits reference{hint}")
    if plan.remote_unpushed:
        n, b = sized(plan.remote_unpushed)
        lines.append(f"kept: not in the cache: {n} object(s) ({human_size(b)}) on remote '{plan.remote_name}' "
                     f"that commits reference{hint}")
    if plan.remote_recent:
        n, b = sized(plan.remote_recent)
        lines.append(f"kept: younger than gc.grace: {n} object(s) ({human_size(b)}) on remote "
                     f"'{plan.remote_name}'")
    return lines


# --- fsck --------------------------------------------------------------------------

@cli.command()
@click.option("-r", "--remote", help="Also check the objects on this remote.")
@click.option("-c", "--cloud", is_flag=True, help="Also check the default remote.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel checks.")
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="On the remote, check N packed objects picked at random instead of all.")
@json_option
@pass_app
@click.pass_context
def fsck(ctx: click.Context, app: App, remote: str | None, cloud: bool, jobs: int | None, sample: int | None,
         as_json: bool) -> None:
    """Re-hash stored objects; report and quarantine corrupt ones (locally, and on the remote)."""
    from mlver.ops.fsck import fsck as do_fsck

    if sample is not None and remote is None and not cloud:
        raise click.UsageError("--sample needs -r REMOTE or --cloud")
    with project(lock="fsck") as repo:
        res = do_fsck(repo, remote=remote, cloud=cloud, jobs=jobs, sample=sample, progress=app.progress())
    for w in res.warnings:
        app.warn(w)
    if as_json:
        app.json(res.to_json())
    else:
        for c in res.corrupt:
            if c.pack:
                note = f" (in pack {c.pack}" + (f", {c.quarantined})" if c.quarantined else ")")
            else:
                note = f" (moved to {c.quarantined})" if c.quarantined else ""
            app.out(f"corrupt\t{c.where}\t{c.digest}{note}")
    if res.corrupt:
        local = any(c.quarantined and c.where == "cache" for c in res.corrupt)
        remote_q = any(c.quarantined and c.where != "cache" for c in res.corrupt)
        advice = (["`mlver pull` fetches good copies of the local ones"] if local else []) + (
            ["`mlver push` from a clone that has good copies sends the remote ones again"] if remote_q else [])
        app.say(f"{len(res.corrupt)} corrupt object(s) among {res.checked} checked"
                + (f"; {'; '.join(advice)}" if advice else ""))
        ctx.exit(EXIT_DIFF)
    app.say(f"Checked {res.checked} object(s): all good")
