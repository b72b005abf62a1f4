"""SSH remotes against a real OpenSSH server on 127.0.0.1 with a throwaway host key, user
key and config (sshfs/asyncssh on mlver's side). Without sshd the tests skip loudly,
unless MLVER_REQUIRE names sshd (.ci/run does), which turns that into a failure."""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import gen, git, require, run, run_json

pytest.importorskip("sshfs", reason="sshfs is needed for the SSH tests (pip install \"mlver[ssh]\")")


def _sshd() -> str | None:
    for cand in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _sftp_server() -> str:
    for cand in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server",
                 "/usr/lib/ssh/sftp-server"):
        if os.path.exists(cand):
            return cand
    return "internal-sftp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SSHServer:
    def __init__(self, root: Path, port: int, user_key: Path, known_hosts: Path, proc: subprocess.Popen) -> None:
        self.root = root
        self.port = port
        self.user_key = user_key
        self.known_hosts = known_hosts
        self.proc = proc
        self.user = getpass.getuser()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SSHServer]:
    binary = _sshd()
    if binary is None or shutil.which("ssh-keygen") is None:
        require("sshd", "OpenSSH server is not installed, SSH remote tests skipped (apt-get install openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir()
    os.chmod(d, 0o700)
    host_key, user_key = d / "host_key", d / "user_key"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    known_hosts = d / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(d / 'host_key.pub').read_text().split(' ')[0]} "
                           f"{(d / 'host_key.pub').read_text().split(' ')[1]}\n")
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin yes", "StrictModes no", "UsePAM no",
        f"Subsystem sftp {_sftp_server()}", "LogLevel ERROR", "",
    ]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation folder
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"sshd did not start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not start listening")
                time.sleep(0.05)
        yield SSHServer(d, port, user_key, known_hosts, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def ssh_remote(repo: Path, server: SSHServer, store: Path, *, key: Path | None = None) -> None:
    run(["remote", "add", "-d", "ssh", f"ssh://{server.user}@127.0.0.1:{server.port}{store}"], repo)
    run(["remote", "modify", "--local", "ssh", "keyfile", str(key or server.user_key)], repo)
    run(["remote", "modify", "--local", "ssh", "known_hosts", str(server.known_hosts)], repo)


def sha(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_ssh_push_pull_round_trip(repo: Path, tmp_path: Path, sshd: SSHServer) -> None:
    gen(repo, {**{f"data/set/{i}.txt": f"row {i}\n" * (i + 1) for i in range(15)},
               "weights.bin": os.urandom(2_500_000)})
    store = tmp_path / "ssh-store"
    ssh_remote(repo, sshd, store)
    run(["add", "data/set", "weights.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)

    res = run_json(["push"], repo)
    assert res["transferred"] == 17 and res["missing"] == []
    assert len([p for p in (store / "files").rglob("*") if p.is_file()]) == 17
    assert [p for p in (store / "tmp").iterdir()] == []  # temporaries renamed into place
    assert run_json(["push"], repo)["transferred"] == 0

    other = tmp_path / "other"
    git(["clone", "-q", str(repo), str(other)], tmp_path)
    ssh_remote_local_only(other, sshd)
    assert run_json(["pull"], other)["transferred"] == 17
    assert sha(other / "data") == sha(repo / "data")
    assert (other / "weights.bin").read_bytes() == (repo / "weights.bin").read_bytes()
    assert run_json(["fsck", "-r", "ssh"], other)["corrupt"] == []
    assert run_json(["status", "-r", "ssh"], other)["remote"]["local_only"] == []


def ssh_remote_local_only(clone: Path, server: SSHServer) -> None:
    """A clone has the committed URL; its key and known_hosts are per machine."""
    run(["remote", "modify", "--local", "ssh", "keyfile", str(server.user_key)], clone)
    run(["remote", "modify", "--local", "ssh", "known_hosts", str(server.known_hosts)], clone)


def test_ssh_refused_key_is_one_line_error(repo: Path, tmp_path: Path, sshd: SSHServer) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    gen(repo, {"a.txt": "a\n"})
    run(["add", "a.txt"], repo)
    ssh_remote(repo, sshd, tmp_path / "store", key=stranger)
    proc = run(["push"], repo, check=False)
    assert proc.returncode == 3
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "remote 'ssh'" in errors[0]
    assert "Traceback" not in proc.stderr


def test_ssh_gc_cloud_keeps_objects_younger_than_grace(repo: Path, tmp_path: Path, sshd: SSHServer) -> None:
    """gc --cloud reads SFTP modification times: a fresh object stays, a two-day-old one
    goes, and gc.grace 0 collects the fresh one too."""
    store = tmp_path / "ssh-store"
    ssh_remote(repo, sshd, store)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "remote"], repo)
    gen(repo, {"young.txt": "just pushed\n", "old.txt": "pushed long ago\n"})
    run(["add", "young.txt", "old.txt"], repo)
    digests = {}
    for name in ("young", "old"):
        text = (repo / f"{name}.txt.mlver").read_text()
        digests[name] = [ln.split()[1] for ln in text.splitlines() if ln.startswith("digest:")][0]
    run(["push"], repo)
    for name in ("young", "old"):
        (repo / f"{name}.txt.mlver").unlink()  # committed nowhere: scope and grace decide
    path = {n: store / "files" / "xxh3-128" / d[:2] / d[2:] for n, d in digests.items()}
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(path["old"], (two_days_ago, two_days_ago))
    plan = run_json(["gc", "--cloud", "--dry-run"], repo)
    assert plan["remote"]["objects"] == 1 and plan["remote"]["kept_recent"]["objects"] == 1
    run(["gc", "--cloud", "-f"], repo)
    assert path["young"].exists() and not path["old"].exists()
    run(["config", "gc.grace", "0"], repo)
    run(["gc", "--cloud", "-f"], repo)
    assert not path["young"].exists()
