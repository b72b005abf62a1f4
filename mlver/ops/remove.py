"""``mlver remove``: stop tracking data (the data stays), and ``mlver move``: rename
tracked data together with its pointer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from mlver.errors import PathError
from mlver.fsutil import confine
from mlver.ops.common import all_outputs, autostage, pointer_rel_for, write_pointer
from mlver.ops.unprotect import unprotect
from mlver.pointer import POINTER_SUFFIX
from mlver.repo import Repo
from mlver.gitignore import check_gitignore, gitignore_add, gitignore_remove
from mlver.workspace import Output, select_outputs


@dataclass
class RemoveResult:
    removed: list[str] = field(default_factory=list)  # data paths no longer tracked
    files: list[str] = field(default_factory=list)  # mlver files changed


def _pointer_output(repo: Repo, target: str) -> Output:
    outputs = all_outputs(repo)
    rel = repo.rel(target)
    if not rel.endswith(POINTER_SUFFIX):
        rel += POINTER_SUFFIX
    for o in outputs:
        if o.pointer_file == rel:
            return o
    try:
        selected = select_outputs(repo, outputs, [target])
    except PathError:
        if os.path.lexists(repo.abs(repo.rel(target))) and not target.endswith(POINTER_SUFFIX):
            raise  # untracked data: "not tracked", with the `mlver add` hint
        selected = []  # no such pointer: said below, without suggesting to add a pointer name
    for o in selected:
        if o.stage:
            raise PathError(target, f"is an output of stage '{o.stage}'", hint="edit mlver.yaml to change a stage's outputs")
    raise PathError(target, "is not an mlver pointer file", hint="see the tracked data with `mlver list`")


def remove(repo: Repo, targets: list[str]) -> RemoveResult:
    result = RemoveResult()
    for t in targets:
        out = _pointer_output(repo, t)
        assert out.pointer_file is not None
        check_gitignore(repo, out.path)
        if os.path.lexists(repo.abs(out.path)):
            # links into the cache (symlink/hardlink cache.type) become the user's own
            # copies first: a later `gc` must not take the data with the objects
            unprotect(repo, [repo.abs(out.path)])
        confine(repo.root, repo.abs(out.pointer_file))
        os.unlink(repo.abs(out.pointer_file))
        result.files.append(out.pointer_file)
        ignore = gitignore_remove(repo, out.path)
        if ignore:
            result.files.append(ignore)
        repo.state.forget_placed(out.path)
        result.removed.append(out.path)
    autostage(repo, result.files)
    return result


@dataclass
class MoveResult:
    src: str
    dst: str
    files: list[str]
    staged: list[str] = field(default_factory=list)  # staged in Git (core.autostage)


def move(repo: Repo, src: str, dst: str) -> MoveResult:
    out = _pointer_output(repo, src)
    assert out.pointer is not None and out.pointer_file is not None
    dst_rel = repo.rel(dst)
    if dst_rel.endswith(POINTER_SUFFIX):  # `move a.mlver b.mlver` names pointers: the data becomes b
        dst_rel = dst_rel[: -len(POINTER_SUFFIX)]
    if os.path.isdir(repo.abs(dst_rel)):  # like `mv SRC DIR`: into the folder
        dst_rel = f"{dst_rel}/{os.path.basename(out.path)}" if dst_rel != "." else os.path.basename(out.path)
    if os.path.lexists(repo.abs(dst_rel)):
        raise PathError(dst, "already exists")
    for o in all_outputs(repo):
        if o.path == out.path:
            continue
        if dst_rel.startswith(o.path + "/") or o.path == dst_rel:
            raise PathError(dst, f"is inside the tracked output {o.path}")
    files: list[str] = []
    # both ends, before anything moves: neither may be reached through a link out of the repository
    confine(repo.root, repo.abs(out.path))
    confine(repo.root, repo.abs(dst_rel))
    check_gitignore(repo, out.path)
    check_gitignore(repo, dst_rel)
    if os.path.lexists(repo.abs(out.path)):
        os.makedirs(os.path.dirname(repo.abs(dst_rel)) or repo.root, exist_ok=True)
        confine(repo.root, repo.abs(dst_rel))
        os.replace(repo.abs(out.path), repo.abs(dst_rel))
    new_pointer_rel = pointer_rel_for(dst_rel)
    write_pointer(repo, new_pointer_rel, replace(out.pointer, path=os.path.basename(dst_rel)))
    confine(repo.root, repo.abs(out.pointer_file))
    os.unlink(repo.abs(out.pointer_file))
    files += [out.pointer_file, new_pointer_rel]
    for changed in (gitignore_remove(repo, out.path), gitignore_add(repo, dst_rel)):
        if changed:
            files.append(changed)
    repo.state.forget_placed(out.path)
    repo.state.set_placed(dst_rel, out.kind, out.digest)
    return MoveResult(out.path, dst_rel, files, autostage(repo, files))

