"""Remotes that are not what they seem: a folder or bucket that does not exist (never an
empty remote), servers that stop answering mid-transfer or never answer at all (a
deadline without progress, then one line and the lock released), a folder remote that
runs out of space, and temporaries left in a folder remote's ``tmp/`` by a killed push.
Real folders, a real moto server (in a process of its own where it is SIGSTOPped), a real
sshd, and a socket that accepts connections and never replies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import gen, git, mlver_cmd, run, run_json

TIMEOUT = 90  # generous: a hang fails the test through the subprocess timeout, not a stopwatch


def one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 3 with exactly one ``mlver: error:`` line that holds every needle; no traceback."""
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlver: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def commit_data(repo: Path, files: dict[str, str | bytes], *targets: str) -> None:
    gen(repo, files)
    run(["add", *targets], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)


def clone(repo: Path, dest: Path) -> Path:
    git(["clone", "-q", str(repo), str(dest)], repo.parent)
    return dest


def remote_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "files").rglob("*") if p.is_file()) if (store / "files").exists() else []


# --- item 4: a remote that does not exist is not an empty remote ----------------------

def test_missing_folder_remote_is_an_error_for_every_reading_command(repo: Path, tmp_path: Path) -> None:
    commit_data(repo, {"data/a.txt": "a\n", "data/b.txt": "b\n", "model.bin": b"m" * 1000}, "data", "model.bin")
    store = tmp_path / "store"
    run(["remote", "add", "-d", "store", str(store)], repo)
    git(["commit", "-q", "-am", "remote"], repo)
    run(["push"], repo)
    other = clone(repo, tmp_path / "other")
    os.rename(store, tmp_path / "moved")  # the NAS is unmounted, or the URL was mistyped

    for args in (["fetch"], ["pull"], ["status", "-r", "store"], ["fsck", "-r", "store"],
                 ["gc", "--cloud", "-f"], ["gc", "--cloud", "--dry-run"]):
        proc = run(args, other, check=False, timeout=TIMEOUT)
        one_error(proc, "remote 'store'", f"folder {store} does not exist")
        assert "fetched" not in proc.stderr and "not on remote" not in proc.stderr, (args, proc.stderr)
        assert not store.exists()
    assert not (other / "model.bin").exists() and not (other / "data").exists()  # pull wrote nothing
    # --json too: the error, and no JSON claiming an empty remote
    proc = run(["status", "-r", "store", "--json"], other, check=False, timeout=TIMEOUT)
    one_error(proc, "does not exist")
    assert proc.stdout == ""

    os.rename(tmp_path / "moved", store)  # mounted again: everything works
    assert run_json(["pull"], other)["transferred"] == 4
    assert (other / "model.bin").read_bytes() == b"m" * 1000


def test_push_creates_a_missing_folder_only_inside_an_existing_one(repo: Path, tmp_path: Path) -> None:
    commit_data(repo, {"a.txt": "a\n"}, "a.txt")
    unmounted = tmp_path / "mnt" / "nas" / "store"  # /mnt/nas not mounted: its parent is missing
    run(["remote", "add", "-d", "nas", str(unmounted)], repo)
    proc = run(["push"], repo, check=False, timeout=TIMEOUT)
    one_error(proc, "remote 'nas'", "does not exist")
    assert "parent folder" in proc.stderr
    assert not (tmp_path / "mnt").exists()  # nothing created on the local disk

    fresh = tmp_path / "store"  # a new remote beside the project: created, and said so
    run(["remote", "add", "-d", "-f", "nas", str(fresh)], repo)
    proc = run(["push"], repo, timeout=TIMEOUT)
    assert f"Created the folder {fresh} for remote 'nas'" in proc.stderr
    assert len(remote_files(fresh)) == 1
    proc = run(["push"], repo, timeout=TIMEOUT)
    assert "Created" not in proc.stderr

    # once used, a vanished folder is a drive not mounted: never started afresh and empty
    os.rename(fresh, tmp_path / "away")
    commit_data(repo, {"b.txt": "b\n"}, "b.txt")
    proc = run(["push"], repo, check=False, timeout=TIMEOUT)
    one_error(proc, "remote 'nas'", f"folder {fresh} does not exist, yet this clone has used it before")
    assert not fresh.exists()
    fresh.mkdir()  # the user means it: a new, empty remote
    assert run_json(["push"], repo, timeout=TIMEOUT)["transferred"] == 2

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    run(["remote", "add", "-d", "-f", "nas", str(a_file)], repo)
    one_error(run(["push"], repo, check=False, timeout=TIMEOUT), "remote 'nas'", "not a folder")
    assert a_file.read_text() == "x"


# --- 8b: a folder remote that is full; temporaries of a killed push ------------------

@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount; skipped loudly otherwise)."""
    d = tmp_path / "full"
    d.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): full-remote test NOT RUN: {proc.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_folder_remote_is_out_of_space_not_unreachable(repo: Path, tmp_path: Path, small_mount: Path) -> None:
    small = b"small object\n"
    commit_data(repo, {"big.bin": os.urandom(3 << 20), "small.txt": small}, "big.bin", "small.txt")
    run(["remote", "add", "-d", "full", str(small_mount)], repo)
    proc = run(["push", "-j", "1"], repo, check=False, timeout=TIMEOUT)
    one_error(proc, "remote 'full'", "out of space")
    assert "check the URL, the network" not in proc.stderr
    # nothing partial: no temporary left, no object other than the small one
    assert list((small_mount / "tmp").iterdir()) == []
    assert all(p.read_bytes() == small for p in remote_files(small_mount))
    # room again: the same command finishes
    run(["remote", "add", "-d", "-f", "full", str(tmp_path / "roomy")], repo)
    assert run_json(["push"], repo)["transferred"] == 2


def test_push_that_completes_removes_temporaries_of_killed_pushes(repo: Path, tmp_path: Path) -> None:
    commit_data(repo, {f"data/{i}.bin": os.urandom(5000 + i) for i in range(6)}, "data")
    store = tmp_path / "store"
    store.mkdir()
    run(["remote", "add", "-d", "store", str(store)], repo)
    killed = run(["push", "-j", "1"], repo, check=False, env={"MLVER_FAILPOINT": "remote-before-rename:3"},
                 timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL
    left = list((store / "tmp").iterdir())
    assert len(left) == 1  # the killed run's temporary

    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    alive = store / "tmp" / f"{os.getpid()}-0badc0de-0.{host}"  # a push still running on this host
    alive.write_bytes(b"in flight")
    elsewhere = store / "tmp" / "4242-0badc0de-7.another-host"  # another machine's: not ours to judge
    elsewhere.write_bytes(b"in flight")
    ancient = store / "tmp" / "4242-0badc0de-8"  # written by an older mlver, two days ago
    ancient.write_bytes(b"old")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(ancient, (two_days_ago, two_days_ago))

    res = run_json(["push"], repo, timeout=TIMEOUT)
    assert res["transferred"] + res["already"] == 7 and res["missing"] == []
    assert sorted(p.name for p in (store / "tmp").iterdir()) == sorted([alive.name, elsewhere.name])
    assert alive.read_bytes() == b"in flight"
    assert len(remote_files(store)) == 7


# --- S3 ------------------------------------------------------------------------------

class Silent:
    """A listening socket that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)
        for c in self.conns:
            c.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)


def _s3_libs() -> Any:
    pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")
    pytest.importorskip("s3fs", reason="s3fs is needed for the S3 tests")
    return pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoProcess:
    """moto's S3 server in a process of its own, so it can be SIGSTOPped."""

    def __init__(self, boto3: Any) -> None:
        self.boto3 = boto3
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    pytest.fail("moto's server did not start")
                time.sleep(0.1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return self.boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                 aws_access_key_id="testing", aws_secret_access_key="testing")

    def count(self, bucket: str, prefix: str) -> int:
        client = self.client()
        try:
            return int(client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0))
        finally:
            client.close()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def moto_process(aws_env: None) -> Iterator[MotoProcess]:
    server = MotoProcess(_s3_libs())
    try:
        yield server
    finally:
        server.close()


def s3_remote(repo: Path, endpoint: str, url: str, *, timeout: str | None = "2") -> None:
    run(["remote", "add", "-d", "-f", "s3", url], repo)
    run(["remote", "modify", "s3", "endpoint_url", endpoint], repo)
    if timeout:
        run(["remote", "modify", "s3", "timeout", timeout], repo)


def test_missing_bucket_is_an_error_an_empty_prefix_is_an_empty_remote(repo: Path, tmp_path: Path,
                                                                      moto_process: MotoProcess) -> None:
    client = moto_process.client()
    try:
        client.create_bucket(Bucket="real-bucket")
    finally:
        client.close()
    commit_data(repo, {"a.txt": "a\n", "d/b.txt": "b\n"}, "a.txt", "d")
    s3_remote(repo, moto_process.endpoint, "s3://no-such-bucket/store", timeout=None)
    for args in (["push"], ["fetch"], ["status", "-r", "s3"], ["fsck", "-r", "s3"], ["gc", "--cloud", "--dry-run"]):
        proc = run(args, repo, check=False, timeout=TIMEOUT)
        one_error(proc, "remote 's3'", "bucket 'no-such-bucket' does not exist")
    # an empty prefix of a bucket that exists is an empty remote: nothing there, no error
    s3_remote(repo, moto_process.endpoint, "s3://real-bucket/empty", timeout=None)
    git(["commit", "-q", "-am", "remote"], repo)
    assert run_json(["status", "-r", "s3"], repo)["remote"]["in_sync"] == 0
    other = clone(repo, tmp_path / "other")
    proc = run(["fetch"], other, check=False, timeout=TIMEOUT)
    assert proc.returncode == 3 and "not on remote 's3'" in proc.stderr
    assert run_json(["push"], repo)["transferred"] == 3
    assert run_json(["pull"], other)["transferred"] == 3


def test_s3_endpoint_that_never_answers(repo: Path, silent: Silent, aws_env: None) -> None:
    _s3_libs()
    commit_data(repo, {"a.txt": "a\n"}, "a.txt")
    s3_remote(repo, f"http://127.0.0.1:{silent.port}", "s3://bucket/store")
    for args in (["push"], ["fetch", "--run-cache"], ["status", "-r", "s3"]):
        proc = run(args, repo, check=False, timeout=TIMEOUT)
        one_error(proc, "remote 's3'", "stopped answering", "checking the bucket")
    run(["add", "a.txt"], repo, timeout=TIMEOUT)  # takes the lock: it was released


def _wait_for(cond: Any, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"push ended before {what} (exit {proc.returncode}): {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _many_objects(repo: Path, n: int = 150) -> None:
    commit_data(repo, {f"data/{i:03}.bin": os.urandom(60_000) for i in range(n)}, "data")


def _stalled_push(repo: Path, pids: Any, arrived: Any) -> subprocess.CompletedProcess[str]:
    """Start a push; once the first objects arrived, SIGSTOP the server's processes
    (``pids()``) until the push ends; SIGCONT them in any case."""
    proc = subprocess.Popen([*mlver_cmd(), "push", "-j", "2"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stopped: list[int] = []
    try:
        _wait_for(arrived, proc, "the first objects arrived")
        for pid in pids():
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_s3_server_stopped_mid_push(repo: Path, tmp_path: Path, moto_process: MotoProcess) -> None:
    client = moto_process.client()
    try:
        client.create_bucket(Bucket="bucket")
    finally:
        client.close()
    _many_objects(repo)
    s3_remote(repo, moto_process.endpoint, "s3://bucket/store")
    run(["remote", "modify", "s3", "packs", "false"], repo)  # stalled between loose uploads
    git(["commit", "-q", "-am", "remote"], repo)
    proc = _stalled_push(repo, lambda: [moto_process.proc.pid],
                         lambda: moto_process.count("bucket", "store/files/") > 0)
    line = one_error(proc, "remote 's3'", "stopped answering", "uploading files/")
    assert "made no progress for 2 s" in line
    # the server answers again: the lock was released, and the same command finishes
    assert run(["status"], repo, timeout=TIMEOUT).returncode == 0
    res = run_json(["push"], repo, timeout=TIMEOUT)
    assert res["transferred"] + res["already"] == 151 and res["missing"] == []
    other = clone(repo, tmp_path / "other")
    assert run_json(["pull"], other, timeout=TIMEOUT)["transferred"] == 151
    assert (other / "data" / "007.bin").read_bytes() == (repo / "data" / "007.bin").read_bytes()


# --- SSH -----------------------------------------------------------------------------

try:
    from test_remote_ssh import SSHServer, ssh_remote, sshd  # noqa: F401 - sshd is a fixture
except pytest.skip.Exception:  # sshfs is not installed: the SSH tests below skip
    @pytest.fixture
    def sshd() -> Iterator[Any]:  # type: ignore[no-redef]
        pytest.skip("sshfs is needed for the SSH tests (pip install \"mlver[ssh]\")")
        yield None


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (sshd forks one per connection)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parents.items() if pp == p)
    return out


def test_ssh_missing_folder_and_push_creates_it(repo: Path, tmp_path: Path, sshd: Any) -> None:
    commit_data(repo, {"a.txt": "a\n"}, "a.txt")
    store = tmp_path / "ssh-store"
    ssh_remote(repo, sshd, store)
    git(["commit", "-q", "-am", "remote"], repo)
    other = clone(repo, tmp_path / "other")
    run(["remote", "modify", "--local", "ssh", "keyfile", str(sshd.user_key)], other)
    run(["remote", "modify", "--local", "ssh", "known_hosts", str(sshd.known_hosts)], other)
    for args in (["fetch"], ["status", "-r", "ssh"], ["fsck", "-r", "ssh"]):
        one_error(run(args, other, check=False, timeout=TIMEOUT), "remote 'ssh'", f"folder {store} does not exist")
    assert not store.exists()
    proc = run(["push"], repo, timeout=TIMEOUT)
    assert f"Created the folder {store} for remote 'ssh'" in proc.stderr
    assert run_json(["pull"], other, timeout=TIMEOUT)["transferred"] == 1

    deep = tmp_path / "absent" / "store"
    run(["remote", "modify", "ssh", "url", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{deep}"], repo)
    one_error(run(["push"], repo, check=False, timeout=TIMEOUT), "remote 'ssh'", "does not exist")
    assert not (tmp_path / "absent").exists()


def test_ssh_server_stopped_mid_push(repo: Path, tmp_path: Path, sshd: Any) -> None:
    _many_objects(repo)
    store = tmp_path / "ssh-store"
    store.mkdir()
    ssh_remote(repo, sshd, store)
    run(["remote", "modify", "ssh", "timeout", "2"], repo)
    run(["remote", "modify", "ssh", "packs", "false"], repo)  # stalled between loose uploads
    proc = _stalled_push(repo, lambda: _descendants(sshd.proc.pid), lambda: len(remote_files(store)) > 0)
    one_error(proc, "remote 'ssh'", "stopped answering")
    assert run(["status"], repo, timeout=TIMEOUT).returncode == 0
    res = run_json(["push"], repo, timeout=TIMEOUT)
    assert res["transferred"] + res["already"] == 151 and res["missing"] == []
    assert len(remote_files(store)) == 151
    assert list((store / "tmp").iterdir()) == []  # the stalled run's temporaries were removed


def test_ssh_port_that_never_answers(repo: Path, tmp_path: Path, silent: Silent) -> None:
    pytest.importorskip("sshfs", reason="sshfs is needed for the SSH tests")
    commit_data(repo, {"a.txt": "a\n"}, "a.txt")
    run(["remote", "add", "-d", "ssh", f"ssh://me@127.0.0.1:{silent.port}{tmp_path / 'store'}"], repo)
    run(["remote", "modify", "ssh", "timeout", "2"], repo)
    run(["remote", "modify", "--local", "ssh", "known_hosts", "none"], repo)
    for args in (["push"], ["fetch"], ["status", "-r", "ssh"]):
        one_error(run(args, repo, check=False, timeout=TIMEOUT), "remote 'ssh'", "stopped answering", "connecting")
    run(["add", "a.txt"], repo, timeout=TIMEOUT)


def test_timeout_option_is_checked(repo: Path) -> None:
    run(["remote", "add", "-d", "store", "s3://bucket/x"], repo)
    for bad in ("abc", "0", "-1", "nan", "inf"):
        proc = run(["remote", "modify", "store", "timeout", "--", bad], repo, check=False)
        assert proc.returncode == 2 and "expected a number of seconds" in proc.stderr
    run(["remote", "modify", "store", "timeout", "2.5"], repo)
    # a folder remote is local system calls: it has no deadline, and says so rather than accept one
    run(["remote", "add", "nas", "../store"], repo)
    before = (repo / ".mlver/config").read_text()
    proc = run(["remote", "modify", "nas", "timeout", "3"], repo, check=False)
    assert proc.returncode == 2 and "a folder remote has no 'timeout'" in proc.stderr and "mount" in proc.stderr
    assert (repo / ".mlver/config").read_text() == before


class Throttle:
    """A TCP proxy to ``port`` that passes the client's bytes on at ``rate`` bytes a second
    (the server's answers unthrottled): a slow link that keeps moving."""

    def __init__(self, port: int, rate: int) -> None:
        self.target, self.rate = port, rate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, self.rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        piece = 16 << 10
        try:
            while True:
                data = src.recv(piece)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        for s in self.sockets:
            s.close()


def test_ssh_slow_upload_that_keeps_moving_is_not_cut_off(repo: Path, tmp_path: Path, sshd: Any) -> None:
    """8 MiB at 1 MiB/s takes about 8 s, over twice the 3 s deadline: it completes,
    because the deadline counts time without progress, not the length of a transfer.
    (The first progress comes only once SSH's and sftp-server's buffers are through, about
    1 MiB here: a deadline shorter than that on such a link would cut it.)"""
    big = os.urandom(8 << 20)
    commit_data(repo, {"big.bin": big}, "big.bin")
    store = tmp_path / "ssh-store"
    store.mkdir()
    proxy = Throttle(sshd.port, 1 << 20)
    try:
        known = tmp_path / "known_hosts_proxy"
        known.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        run(["remote", "add", "-d", "ssh", f"ssh://{sshd.user}@127.0.0.1:{proxy.port}{store}"], repo)
        run(["remote", "modify", "--local", "ssh", "keyfile", str(sshd.user_key)], repo)
        run(["remote", "modify", "--local", "ssh", "known_hosts", str(known)], repo)
        run(["remote", "modify", "ssh", "timeout", "3"], repo)
        res = run_json(["push"], repo, timeout=TIMEOUT)
    finally:
        proxy.close()
    assert res["transferred"] == 1
    assert [p.read_bytes() == big for p in remote_files(store)] == [True]
