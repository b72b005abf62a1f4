"""Output that fits: tables piped or redirected are never cut to the terminal's width
(every value reaches stdout); on a terminal `exp show` fits the width, leaving out
unchanged columns first and saying which on stderr; --only-changed, --keep and --drop
choose the columns of every format."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from conftest import drain_pty, gen, git, mlver_cmd, run, run_json

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PIPELINE = """\
stages:
  train:
    cmd: "true"
    params: [train]
    metrics: [metrics.json]
"""
N_PARAMS, N_METRICS = 20, 10


def _params(c: int) -> str:
    # every 4th parameter changes from commit to commit, the others never do
    return "train:\n" + "".join(f"  p{i:02}: {i * 10 + (c if i % 4 == 0 else 0)}\n" for i in range(N_PARAMS))


def _metrics(c: int) -> str:
    # every 3rd metric changes
    return json.dumps({f"m{i:02}": round(0.5 + i / 100 + (c / 1000 if i % 3 == 0 else 0), 4)
                       for i in range(N_METRICS)})


CHANGING = [f"params.yaml:train.p{i:02}" for i in range(N_PARAMS) if i % 4 == 0] + \
           [f"metrics.json:m{i:02}" for i in range(N_METRICS) if i % 3 == 0]
ALL = [f"params.yaml:train.p{i:02}" for i in range(N_PARAMS)] + [f"metrics.json:m{i:02}" for i in range(N_METRICS)]


@pytest.fixture
def wide(repo: Path) -> Path:
    """Three commits of 20 parameters and 10 metrics: a 30-column experiment table."""
    gen(repo, {"mlver.yaml": PIPELINE})
    for c in (1, 2, 3):
        gen(repo, {"params.yaml": _params(c), "metrics.json": _metrics(c)})
        git(["add", "-A"], repo)
        git(["commit", "-q", "-m", f"exp {c}"], repo)
    return repo


def _columns(doc: dict) -> set[str]:
    """FILE:KEY of every value in an `exp show --json` document."""
    return {f"{f}:{k}" for r in doc["rows"] for kind in ("params", "metrics")
            for f, vals in r[kind].items() for k in vals}


def _header(text: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("Rev"))
    return line.split()


def run_stdout_on_pty(args: list[str], cwd: Path, columns: int = 80) -> tuple[int, str, str]:
    """Run mlver with stdout on an 80-column pseudo-terminal, stderr on a pipe; returns
    (exit code, the terminal's text without colour codes, stderr)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES="40")
    try:
        proc = subprocess.Popen([*mlver_cmd(), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)
    screen = drain_pty(master, proc)
    _, err = proc.communicate(timeout=120)
    text = ANSI.sub("", screen.decode("utf-8", "replace")).replace("\r\n", "\n")
    return proc.returncode, text, err.decode()


def test_piped_exp_show_of_30_columns_is_not_cut(wide: Path) -> None:
    doc = run_json(["exp", "show"], wide)
    assert _columns(doc) == set(ALL)
    proc = run(["exp", "show"], wide, env={"COLUMNS": "80"})
    assert "…" not in proc.stdout and proc.stderr == ""
    assert _header(proc.stdout)[4:] == [c.split(":", 1)[1] for c in ALL]  # every column, in order
    for row in doc["rows"]:
        label = row["rev"] if row["rev"] == "workspace" else row["rev"][:7]
        line = next(ln for ln in proc.stdout.splitlines() if ln.split()[:1] == [label])
        values = [str(v) for kind in ("params", "metrics") for vals in row[kind].values() for v in vals.values()]
        assert line.split()[-len(ALL):] == (values or ["-"] * len(ALL)), line
    # a long subject (an experiment's is its -S list) is whole when piped
    subject = "a subject line long enough to be cut on a terminal, told apart by its end: lr=0.001"
    git(["commit", "-q", "--allow-empty", "-m", subject], wide)
    assert subject in run(["exp", "show"], wide, env={"COLUMNS": "80"}).stdout


def test_piped_metrics_show_and_params_diff_are_not_cut(wide: Path) -> None:
    metrics = run(["metrics", "show"], wide, env={"COLUMNS": "80"}).stdout
    assert "…" not in metrics
    assert _header_of(metrics, "Revision")[2:] == [f"m{i:02}" for i in range(N_METRICS)]
    values = [str(v) for v in json.loads(_metrics(3)).values()]
    assert _header_of(metrics, "workspace")[2:] == values
    long = "a-long-value-" * 8
    gen(wide, {"params.yaml": _params(3).replace("p00: 3\n", f"p00: {long}\n")})
    diff = run(["params", "diff", "--all"], wide, env={"COLUMNS": "60"}).stdout
    assert "…" not in diff
    assert _header_of(diff, "params.yaml")[:4] == ["params.yaml", "train.p00", "3", long]
    assert sum(ln.split()[:1] == ["params.yaml"] for ln in diff.splitlines()) == N_PARAMS


def _header_of(text: str, first: str) -> list[str]:
    return next(ln.split() for ln in text.splitlines() if ln.split()[:1] == [first])


def test_only_changed_keep_and_drop_choose_columns_in_json_and_text(wide: Path) -> None:
    assert _columns(run_json(["exp", "show", "--only-changed"], wide)) == set(CHANGING)
    text = run(["exp", "show", "--only-changed"], wide).stdout
    assert _header(text)[4:] == [c.split(":", 1)[1] for c in CHANGING]

    dropped = run_json(["exp", "show", "--drop", r"^params\.yaml:", "--drop", "m0[0-4]$"], wide)
    assert _columns(dropped) == {f"metrics.json:m{i:02}" for i in range(5, N_METRICS)}
    text = run(["exp", "show", "--drop", r"^params\.yaml:", "--drop", "m0[0-4]$"], wide).stdout
    assert _header(text)[4:] == [f"m{i:02}" for i in range(5, N_METRICS)]

    # --keep wins over --drop and over --only-changed
    kept = run_json(["exp", "show", "--only-changed", "--drop", "train", "--keep", r"train\.p0[12]$"], wide)
    assert _columns(kept) == {"params.yaml:train.p01", "params.yaml:train.p02"} | \
        {c for c in CHANGING if c.startswith("metrics.json:")}
    csv_out = run(["exp", "show", "--only-changed", "--drop", "train", "--keep", r"train\.p0[12]$", "--csv"],
                  wide).stdout
    assert csv_out.splitlines()[0].split(",")[4:] == ["train.p01", "train.p02", "m00", "m03", "m06", "m09"]
    # values of the rows are untouched by the choice of columns
    full = run_json(["exp", "show"], wide)["rows"]
    for a, b in zip(full, kept["rows"]):
        assert a["rev"] == b["rev"]
        for f, vals in b["params"].items():
            assert all(a["params"][f][k] == v for k, v in vals.items())


def test_a_bad_regex_is_a_usage_error(wide: Path) -> None:
    proc = run(["exp", "show", "--keep", "(unclosed"], wide, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("mlver: error: --keep '(unclosed' is not a regular expression")
    assert [ln for ln in lines if ln.startswith("mlver: error:")] == lines[:1]
    assert all(ln.startswith("hint: ") for ln in lines[1:]) and "Traceback" not in proc.stderr


def test_on_an_80_column_terminal_exp_show_fits_and_names_what_it_left_out(wide: Path) -> None:
    code, term, err = run_stdout_on_pty(["exp", "show"], wide)
    assert code == 0, err
    lines = [ln for ln in term.splitlines() if ln.strip()]
    assert lines and all(len(ln.rstrip()) <= 80 for ln in lines), term
    shown = _header(term)[4:]
    assert shown, term
    note = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert len(note) == 1, err
    m = re.match(r"note: (\d+) column\(s\) left out to fit 80 columns: (.*?)( and (\d+) more)?; ", note[0])
    assert m, note
    assert int(m.group(1)) == len(ALL) - len(shown)
    named = m.group(2).split(", ")
    assert all(name in ALL and name.split(":", 1)[1] not in shown for name in named)
    assert "--keep" in note[0] and "--json" in note[0]
    # unchanged columns go first: what is still shown is among the changing ones
    assert {c for c in ALL if c.split(":", 1)[1] in shown} <= set(CHANGING)

    # fewer columns that fit are shown whole, without a note
    code, term, err = run_stdout_on_pty(["exp", "show", "--drop", ".", "--keep", "m0[03]$"], wide)
    assert code == 0 and err == ""
    assert _header(term)[4:] == ["m00", "m03"]
    # --keep'd columns are the last to go
    code, term, err = run_stdout_on_pty(["exp", "show", "--keep", "p01$"], wide)
    assert code == 0 and "train.p01" in _header(term)
