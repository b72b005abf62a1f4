"""Commands of the core data loop: init, import-dvc, add, status, commit, checkout, diff,
list, ls, unprotect, remove, move, config, doctor."""

from __future__ import annotations

from typing import Collection

import click

from mlver.cli import App, cli, pass_app, project
from mlver.errors import EXIT_DIFF, Problem, Unfinished

MAX_LISTED = 20  # more changed files than this are summarised in one line
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
LINK_NOTE = ("files are linked read-only from the cache ({}); use `mlver unprotect PATH` "
             "before editing one")


def _link_note(app: App, kinds: set[str]) -> None:
    linked = sorted(k for k in kinds if k in ("hardlink", "symlink"))
    if linked:
        app.say(LINK_NOTE.format(", ".join(linked)))


@cli.command()
@click.option("--no-scm", is_flag=True, help="Use mlver outside a Git repository.")
@pass_app
def init(app: App, no_scm: bool) -> None:
    """Create .mlver/ in the current Git repository."""
    from mlver.ops.init import init as do_init

    res = do_init(".", no_scm=no_scm)
    if not res.created:
        app.say(f"mlver is already initialised in {res.root}")
        return
    app.say(f"Initialised mlver in {res.root}")
    if res.scm:
        app.say("Staged .mlver/config and .mlver/.gitignore; commit them: git commit -m \"Initialise mlver\"")


@cli.command(name="import-dvc")
@click.option("--dry-run", is_flag=True, help="Print the whole plan; change nothing.")
@click.option("--keep-dvc", is_flag=True, help="Leave DVC's files in place (DVC keeps working).")
@json_option
@pass_app
def import_dvc(app: App, dry_run: bool, keep_dvc: bool, as_json: bool) -> None:
    """Convert the DVC project here into an mlver project (staged, not committed)."""
    from mlver.ops.import_dvc import import_dvc as do_import

    res = do_import(".", dry_run=dry_run, keep_dvc=keep_dvc)
    for w in res.plan.warnings:
        app.warn(w)
    if as_json:
        app.json(res.to_json())
        return
    _render_import(app, res)


def _render_import(app: App, res) -> None:
    import os

    p = res.plan
    say = app.report
    say(f"{'Plan' if res.dry_run else 'Imported'}: the DVC project in {p.root}")
    if p.init:
        say(f"  {'create' if res.dry_run else 'created'} .mlver/ (mlver init)")
    for w in p.writes:
        say(f"  {'write' if res.dry_run else 'wrote'} {w.path}  (from {w.source})")
    for rel in p.kept:
        say(f"  {'keep' if res.dry_run else 'kept'} {rel}  (committed mlver record, newer than DVC's; not overwritten)")
    for r in p.remotes:
        opts = ", ".join([f"{k}={v}" for k, v in sorted(r.options.items())] + [f"{k} (local)" for k in sorted(r.local)])
        default = " (default)" if r.default else " (default here: .mlver/config.local)" if r.local_default else ""
        say(f"  remote {r.name}{default}: {r.url}" + (f" [{opts}]" if opts else ""))
    if res.dry_run:
        say(f"  link {len(p.objects)} objects of DVC's cache into mlver's cache (no re-hash, no upload)")
    else:
        o = res.objects
        say(f"  cache: {o.linked} objects linked, {o.copied} copied, {o.present} already there (no re-hash, no upload)")
        if res.memo:
            say(f"  {res.memo} files' digests taken from DVC's state database (not read again)")
    if p.removed and not p.keep_dvc:
        say(f"  git rm {len(p.removed)} DVC files: " + " ".join(p.removed[:8]) + (" ..." if len(p.removed) > 8 else ""))
    for imp in p.imported:
        say(f"  {imp.path}: {imp.source.describe()}; now plain tracked data: the next `mlver push` uploads it")
    if p.unconverted:
        say(f"Not converted ({len(p.unconverted)}):")
        for u in p.unconverted:
            say(f"  {u.where}: {u.what}")
            say(f"      -> {u.todo}")
    if res.dry_run:
        app.say("Dry run: nothing was changed.")
    else:
        shown = os.path.relpath(p.root)
        app.say("Everything is staged and nothing committed: review with `git diff --cached --stat`"
                + (f" in {shown}" if shown != "." else "") + ", then `git commit`.")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--desc", help="A description kept in the pointer file.")
@pass_app
def add(app: App, paths: tuple[str, ...], desc: str | None) -> None:
    """Track data files or folders: cache them and write PATH.mlver."""
    from mlver.ops.add import add as do_add

    with project(lock="add") as repo:
        res = do_add(repo, list(paths), desc=desc, progress=app.progress())
    for p in res.added:
        app.say(f"Added {p}")
    for p in res.unchanged:
        app.say(f"Unchanged {p}")
    _link_note(app, res.link_types)
    if res.staged:
        app.say("Staged: " + " ".join(res.staged))
    elif repo.scm_root:
        app.git_add_hint(repo.root, res.pointers)


def _render_status(app: App, res) -> None:
    if res.clean:
        app.report("Data and pipelines are up to date.")
        if res.remote:  # asked about a remote: say what was compared (as `dvc status -c` does)
            app.report(f"Remote '{res.remote['name']}': all {res.remote['in_sync']} object(s) in sync.")
        return
    for st in res.stages:
        if st.changed:
            app.out(f"{st.name}: changed")
            for r in st.reasons:
                app.out(f"    {r}")
    for o in res.differing:
        label = o.state.replace("_", " ")
        app.out(f"{o.output.path}: {label}")
        for f in o.files:
            app.out(f"    {f.state}: {f.path}")
    if res.remote:
        for key, label in (("local_only", "only in the cache (not pushed)"), ("remote_only", "only on the remote"),
                           ("missing", "missing everywhere")):
            items = res.remote.get(key) or []
            if items:
                app.out(f"{len(items)} object(s) {label}:")
                for item in items:
                    app.out(f"    {item['path']}")


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--check", is_flag=True, help="Exit 1 when anything differs.")
@click.option("-r", "--remote", help="Also compare the cache with this remote.")
@click.option("--cloud", is_flag=True, help="Compare with the default remote.")
@json_option
@pass_app
@click.pass_context
def status(ctx: click.Context, app: App, targets: tuple[str, ...], check: bool, remote: str | None,
           cloud: bool, as_json: bool) -> None:
    """Show how workspace data differs from the pointers and the lock."""
    from mlver.ops.status import status as do_status

    with project() as repo:
        res = do_status(repo, list(targets), remote=remote, cloud=cloud, progress=app.progress())
    if as_json:
        app.json(res.to_json())
    else:
        _render_status(app, res)
    if check and not res.clean:
        ctx.exit(EXIT_DIFF)


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("-m", "--message", help="Also stage the changed mlver files and run `git commit -m MESSAGE`.")
@click.option("-f", "--force", is_flag=True,
              help="Record stages whose command, dependencies or parameters changed, without running them.")
@pass_app
def commit(app: App, targets: tuple[str, ...], message: str | None, force: bool) -> None:
    """Record the workspace's current data into pointers and mlver.lock.

    A stage whose command, dependencies or parameters differ from mlver.lock (or that
    never ran) is refused, and nothing is recorded: run it with `mlver repro`, or record
    its outputs as they are with --force."""
    from mlver.ops.commit import commit as do_commit

    with project(lock="commit") as repo:
        res = do_commit(repo, list(targets), message=message, force=force, progress=app.progress())
    for name, reasons in res.forced:
        app.warn(f"recorded stage '{name}' without running it (--force), although it is not up to date: "
                 + "; ".join(reasons))
    for p in res.recorded:
        app.say(f"Recorded {p}")
    for name in res.stages:
        app.say(f"Recorded stage '{name}' in mlver.lock")
    for p in res.missing:
        app.warn(f"{p} is missing from the workspace; its pointer was left as it is")
    if message is not None:
        if res.git_commit:
            app.say(f"Committed {res.git_commit[:10]}: {message}")
        else:
            app.say("Nothing to commit: data matches the pointers and nothing is staged.")
    elif not res.recorded and not res.stages:
        app.say("Nothing to record: data matches the pointers.")
    if res.restored:  # the pointer was right, the cache had lost its object: stored again from the workspace
        app.say(f"Stored again what the cache lacked: {', '.join(res.restored)}")
    elif res.staged:
        app.say("Staged: " + " ".join(res.staged))
    elif res.files and repo.scm_root:
        app.git_add_hint(repo.root, res.files)


def render_checkout(app: App, res, already_listed: Collection[str] = (), *,
                    changes: bool = True) -> list[Problem]:
    """Print what a checkout did (``changes``: the added/modified/deleted lines, left out
    when JSON carries them); return what it could not do (kept or missing data), which
    the caller raises as one error. ``already_listed``: missing paths an earlier problem
    named (pull's fetch)."""
    if not changes:
        pass
    elif len(res.added) + len(res.modified) + len(res.deleted) > MAX_LISTED:
        app.report(f"{len(res.added)} added, {len(res.modified)} modified, {len(res.deleted)} deleted")
    else:
        for letter, paths in (("A", res.added), ("M", res.modified), ("D", res.deleted)):
            for p in paths:
                app.report(f"{letter}       {p}")
    if changes and res.relinked:  # same content, link re-made (--relink): not a modification
        app.report(f"{len(res.relinked)} file(s) relinked ({', '.join(sorted(res.link_types))})")
    if changes:
        _link_note(app, res.link_types)
    if res.not_pushed:
        app.say("Not checked out, never pushed (`push: false`; `mlver repro` makes them): "
                + ", ".join(res.not_pushed))
    problems = []
    if res.corrupt:
        problems.append(Problem("corrupt objects in the cache (their bytes do not match their digest) were moved "
                                "to quarantine, so not checked out",
                                tuple(f"{c.path} ({c.digest})" for c in res.corrupt),
                                "run `mlver pull` to fetch good copies from a remote"))
    if res.kept:
        problems.append(Problem("kept local changes that are not in the cache (use --force to replace them, "
                                "or `mlver commit` to record them)", tuple(res.kept)))
    if res.orphaned:
        problems.append(Problem("kept data whose pointer is gone: its content is not in the cache, or changed "
                                "since mlver placed it", tuple(res.orphaned),
                                "delete it if nothing needs it, or track it again with `mlver add`"))
    unlisted = [p for p in res.missing if p not in already_listed]
    if unlisted:
        problems.append(Problem("not in the cache, so not checked out", tuple(unlisted),
                                "run `mlver pull` to fetch them from a remote"))
    return problems


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Replace local changes (their content is cached first).")
@click.option("--relink", is_flag=True, help="Re-create every file with the configured link type.")
@click.option("--rev", help="Bring TARGETS' pointers and data from this Git revision.")
@pass_app
def checkout(app: App, targets: tuple[str, ...], force: bool, relink: bool, rev: str | None) -> None:
    """Make workspace data match the pointers (after git checkout)."""
    from mlver.ops.checkout import checkout as do_checkout

    with project(lock="checkout") as repo:
        res = do_checkout(repo, list(targets), force=force, relink=relink, rev=rev, progress=app.progress())
    problems = render_checkout(app, res)
    if problems:
        raise Unfinished(problems)


@cli.command()
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@json_option
@pass_app
def diff(app: App, rev_a: str | None, rev_b: str | None, as_json: bool) -> None:
    """Data files added, modified, deleted or renamed between revisions."""
    from mlver.ops.diff import diff as do_diff

    with project() as repo:
        res = do_diff(repo, rev_a, rev_b)
    if as_json:
        app.json(res.to_json())
        return
    if res.empty:
        app.out("No data changes.")
        return
    for title, items in (("Added", res.added), ("Deleted", res.deleted)):
        if items:
            app.out(f"{title}:")
            for i in items:
                app.out(f"    {i['path']}")
    if res.modified:
        app.out("Modified:")
        for i in res.modified:
            app.out(f"    {i['path']}")
    if res.renamed:
        app.out("Renamed:")
        for i in res.renamed:
            app.out(f"    {i['old_path']} -> {i['path']}")
    app.out(f"files: {len(res.added)} added, {len(res.deleted)} deleted, {len(res.modified)} modified, "
            f"{len(res.renamed)} renamed")


@cli.command(name="list")
@json_option
@pass_app
def list_(app: App, as_json: bool) -> None:
    """Tracked outputs with kind, size, files and state."""
    from mlver.cli.render import human_size
    from mlver.ops.listing import list_outputs

    with project() as repo:
        res = list_outputs(repo)
    if as_json:
        app.json(res.to_json())
        return
    rows = [(s.output.path, s.output.kind, human_size(s.output.size),
             str(s.output.files if s.output.kind == "dir" else 1), s.state.replace("_", " ")) for s in res.outputs]
    if not rows:
        app.out("Nothing is tracked yet (`mlver add PATH` to start).")
        return
    header = ("path", "kind", "size", "files", "state")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        app.out("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@cli.command(name="ls")
@click.argument("args", nargs=-1, metavar="[REPO] [PATH]")
@click.option("--rev", help="The Git revision to list (default: the workspace; a Git URL's default branch).")
@click.option("-R", "--recursive", is_flag=True, help="Every file below PATH (no folder entries).")
@click.option("--tracked-only", is_flag=True, help="Only tracked data, not the files Git tracks.")
@click.option("-r", "--remote", help="The mlver remote to read folder listings from (default: the default remote).")
@json_option
@pass_app
def ls(app: App, args: tuple[str, ...], rev: str | None, recursive: bool, tracked_only: bool,
       remote: str | None, as_json: bool) -> None:
    """Files and tracked data of a revision, of this project or of another Git repository.

    REPO is a Git URL or a repository folder (default: this project); PATH is a folder
    or file inside it (relative to REPO's root; without REPO, to the current folder).
    Tracked folders are listed from their manifests, without downloading their files."""
    import os

    from mlver import api
    from mlver.errors import UsageError
    from mlver.ops.source import is_git_url

    if len(args) > 2:
        raise UsageError("mlver ls takes at most REPO and PATH")
    repo: str | None = None
    path = "."
    if len(args) == 2:
        repo, path = args
    elif args and (is_git_url(args[0]) or any(os.path.exists(os.path.join(args[0], d)) for d in (".git", ".mlver"))):
        repo = args[0]
    elif args:
        path = args[0]
    if repo is None:
        with project() as here:
            path = here.rel(path)
    entries = api.ls(path, repo=repo, rev=rev, recursive=recursive, tracked_only=tracked_only, remote=remote)
    if as_json:
        app.json({"version": 1, "entries": entries})
        return
    base = path.strip("/")
    base = "" if base in ("", ".") else base + "/"
    lines = [(e["path"][len(base):] if e["path"].startswith(base) else e["path"])
             + ("/" if e["type"] == "directory" else "") for e in entries]
    if lines:
        app.out("\n".join(lines))  # one write: 20,000 lines cost no 20,000 calls


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@pass_app
def unprotect(app: App, paths: tuple[str, ...]) -> None:
    """Turn linked, read-only data files into editable copies."""
    from mlver.ops.unprotect import unprotect as do_unprotect

    with project(lock="unprotect") as repo:
        changed = do_unprotect(repo, list(paths))
    app.say(f"Unprotected {len(changed)} file(s)")


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@pass_app
def remove(app: App, targets: tuple[str, ...]) -> None:
    """Stop tracking data (TARGET.mlver); the data itself is kept."""
    from mlver.ops.remove import remove as do_remove

    with project(lock="remove") as repo:
        res = do_remove(repo, list(targets))
    for p in res.removed:
        app.say(f"Stopped tracking {p} (the data is still there)")


@cli.command()
@click.argument("src")
@click.argument("dst")
@pass_app
def move(app: App, src: str, dst: str) -> None:
    """Rename tracked data together with its pointer."""
    from mlver.ops.remove import move as do_move

    with project(lock="move") as repo:
        res = do_move(repo, src, dst)
    app.say(f"Moved {res.src} -> {res.dst}")
    if res.staged:
        app.say("Staged: " + " ".join(res.staged))
    elif repo.scm_root:
        app.git_add_hint(repo.root, res.files, flags="-A ")


@cli.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--local", "level", flag_value="local", help="This clone only (.mlver/config.local).")
@click.option("--global", "level", flag_value="global", help="Your user (~/.config/mlver/config).")
@click.option("--project", "level", flag_value="project", help="The committed project file (default for writes).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
@click.option("-l", "--list", "list_all", is_flag=True, help="List every setting in effect.")
@pass_app
def config(app: App, key: str | None, value: str | None, level: str | None, unset: bool, list_all: bool) -> None:
    """Read or write a setting: `mlver config core.remote storage`."""
    from mlver.ops import config as ops

    if list_all or key is None:
        for k, v in ops.list_all(start=".").items():
            app.out(f"{k}={v}")
        return
    if unset:
        ops.unset(key, level=level, start=".")
    elif value is None:
        app.out(ops.get(key, level=level, start="."))
    else:
        ops.set_value(key, value, level=level, start=".")


@cli.command()
@json_option
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Report the environment: versions, cache, link types, remotes."""
    from mlver.cli.render import human_size
    from mlver.ops.doctor import doctor as do_doctor

    rep = do_doctor(".")
    if as_json:
        app.json(rep.to_json())
        return
    app.out(f"mlver {rep.version}")
    app.out(f"Python {rep.python} on {rep.platform}")
    app.out(f"Git: {rep.git or 'not found'}")
    if rep.root is None:
        app.out("Not inside an mlver project.")
        return
    app.out(f"Project: {rep.root}")
    app.out(f"Cache: {rep.cache_dir} ({rep.cache_objects} objects, {human_size(rep.cache_bytes)})")
    works = [k for k, ok in rep.link_types.items() if ok]
    app.out(f"Link types that work here: {', '.join(works) or 'none'} (configured: {','.join(rep.configured_link_types)})")
    if not rep.remotes:
        app.out("Remotes: none")
    for r in rep.remotes:
        state = "installed" if r["installed"] else f"missing: pip install \"mlver[{r['extra']}]\""
        app.out(f"Remote {r['name']}{' (default)' if r['default'] else ''}: {r['url']} [{r['backend']}: {state}]")
    for w in rep.warnings:
        app.warn(w)
