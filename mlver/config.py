"""Merged, validated settings from the user, project and local config files
(precedence local > project > user). Files are Git-style INI:

    [core]
        remote = storage
    [remote "storage"]
        url = s3://bucket/prefix
"""

from __future__ import annotations

import configparser
import io
import os
import re
from dataclasses import dataclass, field

from mlver.errors import FormatError, UsageError, check_merge_conflict
from mlver.fsutil import LINK_TYPES, atomic_write_text

KNOWN = {
    "core": {"remote": "str", "autostage": "bool", "fsync": "bool", "lock_timeout": "float", "hash": "hash"},
    "cache": {"dir": "str", "type": "linktypes"},
    "hooks": {"require_push": "bool", "fetch": "bool", "check": "bool"},
    "gc": {"grace": "duration"},
    "checks": {"base": "str"},
}
DEFAULT_GC_GRACE = "1d"
DEFAULT_CACHE_TYPE = "reflink,copy"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def user_config_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlver", "config")


def _section_to_prefix(section: str) -> str:
    # 'remote "origin"' -> 'remote.origin'
    if " " in section:
        head, _, name = section.partition(" ")
        return f"{head}.{name.strip().strip(chr(34))}"
    return section


def split_key(key: str) -> tuple[str, str]:
    """'core.remote' -> ('core', 'remote'); 'remote.origin.url' -> ('remote "origin"', 'url')."""
    parts = key.split(".")
    if any(c in key for c in '\n\r\0"[]'):
        raise UsageError(f"invalid config key {key!r}: names cannot hold line breaks, quotes or brackets")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    if len(parts) >= 3 and parts[0] == "remote" and all(parts):
        return f'remote "{".".join(parts[1:-1])}"', parts[-1]
    raise UsageError(f"invalid config key '{key}'", hint="keys look like 'core.remote' or 'remote.NAME.url'")


def validate(key: str, value: str) -> None:
    section, name = split_key(key)
    if section.startswith("remote "):
        return
    if section not in KNOWN or name not in KNOWN[section]:
        known = ", ".join(f"{s}.{k}" for s, ks in KNOWN.items() for k in ks)
        raise UsageError(f"unknown config key '{key}'", hint=f"known keys: {known}, remote.NAME.*")
    kind = KNOWN[section][name]
    if kind == "bool" and value.lower() not in TRUE_WORDS | FALSE_WORDS:
        raise UsageError(f"{key}: expected true or false, got '{value}'")
    if kind == "float":
        try:
            float(value)
        except ValueError:
            raise UsageError(f"{key}: expected a number, got '{value}'") from None
    if kind == "linktypes":
        parse_link_types(value, key)
    if kind == "hash":
        parse_hash(value, key)
    if kind == "duration":
        parse_duration(value, key)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, shown: str) -> float:
    """``1d``, ``2h``, ``30m``, ``45s``, ``0`` (a bare number is seconds) -> seconds."""
    m = _DURATION.fullmatch(value.strip().lower())
    if not m:
        raise UsageError(f"{shown}: expected a duration like 1d, 2h, 30m or 0, got '{value}'")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_size(value: str, key: str) -> int:
    """``1048576``, ``512k``, ``1m``, ``64MiB``, ``1g`` -> bytes (positive)."""
    v = value.strip().lower().removesuffix("ib").removesuffix("b")
    mult = 1
    if v and v[-1] in "kmg":
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[v[-1]]
        v = v[:-1]
    try:
        n = int(float(v) * mult)
    except (ValueError, OverflowError):
        n = 0
    if n <= 0:
        raise UsageError(f"{key}: expected a size in bytes (e.g. 1048576, 512k, 64m), got '{value}'")
    return n


def check_remote_option(key: str, value: str) -> None:
    """A ``remote.NAME.KEY`` value whose form is known: checked when it is set and when a
    config file is read, not at the first transfer (where a bad one would read as an
    unreachable remote). ``key`` is the option's own name (``timeout``)."""
    if key in ("jobs", "port") and not (value.isdigit() and 0 < int(value) < (65536 if key == "port" else 10**6)):
        what = "a port number (1-65535)" if key == "port" else "a positive whole number"
        raise UsageError(f"{key}: expected {what}, got '{value}'")
    if key in ("endpoint_url", "endpointurl") and not value.startswith(("http://", "https://")):
        raise UsageError(f"{key}: expected an http:// or https:// URL, got '{value}'")
    if key in ("ssl_verify", "packs") and value.strip().lower() not in TRUE_WORDS | FALSE_WORDS:
        raise UsageError(f"{key}: expected true or false, got '{value}'")
    if key in ("pack_threshold", "pack_size"):
        parse_size(value, key)
    if key == "timeout":
        try:
            if not 0 < float(value) < float("inf"):  # also refuses nan
                raise ValueError
        except ValueError:
            raise UsageError(f"{key}: expected a number of seconds, got '{value}'") from None


def parse_hash(value: str, shown: str) -> str:
    """``core.hash``: the algorithm of outputs added afresh."""
    from mlver.hashing import NEW_ALGORITHMS

    if value not in NEW_ALGORITHMS:
        raise UsageError(f"{shown}: unknown hash '{value}'", hint=f"use one of {', '.join(NEW_ALGORITHMS)}")
    return value


def parse_link_types(value: str, shown: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in value.split(",") if t.strip())
    bad = [t for t in types if t not in LINK_TYPES]
    if bad or not types:
        raise UsageError(f"{shown}: unknown link type '{','.join(bad) or value}'",
                         hint=f"use a comma-separated list of {', '.join(LINK_TYPES)}")
    return types


class ConfigFile:
    """One INI file, read whole; written back line by line as Git writes its config:
    comments, blank lines, indentation and order stay, a changed key is rewritten on its
    own line, a new key goes after the last of its section, a new section at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.parser = configparser.ConfigParser(interpolation=None, strict=True)
        self.parser.optionxform = str  # type: ignore[assignment,method-assign]
        self._text: str | None = None
        self._was: dict[str, dict[str, str]] = {}
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return
        except UnicodeDecodeError:
            raise FormatError(path, "invalid config: not UTF-8 text") from None
        self._text = text
        check_merge_conflict(text, path)
        try:
            self.parser.read_string(text, source=path)
        except configparser.Error as e:
            line = getattr(e, "lineno", None)
            msg = str(e).splitlines()[0]
            if isinstance(e, configparser.MissingSectionHeaderError):
                bad = (getattr(e, "line", "") or "").strip()
                msg = (f"a section header without its closing ']': {bad}" if bad.startswith("[") and "]" not in bad
                       else "text before the first [section] header")
            raise FormatError(path, f"invalid config: {msg}", line=line) from None
        self._was = {sec: dict(self.parser.items(sec, raw=True)) for sec in self.parser.sections()}

    def items(self) -> dict[str, str]:
        out = {}
        for section in self.parser.sections():
            prefix = _section_to_prefix(section)
            for k, v in self.parser.items(section):
                out[f"{prefix}.{k}"] = v
        return out

    def set(self, key: str, value: str) -> None:
        bad = next((c for c in value if c in "\n\r\0"), None)
        if bad is not None:  # the file is line-based: a value on two lines is not one value
            raise UsageError(f"{key}: a value cannot contain {'a line break' if bad != chr(0) else 'a NUL byte'}",
                             hint="give the value on one line")
        section, name = split_key(key)
        if not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, name, value)

    def unset(self, key: str) -> bool:
        section, name = split_key(key)
        if not self.parser.has_section(section) or not self.parser.has_option(section, name):
            return False
        self.parser.remove_option(section, name)
        if not self.parser.items(section):
            self.parser.remove_section(section)
        return True

    def remove_section(self, key_prefix: str) -> bool:
        section, _ = split_key(key_prefix + ".x")
        return self.parser.remove_section(section)

    def save(self, *, fsync: bool = False) -> None:
        now = {sec: dict(self.parser.items(sec, raw=True)) for sec in self.parser.sections()}
        if self._text is None or not self._text.strip():
            buf = io.StringIO()
            self.parser.write(buf)
            text = buf.getvalue()
        else:
            text = _edit_ini(self._text, self._was, now)
        atomic_write_text(self.path, text, fsync=fsync)
        self._text, self._was = text, now


_HEADER = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*(?:[#;].*)?$")
_OPTION = re.compile(r"^(?P<indent>\s*)(?P<key>[^=:\s\[#;][^=:]*?)\s*[=:]")


def _edit_ini(text: str, was: dict[str, dict[str, str]], now: dict[str, dict[str, str]]) -> str:
    """``text`` (an INI file configparser read as ``was``: section -> key -> value)
    changed to hold ``now``, touching only the lines of keys that changed."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    out: list[str] = []
    seen: dict[str, set[str]] = {}
    last_key_at: dict[str, int] = {}  # section -> where in ``out`` a key added to it goes
    section: str | None = None
    key_indent = -1  # indentation of the key line whose value continues on deeper lines
    drop_continuation = False
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if key_indent >= 0 and stripped and indent > key_indent:  # a continuation line (configparser's rule)
            if not drop_continuation:
                out.append(line)
                last_key_at[section] = len(out)  # type: ignore[index]
            continue
        key_indent = -1
        m = _HEADER.match(line)
        if m:
            section = m.group("name").strip()
            if section in now:
                seen.setdefault(section, set())
                out.append(line)
                last_key_at[section] = len(out)
            continue
        if section is not None and section not in now:
            continue  # a removed section, comments and all
        o = _OPTION.match(line) if section is not None and stripped[:1] not in ("", "#", ";") else None
        if o is None:
            out.append(line)
            continue
        assert section is not None
        key, key_indent = o.group("key").strip(), indent
        if key not in now[section]:
            drop_continuation = True  # a removed key
            continue
        seen[section].add(key)
        value = now[section][key]
        drop_continuation = was.get(section, {}).get(key) != value
        out.append(f"{o.group('indent')}{key} = {value}\n" if drop_continuation else line)
        last_key_at[section] = len(out)
    style = _indent_of(lines)
    for sec in now:  # keys new to a section that exists: after its last key
        missing = [k for k in now[sec] if sec in seen and k not in seen[sec]]
        if missing:
            at = last_key_at[sec]
            out[at:at] = [f"{style}{k} = {now[sec][k]}\n" for k in missing]
            for other in last_key_at:
                if last_key_at[other] >= at and other != sec:
                    last_key_at[other] += len(missing)
            last_key_at[sec] = at + len(missing)
    for sec in now:  # new sections: at the end
        if sec not in seen:
            out.append(f"[{sec}]\n")
            out += [f"{style}{k} = {v}\n" for k, v in now[sec].items()]
    return "".join(out)


def _indent_of(lines: list[str]) -> str:
    """The indentation the file's keys use (Git's tab, four spaces, or none)."""
    for line in lines:
        o = _OPTION.match(line)
        if o and not _HEADER.match(line):
            return o.group("indent")
    return ""


@dataclass(frozen=True)
class Config:
    """The merged view of all config files."""

    values: dict[str, str]
    sources: dict[str, str] = field(default_factory=dict)  # key -> the file that set it

    @classmethod
    def load(cls, project: str | None, local: str | None, *, check: bool = True) -> "Config":
        """The files merged; ``check=False`` leaves values unchecked, for the commands
        that must be able to fix a bad one (`mlver config`, `mlver remote modify`)."""
        merged: dict[str, str] = {}
        sources: dict[str, str] = {}
        for path in (user_config_path(), project, local):
            if path:
                items = ConfigFile(path).items()
                merged.update(items)
                sources.update(dict.fromkeys(items, path))
        config = cls(merged, sources)
        for key, value in merged.items() if check else ():  # a bad value is named now, before any work is done
            section, _, name = key.partition(".")
            try:
                if name in KNOWN.get(section, {}):
                    validate(key, value)
                elif section == "remote":
                    check_remote_option(key.rpartition(".")[2], value)
            except UsageError as e:
                raise config._bad(key, e.message.split(": ", 1)[1]) from None
        return config

    def _bad(self, key: str, problem: str) -> FormatError:
        """A bad value read from a config file: the error names the file and the key."""
        source = self.sources.get(key, "")
        level = " --local" if source.endswith("config.local") else " --global" if source == user_config_path() else ""
        if key.startswith("remote."):
            name, _, opt = key[len("remote."):].rpartition(".")
            fix = f"mlver remote modify{level} {name} {opt} VALUE` or `mlver remote modify{level} {name} {opt} --unset"
        else:
            fix = f"mlver config{level} {key} VALUE"
        return FormatError(self.sources.get(key, "config"), f"invalid config: {key}: {problem}",
                           hint=f"fix it with `{fix}` (or edit the file)")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.values.get(key)
        if v is None:
            return default
        if v.lower() in TRUE_WORDS:
            return True
        if v.lower() in FALSE_WORDS:
            return False
        raise self._bad(key, f"expected true or false, got '{v}'")

    def get_float(self, key: str, default: float) -> float:
        v = self.values.get(key)
        try:
            return float(v) if v is not None else default
        except ValueError:
            raise self._bad(key, f"expected a number, got '{v}'") from None

    def get_duration(self, key: str, default: str) -> float:
        """Seconds (``1d``, ``2h``, ``30m``, ``0``); a bad value was named by ``load``."""
        v = self.values.get(key, default)
        try:
            return parse_duration(v, key)
        except UsageError:
            raise self._bad(key, f"expected a duration like 1d, 2h, 30m or 0, got '{v}'") from None

    @property
    def link_types(self) -> tuple[str, ...]:
        return parse_link_types(self.values.get("cache.type", DEFAULT_CACHE_TYPE), "cache.type")  # checked by load

    def remotes(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for k, v in self.values.items():
            if k.startswith("remote."):
                name, _, opt = k[len("remote."):].rpartition(".")
                out.setdefault(name, {})[opt] = v
        return out
