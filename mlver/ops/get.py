"""``mlver get``: one tracked file or folder (a pointer's data or a stage output, or a
file inside a tracked folder) of any commit, of this project or of another Git
repository, written to a path of the user's choice without switching branches.

The pointer or lock is read from Git objects; the objects come from the cache, else
from the default remote. For another repository, a ``--no-checkout`` clone in a
temporary folder gives the history and ``.mlver/config`` its remote; objects go into
this project's cache when run inside one, else into a temporary cache.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from mlver import git, packs
from mlver.cache import Cache, ObjectRef
from mlver.config import Config, ConfigFile
from mlver.errors import ChecksumMismatch, MlverError, ObjectMissing, PathError, RemoteError
from mlver.fsutil import confine, copy_file, reflink, remove_path, tmp_name, unique_suffix
from mlver.pointer import POINTER_SUFFIX, Entry
from mlver.progress import NO_PROGRESS, Progress
from mlver.remote import Remote, remote_config
from mlver.repo import MLVER_DIR, Repo
from mlver.ops.source import local_path, settings_at
from mlver.tracked import entries_below, find, outputs_at
from mlver.workspace import Output


@dataclass(frozen=True)
class GetResult:
    path: str  # as found in the source (repo-relative)
    out: str  # where it was written
    kind: str  # "file", "dir", or "git" (a plain file Git tracks)
    rev: str  # commit id it came from
    size: int
    files: int | None = None
    fetched: int = 0  # objects downloaded from the remote

    def to_json(self) -> dict:
        return {"version": 1, "path": self.path, "out": self.out, "kind": self.kind, "rev": self.rev,
                "size": self.size, "files": self.files, "fetched": self.fetched}


def get(project: Repo | None, path: str, *, url: str | None = None, rev: str | None = None, out: str | None = None,
        force: bool = False, jobs: int | None = None, progress: Progress = NO_PROGRESS) -> GetResult:
    """``project`` is the mlver project around the current folder (None outside one)."""
    if project is not None and out is not None:
        _check_out_in_project(project, out)
    if url is None:
        if project is None:
            raise MlverError("not inside an mlver project", hint="use --repo URL to get data from another repository")
        return _get_local(project, project.rel(path), rev or "HEAD", out, force, jobs, progress, workspace=project.root)
    with tempfile.TemporaryDirectory(prefix="mlver-get-") as tmp:
        clone = os.path.join(tmp, "repo")
        git.clone(url, clone, shallow=rev is None)
        # a branch of the source other than its checked-out one is a remote-tracking
        # branch in the clone (as `dvc get --rev` resolves it)
        commit = git.verify_commit(clone, rev or "HEAD") or (rev and git.verify_commit(clone, f"origin/{rev}"))
        if commit is None:
            raise MlverError(f"unknown revision '{rev}' in {url}")
        if git.object_names(clone, [f"{commit}:{MLVER_DIR}/config"]).get(f"{commit}:{MLVER_DIR}/config") is None:
            raise MlverError(f"{url} is not an mlver project at {commit[:7]} (no {MLVER_DIR}/config)")
        settings = settings_at(clone, commit)
        os.makedirs(os.path.join(clone, MLVER_DIR))
        source = Repo(clone)
        local = ConfigFile(source.local_config_path)
        local.set("cache.dir", project.cache_dir if project is not None else os.path.join(tmp, "cache"))
        local.save()
        here = local_path(url)  # a folder on this machine, as a path or file:// URL
        base = here if here and os.path.isdir(here) else clone
        rel = path.replace(os.sep, "/").strip("/")
        # a project on this machine: its own cache holds what it has not pushed (as `dvc get`)
        theirs = Repo(base) if os.path.isdir(os.path.join(base, MLVER_DIR)) else None
        try:
            return _get_local(source, rel, commit, out, force, jobs, progress, remote_settings=settings,
                              remote_base=base, shown_source=url, source_cache=theirs.cache if theirs else None,
                              workspace=project.root if project is not None else None)
        finally:
            source.close()
            if theirs is not None:
                theirs.close()


def _check_out_in_project(project: Repo, out: str) -> None:
    """OUT inside this project may not be mlver's or Git's own folders, nor tracked data
    (whose uncached edits `get --force` would overwrite): `checkout --rev` is for that."""
    dest = os.path.abspath(out)
    if not (dest == project.root or dest.startswith(project.root + os.sep)):
        return
    rel = os.path.relpath(dest, project.root).replace(os.sep, "/")
    top = rel.split("/", 1)[0]
    if top in (".git", MLVER_DIR):
        raise PathError(out, f"is inside {'Git' if top == '.git' else 'mlver'}'s own folder {top}",
                        hint="write it somewhere else with -o")
    from mlver.ops.common import all_outputs

    for o in all_outputs(project):
        if rel == o.path or rel.startswith(o.path + "/") or o.path.startswith(rel + "/"):
            raise PathError(out, f"is tracked data of this project ({o.path})",
                            hint=f"bring another version in place with `mlver checkout --rev REV {o.path}` "
                                 "(it keeps edits the cache lacks), or write it elsewhere with -o")


def _get_local(repo: Repo, rel: str, rev: str, out: str | None, force: bool, jobs: int | None, progress: Progress,
               *, remote_settings: Config | None = None, remote_base: str | None = None,
               shown_source: str | None = None, source_cache: Cache | None = None,
               workspace: str | None = None) -> GetResult:
    """``workspace``: the project the command runs in; a destination inside it is written
    only where no symlink on the way leads out of it. ``source_cache``: the cache of the
    source project on this machine, read (verified) before its remote."""
    root = repo.require_scm("get")
    commit = git.verify_commit(root, rev)
    if commit is None:
        raise MlverError(f"unknown revision '{rev}'")
    rel = rel.removesuffix(POINTER_SUFFIX)
    dest = os.path.abspath(out or os.path.basename(rel.rstrip("/")) or "data")
    if os.path.lexists(dest) and not force:
        raise PathError(out or os.path.basename(rel), "already exists", hint="use --force to replace it, or -o OUT")
    inside = workspace if workspace is not None and dest.startswith(workspace + os.sep) else None
    if inside is not None:
        confine(inside, dest)
    outputs = outputs_at(repo, commit)
    found = find(outputs, rel)
    where = f"{shown_source + ' ' if shown_source else ''}at {commit[:7]}"
    if found is None and "/" not in rel:
        artifact = _artifact_path(repo, root, commit, rel)  # `mlver get model`: an artifact of mlver.yaml
        if artifact is not None:
            rel = artifact
            found = find(outputs, rel)
            if out is None:
                dest = os.path.abspath(os.path.basename(rel.rstrip("/")) or "data")
                if os.path.lexists(dest) and not force:
                    raise PathError(os.path.basename(rel), "already exists", hint="use --force to replace it, or -o OUT")
    if found is None:
        data = _git_file(repo, root, commit, rel)
        if data is None:
            raise PathError(rel, f"is not tracked by mlver (nor Git) {where}")
        _write_bytes(dest, data, inside)
        return GetResult(rel, dest, "git", commit, len(data))
    output, inner = found
    cache = repo.cache
    fetched = 0
    settings = remote_settings or repo.config
    def bring(refs: list[ObjectRef]) -> int:
        refs = _copy_from(source_cache, cache, refs, shown_source)
        return _fetch(repo, settings, remote_base, refs, output.path, jobs, progress, shown_source) if refs else 0

    if output.kind == "dir" and not cache.has(output.digest, True):
        fetched += bring([ObjectRef(output.digest, True)])
    entries = _entries(cache, output, inner)
    need = sorted({e.digest for e in entries if not cache.has(e.digest)})
    if need:
        fetched += bring([ObjectRef(d, False) for d in need])
    _write_entries(cache, dest, entries, single=output.kind == "file" or (inner is not None and entries[0].path == ""),
                   inside=inside)
    kind = "file" if len(entries) == 1 and entries[0].path == "" else "dir"
    return GetResult(rel, dest, kind, commit, sum(max(e.size, 0) for e in entries), None if kind == "file" else len(entries),
                     fetched)


def _artifact_path(repo: Repo, root: str, commit: str, name: str) -> str | None:
    """The path of artifact ``name`` in ``mlver.yaml`` at ``commit`` (None: no such artifact)."""
    from mlver.errors import FormatError
    from mlver.pipeline.model import PIPELINE_FILE, parse_pipeline
    from mlver.pipeline.params import ParamsReader

    text = _git_file(repo, root, commit, PIPELINE_FILE)
    if text is None:
        return None
    try:
        pipeline = parse_pipeline(text.decode("utf-8", "replace"), f"{commit[:7]}:{PIPELINE_FILE}",
                                  ParamsReader(lambda rel: _git_file(repo, root, commit, rel)).doc)
    except FormatError:
        return None
    return next((a.path for a in pipeline.artifacts if a.name == name), None)


def _git_file(repo: Repo, root: str, commit: str, rel: str) -> bytes | None:
    prefix = os.path.relpath(repo.root, root).replace(os.sep, "/")
    spec = f"{commit}:{rel}" if prefix == "." else f"{commit}:{prefix}/{rel}"
    blob = git.object_names(root, [spec]).get(spec)
    return git.read_blobs(root, [blob])[blob] if blob else None


def _entries(cache: Cache, output: Output, inner: str | None) -> list[Entry]:
    if output.kind == "file":
        return [Entry("", output.digest, output.size, False)]
    manifest = cache.manifest(output.digest)
    if manifest is None:  # pragma: no cover - fetched above or reported missing
        raise ObjectMissing(output.digest, output.path)
    below = entries_below(manifest.entries, inner)
    if not below:
        raise PathError(f"{output.path}/{inner}", f"is not in the tracked folder {output.path}")
    return below


def _copy_from(source: Cache | None, cache: Cache, refs: list[ObjectRef], shown_source: str | None
               ) -> list[ObjectRef]:
    """Copy into ``cache`` the objects of ``refs`` that the source project's cache holds
    (verified: a damaged copy there is left for the remote); returns those still needed."""
    if source is None:
        return refs
    left = []
    for ref in refs:
        src = source.path(ref.digest, ref.manifest)
        if os.path.isfile(src):
            try:
                cache.store_copy_verified(src, ref.digest, manifest=ref.manifest, where=f"{shown_source}'s cache")
                continue
            except (ChecksumMismatch, OSError):
                pass
        left.append(ref)
    return left


def _fetch(repo: Repo, settings: Config, base: str | None, refs: list[ObjectRef], shown: str, jobs: int | None,
           progress: Progress, shown_source: str | None = None) -> int:
    """Download ``refs`` from the default remote into the cache; every one must arrive."""
    try:
        rc = remote_config(settings.remotes(), settings.get("core.remote"), None)
    except RemoteError as e:
        if settings.remotes():
            raise e from None
        if shown_source is not None:  # another project's data: pulling here cannot help
            raise MlverError(f"{shown}: object {refs[0].digest} is not in {shown_source}'s cache, "
                             f"and {shown_source} has no remote",
                             hint="run `mlver push` in a clone that has the data, after adding a remote there"
                             ) from None
        raise ObjectMissing(refs[0].digest, shown) from None
    with Remote(rc, base_dir=base or repo.root, jobs=jobs) as rem:
        got = packs.download_any(rem, repo.cache, refs, repo.tmp_dir, progress=progress)
    if got.corrupt:
        raise MlverError(got.corrupt[0][1])
    if got.missing:
        raise MlverError(f"{shown}: object {got.missing[0].digest} is in neither the cache nor remote '{rc.name}'",
                         hint="the commit's data was never pushed; ask whoever made it to `mlver push`")
    return got.objects


def _place(src: str, dst: str, executable: bool) -> None:
    """An independent, writable copy (reflink where the filesystem offers one)."""
    mode = 0o755 if executable else 0o644
    try:
        reflink(src, dst)
        os.chmod(dst, mode)
    except OSError:
        copy_file(src, dst, mode)


def _write_bytes(dest: str, data: bytes, inside: str | None) -> None:
    from mlver.fsutil import atomic_write

    if os.path.isdir(dest) and not os.path.islink(dest):
        remove_path(dest, inside=inside)
    atomic_write(dest, data, inside=inside)


def _write_entries(cache: Cache, dest: str, entries: list[Entry], *, single: bool, inside: str | None) -> None:
    """Whole or not at all: build beside ``dest`` under a temporary name, then rename
    (inside the workspace ``inside`` when given: see ``confine``)."""
    parent = os.path.dirname(dest)
    if inside is not None:
        confine(inside, dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tmp_name(dest)
    try:
        if single:
            _place(cache.path(entries[0].digest), tmp, entries[0].exec)
        else:
            os.mkdir(tmp)
            for e in entries:
                target = os.path.join(tmp, *e.path.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                _place(cache.path(e.digest), target, e.exec)
        if os.path.lexists(dest) and (os.path.isdir(dest) and not os.path.islink(dest) or not single):
            old = f"{dest}.old-{unique_suffix()}"
            if inside is not None:
                confine(inside, dest)
            os.rename(dest, old)
            os.rename(tmp, dest)
            remove_path(old)
        else:
            if inside is not None:
                confine(inside, dest)
            os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            remove_path(tmp)
        raise

