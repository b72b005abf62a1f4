"""The exception tree. Every error a user can meet is an ``MlverError`` carrying its
facts (path, line, expected, actual) and an optional hint; ``mlver.cli.main`` is the
single place that turns them into ``mlver: error: ...`` and an exit code.

This module imports nothing else from mlver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

EXIT_OK = 0
EXIT_DIFF = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERNAL = 4  # a bug: any exception that is not an MlverError
EXIT_INTERRUPTED = 130

# Control characters (a newline in a config value, an escape sequence in a file name read
# from a hostile file) are shown escaped: an error is always one line (SPEC guarantee 4).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f) if c != 0x09}
_CONTROL.update({0x0a: "\\n", 0x0d: "\\r"})


class MlverError(Exception):
    """Base of every error mlver reports to a user."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None, details: Sequence[str] = ()) -> None:
        message = message.translate(_CONTROL)
        super().__init__(message)
        self.message = message
        self.hint = hint  # may hold several lines: each is shown as its own ``hint:`` line
        self.details = tuple(details)  # lines shown as they are under the error line

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        # pickled with its fields (a Dask or multiprocessing worker's error comes back whole),
        # not by calling __init__ again with the message only
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type, args: tuple, state: dict) -> "MlverError":
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class UsageError(MlverError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class NotARepoError(MlverError):
    """No mlver project (or no Git repository) where one is needed."""


class FormatError(MlverError):
    """A file mlver reads (pointer, lock, config, pipeline, params) is malformed."""

    def __init__(self, path: str, problem: str, *, line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path = path
        self.line = line
        self.problem = problem


def check_merge_conflict(text: str, shown: str) -> None:
    """Refuse a file holding Git's conflict markers (a merge left it half-resolved), by
    name and line, with the way out: the most common way a user meets a broken pointer
    or lock. The markers are whole lines, in Git's order, so no value can look like one."""
    start = 0 if text.startswith("<<<<<<<") else text.find("\n<<<<<<<") + 1
    if start == 0 and not text.startswith("<<<<<<<"):
        return
    middle = text.find("\n=======", start)
    if middle < 0 or text.find("\n>>>>>>>", middle) < 0:
        return
    line = text.count("\n", 0, start) + 1
    name = shown.rsplit("/", 1)[-1]
    if name.endswith(".lock"):
        hint = (f"keep one side (`git checkout --ours {shown}` or `--theirs`), then `mlver repro` records what "
                "the stages give now")
    elif name.endswith(".mlver"):
        data = shown[: -len(".mlver")]
        hint = (f"take one side: `git checkout --theirs {shown} && mlver checkout {data}`, or keep yours with "
                f"`git checkout --ours {shown}`; or record the workspace's data: `git checkout --ours {shown} "
                f"&& mlver add {data}`")
    else:
        hint = f"resolve the conflict in {shown} (or keep one side: `git checkout --ours {shown}`), then run again"
    raise FormatError(shown, "holds an unresolved Git merge conflict", line=line, hint=hint)


class PathError(MlverError):
    """A path that would leave the repository, or that cannot be tracked."""

    def __init__(self, path: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {problem}", hint=hint)
        self.path = path


class ChecksumMismatch(MlverError):
    """Bytes whose digest is not the one they are stored or sent under."""

    def __init__(self, name: str, expected: str, actual: str, *, where: str = "") -> None:
        place = f" ({where})" if where else ""
        super().__init__(f"{name}{place}: content digest {actual} does not match expected {expected}")
        self.expected = expected
        self.actual = actual
        self.where = where


class PackedObject(MlverError):
    """The object has no URL of its own: it is stored inside a pack on the remote, at
    ``offset`` for ``length`` bytes of the pack at ``url`` (a ranged read gets it)."""

    def __init__(self, path: str, digest: str, *, url: str, offset: int, length: int) -> None:
        super().__init__(f"{path}: object {digest} is stored inside a pack: {url} bytes {offset}-{offset + length - 1}",
                         hint="read it with mlver.api.open (ranged reads), or keep big files loose: "
                              "objects from remote.NAME.pack_threshold up are never packed")
        self.path = path
        self.digest = digest
        self.url = url
        self.offset = offset
        self.length = length


class ObjectMissing(MlverError):
    """An object a pointer names is not in the cache (nor, when ``remote`` names one, on
    that remote)."""

    def __init__(self, digest: str, path: str, *, remote: str | None = None) -> None:
        if remote is None:
            super().__init__(f"{path}: object {digest} is not in the cache", hint="run `mlver pull` to fetch it")
        else:
            super().__init__(f"{path}: object {digest} is in neither the cache nor remote '{remote}'",
                             hint="the commit's data was never pushed; ask whoever made it to `mlver push`")
        self.digest = digest
        self.path = path
        self.remote = remote


class PathNotTracked(PathError, FileNotFoundError):
    """A path that is neither tracked data nor a file Git tracks at the revision asked
    for (a ``FileNotFoundError`` too, as fsspec, pandas and Dask expect)."""

    def __init__(self, path: str, *, rev: str | None = None, repo: str | None = None) -> None:
        where = (f" in {repo}" if repo else "") + (f" at {rev}" if rev else " in the workspace")
        super().__init__(path, f"is not tracked by mlver nor Git{where}")
        self.rev = rev
        self.repo = repo


class PathIsFolder(PathError, IsADirectoryError):
    """A folder where a file was asked for (``mlver.api.open`` of a tracked folder)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "is a folder", hint="`mlver ls PATH` lists it; open a file inside it")


class LockBusy(MlverError):
    """Another mlver process holds the repository lock."""


class GitError(MlverError):
    """A Git operation failed, or Git is needed and absent."""


class RevisionNotFound(GitError):
    """A revision that names no commit (in ``repo`` when given)."""

    def __init__(self, rev: str, *, repo: str | None = None) -> None:
        super().__init__(f"unknown revision '{rev}'" + (f" in {repo}" if repo else ""),
                         hint="name a commit, branch or tag (`git log --oneline`, `git tag`)")
        self.rev = rev
        self.repo = repo


class RemoteError(MlverError):
    """A remote could not be reached, refused us, or is misconfigured. ``remote`` names it
    when known; ``reason`` is one of ``missing`` (its folder or bucket does not exist),
    ``timeout`` (it stopped answering), ``no_space``, ``unreachable``, ``refused``."""

    def __init__(self, message: str, *, hint: str | None = None, remote: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.remote = remote
        self.reason = reason


class StageFailed(MlverError):
    """A pipeline stage's command exited non-zero."""

    def __init__(self, stage: str, returncode: int, command: str | None = None) -> None:
        what = f"`{command}`" if command else "command"  # a list's failing command is named (as DVC does)
        super().__init__(f"stage '{stage}' failed: {what} exited with code {returncode}")
        self.stage = stage
        self.returncode = returncode


class StaleStage(MlverError):
    """``mlver commit`` of stages whose command, dependencies or parameters differ from
    their lock entry: recording their outputs would claim they came from inputs they
    never saw."""

    MAX_REASONS = 3

    def __init__(self, stages: list[tuple[str, tuple[str, ...]]]) -> None:
        parts = []
        for name, reasons in stages:
            shown = list(reasons[:self.MAX_REASONS])
            if len(reasons) > self.MAX_REASONS:
                shown.append(f"and {len(reasons) - self.MAX_REASONS} more")
            parts.append(f"stage '{name}' is not up to date: {'; '.join(shown)}")
        names = " ".join(name for name, _ in stages)
        super().__init__("; ".join(parts) + " (nothing was recorded)",
                         hint=f"run it with `mlver repro {names}`, or record its outputs as they are "
                              f"with `mlver commit --force {names}`")
        self.stages = stages


class DanglingLink(PathError):
    """A workspace file that is a link into the cache (``cache.type symlink``) whose object
    is no longer there (deleted by hand, or by `gc`)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "is a link into the cache, and its object is no longer there",
                         hint="run `mlver pull` to fetch the data back")


@dataclass(frozen=True)
class Problem:
    """One kind of thing a command could not do, and the items (paths, objects) it
    concerns: ``what`` reads as a heading ("not in the cache, so not checked out")."""

    what: str
    items: tuple[str, ...]
    hint: str | None = None


class Unfinished(MlverError):
    """A command did everything it could and lists what it could not do (kept local
    changes, missing or corrupt objects, stale data): one error line for the first
    problem, the others as headings under it, their items indented, their hints last."""

    def __init__(self, problems: Sequence[Problem], *, exit_code: int = EXIT_ERROR) -> None:
        if not problems:
            raise ValueError("Unfinished needs at least one problem")
        details: list[str] = []
        for i, p in enumerate(problems):
            if i:
                details.append(f"{p.what}:")
            details.extend(f"    {item}" for item in p.items)
        hints = [p.hint for p in problems if p.hint]
        super().__init__(f"{problems[0].what}:", hint="\n".join(hints) or None, details=details)
        self.problems = tuple(problems)
        self.exit_code = exit_code
