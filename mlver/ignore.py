"""`.mlverignore`: gitignore-syntax patterns, matched the way Git's wildmatch matches them
(``*``, ``?``, ``[...]`` with ``!``/``^``, ranges and ``[:class:]``, ``**`` segments, a
leading ``/`` anchors, a trailing ``/`` means folders only, ``!`` re-includes, ``\\``
escapes), in time linear in the pattern times the name: no backtracking regex.

How a match runs. A pattern is cut at ``/`` into segments and each segment at ``*`` into
star-free chunks. A chunk (literals, ``?``, classes) always matches a fixed number of
characters, so the classic "remember the last star" greedy algorithm reduces to: the
first chunk at the start, the last chunk at the end, each middle chunk at its leftmost
place after the previous one (leftmost is never worse, because a later chunk can only
gain room). Each chunk is a quantifier-free regex, so a search costs O(len·chunk). A
``**`` segment is a star over whole path segments, and the same greedy rule applies one
level up, with segments as the characters. Names are matched as ``str`` (one ``?`` is
one character; Git counts bytes, which differs only for non-ASCII names).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence, Union

from mlver.errors import FormatError

IGNORE_FILE = ".mlverignore"
MAX_IGNORE_BYTES = 1 << 20  # a larger ignore file is refused (it is read on every command)

# POSIX classes in the C locale, as Git's wildmatch knows them
_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e",
    "punct": "\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e", "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}


class PatternError(ValueError):
    """A pattern Git could never match (an unclosed ``[``, an unknown ``[:class:]``, a
    trailing backslash): reported instead of silently ignoring nothing."""


def _char(c: str) -> str:
    return f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}"


def _parse_class(p: str, i: int) -> tuple[str, int]:
    """The regex for the bracket expression starting at ``p[i] == '['`` and the index
    after its ``]``; Git's rules: ``!`` or ``^`` negates, a ``]`` first is literal, ``-``
    between two characters is a range (reversed, only its first character), ``\\`` escapes."""
    n = len(p)
    i += 1
    negated = False
    if i < n and p[i] in "!^":
        negated = True
        i += 1
    parts: list[str] = []
    prev: str | None = None
    first = True
    while True:
        if i >= n:
            raise PatternError("'[' is never closed")
        c = p[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\":
            i += 1
            if i >= n:
                raise PatternError("'[' is never closed")
            c = p[i]
            parts.append(_char(c))
            prev = c
        elif c == "-" and prev is not None and i + 1 < n and p[i + 1] != "]":
            i += 1
            hi = p[i]
            if hi == "\\":
                i += 1
                if i >= n:
                    raise PatternError("'[' is never closed")
                hi = p[i]
            if prev <= hi:  # (reversed, Git still matches the first character, already added)
                parts[-1] = f"{_char(prev)}-{_char(hi)}"
            prev = None
        elif c == "[" and i + 1 < n and p[i + 1] == ":":
            end = p.find("]", i + 2)
            if end == -1:
                raise PatternError("'[' is never closed")
            if end - 1 < i + 2 or p[end - 1] != ":":  # no ":]": an ordinary '['
                parts.append(_char("["))
                prev = "["
            else:
                name = p[i + 2 : end - 1]
                if name not in _CLASSES:
                    raise PatternError(f"unknown character class '[:{name}:]'")
                parts.append(_CLASSES[name])
                prev = None
                i = end
        else:
            parts.append(_char(c))
            prev = c
        i += 1
    body = "".join(parts)
    if negated:
        return (f"[^{body}/]" if body else "[^/]"), i
    return (f"[{body}]" if body else "(?!)"), i


def _tokens(p: str) -> list[tuple[str, str]]:
    """(kind, regex) pairs: ("c", one-character regex), ("*", run of stars), ("/", "")."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise PatternError("a trailing backslash escapes nothing")
            i += 1
            out.append(("/", "") if p[i] == "/" else ("c", _char(p[i])))
            i += 1
        elif c == "*":
            j = i
            while j < n and p[j] == "*":
                j += 1
            out.append(("*", "*" * (j - i)))
            i = j
        elif c == "?":
            out.append(("c", "[^/]"))
            i += 1
        elif c == "[":
            rx, i = _parse_class(p, i)
            out.append(("c", rx))
        elif c == "/":
            out.append(("/", ""))
            i += 1
        else:
            out.append(("c", _char(c)))
            i += 1
    return out


class _Segment:
    """One path segment's pattern: star-free chunks around single stars."""

    __slots__ = ("exact", "first", "first_len", "last", "last_len", "middle", "min_len", "literal", "match")

    def __init__(self, toks: Sequence[tuple[str, str]]) -> None:
        chunks: list[list[str]] = [[]]
        for kind, rx in toks:
            if kind == "*":  # a run of stars inside a segment is one star
                chunks.append([])
            else:
                chunks[-1].append(rx)
        self.literal: str | None = None
        if len(chunks) == 1:
            self.exact: re.Pattern[str] | None = re.compile("".join(chunks[0]), re.DOTALL)
            if all(rx.startswith("\\u") or rx.startswith("\\U") for rx in chunks[0]):
                self.literal = "".join(chr(int(rx[2:], 16)) for rx in chunks[0])
            self.first = self.last = self.exact
            self.first_len = self.last_len = self.min_len = len(chunks[0])
            self.middle: list[re.Pattern[str]] = []
            self.match: Callable[[str], object] = (self.literal.__eq__ if self.literal is not None
                                                   else self.exact.fullmatch)
            return
        self.exact = None
        self.first = re.compile("".join(chunks[0]), re.DOTALL)
        self.first_len = len(chunks[0])
        self.last = re.compile("".join(chunks[-1]), re.DOTALL)
        self.last_len = len(chunks[-1])
        self.middle = [re.compile("".join(c), re.DOTALL) for c in chunks[1:-1] if c]
        self.min_len = sum(len(c) for c in chunks)
        if len(chunks) == 2:  # one star: a regex cannot backtrack more than once over the name
            self.match = re.compile("".join(chunks[0]) + ".*" + "".join(chunks[1]), re.DOTALL).fullmatch
        else:
            self.match = self._chunks_match

    def _chunks_match(self, s: str) -> bool:
        n = len(s)
        if n < self.min_len:
            return False
        if self.first_len and self.first.match(s) is None:
            return False
        end = n - self.last_len
        if self.last_len and self.last.fullmatch(s, end) is None:
            return False
        pos = self.first_len
        for rx in self.middle:  # leftmost placement of each fixed-length chunk
            m = rx.search(s, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True


SegPattern = Union[_Segment, None]  # None stands for a `**` segment


class _PathPattern:
    """A whole-path pattern: ``**`` (None) spans zero or more segments (one or more when
    it ends the pattern); the greedy algorithm with segments as the characters."""

    __slots__ = ("head", "tail", "middle", "trailing", "need", "exact")

    def __init__(self, pat: Sequence[SegPattern]) -> None:
        groups: list[list[_Segment]] = [[]]
        for seg in pat:
            if seg is None:
                groups.append([])
            else:
                groups[-1].append(seg)
        self.exact = len(groups) == 1
        self.head, self.tail = groups[0], groups[-1]
        self.middle = [g for g in groups[1:-1] if g]
        self.trailing = bool(pat) and pat[-1] is None
        self.need = sum(len(g) for g in groups) + (1 if self.trailing else 0)

    def match(self, parts: Sequence[str]) -> bool:
        n = len(parts)
        if self.exact:
            return n == len(self.head) and all(seg.match(p) for seg, p in zip(self.head, parts))
        if n < self.need:
            return False
        if not all(seg.match(p) for seg, p in zip(self.head, parts)):
            return False
        end = n - len(self.tail)
        if not all(seg.match(p) for seg, p in zip(self.tail, parts[end:])):
            return False
        if self.trailing:
            end -= 1  # a trailing `**` keeps at least one segment for itself
        pos = len(self.head)
        for group in self.middle:
            k = len(group)
            while pos + k <= end and not all(seg.match(p) for seg, p in zip(group, parts[pos : pos + k])):
                pos += 1
            if pos + k > end:
                return False
            pos += k
        return True


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str  # as written (after trimming), for messages
    negate: bool
    dir_only: bool
    basename: _Segment | None  # no slash: matched against the last segment at any depth
    path: _PathPattern | None  # else: matched against the whole path

    def matches(self, parts: Sequence[str]) -> bool:
        if self.basename is not None:
            return bool(self.basename.match(parts[-1]))
        return self.path.match(parts)  # type: ignore[union-attr]


def _trim_trailing_spaces(line: str) -> str:
    """Git's rule: trailing spaces go unless escaped with a backslash."""
    last_space = None
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == " ":
            if last_space is None:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= n:
                return line
            last_space = None
        else:
            last_space = None
        i += 1
    return line if last_space is None else line[:last_space]


def compile_rule(line: str) -> IgnoreRule | None:
    """One line of an ignore file as a rule (None: blank or a comment); PatternError when
    Git could never match it."""
    if line.endswith("\r"):
        line = line[:-1]
    if not line or line.startswith("#"):
        return None
    line = _trim_trailing_spaces(line)
    negate = line.startswith("!")
    body = line[1:] if negate else line
    dir_only = body.endswith("/")
    if dir_only:
        body = body[:-1]
    if not body:
        return None
    if "/" not in body:
        return IgnoreRule(line, negate, dir_only, _Segment(_tokens(body)), None)
    if body.startswith("/"):
        body = body[1:]
    segs: list[SegPattern] = []
    current: list[tuple[str, str]] = []
    for tok in _tokens(body) + [("/", "")]:
        if tok[0] != "/":
            current.append(tok)
            continue
        if len(current) == 1 and current[0][0] == "*" and len(current[0][1]) >= 2:
            if not segs or segs[-1] is not None:  # `a/**/**/b` matches what `a/**/b` does
                segs.append(None)
        else:
            segs.append(_Segment(current))
        current = []
    return IgnoreRule(line, negate, dir_only, None, _PathPattern(segs))


class IgnoreSpec:
    """The rules of `.mlverignore`, matched against POSIX paths relative to the repo root.
    A path is ignored when its last matching rule does not negate, or when a folder
    above it is ignored (as in Git, a file inside an ignored folder cannot be re-included)."""

    def __init__(self, lines: list[str], *, shown: str = IGNORE_FILE) -> None:
        self.rules: list[IgnoreRule] = []
        for number, raw in enumerate(lines, 1):
            try:
                rule = compile_rule(raw.rstrip("\n"))
            except PatternError as e:
                raise FormatError(shown, f"invalid pattern {raw.strip()!r}: {e}", line=number) from None
            if rule is not None:
                self.rules.append(rule)
        # the last matching rule decides: (dir_only, negate, basename matcher, path matcher)
        self._reversed = [(r.dir_only, r.negate, r.basename.match if r.basename is not None else None,
                           r.path.match if r.path is not None else None) for r in reversed(self.rules)]
        self._dirs: dict[str, bool] = {}

    @classmethod
    def load(cls, root: str) -> "IgnoreSpec":
        """The project's ignore file; bytes that are not UTF-8 are kept as they are
        (``surrogateescape``, as ``os.scandir`` gives such file names), so they match
        the same bytes in names."""
        try:
            with open(os.path.join(root, IGNORE_FILE), "rb") as f:
                data = f.read(MAX_IGNORE_BYTES + 1)
        except FileNotFoundError:
            return cls([])
        except IsADirectoryError:
            raise FormatError(IGNORE_FILE, "is a folder, not a file of patterns") from None
        if len(data) > MAX_IGNORE_BYTES:
            raise FormatError(IGNORE_FILE, f"larger than the limit of {MAX_IGNORE_BYTES >> 20} MiB")
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        return cls(data.decode("utf-8", "surrogateescape").split("\n"))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _last_match(self, rel: str, is_dir: bool) -> bool:
        base = rel.rpartition("/")[2]
        parts: list[str] | None = None
        for dir_only, negate, base_match, path_match in self._reversed:
            if dir_only and not is_dir:
                continue
            if base_match is not None:
                if base_match(base):
                    return not negate
            else:
                if parts is None:
                    parts = rel.split("/")
                if path_match(parts):  # type: ignore[misc]
                    return not negate
        return False

    def ignored(self, rel: str, is_dir: bool) -> bool:
        if not self.rules:
            return False
        parent, _, _ = rel.rpartition("/")
        if parent and self._dir_ignored(parent):
            return True
        return self._last_match(rel, is_dir)

    def _dir_ignored(self, rel: str) -> bool:
        known = self._dirs.get(rel)
        if known is None:
            known = self.ignored(rel, True)
            self._dirs[rel] = known
        return known

