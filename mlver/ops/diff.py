"""``mlver diff``: data files added, modified, deleted or renamed between two revisions
(or a revision and the workspace), inside tracked folders too."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from mlver import git
from mlver.errors import FormatError
from mlver.ops.common import LOCK_FILE, all_outputs
from mlver.pointer import POINTER_SUFFIX, parse_pointer
from mlver.repo import Repo
from mlver.workspace import Output, current_file_digest, current_manifest, load_manifest


@dataclass
class DiffResult:
    added: list[dict] = field(default_factory=list)
    deleted: list[dict] = field(default_factory=list)
    modified: list[dict] = field(default_factory=list)
    renamed: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"version": 1, "added": self.added, "deleted": self.deleted,
                "modified": self.modified, "renamed": self.renamed}

    @property
    def empty(self) -> bool:
        return not (self.added or self.deleted or self.modified or self.renamed)


def outputs_at(repo: Repo, grepo: object, rev: str) -> list[Output]:
    """Tracked outputs recorded at ``rev``, read from Git objects (no checkout)."""
    prefix, want = history_files(repo)
    snap = git.read_tree(grepo, rev, want)  # type: ignore[arg-type]
    outs: list[Output] = []
    for path, data in sorted(snap.files.items()):
        outs.extend(outputs_in_file(path[len(prefix):], data, f"{rev}:{path[len(prefix):]}"))
    return outs


def history_files(repo: Repo) -> tuple[str, Callable[[str], bool]]:
    """The project's folder in Git (``""`` or ``sub/``) and a test of Git paths (from the
    top) for the files that record outputs: pointers and the lock files."""
    root = repo.scm_root
    assert root is not None
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    prefix = "" if prefix == "." else prefix + "/"
    def want(p: str) -> bool:
        return p.startswith(prefix) and (p.endswith(POINTER_SUFFIX) or p.rsplit("/", 1)[-1] == LOCK_FILE)

    return prefix, want


def outputs_in_file(rel: str, data: bytes, shown: str) -> list[Output]:
    """The outputs a pointer or lock file's bytes (from Git) record; ``rel`` is its path in
    the project."""
    if rel.rsplit("/", 1)[-1] == LOCK_FILE:  # the top lock, or a subfolder pipeline's
        from mlver.pipeline.lockfile import outputs_from_lock_text

        return outputs_from_lock_text(data.decode("utf-8", "replace"), shown, rel)
    try:
        ptr = parse_pointer(data.decode("utf-8"), shown)
    except UnicodeDecodeError:
        raise FormatError(shown, "not UTF-8 text") from None
    folder = os.path.dirname(rel)
    return [Output(f"{folder}/{ptr.path}" if folder else ptr.path, ptr.kind, ptr.digest, ptr.size,
                   ptr.files, pointer_file=rel, pointer=ptr)]


def expand(repo: Repo, outputs: list[Output]) -> dict[str, str]:
    """data file path -> digest, folders expanded through their manifests."""
    files: dict[str, str] = {}
    for o in outputs:
        if o.kind == "file":
            files[o.path] = o.digest
            continue
        manifest = load_manifest(repo.cache, o.digest)
        if manifest is None:
            files[o.path + "/"] = o.digest  # the folder as one item when its manifest is absent
        else:
            files.update((f"{o.path}/{e.path}", e.digest) for e in manifest.entries)
    return files


def workspace_files(repo: Repo) -> dict[str, str]:
    """data file path -> digest of what is in the workspace now."""
    files: dict[str, str] = {}
    for o in all_outputs(repo):
        path = repo.abs(o.path)
        if o.kind == "dir" and os.path.isdir(path):
            files.update((f"{o.path}/{e.path}", e.digest) for e in current_manifest(repo, o.path).entries)
        elif os.path.isfile(path):
            d = current_file_digest(repo, o.path)
            if d:
                files[o.path] = d[0]
    repo.state.flush()
    return files


def compare(old: dict[str, str], new: dict[str, str]) -> DiffResult:
    res = DiffResult()
    added = {p: d for p, d in new.items() if p not in old}
    deleted = {p: d for p, d in old.items() if p not in new}
    by_digest: dict[str, list[str]] = {}
    for p, d in sorted(deleted.items()):
        by_digest.setdefault(d, []).append(p)
    for p, d in sorted(added.items()):
        if by_digest.get(d):
            old_path = by_digest[d].pop(0)
            del deleted[old_path]
            res.renamed.append({"path": p.rstrip("/"), "old_path": old_path.rstrip("/"), "digest": d})
        else:
            res.added.append({"path": p.rstrip("/"), "digest": d})
    res.deleted = [{"path": p.rstrip("/"), "digest": d} for p, d in sorted(deleted.items())]
    res.modified = [{"path": p.rstrip("/"), "old": old[p], "new": new[p]}
                    for p in sorted(set(old) & set(new)) if old[p] != new[p]]
    return res


def diff(repo: Repo, rev_a: str | None = None, rev_b: str | None = None) -> DiffResult:
    root = repo.require_scm("diff")
    with git.open_repo(root) as grepo:
        if rev_a is None and not git.has_head(root):
            old: dict[str, str] = {}
        else:
            old = expand(repo, outputs_at(repo, grepo, rev_a or "HEAD"))
        new = expand(repo, outputs_at(repo, grepo, rev_b)) if rev_b else workspace_files(repo)
    return compare(old, new)
