"""The command line: click parses, one operation runs, the result is rendered here.
``main`` is the single place that turns errors into ``mlver: error: ...`` and exit codes.

Operations are imported inside each command (not at the top) so that ``mlver --help``
and ``--version`` never pay for GitPython, fsspec or YAML.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Iterator

import click

from mlver import __version__
from mlver.errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MlverError

if TYPE_CHECKING:  # pragma: no cover
    from mlver.repo import Repo


class App:
    """What every command needs from the command line: verbosity and the terminal."""

    def __init__(self, verbose: bool, quiet: bool) -> None:
        self.verbose = verbose
        self.quiet = quiet

    def out(self, text: str = "") -> None:
        """Data, to stdout."""
        click.echo(text)

    def report(self, text: str) -> None:
        """A human report line on stdout (what changed, "up to date"); silent with -q."""
        if not self.quiet:
            click.echo(text)

    def say(self, text: str) -> None:
        """Talk, to stderr; silent with -q."""
        if not self.quiet:
            click.echo(text, err=True)

    def warn(self, text: str) -> None:
        click.echo(f"mlver: warning: {text}", err=True)

    def progress(self):
        from mlver.cli.render import progress_for

        return progress_for(self.quiet)

    def git_add_hint(self, root: str, files: list[str], *, flags: str = "") -> None:
        """Tell the user which mlver files to commit (on stderr, once per command); the
        paths (relative to the project ``root``) are shown relative to the current
        folder, so the line can be pasted where the user is, as Git's hints can."""
        import os
        import shlex

        if files:
            from mlver.ops.common import ignored_by_git

            shown = {os.path.relpath(os.path.join(root, f)).replace(os.sep, "/") for f in files}
            args = " ".join(shlex.quote(f) for f in sorted(shown))
            self.say(f"To track the changes with Git, run:\n    git add {flags}{args}")
            for f in ignored_by_git(root, sorted(set(files))):  # `git add` would refuse these: say so
                f = os.path.relpath(os.path.join(root, f)).replace(os.sep, "/")
                self.warn(f"{f} is ignored by Git (a .gitignore pattern hides it), so `git add` refuses it; "
                          f"use `git add -f {shlex.quote(f)}` or remove the pattern")

    def json(self, doc: object) -> None:
        """A JSON document on stdout: strict JSON, so NaN and infinities (which metrics
        files may hold) are written as null."""
        import json

        click.echo(json.dumps(_finite(doc), indent=2, sort_keys=False, allow_nan=False))


pass_app = click.make_pass_decorator(App)

_parsed: App | None = None
"""The App the group callback made from the parsed command line: ``main`` reads its
verbosity after the command ended, whatever way it ended."""


def _finite(value: object) -> object:
    from mlver.values import jsonable

    return _finite_floats(jsonable(value))


def _finite_floats(value: object) -> object:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_floats(v) for v in value]
    return value


@contextlib.contextmanager
def project(lock: str | None = None, *, check_config: bool = True) -> Iterator["Repo"]:
    """The mlver project around the current folder, closed afterwards; with ``lock`` (the
    command's name) the repository lock is held throughout. ``check_config=False`` is for
    the commands that fix a bad config value (`remote modify` and its kin)."""
    from mlver.repo import Repo

    repo = Repo.find(".", check_config=check_config)
    try:
        if lock is None:
            yield repo
        else:
            with repo.lock(lock):
                yield repo
    finally:
        repo.close()
        for warning in repo.warnings():
            click.echo(f"mlver: warning: {warning}", err=True)


def _set_flag(name: str):
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            app = ctx.find_object(App)
            if app is not None:
                setattr(app, name, True)
    return callback


def _with_global_flags(cmd: click.Command) -> None:
    """Accept -q/-v after the command name too (`mlver status -q`), as users expect."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _with_global_flags(sub)
    names = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for flag, long, attr in (("-q", "--quiet", "quiet"), ("-v", "--verbose", "verbose")):
        if flag not in names and long not in names:
            cmd.params.append(click.Option([flag, long], is_flag=True, expose_value=False, hidden=True,
                                           callback=_set_flag(attr)))


class LazyGroup(click.Group):
    """Keeps commands in the order they were added to the help listing."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug detail and tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
@click.option("-C", "directory", metavar="DIR", type=click.Path(file_okay=False),
              help="Run as if mlver was started in DIR.")
@click.version_option(__version__, "--version", prog_name="mlver", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool, directory: str | None) -> None:
    """mlver: version data and models next to your code in Git."""
    if directory:
        try:
            os.chdir(directory)
        except OSError as e:
            raise click.UsageError(f"cannot change to directory '{directory}': {e.strerror}") from None
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="mlver: debug: %(message)s")
    global _parsed
    ctx.obj = _parsed = App(verbose, quiet)


from mlver.cli import data as _data  # noqa: E402,F401  (each module registers its commands)
from mlver.cli import remote as _remote  # noqa: E402,F401
from mlver.cli import pipeline as _pipeline  # noqa: E402,F401
from mlver.cli import history as _history  # noqa: E402,F401
from mlver.cli import exp as _exp  # noqa: E402,F401
from mlver.cli import plots as _plots  # noqa: E402,F401
from mlver.cli import hooks as _hooks  # noqa: E402,F401


def _error(message: str, hint: str | None = None, details: tuple[str, ...] = ()) -> None:
    click.echo(f"mlver: error: {message}", err=True)
    for line in details:
        click.echo(line, err=True)
    for line in (hint or "").splitlines():
        click.echo(f"hint: {line}", err=True)


def _verbose() -> bool:
    """-v as parsed (before or after the command name), never a ``-v`` among a command's
    arguments (`mlver stage add -n s -- python -v train.py`)."""
    return _parsed is not None and _parsed.verbose


def _traceback() -> None:
    if _verbose():
        import traceback

        traceback.print_exc()


for _cmd in cli.commands.values():
    _with_global_flags(_cmd)


def _os_error_line(e: OSError) -> str:
    """An OSError in one line; a full disk says which file could not be written (its
    folder, for one of mlver's temporary names)."""
    import errno

    path = os.fsdecode(e.filename) if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        from mlver.fsutil import is_tmp_name

        if is_tmp_name(os.path.basename(path)):
            path = os.path.dirname(path)
        shown = os.path.relpath(path) if path and not os.path.relpath(path).startswith("../..") else path
        what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return what + (f" writing {shown}" if path else "")
    return f"{e.strerror or e}" + (f": {path}" if path else "")


EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process the signal ended


class Terminated(BaseException):
    """SIGTERM (a CI runner cancelling, `timeout`, a supervisor) arrived: unwind as a
    Ctrl-C does, so a running stage is stopped and not recorded, temporary files go, the
    lock is released, and one line says so."""


def _on_sigterm() -> None:
    import signal

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # a caller that set its own keeps it
        try:
            signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (mlver's CLI called from a program's thread)
            pass


def main(argv: list[str] | None = None) -> None:
    """The one boundary: runs the command and turns whatever ended it into an exit code
    and at most one ``mlver: error:`` line (with the lines and hints the error carries)."""
    global _parsed
    _parsed = None
    _on_sigterm()
    try:
        try:
            rv = cli.main(args=argv, prog_name="mlver", standalone_mode=False)
        except SystemExit as e:
            # click turns a closed stdout (`mlver ls | head -1`) into exit 1, whatever the mode,
            # after wrapping stdout so that later writes are dropped; the reader had what it
            # wanted: exit 0, as before for a BrokenPipeError that reaches us
            if type(sys.stdout).__name__ != "_PacifyFlushWrapper":
                raise
            rv = 0
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "mlver"
        if e.ctx is not None and isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):
            # click >= 8.2 raises this, carrying the whole help as its message, for a
            # group run without a command: one error line, the commands in the hint
            group = e.ctx.command
            names = group.list_commands(e.ctx) if isinstance(group, click.Group) else []
            _error("missing command", f"one of: {', '.join(names)}; see `{cmd} --help`")
        else:
            _error(e.format_message(), f"see `{cmd} --help`")
        code = EXIT_USAGE
    except click.exceptions.Abort:
        _error("interrupted")
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _error("interrupted")
        code = EXIT_INTERRUPTED
    except Terminated:
        _error("terminated")
        code = EXIT_TERMINATED
    except MlverError as e:
        _traceback()
        _error(e.message, e.hint, e.details)
        code = e.exit_code
    except BrokenPipeError:
        code = 0
    except OSError as e:
        _traceback()
        _error(_os_error_line(e))
        code = EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the one boundary that turns anything into a line
        _traceback()
        _error(f"internal error: {type(e).__name__}: {' '.join(str(e).split())}",
               "this is a bug in mlver: please report it with the traceback above" if _verbose()
               else "this is a bug in mlver: run the command again with -v and report it with the traceback")
        code = EXIT_INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)
