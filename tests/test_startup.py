"""Fast start and the architecture's import lines (SPEC guarantee 6, STYLE "layout").

The startup tests run a fresh interpreter and look at what it imported; the
architecture tests parse every module of the package with ``ast`` and hold the lines
STYLE.md draws: each outside library lives in one place, only ``mlver/cli/`` talks to
the terminal, and ``mlver/errors.py`` depends on nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mlver

from conftest import run

PACKAGE = Path(mlver.__file__).resolve().parent
HEAVY = ("git", "gitdb", "fsspec", "yaml", "rich.progress")


def _is_heavy(module: str) -> bool:
    return any(module == h or module.startswith(h + ".") for h in HEAVY)


def _imported_by(code: str, cwd: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _importtime_modules(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime -m mlver ARGS``; the names of every module it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlver", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    names = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    assert names, f"-X importtime printed nothing:\n{proc.stderr}"
    return proc, names


# --- startup ----------------------------------------------------------------------------

def test_importing_the_cli_imports_no_heavy_library(tmp_path: Path) -> None:
    mods = _imported_by("import sys, mlver.cli; print('\\n'.join(sorted(sys.modules)))", tmp_path)
    assert "mlver.cli" in mods
    assert [m for m in mods if _is_heavy(m)] == []


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["add", "--help"], ["status", "--help"]])
def test_help_and_version_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    proc, names = _importtime_modules(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mlver.cli" in names
    assert [m for m in names if _is_heavy(m)] == []


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    proc = run(["--version"], tmp_path)
    assert proc.stdout.strip() == f"mlver {mlver.__version__}"
    assert proc.stderr == ""
    via_module = subprocess.run([sys.executable, "-m", "mlver", "--version"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
    assert via_module.returncode == 0
    assert via_module.stdout == proc.stdout


# --- architecture -----------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    rel: str  # module file relative to the package's parent, POSIX ("mlver/cli/data.py")
    line: int
    module: str  # absolute dotted name imported ("fsspec.callbacks", "mlver.git")
    names: tuple[str, ...]  # for ``from X import a, b``: ("a", "b")

    def where(self) -> str:
        shown = self.module + (f" ({', '.join(self.names)})" if self.names else "")
        return f"{self.rel}:{self.line}: {shown}"


def _sources() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        out.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    assert any(rel == "mlver/cli/__init__.py" for rel, _ in out)
    return out


def _package_of(rel: str) -> list[str]:
    parts = rel[:-3].split("/")
    return parts[:-1] if parts[-1] != "__init__" else parts[:-1]


def _imports(rel: str, tree: ast.Module) -> list[Import]:
    """Every import in the module, at any depth (inside functions and TYPE_CHECKING too),
    plus ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name."""
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(rel, node.lineno, a.name, ()) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_of(rel)
                base = pkg[: len(pkg) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = tuple(a.name for a in node.names)
            if module in ("mlver",) or (node.level and not node.module):
                # ``from mlver import git`` names the submodule mlver.git
                found.extend(Import(rel, node.lineno, f"{module}.{n}", ()) for n in names)
            else:
                found.append(Import(rel, node.lineno, module, names))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            dynamic = (isinstance(f, ast.Name) and f.id in ("__import__", "import_module")) or \
                      (isinstance(f, ast.Attribute) and f.attr == "import_module")
            if dynamic:
                found.append(Import(rel, node.lineno, node.args[0].value, ()))
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _all_imports() -> list[Import]:
    return [imp for rel, tree in _sources() for imp in _imports(rel, tree)]


def _fsspec_allowed_everywhere(imp: Import) -> bool:
    """The progress protocol (``fsspec.callbacks``) may be used anywhere."""
    if imp.module == "fsspec.callbacks" or imp.module.startswith("fsspec.callbacks."):
        return True
    return imp.module == "fsspec" and bool(imp.names) and set(imp.names) <= {"callbacks", "Callback"}


RULES = {
    # library top-level package -> (files or folders allowed to import it, exception)
    "click": ("mlver/cli/",),
    "rich": ("mlver/cli/",),
    "git": ("mlver/git.py",),
    "gitdb": ("mlver/git.py",),
    "fsspec": ("mlver/remote.py", "mlver/filesystem.py"),  # remotes; the mlver:// filesystem
    "xxhash": ("mlver/hashing.py",),
}


def _allowed(rel: str, places: tuple[str, ...]) -> bool:
    return any(rel.startswith(p) if p.endswith("/") else rel == p for p in places)


@pytest.mark.parametrize("library", sorted(RULES))
def test_each_outside_library_is_imported_in_one_place(library: str) -> None:
    places = RULES[library]
    bad = [imp.where() for imp in _all_imports()
           if _top(imp.module) == library and not _allowed(imp.rel, places)
           and not (library == "fsspec" and _fsspec_allowed_everywhere(imp))]
    assert bad == [], f"{library} may only be imported in {', '.join(places)}; found:\n" + "\n".join(bad)


def _calls(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls that print or exit: print(...), sys.exit(...), exit(...), quit(...), os._exit(...),
    and names bound by ``from sys import exit``."""
    from_sys = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "sys" and not node.level for a in node.names if a.name == "exit"}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and (f.id in ("print", "exit", "quit") or f.id in from_sys):
            out.append((node.lineno, f"{f.id}("))
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                (f.value.id, f.attr) in (("sys", "exit"), ("os", "_exit")):
            out.append((node.lineno, f"{f.value.id}.{f.attr}("))
    return out


def test_only_the_cli_prints_or_exits() -> None:
    # mlver/__main__.py is the console entry point: it turns a Ctrl-C during the CLI's own
    # import into exit 130, before mlver/cli/ exists to do so.
    bad = [f"{rel}:{line}: {what}" for rel, tree in _sources()
           if not rel.startswith("mlver/cli/") and rel != "mlver/__main__.py"
           for line, what in _calls(tree)]
    assert bad == [], "outside mlver/cli/ the library returns results and raises errors; found:\n" + "\n".join(bad)


ERROR_LINE_WRITERS = {
    "mlver/cli/__init__.py": "cli.main, the boundary",
    "mlver/__main__.py": "a Ctrl-C during the CLI's own import, before cli.main exists",
    "mlver/hooks.py": "the hook shell scripts, when the Python mlver was installed with is gone",
}


def _docstrings(tree: ast.Module) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def test_only_the_boundary_writes_error_lines() -> None:
    """STYLE "one exception tree, one boundary": commands raise an MlverError (its lists
    and hints as fields); only ``cli.main`` writes ``mlver: error:`` (and the places
    ERROR_LINE_WRITERS names, for the reason it gives)."""
    bad = []
    for rel, tree in _sources():
        if rel in ERROR_LINE_WRITERS:
            continue
        docs = _docstrings(tree)
        bad += [f"{rel}:{node.lineno}" for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and "mlver: error" in node.value and id(node) not in docs]
    assert bad == [], "raise an MlverError instead of printing an error line; found:\n" + "\n".join(bad)


LAYERS = [  # STYLE.md's picture, top to bottom: a module may import only modules below it
    "cli", "api", "ops", "pipeline", "repo", "workspace", "state", "cache", "remote", "git", "hooks", "pointer",
    "config", "hashing", "fsutil", "errors",
]
HELPERS = {  # modules outside the picture -> the layer they sit just above (imports: that one and below)
    "filesystem": "api",  # the mlver:// fsspec filesystem, over the same reading layer as mlver.api
    "tracked": "pipeline",  # outputs recorded at a revision, the index or the workspace: below ops, reads locks
    "gitignore": "repo",  # .gitignore entries for tracked data: used by ops and pipeline, uses the Repo
    "report_html": "repo",  # plots' HTML, used by ops/plots
    "browser": "errors",  # headless Chromium over a DevTools pipe: PNG images of charts, imports errors only
    "live": "fsutil",  # mlver.live, for training scripts: metrics, params and plot files (atomic writes)
    "progress": "errors",  # the progress protocol: usable everywhere, imports nothing
    "failpoint": "errors",  # crash-test hooks: usable everywhere, imports nothing
    "packs": "cache",  # packs and the remote inventory: over remote transfers, reading into the Cache
    "values": "errors",  # params/metrics values as JSON holds them (dates, bytes, sets): imports nothing
    "ignore": "errors",  # .mlverignore rules (gitignore matching): used by fsutil and above, imports errors only
}
KNOWN_UPWARD = {  # (importer, imported): today's code breaks the picture here; shrink this set
    ("workspace", "repo"),  # workspace functions take the Repo handle (its services: state, cache, config)
    ("remote", "cache"),  # transfers read from and store into the Cache (its layout and verified writes)
    ("hooks", "git"),  # installing hook scripts asks Git for the hooks folder
    ("report_html", "ops"),  # renders ops.plots' PlotsReport (a TYPE_CHECKING import for its type)
}


def _layer(module: str) -> str | None:
    """The layer of ``mlver.X...`` (``mlver.ops.add`` -> "ops"), None for ``mlver`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "mlver" else None


def _rank(layer: str) -> float:
    if layer in HELPERS:
        return LAYERS.index(HELPERS[layer]) - 0.5
    return LAYERS.index(layer)


def test_every_module_has_a_place_in_the_layers() -> None:
    layers = {_layer(rel[:-3].replace("/", ".")) for rel, _ in _sources()} - {None, "__init__", "__main__"}
    unplaced = sorted(x for x in layers if x not in LAYERS and x not in HELPERS)
    assert unplaced == [], f"add {unplaced} to LAYERS or HELPERS in this test (where STYLE.md's picture puts it)"


def test_imports_point_downward() -> None:
    bad = []
    for imp in _all_imports():
        me, it = _layer(imp.rel[:-3].replace("/", ".")), _layer(imp.module)
        if me in (None, "__init__", "__main__") or it in (None, "__init__") or me == it:
            continue
        if it == "__version__":
            continue
        if _rank(it) <= _rank(me) and (me, it) not in KNOWN_UPWARD:
            bad.append(imp.where())
    assert bad == [], "imports point downward (STYLE.md's layout); found:\n" + "\n".join(bad)


def test_errors_module_imports_nothing_from_mlver() -> None:
    tree = dict(_sources())["mlver/errors.py"]
    bad = [imp.where() for imp in _imports("mlver/errors.py", tree) if _top(imp.module) == "mlver"]
    assert bad == [], "mlver/errors.py must not depend on the rest of mlver; found:\n" + "\n".join(bad)


def test_the_import_scanner_sees_what_it_must() -> None:
    """Guard the guard: the scanner finds lazy, relative and ``from mlver import`` imports."""
    src = ("from __future__ import annotations\n"
           "from . import git\n"
           "from ..cache import Cache\n"
           "from mlver import hashing\n"
           "def f():\n"
           "    import fsspec.implementations.local\n"
           "    from fsspec.callbacks import Callback\n"
           "    import importlib\n"
           "    importlib.import_module('xxhash')\n"
           "    print('x')\n"
           "    sys.exit(1)\n")
    imps = _imports("mlver/ops/x.py", ast.parse(src))
    mods = [i.module for i in imps]
    assert sorted(mods) == sorted(["__future__", "mlver.ops.git", "mlver.cache", "mlver.hashing",
                                   "fsspec.implementations.local", "fsspec.callbacks", "importlib", "xxhash"])
    fs = [i for i in imps if _top(i.module) == "fsspec"]
    assert [_fsspec_allowed_everywhere(i) for i in sorted(fs, key=lambda i: i.line)] == [False, True]
    assert [w for _, w in sorted(_calls(ast.parse(src)))] == ["print(", "sys.exit("]
