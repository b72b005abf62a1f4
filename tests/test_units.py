"""Unit tests for the lowest layers: hashing, pointers, manifests, paths, ignore rules, state."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import xxhash

from mlver.errors import FormatError, PathError
from mlver.fsutil import check_relative, inside_root
from mlver.ignore import IgnoreSpec
from mlver.hashing import digest_bytes, digest_file, digest_stream, is_digest
from mlver.pointer import Entry, Manifest, Pointer, parse_manifest, parse_pointer, yaml_scalar
from mlver.state import State


def test_streaming_digest_matches_one_shot(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 17)  # crosses the 4 MiB chunk boundary twice
    p = tmp_path / "f"
    p.write_bytes(data)
    assert digest_file(p) == (xxhash.xxh3_128_hexdigest(data), len(data))
    assert digest_stream(io.BytesIO(data))[0] == digest_bytes(data)
    assert is_digest(digest_bytes(b"")) and not is_digest("ABC") and not is_digest("g" * 32)


def test_digest_file_around_the_one_read_size(tmp_path: Path) -> None:
    from mlver.hashing import SMALL

    for n in (0, 1, SMALL - 1, SMALL, SMALL + 1):
        data = os.urandom(n)
        p = tmp_path / f"f{n}"
        p.write_bytes(data)
        assert digest_file(p) == (xxhash.xxh3_128_hexdigest(data), n)
    head = os.urandom(100)
    assert digest_stream(io.BytesIO(b"rest"), head=head) == (xxhash.xxh3_128_hexdigest(head + b"rest"), 104)


def test_pointer_round_trip_is_byte_stable() -> None:
    text = ("# mlver pointer: commit this file; the data lives in the mlver cache and remotes\n"
            "version: 1\npath: images\nkind: dir\nhash: xxh3-128\n"
            "digest: 0a1b2c3d4e5f60718293a4b5c6d7e8f9\nsize: 682329233\nfiles: 20000\n")
    ptr = parse_pointer(text, "images.mlver")
    assert ptr.kind == "dir" and ptr.files == 20000 and ptr.dumps() == text


@pytest.mark.parametrize("desc", ["plain words", "yes", "123", "a: b", "# hash", "quote\"s", "ünïcode", " lead", "null"])
def test_desc_survives_any_text(desc: str) -> None:
    ptr = Pointer("x.csv", "file", "0" * 31 + "a", 1, desc=desc)
    assert parse_pointer(ptr.dumps(), "x").desc == desc


def test_all_digit_digest_survives_yaml() -> None:
    ptr = Pointer("x", "file", "1" * 32, 1)
    assert parse_pointer(ptr.dumps(), "x").digest == "1" * 32


def test_yaml_scalar_quotes_ambiguous_text() -> None:
    assert yaml_scalar("train.csv") == "train.csv"
    assert yaml_scalar("true") == '"true"'
    assert yaml_scalar("1e5") == '"1e5"'


@pytest.mark.parametrize("text,msg", [
    ("version: 2\npath: a\nkind: file\nhash: xxh3-128\ndigest: " + "a" * 32 + "\nsize: 1\n", "unsupported pointer version"),
    ("version: 1\nkind: file\nhash: xxh3-128\ndigest: " + "a" * 32 + "\nsize: 1\n", "missing required key 'path'"),
    ("version: 1\npath: a\nkind: dir\nhash: xxh3-128\ndigest: " + "a" * 32 + "\nsize: 1\n", "'files'"),
    ("version: 1\npath: a\nkind: file\nhash: xxh3-128\ndigest: " + "a" * 32 + "\nsize: -1\n", "'size'"),
])
def test_pointer_validation(text: str, msg: str) -> None:
    with pytest.raises(FormatError) as e:
        parse_pointer(text, "p.mlver")
    assert msg in str(e.value) and str(e.value).startswith("p.mlver")


def test_manifest_is_canonical_and_sorted() -> None:
    a = Manifest.build([Entry("b.txt", "b" * 32, 2), Entry("a/z.txt", "a" * 32, 1, True)])
    b = Manifest.build([Entry("a/z.txt", "a" * 32, 1, True), Entry("b.txt", "b" * 32, 2)])
    assert a.dumps() == b.dumps()
    assert parse_manifest(a.dumps(), "m") == a
    assert a.size == 3


@pytest.mark.parametrize("paths", [["../evil"], ["/etc/passwd"], ["a/../b"], ["a/.."], ["a", ""], ["a\0/x"]])
def test_manifest_with_escaping_path_is_refused(paths: list[str]) -> None:
    bad = Manifest(tuple(Entry(p, "a" * 32, 1) for p in paths)).dumps()
    with pytest.raises(FormatError):
        parse_manifest(bad, "m")
    with pytest.raises(FormatError):
        parse_manifest(b"{not json", "m")


def test_manifest_accepts_any_posix_file_name() -> None:
    names = ["C:x", "a:b", "\\x", "x\n..", "x\n/abs", "sub/C:x", "...", "a..b", "-rf", "#1", "日本"]
    m = Manifest.build([Entry(n, "a" * 32, 1) for n in names])
    assert parse_manifest(m.dumps(), "m") == m


def test_check_relative() -> None:
    assert check_relative("a/b.csv") is None
    assert "absolute" in (check_relative("/etc/passwd") or "")
    assert "'..'" in (check_relative("a/../../b") or "")
    assert check_relative("C:x") is None and check_relative("\\x") is None  # file names outside Windows
    assert "NUL" in (check_relative("a\0b") or "")


def test_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    assert inside_root(str(root), str(root / "d" / "f")) == "d/f"
    with pytest.raises(PathError):
        inside_root(str(root), str(tmp_path / "other"))
    with pytest.raises(PathError):
        inside_root(str(root), str(root / ".git" / "config"))
    os.symlink(tmp_path, root / "up")
    with pytest.raises(PathError):
        inside_root(str(root), str(root / "up" / "x"))


@pytest.mark.parametrize("pattern,path,is_dir,ignored", [
    ("*.tmp", "d/x.tmp", False, True),
    ("*.tmp", "d/x.tmpl", False, False),
    ("/top.txt", "top.txt", False, True),
    ("/top.txt", "d/top.txt", False, False),
    ("cache/", "d/cache", True, True),
    ("cache/", "d/cache", False, False),
    ("d/**/x", "d/a/b/x", False, True),
    ("d/**/x", "d/x", False, True),
    ("logs/*", "logs/a", False, True),
])
def test_ignore_rules(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreSpec([pattern]).ignored(path, is_dir) is ignored


def test_ignore_negation() -> None:
    spec = IgnoreSpec(["*.log", "!keep.log", "# comment", ""])
    assert spec.ignored("a.log", False) and not spec.ignored("keep.log", False)


def test_state_memo_and_racy_rule(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    old = time.time_ns() - 10_000_000_000
    os.utime(f, ns=(old, old))
    state = State(str(tmp_path / "state.db"))
    st = os.stat(f)
    state.record("f", st, "a" * 32)
    state.flush()
    # ctime is "now" (utime changed it), so the entry is racy until time passes
    assert state.lookup("f", st) is None
    time.sleep(0.25)
    state.record("f", st, "a" * 32)
    state.flush()
    assert state.lookup("f", os.stat(f)) == "a" * 32
    f.write_bytes(b"y")
    assert state.lookup("f", os.stat(f)) is None
    state.close()


def test_folder_memo_rows_leave_out_racy_files_and_miss_on_change(tmp_path: Path) -> None:
    old_f, new_f = tmp_path / "old", tmp_path / "new"
    old_f.write_bytes(b"o")
    new_f.write_bytes(b"n")
    time.sleep(0.25)  # "old" is now older than the racy window
    state = State(str(tmp_path / "state.db"))  # the command starts: rows are checked against now
    new_f.write_bytes(b"N")  # rewritten during the command: racy, whenever the record is written
    time.sleep(0.25)
    stats = [os.stat(old_f), os.stat(new_f)]
    rows = [f"{n}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_mode}"
            for n, st in zip(["old", "new"], stats)]
    state.dir_record("d", "listing", "f" * 32, rows, ["a" * 32, "b" * 32], stats)
    # the racy file is not vouched for; the whole-folder answer is not trusted either
    assert state.dir_rows("d") == ("f" * 32, {rows[0]: "a" * 32})
    assert state.dir_lookup("d", "listing") is None
    assert state.dir_lookup("d", "another listing") is None
    state.close()


def test_state_from_an_older_layout_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE dirs (path TEXT PRIMARY KEY, listing TEXT, digest TEXT, newest_ns INTEGER, "
                       "recorded_ns INTEGER); CREATE TABLE hashes (path TEXT PRIMARY KEY, inode INTEGER, "
                       "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, recorded_ns INTEGER);"
                       "INSERT INTO hashes VALUES ('f', 1, 2, 3, 4, 'cafe', 5);")
    conn.commit()
    conn.close()
    old_file = tmp_path / "old"
    old_file.write_bytes(b"x")
    time.sleep(0.25)  # older than the racy window when the command (State) starts
    state = State(str(db))
    st = os.stat(old_file)
    state.dir_record("d", "l", "e" * 32, ["r"], ["c" * 32], [st])
    assert state.dir_rows("d") == ("e" * 32, {"r": "c" * 32})
    assert state.conn.execute("SELECT digest FROM hashes WHERE path = 'f'").fetchone() == ("cafe",)
    state.close()


def test_parse_memo_is_reused_and_an_unreadable_one_is_parsed_again(tmp_path: Path) -> None:
    calls: list[str] = []

    def parse(text: str) -> dict:
        calls.append(text)
        return {"parsed": text}

    state = State(str(tmp_path / "state.db"))
    assert state.parsed("lock", "a: 1\n", parse) == {"parsed": "a: 1\n"}
    state.close()
    state = State(str(tmp_path / "state.db"))  # another command
    assert state.parsed("lock", "a: 1\n", parse) == {"parsed": "a: 1\n"} and len(calls) == 1
    assert state.parsed("lock", "a: 2\n", parse) == {"parsed": "a: 2\n"} and len(calls) == 2
    state.conn.execute("UPDATE parsed SET data = ?", (b"not a pickle",))
    assert state.parsed("lock", "a: 2\n", parse) == {"parsed": "a: 2\n"} and len(calls) == 3
    state.close()


def test_config_writes_keep_comments_layout_and_mean_what_was_set(tmp_path: Path) -> None:
    """`mlver config` / `remote add` edit the committed INI as `git config` does: comments,
    blank lines, indentation and order stay. Seeded random edits: the file always reads
    back as exactly the values set, and every comment line survives."""
    import configparser
    import random

    from mlver.config import ConfigFile

    start = ("# team settings: ask ops before changing\n[core]\n    # the shared remote\n    remote = store\n\n"
             "; another comment\n[remote \"store\"]\n    url = s3://bucket/x\n    region = eu-west-1\n"
             "    # credentials live in config.local\n[checks]\n\tbase = origin/main\n")
    path = tmp_path / "config"
    path.write_text(start)
    comments = [ln for ln in start.splitlines() if ln.strip().startswith(("#", ";"))]
    gone: set[str] = set()
    rng = random.Random(20261203)
    want: dict[str, dict[str, str]] = {"core": {"remote": "store"},
                                      'remote "store"': {"url": "s3://bucket/x", "region": "eu-west-1"},
                                      "checks": {"base": "origin/main"}}
    keys = ["core.remote", "core.fsync", "core.autostage", "remote.store.url", "remote.store.region",
            "remote.other.url", "checks.base", "gc.grace"]
    for _ in range(200):
        key = rng.choice(keys)
        cf = ConfigFile(str(path))
        section = 'remote "' + key.split(".")[1] + '"' if key.startswith("remote.") else key.split(".")[0]
        name = key.rsplit(".", 1)[1]
        if rng.random() < 0.7:
            value = rng.choice(["a", "b b", "s3://x/y", "true", "1d", "x=y"])
            cf.set(key, value)
            want.setdefault(section, {})[name] = value
        else:
            cf.unset(key)
            want.get(section, {}).pop(name, None)
            if section in want and not want[section]:
                del want[section]
        cf.save()
        text = path.read_text()
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(text)
        assert {s: dict(parser.items(s)) for s in parser.sections()} == want, text
        if section not in want:
            gone.add(section)
        lines = text.splitlines()
        # a comment stays unless the whole section it sits in went (as `git config` keeps them)
        assert lines[0] == comments[0], text
        for comment, owner in (("    # the shared remote", "core"), ("; another comment", "core"),
                               ("    # credentials live in config.local", 'remote "store"')):
            assert (comment in lines) == (owner not in gone), (comment, text)
    cf = ConfigFile(str(path))
    cf.set("checks.base", "main")
    cf.save()
    assert "\tbase = main" in path.read_text() or "base = main" in path.read_text()
