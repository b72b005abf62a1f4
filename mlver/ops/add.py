"""``mlver add``: hash data into the cache, write its pointer, keep it out of Git."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlver import git
from mlver.hashing import algo_of
from mlver.errors import DanglingLink, PathError
from mlver.fsutil import name_problem, printable
from mlver.ops.common import all_outputs, autostage, declared_outputs, pointer_rel_for, write_pointer
from mlver.pointer import POINTER_SUFFIX, Pointer, read_pointer
from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.gitignore import check_gitignore, gitignore_add
from mlver.workspace import Output, dangling_link, store_output

RESERVED = {"mlver.yaml", "mlver.lock", ".gitignore", ".mlverignore"}


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)  # data paths whose pointer was written
    unchanged: list[str] = field(default_factory=list)
    pointers: list[str] = field(default_factory=list)  # files to commit in Git
    staged: list[str] = field(default_factory=list)
    link_types: set[str] = field(default_factory=set)


def check_addable(repo: Repo, given: str, rel: str, outputs: list[Output]) -> None:
    path = repo.abs(rel)
    if rel == ".":
        raise PathError(given, "is the repository root; add files or folders inside it")
    if not os.path.lexists(path):
        raise PathError(printable(given), "does not exist")
    problem = name_problem(rel)
    if problem:
        raise PathError(printable(given), problem, hint="rename it, then add it")
    if dangling_link(repo, rel):
        raise DanglingLink(given)
    if os.path.islink(path):
        raise PathError(given, "is a symbolic link; mlver tracks files and folders, not links")
    if rel.endswith(POINTER_SUFFIX):
        raise PathError(given, "is an mlver pointer file", hint=f"add the data itself: `mlver add {given[:-len(POINTER_SUFFIX)]}`")
    if os.path.basename(rel) in RESERVED:
        raise PathError(given, "is one of mlver's own files and stays in Git")
    for out_path, stage in declared_outputs(repo).items():
        if rel == out_path or rel.startswith(out_path + "/") or out_path.startswith(rel + "/"):
            raise PathError(given, f"overlaps the output {out_path} of stage '{stage}'",
                            hint="stage outputs are tracked through mlver.lock; use `mlver repro` or `mlver commit STAGE`")
    for o in outputs:
        if o.stage is not None and o.path == rel:
            raise PathError(given, f"is an output of stage '{o.stage}'", hint="use `mlver commit` for stage outputs")
        if rel.startswith(o.path + "/"):
            raise PathError(given, f"is inside the tracked output {o.path}",
                            hint=f"re-add the whole folder with `mlver add {o.path}`")
        if o.path.startswith(rel + "/"):
            raise PathError(given, f"contains the tracked output {o.path}",
                            hint=f"stop tracking it first with `mlver remove {o.pointer_file or o.path}`")
    check_gitignore(repo, rel)
    if repo.scm_root is not None and git.tracked(repo.root, [path]):
        raise PathError(given, "is tracked by Git", hint=f"stop tracking it in Git first: `git rm -r --cached {given}`")


def add(repo: Repo, paths: list[str], *, desc: str | None = None, progress: Progress = NO_PROGRESS) -> AddResult:
    outputs = all_outputs(repo)
    targets: list[tuple[str, str]] = []
    for given in paths:
        rel = repo.rel(given)
        check_addable(repo, given, rel, [o for o in outputs if o.path != rel or o.stage is not None])
        if rel not in [t[1] for t in targets]:
            targets.append((given, rel))
    result = AddResult()
    changed_files: list[str] = []
    for given, rel in targets:
        pointer_rel = pointer_rel_for(rel)
        old: Pointer | None = None
        if os.path.exists(repo.abs(pointer_rel)):
            old = read_pointer(repo.abs(pointer_rel), pointer_rel)
        # an output keeps its algorithm across re-adds (an imported md5 folder stays md5)
        stored = store_output(repo, rel, progress=progress, algo=algo_of(old.digest) if old else repo.hash_algo)
        if stored.link_type:
            result.link_types.add(stored.link_type)
        new = Pointer(
            path=os.path.basename(rel), kind=stored.kind, digest=stored.digest, size=stored.size,
            files=stored.files, desc=(desc or None) if desc is not None else (old.desc if old else None),
            extra=old.extra if old else (),
        )
        if old is not None and old == new:
            result.unchanged.append(rel)
        else:
            write_pointer(repo, pointer_rel, new)
            result.added.append(rel)
            changed_files.append(pointer_rel)
        ignore_rel = gitignore_add(repo, rel)
        if ignore_rel:
            changed_files.append(ignore_rel)
        result.pointers.append(pointer_rel)
        repo.state.set_placed(rel, stored.kind, stored.digest)
        if ignore_rel is None:
            folder = os.path.dirname(rel)
            ignore_rel = f"{folder}/.gitignore" if folder else ".gitignore"
        if ignore_rel not in result.pointers:
            result.pointers.append(ignore_rel)
    repo.state.flush()
    result.staged = autostage(repo, result.pointers)
    return result
