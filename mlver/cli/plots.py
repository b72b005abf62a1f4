"""Commands of plots: ``plots show`` / ``plots diff`` (the plots mlver.yaml defines, of
the workspace or overlaid across revisions), ``plots trend`` (metrics across commits;
the bare ``mlver plots [METRIC...]`` is its old spelling) and ``report --md`` (a
pull-request comment)."""

from __future__ import annotations

from typing import Any

import click

from mlver.cli import App, cli, pass_app, project
from mlver.cli.data import json_option

SUBCOMMANDS = ("show", "diff", "trend")


class PlotsGroup(click.Group):
    """``mlver plots [METRIC...] [-n N] [-o FILE]`` (no subcommand) stays the trend
    report it always was."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["trend", *args]
        return super().parse_args(ctx, args)


class ImageAliases(click.Command):
    """Also accepts ``--png DIR`` / ``--svg DIR`` (SPEC's other spelling) for ``--png-dir``
    / ``--svg-dir``; on ``plots trend`` ``--png`` stays today's deprecated flag."""

    aliases = {"--png": "--png-dir", "--svg": "--svg-dir"}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        aliases = {k: v for k, v in self.aliases.items() if not (k == "--png" and self.name == "trend")}
        out: list[str] = []
        for a in args:
            if a == "--":
                out += args[len(out):]
                break
            name, eq, value = a.partition("=")
            out.append(aliases[name] + eq + value if name in aliases else a)
        return super().parse_args(ctx, out)


def _image_options(fn: Any) -> Any:
    fn = click.option("--svg-dir", metavar="DIR", help="Also write each chart as DIR/NAME.svg.")(fn)
    fn = click.option("--png-dir", metavar="DIR",
                      help="Also write each chart as DIR/NAME.png (drawn by headless Chromium).")(fn)
    return fn


def _open(app: App, path: str) -> None:
    import webbrowser

    if not webbrowser.open("file://" + path):
        app.warn(f"no browser could be opened; open {path} yourself")


@cli.group(cls=PlotsGroup)
def plots() -> None:
    """Charts: the plots mlver.yaml defines (show, diff) and metrics across commits (trend,
    also the bare `mlver plots [METRIC...]`)."""


@plots.command(name="trend", cls=ImageAliases)
@click.argument("metrics", nargs=-1)
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many commits to plot.")
@click.option("-o", "--out", metavar="FILE",
              help="The HTML file to write [default: plots.html; with --json, none unless given].")
@_image_options
@click.option("--png", is_flag=True, help="Deprecated: a PNG per metric beside FILE through matplotlib; use --png-dir.")
@click.option("--open", "open_", is_flag=True, help="Open the report in the browser.")
@json_option
@pass_app
def trend(app: App, metrics: tuple[str, ...], count: int, out: str, png_dir: str | None, svg_dir: str | None,
          png: bool, open_: bool, as_json: bool) -> None:
    """Write a self-contained HTML report: a chart of each metric (or of METRICS) across
    the last N commits, the parameters that changed, and per-step series."""
    from mlver.ops.plots import plots as do_plots

    if out is None and (open_ or png or not as_json):
        out = "plots.html"  # --json alone prints the data and writes no page
    with project() as repo:
        res = do_plots(repo, list(metrics), count=count, out=out, png=png, png_dir=png_dir, svg_dir=svg_dir)
    if png:
        app.warn("--png is deprecated; use --png-dir DIR")
    if as_json:
        app.json(res.to_json())
    else:
        app.say(f"Wrote {res.out}: {len(res.metrics)} metric(s) over {res.points} point(s)"
                + (f", {res.steps} per-step series" if res.steps else ""))
        for p in res.png + res.images:
            app.say(f"Wrote {p}")
    if open_ and res.out:
        _open(app, res.out)


def _write(app: App, revs: list[str], targets: list[str], out: str | None, png_dir: str | None,
           svg_dir: str | None, open_: bool, as_json: bool) -> None:
    from mlver.ops.plots_diff import write_plots

    if out is None and (open_ or not as_json):
        out = "plots.html"  # --json alone prints the data and writes no page
    with project() as repo:
        res = write_plots(repo, revs, targets, out=out, png_dir=png_dir, svg_dir=svg_dir)
    for e in res.doc.errors:
        app.warn(f"skipped: {e}")
    if as_json:
        app.json(res.doc.to_json())
    else:
        n = len(res.doc.charts)
        app.say(f"Wrote {res.out}: {n} plot(s) of {', '.join(r.label for r in res.doc.revisions)}")
    if not as_json:
        for _, p in res.images:
            app.say(f"Wrote {p}")
    if open_ and res.out:
        _open(app, res.out)


def _plot_options(fn: Any) -> Any:
    fn = json_option(fn)
    fn = click.option("--open", "open_", is_flag=True, help="Open the page in the browser.")(fn)
    fn = _image_options(fn)
    fn = click.option("-o", "--out", metavar="FILE",
                      help="The HTML file to write [default: plots.html; with --json, none unless given].")(fn)
    return fn


@plots.command(name="show", cls=ImageAliases)
@click.argument("targets", nargs=-1)
@_plot_options
@pass_app
def show(app: App, targets: tuple[str, ...], out: str | None, png_dir: str | None, svg_dir: str | None, open_: bool,
         as_json: bool) -> None:
    """Draw the plots mlver.yaml defines (or TARGETS: plot names or files) from the
    workspace's files into one self-contained HTML page."""
    _write(app, ["workspace"], list(targets), out, png_dir, svg_dir, open_, as_json)


@plots.command(name="diff", cls=ImageAliases)
@click.argument("revs", nargs=-1)
@click.option("-t", "--target", "--targets", "targets", multiple=True, metavar="PLOT",
              help="Only this plot (a name or a file; repeatable).")
@_plot_options
@pass_app
def diff(app: App, revs: tuple[str, ...], targets: tuple[str, ...], out: str | None, png_dir: str | None,
         svg_dir: str | None, open_: bool, as_json: bool) -> None:
    """Overlay each plot for several revisions: REVS (`workspace` names the working tree;
    default HEAD and the workspace, one REV: REV and the workspace)."""
    chosen = list(revs)
    if len(chosen) == 1:
        chosen.append("workspace")
    _write(app, chosen, list(targets), out, png_dir, svg_dir, open_, as_json)


# --- report --------------------------------------------------------------------------------

@cli.command(cls=ImageAliases)
@click.option("--md", is_flag=True, help="Markdown (the default, and today the only text format).")
@click.option("--base", metavar="REV",
              help="Compare with this revision (default: checks.base, else the merge-base with origin/HEAD, else HEAD).")
@_image_options
@click.option("--image-url", metavar="URL",
              help="Link images as URL/NAME.png (where CI uploads them) instead of their local path.")
@json_option
@pass_app
def report(app: App, md: bool, base: str | None, png_dir: str | None, svg_dir: str | None, image_url: str | None,
           as_json: bool) -> None:
    """A pull-request comment: the params diff, the metrics diff and the checks of the
    workspace against a base revision, and links to an image of each plot (base and
    workspace overlaid) with --png-dir / --svg-dir."""
    import os

    from mlver.cli.pipeline import _render_changes, _short, render_checks
    from mlver.ops.report import report as do_report

    with project() as repo:
        res = do_report(repo, base=base, png_dir=png_dir, svg_dir=svg_dir)
    if as_json:
        app.json(res.to_json())
        return
    app.out(f"## mlver report: workspace vs `{_short(res.base)}`")
    for note in res.notes:
        app.out(f"\n> {note}")
    if res.checks is not None:
        failed = [o for o in res.checks.outcomes if not o.passed]
        app.out("\n### Checks\n")
        app.out(f"**{len(failed)} of {len(res.checks.outcomes)} check(s) failed**" if failed
                else f"All {len(res.checks.outcomes)} check(s) pass.")
        app.out()
        render_checks(app, res.checks, md=True)
    for title, diff, what in (("Metrics", res.metrics, "Metric"), ("Parameters", res.params, "Param")):
        app.out(f"\n### {title}\n")
        if diff.changes:
            _render_changes(app, diff, what, True)
        else:
            app.out(f"No {what.lower()} changes.")
    if res.images:
        app.out("\n### Plots\n")
        for name, path in res.images:
            link = (f"{image_url.rstrip('/')}/{os.path.basename(path)}" if image_url
                    else os.path.relpath(path).replace(os.sep, "/"))
            app.out(f"![{name}]({link})")
