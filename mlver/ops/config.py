"""``mlver config``: read and write settings at one level (project, local, user)."""

from __future__ import annotations

import os

from mlver.config import Config, ConfigFile, user_config_path, validate
from mlver.errors import MlverError, NotARepoError, UsageError
from mlver.repo import Repo


def config_file_for(level: str, start: str) -> str:
    if level == "global":
        return user_config_path()
    try:
        repo = Repo.find(start, check_config=False)  # writing a value may be how a bad one is fixed
    except NotARepoError:
        raise NotARepoError("not inside an mlver project", hint="use --global for per-user settings") from None
    return repo.local_config_path if level == "local" else repo.config_path


def get(key: str, *, level: str | None, start: str) -> str:
    if level is None:
        try:
            repo = Repo.find(start)
            value = repo.config.get(key)
        except NotARepoError:
            value = Config.load(None, None).get(key)
    else:
        value = ConfigFile(config_file_for(level, start)).items().get(key)
    if value is None:
        raise MlverError(f"config key '{key}' is not set")
    return value


def set_value(key: str, value: str, *, level: str | None, start: str) -> str:
    validate(key, value)
    if level is None and _is_secret(key):
        raise UsageError(f"'{key}' looks like a credential and would be committed",
                         hint="use `--local` (this clone) or `--global` (your user)")
    path = config_file_for(level or "project", start)
    cf = ConfigFile(path)
    cf.set(key, value)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cf.save()
    return path


def unset(key: str, *, level: str | None, start: str) -> str:
    path = config_file_for(level or "project", start)
    cf = ConfigFile(path)
    if not cf.unset(key):
        raise MlverError(f"config key '{key}' is not set in {path}")
    cf.save()
    return path


SECRET_WORDS = ("password", "secret", "token", "key_id", "access_key", "credential", "sas", "passphrase")


def _is_secret(key: str) -> bool:
    name = key.rsplit(".", 1)[-1].lower()
    return name != "keyfile" and any(w in name for w in SECRET_WORDS)


def list_all(*, start: str) -> dict[str, str]:
    try:
        return dict(sorted(Repo.find(start).config.values.items()))
    except NotARepoError:
        return dict(sorted(Config.load(None, None).values.items()))
