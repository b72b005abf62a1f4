"""Commands: ``mlver install [--uninstall]`` (Git hooks) and the hidden ``mlver hook NAME``
group that the hook scripts (and the pre-commit framework's ``mlver-*`` hooks) call.

Under the pre-commit framework the hook arguments arrive as ``PRE_COMMIT_*``
environment variables instead of positional arguments and stdin; both are accepted.
"""

from __future__ import annotations

import os
import sys

import click

from mlver.cli import App, cli, pass_app, project
from mlver.errors import EXIT_DIFF, Problem, Unfinished

SHOW_FILES = 20  # files listed per folder before "... and N more"


_ACTIONS = {
    "installed": "Installed the {name} hook",
    "chained": "Installed the {name} hook (the existing one is kept as {name}.pre-mlver and runs first)",
    "updated": "Updated the {name} hook",
    "unchanged": "The {name} hook is already installed",
    "removed": "Removed the {name} hook",
    "restored": "Removed the {name} hook and restored the one it had kept",
    "foreign": "The {name} hook is not mlver's; left alone",
    "edited": "The {name} hook was edited after `mlver install`; left as it is (edit or remove it by hand)",
}


@cli.command()
@click.option("--uninstall", is_flag=True, help="Remove mlver's hooks and restore the ones they chained.")
@pass_app
def install(app: App, uninstall: bool) -> None:
    """Install Git hooks: pre-commit, post-checkout, post-merge, pre-push."""
    from mlver.ops.install import install as do_install

    with project() as repo:
        res = do_install(repo, uninstall=uninstall)
    for change in res.changes:
        if change.action in _ACTIONS:
            app.say(_ACTIONS[change.action].format(name=change.name))
    if uninstall and not any(c.action in ("removed", "restored") for c in res.changes):
        app.say(f"No mlver hooks in {res.hooks_dir}")
    elif not uninstall:
        app.say(f"Hooks folder: {res.hooks_dir}")


# --- the hidden group the hook scripts call ---------------------------------------------

@cli.group(hidden=True)
def hook() -> None:
    """Entry points for the Git hooks that `mlver install` writes."""


def _in_project() -> bool:
    """Outside an mlver project (a branch from before `mlver init`) the hooks do nothing:
    they must not break Git where mlver is not used."""
    from mlver.errors import NotARepoError
    from mlver.repo import Repo

    try:
        Repo.find(".")
    except NotARepoError:
        return False
    return True


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@hook.command("pre-commit")
@click.argument("filenames", nargs=-1)  # passed by the pre-commit framework; not used
@pass_app
def pre_commit(app: App, filenames: tuple[str, ...]) -> None:
    """Fail when workspace data differs from the pointers and lock being committed."""
    from mlver.ops.common import LOCK_FILE
    from mlver.ops.hook import pre_commit as do_pre_commit

    if not _in_project():
        return
    with project() as repo:
        res = do_pre_commit(repo, progress=app.progress())
    if res.ok:
        return
    lines, unstaged = [], []
    for s in res.stale:
        lines.append(s.output.path)
        lines.extend(f"    {f.state}: {f.path}" for f in s.files[:SHOW_FILES])
        if len(s.files) > SHOW_FILES:
            lines.append(f"    ... and {len(s.files) - SHOW_FILES} more")
        if s.recorded_unstaged:
            unstaged.append(s.output.pointer_file or LOCK_FILE)
    unstaged = sorted(set(unstaged))
    hints = []
    if unstaged:
        hints.append("already recorded in the workspace; stage the mlver files: git add " + " ".join(unstaged))
    if any(not s.recorded_unstaged and s.output.stage is None for s in res.stale):
        hints.append("run `mlver commit` to record the data and `git add` the changed pointers "
                     "(or `mlver checkout` to restore the recorded data)")
    if any(not s.recorded_unstaged and s.output.stage is not None for s in res.stale):
        hints.append(f"stage outputs come from `mlver repro`: run it and `git add {LOCK_FILE}` "
                     "(or `mlver checkout` to restore the recorded outputs)")
    raise Unfinished([Problem("tracked data differs from the pointers or lock being committed", tuple(lines),
                              "\n".join(hints) or None)], exit_code=EXIT_DIFF)


def _render_sync(app: App, res) -> None:
    """A hook always exits 0 after a sync: what was kept or is missing is listed."""
    for w in res.warnings:
        app.warn(w)
    co = res.checkout
    if res.fetched:
        app.say(f"mlver: fetched {res.fetched} object(s) from the default remote")
    if co.changed:
        app.say(f"mlver: data synced ({len(co.added)} added, {len(co.modified)} modified, "
                f"{len(co.deleted)} removed)")
    fetch_hint = "(or `mlver config hooks.fetch true` to fetch in this hook)"
    for heading, items, hint in (
        ("kept local changes that are not in the cache (`mlver commit` records them, "
         "`mlver checkout --force` replaces them)", co.kept, None),
        ("kept data whose pointer is gone (its content is not in the cache, or changed since "
         "mlver placed it; delete it or `mlver add` it)", co.orphaned, None),
        ("corrupt objects in the cache (moved to quarantine), so not checked out",
         [f"{c.path} ({c.digest})" for c in co.corrupt], f"run `mlver pull` to fetch good copies {fetch_hint}"),
        ("not in the cache, so not checked out", co.missing, f"run `mlver pull` to fetch them {fetch_hint}"),
    ):
        if not items:
            continue
        click.echo(f"mlver: {heading}:", err=True)  # a hook reports and exits 0 (SPEC: hooks keep and list)
        for item in items:
            click.echo(f"    {item}", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)


@hook.command("post-checkout")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.argument("flag", required=False)
@pass_app
def post_checkout(app: App, old: str | None, new: str | None, flag: str | None) -> None:
    """Sync the data whose pointers changed between the two commits of a checkout."""
    from mlver.ops.hook import post_checkout as do_post_checkout

    old = old or _env("PRE_COMMIT_FROM_REF")
    new = new or _env("PRE_COMMIT_TO_REF")
    flag = flag or _env("PRE_COMMIT_CHECKOUT_TYPE")
    if not old or not new:
        raise click.UsageError("needs the previous and the new commit (Git passes them to the hook)")
    if not _in_project():
        return
    with project() as repo:
        res = do_post_checkout(repo, old, new, flag == "1", progress=app.progress())
    _render_sync(app, res)


@hook.command("post-merge")
@click.argument("squash", required=False)
@pass_app
def post_merge(app: App, squash: str | None) -> None:
    """Sync the data whose pointers changed in a merge (`git pull` too)."""
    from mlver.ops.hook import post_merge as do_post_merge

    squash = squash or _env("PRE_COMMIT_IS_SQUASH_MERGE")
    if not _in_project():
        return
    with project() as repo:
        res = do_post_merge(repo, squash=squash == "1", progress=app.progress())
    _render_sync(app, res)


@hook.command("sync")
@pass_app
@click.pass_context
def sync(ctx: click.Context, app: App) -> None:
    """post-checkout or post-merge, told apart by the pre-commit framework's environment
    (its `mlver-checkout` hook serves both stages with one entry)."""
    if _env("PRE_COMMIT_CHECKOUT_TYPE"):
        ctx.invoke(post_checkout)
    elif _env("PRE_COMMIT_IS_SQUASH_MERGE"):
        ctx.invoke(post_merge)
    else:
        raise click.UsageError("run by the pre-commit framework's post-checkout or post-merge stage only")


def _push_input() -> str:
    """The refs Git writes on stdin; under the pre-commit framework (which has read stdin
    already) they come from PRE_COMMIT_* variables."""
    text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if text.strip():
        return text
    local = _env("PRE_COMMIT_TO_REF") or _env("PRE_COMMIT_LOCAL_BRANCH")
    if not local:
        return ""
    zero = "0" * 40
    return " ".join([_env("PRE_COMMIT_LOCAL_BRANCH") or local, local,
                     _env("PRE_COMMIT_REMOTE_BRANCH") or local, _env("PRE_COMMIT_FROM_REF") or zero])


@hook.command("pre-push")
@click.argument("remote_name", required=False)
@click.argument("remote_url", required=False)
@pass_app
def pre_push(app: App, remote_name: str | None, remote_url: str | None) -> None:
    """Push the data of the commits being pushed to the default mlver remote."""
    from mlver.ops.hook import parse_push_refs, pre_push as do_pre_push

    refs = parse_push_refs(_push_input())
    if not _in_project():
        return
    with project() as repo:
        res = do_pre_push(repo, refs, git_remote=remote_name or _env("PRE_COMMIT_REMOTE_NAME"),
                          progress=app.progress())
    if res.remote is None:
        if any(not set(r.local_sha) <= {"0"} for r in refs):
            app.warn("no default mlver remote: the data of these commits was not pushed "
                     "(add one with `mlver remote add -d NAME URL`)")
        return
    if res.pushed:
        app.say(f"mlver: pushed {res.pushed} object(s) to {res.remote}")
    elif res.commits:
        app.say(f"mlver: data already on {res.remote}")
    if res.missing:
        app.warn(f"not in the cache, so not pushed to {res.remote} (fetch them with `mlver pull` if "
                 "the remote lacks them too):")
        for p in res.missing:
            click.echo(f"    {p}", err=True)
