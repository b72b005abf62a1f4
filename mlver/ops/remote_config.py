"""``mlver remote add / modify / list / remove / default``: remotes in the config files.
The URL and ordinary options go to the committed ``.mlver/config``; credentials only to
``.mlver/config.local`` (``--local``) or the user's config (``--global``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from mlver.config import ConfigFile, check_remote_option, user_config_path
from mlver.errors import FormatError, MlverError, RemoteError, UsageError
from mlver.remote import SECRET_OPTIONS, backend_for, backend_installed, check_url, option_names
from mlver.repo import Repo

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
LEVELS = ("project", "local", "global")


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    default: bool
    options: dict[str, str] = field(default_factory=dict)  # credentials shown as "***"
    backend: str = "local"
    extra: str | None = None
    installed: bool = True

    def to_json(self) -> dict:
        return {"name": self.name, "url": self.url, "default": self.default, "options": self.options,
                "backend": self.backend, "extra": self.extra, "installed": self.installed}


def _file(repo: Repo, level: str) -> ConfigFile:
    return ConfigFile({"project": repo.config_path, "local": repo.local_config_path,
                       "global": user_config_path()}[level])


def _save(repo: Repo, cf: ConfigFile) -> None:
    os.makedirs(os.path.dirname(cf.path), exist_ok=True)
    try:
        fsync = repo.fsync
    except FormatError:  # a bad value elsewhere, which this change may be fixing: the safe side
        fsync = True
    cf.save(fsync=fsync)


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid remote name '{name}'",
                         hint="use letters, digits, '_', '-' and '.', starting with a letter or digit")


def _remotes(repo: Repo) -> dict[str, dict[str, str]]:
    return repo.unchecked_config().remotes()  # `remote modify` may be fixing a bad value


def _folder_url(repo: Repo, url: str, level: str, base: str | None = None) -> str:
    """A folder path as typed is relative to where the user stands (``base``, by default
    the current folder, as in DVC and the shell); it is stored relative to the project
    root, which is how it is read, so a clone beside the store finds it wherever it
    sits. The user-level config gets it absolute. ``~`` is expanded; URLs with a scheme
    are left as given."""
    if "://" in url or not url:
        return url
    path = os.path.expanduser(url)
    if os.path.isabs(path) and not url.startswith("~"):
        return url
    full = os.path.normpath(os.path.join(base or os.getcwd(), path))
    if level == "global" or url.startswith("~"):
        return full
    return os.path.relpath(full, repo.root).replace(os.sep, "/")


def _refuse_url_secret(name: str, url: str, level: str) -> None:
    """A URL carrying a password (``ssh://user:pw@host``) is a credential too: it may not
    go into the committed file."""
    if level == "project" and "://" in url and urlparse(url).password:
        raise UsageError(f"the URL of remote '{name}' holds a password, and .mlver/config is committed to Git",
                         hint=f"leave it out of the URL and set it with `mlver remote modify --local {name} "
                              "password ...` (or add the remote with --local / --global)")


def masked_url(url: str) -> str:
    """``url`` with a password in it shown as ``***``."""
    if "://" not in url:
        return url
    parsed = urlparse(url)
    if not parsed.password:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def add(repo: Repo, name: str, url: str, *, default: bool = False, force: bool = False,
        level: str = "project", base: str | None = None) -> tuple[str, str]:
    """Add remote ``name``; returns the config file written and the URL stored (a
    relative folder path is taken from ``base``, by default the current folder)."""
    _check_name(name)
    url = _folder_url(repo, url, level, base)
    check_url(url, name=name)
    _refuse_url_secret(name, url, level)
    existing = _remotes(repo)
    if name in existing and not force:
        raise UsageError(f"remote '{name}' already exists ({existing[name].get('url', 'no url')})",
                         hint=f"use `mlver remote modify {name} url URL`, or `remote add -f` to replace it")
    cf = _file(repo, level)
    if force:
        cf.remove_section(f"remote.{name}")
    cf.set(f"remote.{name}.url", url)
    if default:
        cf.set("core.remote", name)
    _save(repo, cf)
    return cf.path, url


def modify(repo: Repo, name: str, key: str, value: str | None, *, level: str = "project") -> str:
    """Set (or with ``value`` None, unset) one option of remote ``name``."""
    remotes = _remotes(repo)
    if name not in remotes:
        raise RemoteError(f"remote '{name}' is not configured", hint="see `mlver remote list`")
    url = value if key == "url" and value else remotes[name].get("url", "")
    allowed = option_names(url)
    if key == "timeout" and key not in allowed and value is not None:  # unsetting one written by hand is fine
        raise UsageError("a folder remote has no 'timeout': it is local system calls, with no request to give up on",
                         hint="a network mount sets its own deadline (NFS: the soft and timeo mount options)")
    if key not in allowed and value is not None:
        raise UsageError(f"'{key}' is not an option of {backend_for(url).protocol} remotes",
                         hint=f"options: {', '.join(allowed)}")
    if value is not None and key in SECRET_OPTIONS and level == "project":
        raise UsageError(f"'{key}' is a credential and .mlver/config is committed to Git",
                         hint=f"use `mlver remote modify --local {name} {key} ...` (or --global)")
    if key == "url" and value is not None:
        value = _folder_url(repo, value, level)
        check_url(value, name=name)
        _refuse_url_secret(name, value, level)
    if value is not None:
        check_remote_option(key, value)
    cf = _file(repo, level)
    if value is None:
        if not cf.unset(f"remote.{name}.{key}"):
            raise MlverError(f"remote '{name}' has no '{key}' in {cf.path}")
    else:
        cf.set(f"remote.{name}.{key}", value)
    _save(repo, cf)
    return cf.path


def list_remotes(repo: Repo) -> list[RemoteInfo]:
    default = repo.config.get("core.remote")
    out = []
    for name, opts in sorted(_remotes(repo).items()):
        url = opts.get("url", "")
        backend = backend_for(url)
        shown = {k: ("***" if k in SECRET_OPTIONS else v) for k, v in sorted(opts.items()) if k != "url"}
        out.append(RemoteInfo(name, masked_url(url), name == default, shown, backend.module or "local", backend.extra,
                              backend_installed(backend)))
    return out


def remove(repo: Repo, name: str) -> list[str]:
    """Remove remote ``name`` from every config file that mentions it (and as the default)."""
    if name not in _remotes(repo):
        raise RemoteError(f"remote '{name}' is not configured", hint="see `mlver remote list`")
    changed = []
    for level in LEVELS:
        cf = _file(repo, level)
        touched = cf.remove_section(f"remote.{name}")
        if cf.items().get("core.remote") == name:
            cf.unset("core.remote")
            touched = True
        if touched:
            _save(repo, cf)
            changed.append(cf.path)
    return changed


def set_default(repo: Repo, name: str | None, *, level: str = "project") -> str | None:
    """Make ``name`` the default remote (None: unset it at ``level``). Returns the file."""
    cf = _file(repo, level)
    if name is None:
        cf.unset("core.remote")
        _save(repo, cf)
        return cf.path
    if name not in _remotes(repo):
        raise RemoteError(f"remote '{name}' is not configured", hint="see `mlver remote list`")
    cf.set("core.remote", name)
    _save(repo, cf)
    return cf.path


def get_default(repo: Repo) -> str | None:
    return repo.unchecked_config().get("core.remote")
