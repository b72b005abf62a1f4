"""Shared fixtures: real Git repositories in temporary folders and the installed
``mlver`` run as a subprocess, with a pinned environment (HOME, NO_COLOR, COLUMNS).

A test that needs something this machine may lack (sshd, an XFS loop mount, Chromium,
DVC, Dask) calls ``require(capability, reason)``: it skips, and the run ends with a
loud "NOT TESTED HERE" section listing every skipped capability; with the capability
named in ``MLVER_REQUIRE`` (comma-separated, or ``all``; ``.ci/run`` sets it) the skip
becomes a failure. Files a test wants to keep (a screenshot) go to ``artifacts_dir``
(``$MLVER_TEST_ARTIFACTS`` when set); everything else lives in pytest's temporary
folders, which are removed after a passing run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from collections import Counter
from typing import Any, NoReturn

import pytest

MLVER = shutil.which("mlver")


def required(capability: str) -> bool:
    names = {n.strip() for n in os.environ.get("MLVER_REQUIRE", "").split(",") if n.strip()}
    legacy = capability == "sshd" and os.environ.get("MLVER_REQUIRE_SSHD") == "1"
    return legacy or capability in names or "all" in names


def require(capability: str, reason: str) -> NoReturn:
    """Skip a test whose ``capability`` is missing here, loudly; fail instead when the
    run requires it (``MLVER_REQUIRE``)."""
    message = f"{capability}: {reason} -- NOT TESTED HERE"
    if required(capability):
        pytest.fail(f"{message} (MLVER_REQUIRE asks for {capability})")
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After the run, one loud section naming every skipped reason and how many tests it
    skipped, so a machine without sshd (say) cannot pass for a full run."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("NOT TESTED HERE: skipped tests", sep="!", red=True, bold=True)
        for reason, n in reasons.most_common():
            terminalreporter.write_line(f"{n:4d} skipped  {reason}")


@pytest.fixture(scope="session")
def dvc_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real DVC 3 CLI, in a virtualenv of its own: ``$MLVER_TEST_DVC`` when set (.ci/run
    builds one), else a ``dvc`` on PATH, else one installed here once per session."""
    given = os.environ.get("MLVER_TEST_DVC") or shutil.which("dvc")
    if given and os.access(given, os.X_OK):
        return given
    venv = tmp_path_factory.mktemp("dvc-venv")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvc>=3,<4"], check=True, capture_output=True,
                       timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        require("dvc", f"DVC 3 could not be installed in a virtualenv ({type(e).__name__})")
    return str(venv / "bin" / "dvc")


@pytest.fixture(scope="session")
def dvc2_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real DVC 2 CLI (DVC 2's md5-dos2unix digests and cache layout), in a
    virtualenv of its own: ``$MLVER_TEST_DVC2`` when set (.ci/run builds one), else one
    installed here once per session."""
    given = os.environ.get("MLVER_TEST_DVC2")
    if given and os.access(given, os.X_OK):
        return given
    venv = tmp_path_factory.mktemp("dvc2-venv")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvc>=2.50,<3", "pathspec<0.12", "dulwich<0.22"],
                       check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        require("dvc2", f"DVC 2 could not be installed in a virtualenv ({type(e).__name__})")
    return str(venv / "bin" / "dvc")


@pytest.fixture
def chromium_bin() -> str:
    """A headless Chromium (Debian's ``chromium``): ``$MLVER_CHROMIUM``, else one on PATH;
    a loud skip ("chromium") when there is none."""
    for name in (os.environ.get("MLVER_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    require("chromium", "no headless Chromium to render the HTML report in (apt-get install chromium)")


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    """Where a test keeps a file worth looking at after the run: ``$MLVER_TEST_ARTIFACTS``
    when set (created if needed), else the test's own temporary folder."""
    where = os.environ.get("MLVER_TEST_ARTIFACTS")
    if not where:
        return tmp_path
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def pinned_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("MLVER_FAILPOINT", raising=False)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")


def drain_pty(master: int, proc: subprocess.Popen) -> bytes:
    """Everything written to the pseudo-terminal ``master`` until its last writer closes
    it (the master is closed afterwards); a failure kills and reaps ``proc``."""
    import errno
    import select

    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, "no output from mlver on the terminal for 60 s"
            try:
                data = os.read(master, 65536)
            except OSError as e:  # Linux: EIO once the last writer has closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=120)
        raise
    finally:
        os.close(master)
    return b"".join(chunks)


def mlver_cmd() -> list[str]:
    return [MLVER] if MLVER else [sys.executable, "-m", "mlver"]


def run(args: list[str], cwd: Path | str, *, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed mlver; with check=True a non-zero exit fails the test with its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run([*mlver_cmd(), *args], cwd=cwd, capture_output=True, text=True, env=full_env,
                          input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlver {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_json(args: list[str], cwd: Path | str, **kw: Any) -> Any:
    return json.loads(run([*args, "--json"], cwd, **kw).stdout)


def git(args: list[str], cwd: Path | str, *, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def gen(root: Path, files: dict[str, str | bytes]) -> None:
    """Write files (text or bytes) below ``root``, creating folders."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() and not os.access(p, os.W_OK):
            p.unlink()
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh Git repository with mlver initialised and one commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git(["init", "-q"], root)
    run(["init"], root)
    git(["commit", "-q", "-m", "init mlver"], root)
    return root
