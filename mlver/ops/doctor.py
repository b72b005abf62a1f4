"""``mlver doctor``: a report of the environment mlver runs in."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass, field

from mlver import __version__, git
from mlver.fsutil import LINK_TYPES, link_file, unlink_quiet
from mlver.errors import NotARepoError
from mlver.remote import backend_for
from mlver.repo import Repo


@dataclass
class DoctorReport:
    version: str
    python: str
    platform: str
    git: str | None
    root: str | None = None
    cache_dir: str | None = None
    cache_objects: int = 0
    cache_bytes: int = 0
    link_types: dict[str, bool] = field(default_factory=dict)
    configured_link_types: list[str] = field(default_factory=list)
    remotes: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"version": 1, **{k: v for k, v in self.__dict__.items() if k != "version"}, "mlver": self.version}


def _probe_links(cache_dir: str, workspace_tmp: str) -> dict[str, bool]:
    os.makedirs(os.path.join(cache_dir, "tmp"), exist_ok=True)
    os.makedirs(workspace_tmp, exist_ok=True)
    src = os.path.join(cache_dir, "tmp", f"doctor-{os.getpid()}")
    with open(src, "wb") as f:
        f.write(b"mlver link probe\n")
    works = {}
    for kind in LINK_TYPES:
        dst = os.path.join(workspace_tmp, f"doctor-{os.getpid()}-{kind}")
        try:
            link_file(src, dst, kind)
            works[kind] = True
        except OSError:
            works[kind] = False
        unlink_quiet(dst)
    unlink_quiet(src)
    return works


def doctor(start: str) -> DoctorReport:
    try:
        gv = git.run(start, "--version").stdout.decode().strip()
    except Exception:  # noqa: BLE001 - any failure means "no usable git"
        gv = None
    report = DoctorReport(__version__, sys.version.split()[0], platform.platform(), gv)
    try:
        repo = Repo.find(start)
    except NotARepoError:
        return report
    report.root = repo.root
    report.cache_dir = repo.cache_dir
    for ref in repo.cache.iter_objects():
        report.cache_objects += 1
        try:
            report.cache_bytes += os.path.getsize(repo.cache.path(ref.digest, ref.manifest))
        except OSError:
            pass
    report.link_types = _probe_links(repo.cache_dir, repo.tmp_dir)
    report.configured_link_types = list(repo.config.link_types)
    default = repo.config.get("core.remote")
    for name, opts in sorted(repo.config.remotes().items()):
        url = opts.get("url", "")
        backend = backend_for(url)
        installed = backend.module is None or importlib.util.find_spec(backend.module) is not None
        report.remotes.append({"name": name, "url": url, "default": name == default,
                               "backend": backend.module or "local", "extra": backend.extra, "installed": installed})
    return report
