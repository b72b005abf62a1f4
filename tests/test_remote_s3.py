"""S3 remotes against moto's standalone server on 127.0.0.1 (s3fs through endpoint_url):
push/pull/gc --cloud round trips, credentials kept out of the committed config, and a
server stopped in the middle of a push, restarted, and the push repeated."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import gen, git, mlver_cmd, run, run_json

moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")
pytest.importorskip("s3fs", reason="s3fs is needed for the S3 tests")
boto3 = pytest.importorskip("boto3")

BUCKET = "mlver-test"


class Moto:
    """moto's threaded server; its buckets live in this process, so they survive a
    stop and a restart on the same port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.server: Any = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            inner = getattr(self.server, "_server", None)
            if inner is not None:
                inner.server_close()  # stop() leaves the listening socket open
            self.server = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self, prefix: str = "") -> list[str]:
        client = self.client()
        try:
            out: list[str] = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
                out.extend(o["Key"] for o in page.get("Contents", []))
            return sorted(out)
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    server = Moto()
    client = server.client()
    try:
        client.create_bucket(Bucket=BUCKET)
    finally:
        client.close()
    try:
        yield server
    finally:
        server.stop()
        from moto.backends import get_backend

        get_backend("s3").reset()


def sha(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def s3_repo(repo: Path, moto: Moto, prefix: str = "store") -> None:
    run(["remote", "add", "-d", "s3", f"s3://{BUCKET}/{prefix}"], repo)
    run(["remote", "modify", "s3", "endpoint_url", moto.endpoint], repo)


def test_s3_push_pull_gc_cloud(repo: Path, tmp_path: Path, moto: Moto) -> None:
    rnd = random.Random(3)
    gen(repo, {**{f"data/d/{i}.bin": rnd.randbytes(rnd.randint(1, 4000)) for i in range(10)},
               "big.bin": rnd.randbytes(3_000_000)})
    s3_repo(repo, moto)
    run(["add", "data/d", "big.bin"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "data"], repo)
    git(["tag", "v1"], repo)

    res = run_json(["push"], repo)
    assert res["transferred"] == 12 and res["missing"] == []
    keys = moto.keys("store/files/xxh3-128/")
    assert len(keys) == 12 and sum(k.endswith(".manifest") for k in keys) == 1
    assert moto.keys("store/tmp/") == []  # object stores get one PUT, no temporaries
    assert run_json(["push"], repo)["transferred"] == 0

    other = tmp_path / "other"
    git(["clone", "-q", str(repo), str(other)], tmp_path)
    assert run_json(["pull"], other)["transferred"] == 12
    assert sha(other / "data") == sha(repo / "data")
    assert (other / "big.bin").read_bytes() == (repo / "big.bin").read_bytes()

    # a new version of the folder; the old one is referenced only by the tag v1
    gen(repo, {"data/d/0.bin": b"changed", "data/d/new.bin": b"new"})
    run(["add", "data/d"], repo)
    git(["commit", "-q", "-am", "v2"], repo)
    assert run_json(["push"], repo)["transferred"] == 3  # two files and the new manifest

    plan = run_json(["gc", "--cloud", "--dry-run"], repo)
    nothing = {"objects": 0, "bytes": 0}
    assert plan["objects"] == 0 and plan["remote"] == {"name": "s3", "objects": 0, "bytes": 0,
                                                       "kept_unpushed": nothing, "kept_recent": nothing}
    # just uploaded: younger than gc.grace (S3's LastModified), so kept until the grace is 0
    plan = run_json(["gc", "--all-branches", "--cloud", "-r", "s3", "--dry-run"], repo)
    assert plan["remote"]["objects"] == 0 and plan["remote"]["kept_recent"]["objects"] == 2
    run(["config", "gc.grace", "0"], repo)
    plan = run_json(["gc", "--all-branches", "--cloud", "-r", "s3", "--dry-run"], repo)
    assert plan["remote"]["objects"] == 2  # old 0.bin and old manifest
    assert plan["remote"]["bytes"] > 0
    # the tag v1 still records them: they leave the remote only because the cache keeps them
    assert plan["objects"] == 0 and plan["kept_unpushed"]["objects"] == 2
    proc = run(["gc", "--all-branches", "--cloud", "-f"], repo)
    assert "git fetch" in proc.stderr
    assert len(moto.keys("store/files/xxh3-128/")) == 13
    # what the workspace needs is still complete on the remote
    third = tmp_path / "third"
    git(["clone", "-q", str(repo), str(third)], tmp_path)
    run(["pull"], third)
    assert sha(third / "data") == sha(repo / "data")

    # a corrupt object on S3: fsck reports it and moves it to quarantine/, push repairs it
    key = next(k for k in moto.keys("store/files/xxh3-128/") if not k.endswith(".manifest"))
    client = moto.client()
    try:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"rotten bytes")
    finally:
        client.close()
    proc = run(["fsck", "-r", "s3", "--json"], third, check=False)
    digest = key.split("/")[-2] + key.split("/")[-1]
    assert proc.returncode == 1 and json.loads(proc.stdout)["corrupt"] == [{"digest": digest, "hash": "xxh3-128", "where": "remote:s3"}]
    assert key not in moto.keys("store/files/") and moto.keys("store/quarantine/") == [f"store/quarantine/{digest}"]
    assert run_json(["push"], repo)["transferred"] == 1
    assert run_json(["fsck", "-r", "s3"], third)["corrupt"] == []


def test_s3_credentials_in_local_config(repo: Path, moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    gen(repo, {"a.txt": "hello s3\n"})
    run(["add", "a.txt"], repo)
    s3_repo(repo, moto, "creds")
    proc = run(["remote", "modify", "s3", "secret_access_key", "testing"], repo, check=False)
    assert proc.returncode == 2 and "--local" in proc.stderr
    run(["remote", "modify", "--local", "s3", "access_key_id", "testing"], repo)
    run(["remote", "modify", "--local", "s3", "secret_access_key", "testing"], repo)
    run(["remote", "modify", "s3", "region", "us-east-1"], repo)
    assert run_json(["push"], repo)["transferred"] == 1
    assert "testing" not in (repo / ".mlver" / "config").read_text()
    assert "secret_access_key" in (repo / ".mlver" / "config.local").read_text()
    listed = run_json(["remote", "list"], repo)["remotes"][0]
    assert listed["options"]["secret_access_key"] == "***" and listed["installed"] is True
    assert "config.local" in git(["check-ignore", ".mlver/config.local"], repo)


def test_s3_server_stopped_mid_push(repo: Path, tmp_path: Path, moto: Moto) -> None:
    rnd = random.Random(5)
    gen(repo, {f"data/many/{i:03}.bin": rnd.randbytes(rnd.randint(2000, 20000)) for i in range(150)})
    s3_repo(repo, moto)
    run(["remote", "modify", "s3", "packs", "false"], repo)  # stopped between loose uploads (packs: test_packs.py)
    run(["add", "data/many"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "many"], repo)

    proc = subprocess.Popen([*mlver_cmd(), "push", "-j", "1"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(moto.keys("store/files/")) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        moto.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    errors = [ln for ln in err.splitlines() if ln.startswith("mlver: error:")]
    assert len(errors) == 1 and "remote 's3'" in errors[0] and "unreachable" in errors[0]
    assert "Traceback" not in err

    moto.start()
    partial = len(moto.keys("store/files/"))
    assert partial >= 3
    res = run_json(["push"], repo)
    assert res["transferred"] + res["already"] == 151 and res["already"] >= partial - 1
    other = tmp_path / "other"
    git(["clone", "-q", str(repo), str(other)], tmp_path)
    run(["pull"], other)
    assert sha(other / "data") == sha(repo / "data")
    assert run_json(["fsck", "--cloud"], other)["corrupt"] == []
    json.dumps(res)
