"""Commands of history: exp show (experiments across commits), plots (an HTML report of
metrics across commits) and get (one tracked file or folder of any commit or repository)."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from mlver.cli import App, cli, pass_app, project
from mlver.cli.data import json_option
from mlver.cli.pipeline import _value, _warn_errors

SHORT = 7
NOTE_NAMES = 12  # columns named in the note on what a terminal's width left out


def _rev_label(rev: str) -> str:
    return rev if rev == "workspace" else rev[:SHORT]


# --- exp show ------------------------------------------------------------------------------

@cli.group()
def exp() -> None:
    """Experiments: run, queue, compare, keep and share variations of the pipeline."""


def _cell(column: Any, value: Any, short: bool) -> str:
    """A parameter's or metric's value; a dependency's digest (its first 8 digits in a
    table, as DVC shows them; ``algo:hex`` in CSV)."""
    if column.kind != "deps":
        return _value(value)
    from mlver.hashing import hex_of

    return hex_of(value)[:8] if short else value


def _cells(table: Any, *, short: bool) -> tuple[list[str], list[list[str]]]:
    cols = table.columns
    header = ["Rev", "Refs", "Date", "Subject", *(c.label for c in cols)]
    rows = []
    for r in table.rows:
        date = (r.date or "")[:16].replace("T", " ") if short else (r.date or "")
        rev, refs, subject = _rev_label(r.rev) if short else r.rev, " ".join(r.refs), r.subject or ""
        if r.experiment is not None:  # an experiment row, under its baseline
            rev, refs = (f"└ {rev}" if short else rev), r.experiment
            subject = subject if r.status == "success" else f"[{r.status}] {subject}"
        rows.append([rev, refs, date, subject,
                     *(_cell(c, r.get(c)[1], short) if r.get(c)[0] else "-" for c in cols)])
    return header, rows


@exp.command(name="show")
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many commits to show (the workspace row is extra).")
@click.option("-a", "--all-branches", is_flag=True, help="Also the last N commits of every local branch.")
@click.option("-A", "--all-commits", is_flag=True, help="Every commit of every branch and tag.")
@click.option("--rev", "revs", multiple=True, metavar="REV", help="Start from REV instead of HEAD (repeatable).")
@click.option("--sort-by", metavar="KEY", help="Order commits by a parameter or metric (KEY or FILE:KEY).")
@click.option("--sort-order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True,
              help="Order of --sort-by.")
@click.option("--only-changed", is_flag=True, help="Leave out the columns whose value is the same in every row.")
@click.option("--keep", "keep", multiple=True, metavar="REGEX",
              help="Always show the columns whose FILE:KEY name matches (repeatable; wins over --drop "
                   "and --only-changed).")
@click.option("--drop", "drop", multiple=True, metavar="REGEX",
              help="Leave out the columns whose FILE:KEY name matches (repeatable).")
@click.option("--deps", "deps", is_flag=True,
              help="Also a column per stage dependency (deps:PATH) with its digest as the lock recorded it.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--md", is_flag=True, help="Print a Markdown table.")
@json_option
@pass_app
def exp_show(app: App, count: int, all_branches: bool, all_commits: bool, revs: tuple[str, ...],
             sort_by: str | None, sort_order: str, only_changed: bool, keep: tuple[str, ...], drop: tuple[str, ...],
             deps: bool, as_csv: bool, md: bool, as_json: bool) -> None:
    """A table: the workspace, then the last N commits, each followed by its
    experiments (name, status), with their parameters and metrics.

    Columns are named FILE:KEY (params.yaml:train.lr, metrics.json:acc); --keep and
    --drop take regular expressions searched in those names. On a terminal too narrow
    for the table, columns that never change are left out first, then columns from the
    right, and a note on stderr names them."""
    if sum((as_csv, md, as_json)) > 1:
        raise click.UsageError("choose one of --json, --csv, --md")
    from mlver.ops.exp import exp_show as do_show

    with project() as repo:
        table = do_show(repo, count=count, all_branches=all_branches, sort_by=sort_by,
                        descending=sort_order == "desc", keep=keep, drop=drop, only_changed=only_changed,
                        experiments=True, revs=revs, all_commits=all_commits, deps=deps)
    _warn_errors(app, table.errors)
    if as_json:
        app.json(table.to_json())
        return
    if as_csv:
        import csv
        import io

        header, rows = _cells(table, short=False)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[("" if c == "-" and i >= 4 else c) for i, c in enumerate(r)] for r in rows])
        click.echo(buf.getvalue(), nl=False)
        return
    header, rows = _cells(table, short=True)
    if md:
        from mlver.cli.render import markdown_table

        for md_line in markdown_table(header, rows):
            app.out(md_line)
        return
    _print_exp_table(app, table, header, rows, keep)


def _exp_rich_table(table: Any, header: list[str], rows: list[list[str]], shown: list[int], *,
                    fit: bool = True) -> Any:
    """The rich table of the base columns and the param/metric columns ``shown``
    (indices into ``table.columns``); ``fit`` (a terminal): the subject is cut at 30
    characters, piped it is whole (tables are never cut there)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cols = table.columns
    t = Table(box=box.SIMPLE_HEAD)
    for i, h in enumerate(header[:4]):
        if i == 3 and fit:
            t.add_column(h, max_width=30, overflow="ellipsis", no_wrap=True)
        else:
            t.add_column(h, no_wrap=True)
    for ci in shown:
        t.add_column(header[4 + ci], justify="right", header_style="cyan" if cols[ci].kind == "params" else None,
                     no_wrap=True)
    for ri, r in enumerate(rows):
        cells = [Text(c) for c in r[:4]]
        for ci in shown:
            cell = Text(r[4 + ci])
            if table.changed(ri, cols[ci]):
                cell.stylize("bold yellow")
            cells.append(cell)
        t.add_row(*cells)
    return t


def _print_exp_table(app: App, table: Any, header: list[str], rows: list[list[str]], keep: tuple[str, ...]) -> None:
    """Piped: every column at the table's natural width. On a terminal: fit its width by
    leaving out columns that never change first, then columns from the right (those
    --keep names last), and say on stderr which ones and how to see them."""
    import re

    from mlver.cli.render import console, natural_width, print_table

    cols = table.columns
    shown = list(range(len(cols)))
    term = console()
    if not term.is_terminal:
        print_table(_exp_rich_table(table, header, rows, shown, fit=False))
        return
    if natural_width(_exp_rich_table(table, header, rows, shown)) <= term.width:
        print_table(_exp_rich_table(table, header, rows, shown))
        return
    kept = {i for i, c in enumerate(cols) if any(re.search(p, c.name) for p in keep)}
    order = ([i for i in reversed(shown) if i not in kept and table.unchanged(cols[i])]
             + [i for i in reversed(shown) if i not in kept and not table.unchanged(cols[i])]
             + [i for i in reversed(shown) if i in kept])
    left_out = []
    for i in order:
        shown.remove(i)
        left_out.append(i)
        if natural_width(_exp_rich_table(table, header, rows, shown)) <= term.width:
            break
    term.print(_exp_rich_table(table, header, rows, shown))
    names = [cols[i].name for i in sorted(left_out)]
    listed = ", ".join(names[:NOTE_NAMES]) + (f" and {len(names) - NOTE_NAMES} more" if len(names) > NOTE_NAMES else "")
    app.say(f"note: {len(left_out)} column(s) left out to fit {term.width} columns: {listed}; choose with "
            "--keep/--drop REGEX or --only-changed, or see them all with --json, --csv or through a pipe "
            "(`mlver exp show | less -S`)")


# --- get -----------------------------------------------------------------------------------

@cli.command()
@click.argument("path")
@click.option("--repo", "url", metavar="URL", help="Another Git repository (URL or folder) to get PATH from.")
@click.option("--rev", metavar="REV", help="The commit, branch or tag to get PATH from (default HEAD).")
@click.option("-o", "--out", metavar="OUT", help="Where to write it (default: PATH's name in the current folder).")
@click.option("-f", "--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel downloads.")
@json_option
@pass_app
def get(app: App, path: str, url: str | None, rev: str | None, out: str | None, force: bool, jobs: int | None,
        as_json: bool) -> None:
    """Write one tracked file or folder of any commit (or of another repository) to OUT,
    without switching branches."""
    from mlver.errors import NotARepoError
    from mlver.ops.get import get as do_get

    with contextlib.ExitStack() as stack:
        try:
            repo = stack.enter_context(project(lock="get"))
        except NotARepoError:
            if url is None:
                raise
            repo = None  # outside a project: objects go to a temporary cache
        res = do_get(repo, path, url=url, rev=rev, out=out, force=force, jobs=jobs, progress=app.progress())
    if as_json:
        app.json(res.to_json())
        return
    what = f"{res.files} files" if res.files is not None else f"{res.size} bytes"
    app.say(f"Wrote {res.out} ({what}) from {res.path} at {res.rev[:7]}")
