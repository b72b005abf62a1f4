"""A seeded fuzzer over every kind of file mlver reads: pointers, mlver.lock, mlver.yaml,
params (YAML, JSON, TOML), config and .mlverignore. In process, hundreds of generated
and mutated files go through the parsers (a value or an MlverError naming the file,
never another exception); then a few dozen CLI runs over fuzzed files (exit 0, 1 or 3,
no traceback, exactly one `mlver: error:` line on failure). The seed is in every
assertion message: rerun with ``MLVER_FUZZ_SEED=N`` to reproduce."""

from __future__ import annotations

import os
import random
import shlex
import sys
from pathlib import Path
from typing import Callable

from conftest import gen, git, run
from mlver.config import Config, ConfigFile
from mlver.errors import MlverError
from mlver.ignore import IgnoreSpec
from mlver.pipeline.lockfile import parse_lock
from mlver.pipeline.model import parse_pipeline
from mlver.pipeline.params import parse_values
from mlver.pointer import parse_manifest, read_pointer

SEED = int(os.environ.get("MLVER_FUZZ_SEED", "20261201"))
D = "5f0c2d0a9b1e4c7d8e2f3a4b5c6d7e8f"
PY = shlex.quote(sys.executable)

POINTER = f"""# mlver pointer: commit this file; the data lives in the mlver cache and remotes
version: 1
path: data.bin
kind: file
hash: xxh3-128
digest: {D}
size: 4
desc: a "quoted" description
"""
LOCK = f"""# mlver lock: written by mlver; commit it together with mlver.yaml
version: 1
hash: xxh3-128
stages:
  train:
    cmd: python train.py
    deps:
    - path: data.bin
      kind: file
      digest: {D}
      size: 4
    params:
      params.yaml:
        train.lr: 0.1
    outs:
    - path: model.bin
      kind: file
      digest: {D}
      size: 4
"""
PIPELINE = f"""stages:
  train:
    cmd: {PY} -c "open('model.bin', 'w').write('m')"
    deps: [data.bin]
    params: [train.lr]
    outs: [model.bin]
"""
PARAMS_YAML = "train:\n  lr: 0.1\n  layers: [1, 2, {a: b}]\nprepare: {split: 3}\n"
PARAMS_JSON = '{"train": {"lr": 0.1, "layers": [1, 2, {"a": "b"}]}, "prepare": {"split": 3}}\n'
PARAMS_TOML = '[train]\nlr = 0.1\nlayers = [1, 2, 3]\n[prepare]\nsplit = 3\n'
CONFIG = '[core]\n    remote = storage\n[remote "storage"]\n    url = /tmp/nowhere\n[cache]\n    type = copy\n'
IGNORE = "*.tmp\n!keep.tmp\n/build/\nlogs/**/x?[a-c].log\n\\#hash\n[[:digit:]]*\n"
MANIFEST = ('{"version":1,"kind":"manifest","hash":"xxh3-128","entries":[["a.txt","%s",3,false]]}' % D)

SNIPPETS = ["[" * 150, "{" * 150, "]", "}", "&a ", "*a", "&a [*a]", "<<: *a", "\x00", "\xff", "\ud800", ": ",
            "- ", "\n", "\n  ", '"', "'", "\\", "!!python/object:os.system", "!!binary", "%YAML 1.1\n",
            "---\n", "...\n", "? ", "|\n", ">-\n", "#", "\t", "1e999", "-.inf", "0x1F", "~", "null",
            "a" * 300, "../", "/abs", "C:\\x", "\r\n", "[!]", "[z-a]", "[[:alpha:]]", "**/", "*" * 30,
            "=", "[section", '[remote "', "\x1b[31m", "version: 2\n", "kind: dir\n", "files: -1\n"]


def _bomb(rng: random.Random) -> str:
    levels = rng.randint(5, 9)
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _deep(rng: random.Random, fmt: str) -> str:
    n = rng.choice([99, 101, 400, 2000])
    if fmt == "json":
        return '{"a": ' + "[" * n + "1" + "]" * n + "}"
    if fmt == "toml":
        return "a = " + "[" * n + "1" + "]" * n + "\n"
    if rng.random() < 0.5:
        return "a: " + "[" * n + "]" * n + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "v: 1\n"


def mutate(rng: random.Random, text: str, fmt: str = "yaml") -> bytes:
    choice = rng.random()
    if choice < 0.06:
        return _bomb(rng).encode()
    if choice < 0.12:
        return _deep(rng, fmt).encode()
    data = text
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0:
            data = data[:pos] + rng.choice(SNIPPETS) + data[pos:]
        elif op == 1 and data:
            end = min(len(data), pos + rng.randint(1, 20))
            data = data[:pos] + data[end:]
        elif op == 2 and data:
            end = min(len(data), pos + rng.randint(1, 40))
            data = data[:pos] + data[pos:end] * rng.randint(2, 5) + data[pos:]
        elif op == 3 and data:
            i = rng.randrange(len(data))
            data = data[:i] + chr(rng.randrange(1, 0x250)) + data[i + 1:]
        else:
            lines = data.split("\n")
            rng.shuffle(lines)
            data = "\n".join(lines)
    raw = data.encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:  # a raw byte that is not UTF-8
        i = rng.randrange(len(raw) + 1)
        raw = raw[:i] + bytes([rng.randrange(0x80, 0x100)]) + raw[i:]
    return raw


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _expect_value_or_error(seed: int, kind: str, data: bytes, shown: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except MlverError as e:
        assert shown in e.message, f"seed {seed} {kind}: error does not name {shown}: {e.message!r}\n{data!r}"
        assert "\n" not in e.message, f"seed {seed} {kind}: multi-line error {e.message!r}"
    except Exception as e:  # noqa: BLE001 - the property under test
        raise AssertionError(f"seed {seed} {kind}: {type(e).__name__}: {e}\ninput: {data[:400]!r}") from e


def test_parsers_survive_fuzzed_files(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    root = tmp_path / "r"
    root.mkdir()
    kinds = ["pointer", "lock", "pipeline", "params.yaml", "params.json", "params.toml", "config", "ignore",
             "manifest"]
    for i in range(600):
        seed = SEED * 1000 + i
        rng = random.Random(seed)
        kind = kinds[i % len(kinds)]
        if kind == "pointer":
            data = mutate(rng, POINTER)
            (root / "x.mlver").write_bytes(data)
            _expect_value_or_error(seed, kind, data, "x.mlver", lambda: read_pointer(str(root / "x.mlver"), "x.mlver"))
        elif kind == "lock":
            data = mutate(rng, LOCK)
            _expect_value_or_error(seed, kind, data, "mlver.lock", lambda: parse_lock(_text(data)))
        elif kind == "pipeline":
            data = mutate(rng, PIPELINE)
            _expect_value_or_error(seed, kind, data, "mlver.yaml", lambda: parse_pipeline(_text(data)))
        elif kind.startswith("params"):
            fmt = kind.split(".")[1]
            base = {"yaml": PARAMS_YAML, "json": PARAMS_JSON, "toml": PARAMS_TOML}[fmt]
            data = mutate(rng, base, fmt)
            _expect_value_or_error(seed, kind, data, kind, lambda: parse_values(data, kind))
        elif kind == "config":
            data = mutate(rng, CONFIG)
            path = root / "config"
            path.write_bytes(data)
            _expect_value_or_error(seed, kind, data, str(path),
                                   lambda: (ConfigFile(str(path)), Config.load(str(path), None)))
        elif kind == "ignore":
            data = mutate(rng, IGNORE)
            (root / ".mlverignore").write_bytes(data)

            def match() -> None:
                spec = IgnoreSpec.load(str(root))
                for name in ("a.tmp", "keep.tmp", "build", "logs/q/r/xza.log", "1x", "#hash", "d/e/f"):
                    spec.ignored(name, False)
                    spec.ignored(name, True)

            _expect_value_or_error(seed, kind, data, ".mlverignore", match)
        else:
            data = mutate(rng, MANIFEST, "json")
            _expect_value_or_error(seed, kind, data, "manifest", lambda: parse_manifest(data, "manifest"))


def _fuzz_repo(repo: Path) -> None:
    gen(repo, {"data.bin": "data", "mlver.yaml": PIPELINE, "params.yaml": PARAMS_YAML,
               "ds/a.csv": "a", "ds/b.tmp": "b", ".mlverignore": IGNORE})
    run(["add", "data.bin", "ds"], repo)
    run(["repro"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "pipeline"], repo)


def test_cli_survives_fuzzed_files(repo: Path) -> None:
    _fuzz_repo(repo)
    originals = {name: (repo / name).read_bytes()
                 for name in ("data.bin.mlver", "mlver.lock", "mlver.yaml", "params.yaml", ".mlverignore",
                              ".mlver/config", "ds.mlver")}
    commands = [["status"], ["list"], ["params", "diff"], ["repro", "--dry-run"], ["checkout"]]
    names = list(originals)
    for i in range(40):
        seed = SEED * 1000 + 900 + i
        rng = random.Random(seed)
        name = names[i % len(names)]
        fmt = "yaml"
        data = mutate(rng, originals[name].decode(), fmt)
        (repo / name).write_bytes(data)
        args = commands[(i // len(names) + i) % len(commands)]
        proc = run(args, repo, check=False, timeout=120)
        where = f"seed {seed}: mlver {' '.join(args)} with fuzzed {name} {data[:300]!r}"
        assert proc.returncode in (0, 1, 3), f"{where}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, f"{where}\n{proc.stderr}"
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
        if proc.returncode == 3:
            assert len(errors) == 1, f"{where}\n{proc.stderr}"
        for n, content in originals.items():
            (repo / n).write_bytes(content)
        git(["checkout", "-q", "--", "."], repo)


def test_hostile_files_are_one_error_line(repo: Path) -> None:
    """The inputs the fuzzing campaign found: ~400 nesting levels, an alias bomb (ran until
    killed at 2.2 GB), a NUL byte, a multi-line config value. Each is one line naming the
    file, exit 3, and nothing is written; `exp show` skips a bad params file with one
    warning line, as it does for any revision's (`params diff` stops on the workspace's)."""
    _fuzz_repo(repo)
    bomb = _bomb(random.Random(0)).replace("a0:", "train:\n  lr: 0.1\na0:", 1)
    deep = "a: " + "[" * 400 + "]" * 400 + "\n"
    cases = [
        ("params.yaml", bomb, ["params", "diff"], "YAML aliases expand to more than"),
        ("params.yaml", bomb, ["repro", "--dry-run"], "YAML aliases expand to more than"),
        ("params.yaml", bomb, ["exp", "show"], "YAML aliases expand to more than"),
        ("params.yaml", deep, ["params", "diff"], "nested deeper than the limit of 100 levels"),
        ("mlver.yaml", deep, ["repro", "--dry-run"], "nested deeper than the limit of 100 levels"),
        ("mlver.lock", deep, ["status"], "nested deeper than the limit of 100 levels"),
        ("data.bin.mlver", POINTER.replace("desc: ", "extra: " + "[" * 400 + "]" * 400 + "\ndesc: "), ["status"],
         "nested deeper than the limit of 100 levels"),
        ("data.bin.mlver", POINTER.replace("path: data.bin", "path: &p data.bin\nother: *p"), ["checkout"],
         "YAML anchors and aliases are not allowed in a pointer file"),
        ("mlver.yaml", PIPELINE.replace("[data.bin]", '["data\\x00.bin"]'), ["repro", "--dry-run"], "NUL byte"),
        (".mlver/config", "[core]\n    fsync = maybe\n      not\n", ["status"], "expected true or false"),
    ]
    for name, text, args, problem in cases:
        original = (repo / name).read_bytes()
        (repo / name).write_text(text)
        before = git(["status", "--porcelain"], repo)
        proc = run(args, repo, check=False, timeout=120)
        where = f"mlver {' '.join(args)} with hostile {name}"
        lines = proc.stderr.strip().splitlines()
        if args[0] in ("params", "exp") and proc.returncode == 0:
            said = [ln for ln in lines if ln.startswith("mlver: warning:")]
        else:
            assert proc.returncode == 3, f"{where}: {proc.returncode}\n{proc.stderr}"
            said = [ln for ln in lines if ln.startswith("mlver: error:")]
        assert len(said) == 1 and name in said[0] and problem in said[0], f"{where}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        assert git(["status", "--porcelain"], repo) == before, where
        (repo / name).write_bytes(original)
