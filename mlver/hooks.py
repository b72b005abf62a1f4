"""Installing and removing mlver's Git hook scripts.

Each script records the Python interpreter mlver was installed with and runs
``PYTHON -m mlver hook NAME "$@"``, so it works whatever ``PATH`` holds. A hook that was
already there (someone else's) is kept as ``NAME.pre-mlver`` and run first: for
pre-commit and pre-push its failure stops Git as before; for the post- hooks both run
and the first non-zero status is passed on. ``uninstall`` puts the kept hook back.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field

from mlver import git
from mlver.errors import MlverError

HOOK_NAMES = ("pre-commit", "post-checkout", "post-merge", "pre-push")
MARKER = "# mlver-hook:"
CHAINED_SUFFIX = ".pre-mlver"

_HEADER = """#!/bin/sh
{marker} {name} (written by `mlver install`; `mlver install --uninstall` removes it)
# A hook that was here before is kept as {name}{suffix} and runs first.
MLVER_PYTHON={python}
prior="$(dirname "$0")/{name}{suffix}"
"""

# pre-commit: a failing earlier hook stops the commit, as it did before mlver came.
_PRE_COMMIT = """if [ -x "$prior" ]; then
    "$prior" "$@" || exit $?
fi
if [ ! -x "$MLVER_PYTHON" ]; then
    echo "mlver: error: $MLVER_PYTHON (the Python mlver was installed with) is gone; run \\`mlver install\\` again" >&2
    exit 1
fi
exec "$MLVER_PYTHON" -m mlver {global_args}hook {name} "$@"
"""

# pre-push: Git writes the refs on stdin; both hooks get the same lines.
_PRE_PUSH = """refs=$(cat)
if [ -x "$prior" ]; then
    if [ -n "$refs" ]; then printf '%s\\n' "$refs"; fi | "$prior" "$@" || exit $?
fi
if [ ! -x "$MLVER_PYTHON" ]; then
    echo "mlver: error: $MLVER_PYTHON (the Python mlver was installed with) is gone; run \\`mlver install\\` again" >&2
    exit 1
fi
if [ -n "$refs" ]; then printf '%s\\n' "$refs"; fi | "$MLVER_PYTHON" -m mlver {global_args}hook {name} "$@"
"""

# post-checkout / post-merge cannot stop anything; both run, the first failure is reported.
_POST = """status=0
if [ -x "$prior" ]; then
    "$prior" "$@"
    status=$?
fi
if [ ! -x "$MLVER_PYTHON" ]; then
    echo "mlver: warning: $MLVER_PYTHON (the Python mlver was installed with) is gone;" \\
        "data not synced; run \\`mlver install\\` again" >&2
    exit $status
fi
"$MLVER_PYTHON" -m mlver {global_args}hook {name} "$@"
rc=$?
if [ "$status" -eq 0 ]; then status=$rc; fi
exit $status
"""

_BODIES = {"pre-commit": _PRE_COMMIT, "pre-push": _PRE_PUSH, "post-checkout": _POST, "post-merge": _POST}


@dataclass(frozen=True)
class HookChange:
    name: str
    path: str
    # installed / updated / unchanged / chained (a foreign hook kept as NAME.pre-mlver)
    # removed / restored (the kept hook put back) / foreign (not mlver's, left alone) / absent /
    # edited (mlver's, changed by hand since: left as it is)
    action: str


@dataclass
class HooksResult:
    hooks_dir: str
    changes: list[HookChange] = field(default_factory=list)


def script(name: str, *, python: str, project_dir: str | None = None) -> str:
    """The hook script for ``name``; ``project_dir`` (relative to the work tree's top)
    when the mlver project is not at the top."""
    global_args = f"-C {shlex.quote(project_dir)} " if project_dir and project_dir != "." else ""
    head = _HEADER.format(marker=MARKER, name=name, suffix=CHAINED_SUFFIX, python=shlex.quote(python))
    text = head + _BODIES[name].format(name=name, global_args=global_args)
    first, rest = text.split("\n", 1)
    return f"{first}\n{SEAL}{_seal_of(first + chr(10) + rest)}\n{rest}"


SEAL = "# mlver-hook-seal: "  # a digest of the script as written: an edited hook is the user's


def _seal_of(text: str) -> str:
    from mlver.hashing import digest_bytes

    return digest_bytes(text.encode("utf-8"))[:16]


def edited(path: str) -> bool:
    """Was mlver's hook at ``path`` edited since `mlver install` wrote it? (A hook written
    by an mlver without the seal cannot tell, and counts as not edited.)"""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return False
    lines = text.split("\n")
    seals = [i for i, ln in enumerate(lines) if ln.startswith(SEAL)]
    if not seals:
        return False
    sealed = lines[seals[0]][len(SEAL):].strip()
    return _seal_of("\n".join(lines[: seals[0]] + lines[seals[0] + 1:])) != sealed


def is_mlver_hook(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return MARKER.encode() in f.read(512)
    except (FileNotFoundError, IsADirectoryError):
        return False


def hooks_dir(scm_root: str) -> str:
    """Where Git looks for hooks here: ``core.hooksPath`` if set, else the common
    ``hooks`` folder shared by every worktree."""
    return git.git_path(scm_root, "hooks")


def _write_script(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".mlver-hook-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def install(scm_root: str, *, project_dir: str | None = None, python: str | None = None) -> HooksResult:
    """Write mlver's hooks; keep any other hook as ``NAME.pre-mlver`` (chained).
    Installing again only refreshes mlver's own scripts."""
    folder = hooks_dir(scm_root)
    os.makedirs(folder, exist_ok=True)
    result = HooksResult(folder)
    interpreter = python or sys.executable
    for name in HOOK_NAMES:
        path = os.path.join(folder, name)
        chained = path + CHAINED_SUFFIX
        text = script(name, python=interpreter, project_dir=project_dir)
        if is_mlver_hook(path):
            if edited(path):  # the user's now: not overwritten
                result.changes.append(HookChange(name, path, "edited"))
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                same = f.read() == text and os.access(path, os.X_OK)
            if not same:
                _write_script(path, text)
            result.changes.append(HookChange(name, path, "unchanged" if same else "updated"))
            continue
        action = "installed"
        if os.path.lexists(path):
            if os.path.lexists(chained):
                raise MlverError(
                    f"{path} is not mlver's hook and {chained} already exists",
                    hint="move one of them away (or merge them by hand), then run `mlver install` again")
            os.replace(path, chained)
            action = "chained"
        _write_script(path, text)
        result.changes.append(HookChange(name, path, action))
    return result


def uninstall(scm_root: str) -> HooksResult:
    """Remove mlver's hooks and put back the hooks they had chained."""
    folder = hooks_dir(scm_root)
    result = HooksResult(folder)
    for name in HOOK_NAMES:
        path = os.path.join(folder, name)
        chained = path + CHAINED_SUFFIX
        if os.path.lexists(path) and not is_mlver_hook(path):
            result.changes.append(HookChange(name, path, "foreign"))
            continue
        if os.path.lexists(path) and edited(path):  # edited after install: the user's, kept
            result.changes.append(HookChange(name, path, "edited"))
            continue
        ours = os.path.lexists(path)
        if os.path.lexists(chained):
            os.replace(chained, path)
            result.changes.append(HookChange(name, path, "restored"))
        elif ours:
            os.unlink(path)
            result.changes.append(HookChange(name, path, "removed"))
        else:
            result.changes.append(HookChange(name, path, "absent"))
    return result
