"""DVC's storage taken over by ``mlver import-dvc``: its remotes (``.dvc/config`` and
``config.local``) as mlver remotes with the same URLs and options, and its cache objects
(``files/md5/…``, DVC 3's layout, which is mlver's for md5) linked into mlver's cache
under the same digests, so nothing is hashed or uploaded again."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field, replace
from typing import Any

from mlver.errors import MlverError
from mlver.fsutil import copy_file, tmp_name, unlink_quiet
from mlver.hashing import LEGACY_MD5
from mlver.pipeline.dvcfiles import (DVC_DIR, OPTION_NAMES, DvcConfig, DvcStateEntry, parse_dvc_config,
                                     qualified_md5, read_text, remote_url_for_mlver, state_checksum, state_entries)

CONFIG = f"{DVC_DIR}/config"
LOCAL_CONFIG = f"{DVC_DIR}/config.local"


@dataclass(frozen=True)
class Unconverted:
    """Something the import leaves to the user: what, where, and what to do."""

    what: str
    where: str
    todo: str

    def to_json(self) -> dict[str, str]:
        return {"what": self.what, "where": self.where, "todo": self.todo}


@dataclass(frozen=True)
class RemotePlan:
    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict)  # committed (.mlver/config)
    local: dict[str, str] = field(default_factory=dict)  # .mlver/config.local (credentials)
    default: bool = False  # the project's default remote
    local_default: bool = False  # this machine's default (DVC's config.local), in .mlver/config.local
    exists: bool = False  # already configured with this URL: only options are set

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "default": self.default, "local_default": self.local_default,
                "options": self.options, "local": sorted(self.local), "exists": self.exists}


@dataclass(frozen=True)
class CacheObject:
    src: str  # absolute path in DVC's cache
    digest: str
    manifest: bool


@dataclass
class StoragePlan:
    remotes: list[RemotePlan] = field(default_factory=list)
    objects: list[CacheObject] = field(default_factory=list)
    dvc_cache: str = ""
    removable: bool = True  # DVC's cache may go once linked (not shared, not linked into the workspace)
    unconverted: list[Unconverted] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state: list[DvcStateEntry] = field(default_factory=list)  # digests DVC's state database remembers


@dataclass(frozen=True)
class ObjectCounts:
    linked: int = 0
    copied: int = 0
    present: int = 0


def plan_storage(root: str, *, existing: dict[str, dict[str, str]], keep_dvc: bool) -> StoragePlan:
    """The remotes and cache objects of the DVC project at ``root``; ``existing``: the
    mlver remotes already configured (name -> options)."""
    config = parse_dvc_config(read_text(root, CONFIG, missing_ok=True), CONFIG,
                              read_text(root, LOCAL_CONFIG, missing_ok=True), LOCAL_CONFIG)
    plan = StoragePlan()
    for r in config.remotes:
        where = CONFIG if r.in_committed else LOCAL_CONFIG
        if r.url.startswith("remote://"):
            plan.unconverted.append(Unconverted(f"remote '{r.name}' ({r.url}): a path inside another DVC remote",
                                                where, "add it with its full URL: `mlver remote add NAME URL`"))
            continue
        remote = _remote(plan, r, existing, default=r.name == config.default, keep_dvc=keep_dvc)
        if remote is not None and r.name == config.local_default:
            remote = replace(remote, local_default=True)
        if remote is not None:
            plan.remotes.append(remote)
    _objects(plan, root, config, keep_dvc=keep_dvc)
    plan.state = state_entries(root, config)
    return plan


def _remote(plan: StoragePlan, r: Any, existing: dict[str, dict[str, str]], *, default: bool,
            keep_dvc: bool) -> RemotePlan | None:
    from mlver.config import check_remote_option
    from mlver.remote import SECRET_OPTIONS, check_url, option_names

    url = remote_url_for_mlver(r.url)
    try:
        check_url(url, name=r.name)
    except MlverError as e:
        plan.unconverted.append(Unconverted(f"remote '{r.name}' ({r.url})", CONFIG if r.in_committed else LOCAL_CONFIG,
                                            f"{e.message}, then `mlver remote add {r.name} {url}`"))
        return None
    if r.name in existing and existing[r.name].get("url") != url:
        raise MlverError(f"remote '{r.name}' is already configured in mlver with another URL "
                         f"({existing[r.name].get('url')}), DVC's is {url}",
                         hint=f"rename or remove one (`mlver remote remove {r.name}`), then import again")
    allowed = option_names(url)
    committed: dict[str, str] = {}
    secret: dict[str, str] = {}
    for where, options in ((CONFIG, r.options), (LOCAL_CONFIG, r.local_options)):
        for key, value in options.items():
            name = OPTION_NAMES.get(key, key)
            if name not in allowed or name == "url":
                kind = url.split("://")[0] if "://" in url else "folder"
                plan.unconverted.append(Unconverted(
                    f"option '{key}' of remote '{r.name}'", where,
                    f"mlver's {kind} remotes have no such option (they take: "
                    f"{', '.join(k for k in allowed if k != 'url')}); set it through the backend's own config"))
                continue
            try:
                check_remote_option(name, value)
            except MlverError as e:
                plan.unconverted.append(Unconverted(f"option '{key}' of remote '{r.name}'", where, e.message))
                continue
            if where == LOCAL_CONFIG or name in SECRET_OPTIONS:
                secret[name] = value
                if where == CONFIG:
                    plan.warnings.append(f"{CONFIG} holds the credential '{key}' of remote '{r.name}' (committed to "
                                         "Git): mlver keeps it in .mlver/config.local; consider rotating it")
            else:
                committed[name] = value
    if keep_dvc:
        committed["packs"] = "false"  # DVC reads the remote too: keep its layout loose
    return RemotePlan(r.name, url, committed, secret, default=default, exists=r.name in existing)


def _objects(plan: StoragePlan, root: str, config: DvcConfig, *, keep_dvc: bool) -> None:
    """DVC 3's cache objects (``files/md5/ab/cdef…``, folders as ``….dir``), to be linked
    into mlver's cache under the same digests."""
    default = os.path.join(root, DVC_DIR, "cache")
    cache = default
    if config.cache_dir:
        d = os.path.expanduser(config.cache_dir)
        cache = os.path.normpath(d if os.path.isabs(d) else os.path.join(root, DVC_DIR, d))
    plan.dvc_cache = cache
    linked_in = any(k in (config.cache_type or "") for k in ("symlink", "hardlink"))
    plan.removable = cache == default and not linked_in
    base = os.path.join(cache, "files", "md5")
    for prefix in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        folder = os.path.join(base, prefix)
        if len(prefix) != 2 or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            manifest = name.endswith(".dir")
            rest = name[:-4] if manifest else name
            if len(rest) != 30 or not all(c in "0123456789abcdef" for c in rest):
                continue  # DVC's temporary and unpacked files
            plan.objects.append(CacheObject(os.path.join(folder, name), qualified_md5(prefix + rest), manifest))
    # DVC 2's objects (md5-dos2unix), in DVC 2's layout at the top of the cache: mlver keeps
    # them there too (cache.algo_folder), under the same names
    for prefix in sorted(os.listdir(cache)) if os.path.isdir(cache) else []:
        folder = os.path.join(cache, prefix)
        if len(prefix) != 2 or not all(c in "0123456789abcdef" for c in prefix) or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            manifest = name.endswith(".dir")
            rest = name[:-4] if manifest else name
            if len(rest) == 30 and all(c in "0123456789abcdef" for c in rest):
                plan.objects.append(CacheObject(os.path.join(folder, name), qualified_md5(prefix + rest, LEGACY_MD5),
                                                manifest))
    if not keep_dvc and not plan.removable:
        plan.warnings.append(f"DVC's cache {cache} is kept: it is shared or linked into the workspace "
                             f"(cache.type {config.cache_type or 'default'}); remove it yourself once you no longer "
                             "need it")


def apply_remotes(repo: Any, remotes: list[RemotePlan]) -> None:
    """Configure ``remotes`` through ``mlver remote add / modify / default``."""
    from mlver.ops import remote_config

    for r in remotes:
        if not r.exists:
            remote_config.add(repo, r.name, r.url, level="project", base=repo.root)  # r.url is root-relative
        repo.__dict__.pop("config", None)  # read the config files again: they changed
        for key, value in r.options.items():
            remote_config.modify(repo, r.name, key, value, level="project")
        for key, value in r.local.items():
            remote_config.modify(repo, r.name, key, value, level="local")
        if r.default:
            remote_config.set_default(repo, r.name)
        if r.local_default:
            remote_config.set_default(repo, r.name, level="local")
    repo.__dict__.pop("config", None)


def link_objects(cache: Any, objects: list[CacheObject]) -> ObjectCounts:
    """Hard-link DVC's objects into mlver's ``cache`` (copy where a link cannot be made,
    across devices); they keep their digests, so nothing is hashed again."""
    linked = copied = present = 0
    for obj in objects:
        dest = cache.path(obj.digest, obj.manifest)
        if os.path.exists(dest):
            present += 1
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(obj.src, dest)
            linked += 1
            continue
        except FileExistsError:
            present += 1
            continue
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
        tmp = tmp_name(dest)
        try:
            copy_file(obj.src, tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            unlink_quiet(tmp)
        copied += 1
    return ObjectCounts(linked, copied, present)


def seed_state(repo: Any, entries: list[DvcStateEntry]) -> int:
    """Fill mlver's state memo from DVC's state database, for each workspace file whose
    (inode, mtime, size) still give DVC's token: DVC verified those bytes, so the first
    ``mlver status`` after the import does not read them again. Returns how many."""
    import stat as stat_module
    import time

    now = time.time_ns()  # the memo's racy rule is measured from here
    seeded: set[str] = set()
    for e in entries:
        rel = os.path.relpath(e.path, repo.root).replace(os.sep, "/")
        if rel in seeded or rel.startswith(("../", ".dvc/", ".git/", ".mlver/")):
            continue
        try:
            st = os.lstat(e.path)
        except OSError:
            continue
        if stat_module.S_ISREG(st.st_mode) and state_checksum(st) == e.checksum:
            repo.state.record(rel, st, qualified_md5(e.md5), read_ns=now)
            seeded.add(rel)
    repo.state.flush()
    if seeded:
        _remember_folders(repo)
    return len(seeded)


def _remember_folders(repo: Any) -> None:
    """The folder memo of each tracked folder whose every file's digest is now known,
    built from those digests (no file is read), so the first ``status`` answers each
    folder from one memo row, as in a project mlver tracked from the start."""
    from mlver.hashing import algo_of
    from mlver.tracked import workspace_outputs
    from mlver.workspace import dir_digest_of, known_digests, scan_dir, stat_rows

    for out in workspace_outputs(repo):
        if out.kind != "dir" or not os.path.isdir(repo.abs(out.path)):
            continue
        try:
            entries = scan_dir(repo, out.path)
        except MlverError:
            continue  # status says what is wrong with it
        rows = stat_rows(entries)
        if all(d is not None for d in known_digests(repo, out.path, entries, rows, algo_of(out.digest))):
            dir_digest_of(repo, out.path, entries, rows=rows, algo=algo_of(out.digest))
    repo.state.flush()
