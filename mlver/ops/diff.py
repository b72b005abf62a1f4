"""``mlver diff``: data files added, modified, deleted or renamed between two revisions
(or a revision and the workspace), inside tracked folders too."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlver.hashing import algo_of, digest_fields, hex_of
from mlver import git
from mlver.ops.common import all_outputs
from mlver.repo import Repo
from mlver.tracked import outputs_at
from mlver.workspace import Output, current_file_digest, current_manifest


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


def expand(repo: Repo, outputs: list[Output]) -> dict[str, str]:
    """data file path -> digest, folders expanded through their manifests."""
    files: dict[str, str] = {}
    for o in outputs:
        if o.kind == "file":
            files[o.path] = o.digest
            continue
        manifest = repo.cache.manifest(o.digest)
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
            files.update((f"{o.path}/{e.path}", e.digest)
                         for e in current_manifest(repo, o.path, algo=algo_of(o.digest)).entries)
        elif os.path.isfile(path):
            d = current_file_digest(repo, o.path, algo=algo_of(o.digest))
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
            res.renamed.append({"path": p.rstrip("/"), "old_path": old_path.rstrip("/"), **digest_fields(d)})
        else:
            res.added.append({"path": p.rstrip("/"), **digest_fields(d)})
    res.deleted = [{"path": p.rstrip("/"), **digest_fields(d)} for p, d in sorted(deleted.items())]
    res.modified = [_modified(p.rstrip("/"), old[p], new[p]) for p in sorted(set(old) & set(new)) if old[p] != new[p]]
    return res


def diff(repo: Repo, rev_a: str | None = None, rev_b: str | None = None) -> DiffResult:
    root = repo.require_scm("diff")
    if rev_a is None and not git.has_head(root):
        old: dict[str, str] = {}
    else:
        old = expand(repo, outputs_at(repo, rev_a or "HEAD"))
    new = expand(repo, outputs_at(repo, rev_b)) if rev_b else workspace_files(repo)
    return compare(old, new)


def _modified(path: str, old: str, new: str) -> dict[str, str]:
    """A changed path in ``--json``: the hex of both digests, with the new one's
    algorithm as ``hash`` (and the old one's as ``old_hash`` when it differs)."""
    row = {"path": path, "old": hex_of(old), "new": hex_of(new), "hash": algo_of(new)}
    if algo_of(old) != algo_of(new):
        row["old_hash"] = algo_of(old)
    return row
