"""Every way a command line can be wrong ends in one ``mlver: error:`` line on stderr, a
hint, the right exit code (2 usage, 3 other errors) and never a traceback (SPEC
guarantee 4); and every command has help text."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from conftest import git, run, run_json


def _assert_error(proc: subprocess.CompletedProcess[str], code: int, *, contains: str = "") -> list[str]:
    """The process failed with ``code`` and one ``mlver: error:`` line first on stderr;
    returns stderr's lines."""
    lines = proc.stderr.splitlines()
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == code, shown
    assert lines and lines[0].startswith("mlver: error: "), shown
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, shown
    assert proc.stdout == "", shown
    # a hint may follow the error line, nothing else
    assert all(line.startswith("hint: ") for line in lines[1:]), shown
    if contains:
        assert contains in lines[0], shown
    return lines


def _commands(cwd: Path) -> dict[str, str]:
    """Command name -> help line, as ``mlver --help`` lists them."""
    out = run(["--help"], cwd).stdout
    section = out.split("Commands:", 1)[1]
    found = {}
    for line in section.splitlines():
        m = re.match(r"^  (\S+)(?:\s+(.*))?$", line)
        if m:
            found[m.group(1)] = (m.group(2) or "").strip()
    return found


def _run_each(arg_lists: list[list[str]], cwd: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run several independent mlver invocations a few at a time; (command name, result)."""
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda args: run(args, cwd, check=False), arg_lists))
    return [(args[0], proc) for args, proc in zip(arg_lists, results)]


# --- usage errors: exit 2 --------------------------------------------------------------

USAGE_ERRORS = {
    "unknown command": (["frobnicate"], "No such command 'frobnicate'"),
    "no command at all": ([], "missing command"),
    "missing argument": (["add"], "Missing argument"),
    "missing second argument": (["move", "a"], "Missing argument"),
    "missing target": (["remove"], "Missing argument"),
    "unknown global option": (["--bogus", "status"], "No such option"),
    "unknown command option": (["status", "--bogus"], "No such option"),
    "option missing its value": (["add", "x", "--desc"], "requires an argument"),
    "flag given a value": (["status", "--check=yes"], "does not take a value"),
    "unexpected extra argument": (["list", "extra"], "unexpected extra argument"),
    "too many revisions": (["diff", "a", "b", "c"], "unexpected extra argument"),
    "-C to a missing folder": (["-C", "no/such/dir", "status"], "cannot change to directory"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_exits_2_with_one_error_line(tmp_path: Path, case: str) -> None:
    args, words = USAGE_ERRORS[case]
    lines = _assert_error(run(args, tmp_path, check=False), 2, contains=words)
    assert any("--help" in line for line in lines[1:]), lines


def test_usage_error_has_no_traceback_even_with_verbose(tmp_path: Path) -> None:
    _assert_error(run(["-v", "status", "--bogus"], tmp_path, check=False), 2, contains="No such option")


def test_every_command_rejects_an_unknown_option_as_a_usage_error(tmp_path: Path) -> None:
    commands = _commands(tmp_path)
    assert {"init", "add", "status", "commit", "checkout", "diff", "list"} <= set(commands)
    for name, proc in _run_each([[name, "--no-such-option"] for name in commands], tmp_path):
        lines = _assert_error(proc, 2, contains="No such option")
        # the bare `mlver plots [METRIC...]` is `mlver plots trend`: its hint names that help
        shown = f"mlver {name} trend --help" if name == "plots" else f"mlver {name} --help"
        assert any(shown in line for line in lines[1:]), lines


# --- help text --------------------------------------------------------------------------

def test_every_command_in_help_has_help_text(tmp_path: Path) -> None:
    commands = _commands(tmp_path)
    assert commands
    assert {name: text for name, text in commands.items() if not text} == {}
    for name, proc in _run_each([[name, "--help"] for name in commands], tmp_path):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"Usage: mlver {name}"), proc.stdout
        body = proc.stdout.split("\n", 1)[1].split("Options:", 1)[0]
        assert body.strip(), f"`mlver {name} --help` has no description:\n{proc.stdout}"


def _walk(group: click.Group, ctx: click.Context, path: str) -> list[tuple[str, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"{path} {name}"
        found.append((f"{path} {name}", cmd))
        if isinstance(cmd, click.Group):
            found.extend(_walk(cmd, click.Context(cmd, info_name=name, parent=ctx), f"{path} {name}"))
    return found


def test_every_command_and_subcommand_and_option_has_help_text() -> None:
    from mlver.cli import cli

    root = click.Context(cli, info_name="mlver")
    every = _walk(cli, root, "mlver")
    assert len(every) >= 10
    shown = [(p, cmd) for p, cmd in every if not cmd.hidden]
    no_doc = [p for p, cmd in shown if not (cmd.help or cmd.short_help or "").strip()]
    assert no_doc == [], f"commands without help text: {no_doc}"
    no_opt_help = [f"{p} {param.opts[0]}" for p, cmd in shown for param in cmd.params
                   if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()]
    assert no_opt_help == [], f"options without help text: {no_opt_help}"


# --- outside a project: exit 3 ----------------------------------------------------------

OUTSIDE = [["status"], ["list"], ["diff"], ["add", "data.csv"], ["commit"], ["checkout"],
           ["remove", "data.csv.mlver"], ["move", "a", "b"], ["unprotect", "data.csv"]]


@pytest.mark.parametrize("args", OUTSIDE, ids=[a[0] for a in OUTSIDE])
def test_command_outside_an_mlver_project_exits_3_with_hint(tmp_path: Path, args: list[str]) -> None:
    git(["init", "-q"], tmp_path)  # a Git repository, but no mlver project
    (tmp_path / "data.csv").write_text("a,b\n")
    lines = _assert_error(run(args, tmp_path, check=False), 3, contains="not inside an mlver project")
    assert any("mlver init" in line for line in lines[1:]), lines


def test_a_git_repository_nested_in_a_project_is_not_that_project(tmp_path: Path) -> None:
    """A `git clone` or `git init` made inside a project by mistake: mlver must not walk past
    that repository's top level and work on (edit, run, push) the enclosing project."""
    git(["init", "-q"], tmp_path)
    run(["init"], tmp_path)
    (tmp_path / "params.yaml").write_text("p: 1\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    git(["init", "-q"], inner)
    (inner / "data.csv").write_text("a,b\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert "Not inside an mlver project" in run(["doctor"], inner).stdout
    for args in (["status"], ["add", "data.csv"], ["exp", "run", "-S", "p=7"], ["push"]):
        lines = _assert_error(run(args, inner, check=False), 3, contains="not inside an mlver project")
        assert str(inner) in lines[0], lines
        assert any("mlver init" in line for line in lines[1:]), lines
    assert (tmp_path / "params.yaml").read_text() == "p: 1\n"
    assert not (inner / "data.csv.mlver").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # once initialised there, it is a project of its own; the outer one keeps working
    run(["init"], inner)
    run(["add", "data.csv"], inner)
    assert (inner / "data.csv.mlver").is_file()
    assert run(["status"], tmp_path).returncode == 0


def test_init_outside_git_refuses_with_hint(tmp_path: Path) -> None:
    lines = _assert_error(run(["init"], tmp_path, check=False), 3, contains="not inside a Git repository")
    assert any("git init" in line and "--no-scm" in line for line in lines[1:]), lines
    assert not (tmp_path / ".mlver").exists()


def test_init_no_scm_works_and_git_commands_say_they_need_git(tmp_path: Path) -> None:
    run(["init", "--no-scm"], tmp_path)
    assert (tmp_path / ".mlver" / "config").is_file()
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    run(["add", "data.csv"], tmp_path)
    assert (tmp_path / "data.csv.mlver").is_file()
    assert run(["status", "--json"], tmp_path).stdout.count('"clean": true') == 1
    for args in (["diff"], ["diff", "HEAD"], ["checkout", "--rev", "HEAD", "data.csv"]):
        lines = _assert_error(run(args, tmp_path, check=False), 3)
        assert "needs Git" in lines[0], lines
        assert "--no-scm" in lines[0], lines
    # gc's default scope without Git is the workspace (as DVC's): the old version goes
    (tmp_path / "data.csv").write_text("a,b\n3,4\n")
    run(["add", "data.csv"], tmp_path)
    assert run_json(["gc", "--dry-run", "--json"], tmp_path)["objects"] == 1
    run(["gc", "-f"], tmp_path)
    assert run_json(["status"], tmp_path)["clean"]
    for args in (["gc", "-A", "--dry-run"], ["push", "-a"]):  # a revision scope names its flags
        lines = _assert_error(run(args, tmp_path, check=False), 3)
        assert "needs Git" in lines[0] and "-A" in lines[0] and "`" not in lines[0], lines


def test_init_twice_is_polite(repo: Path) -> None:
    proc = run(["init"], repo)
    assert "already initialised" in proc.stderr
