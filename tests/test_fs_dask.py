"""Reading versioned data in place from S3 (moto's server on loopback): a clone that never
pulled streams objects from the remote; a ranged read of a large object downloads little
and writes nothing; a Dask LocalCluster's worker processes read a tracked folder of CSV
parts at two revisions through mlver:// and agree with pandas on checked-out data."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

import mlver.api as api
from conftest import gen, git, run
from test_remote_s3 import BUCKET, Moto, moto, s3_repo  # noqa: F401 - moto is a fixture

fsspec = pytest.importorskip("fsspec")
fsspec.register_implementation("mlver", "mlver.filesystem.MlverFileSystem", clobber=True)

MIB = 1 << 20


def _clone(src: Path, dest: Path) -> Path:
    git(["clone", "-q", str(src), str(dest)], dest.parent)
    return dest


def _cache_objects(repo: Path) -> list[Path]:
    cache = repo / ".mlver" / "cache" / "files"
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


class CountingProxy:
    """A TCP proxy on loopback in front of the S3 server that counts the bytes the server
    sends back (what a reader downloads)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.served = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if count:
                    with self._lock:
                        self.served += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            c.close()


def test_never_pulled_clone_streams_from_s3_and_a_ranged_read_stays_small(repo: Path, tmp_path: Path,
                                                                         moto: Moto) -> None:  # noqa: F811
    s3_repo(repo, moto)
    block = os.urandom(MIB)
    big = b"".join(i.to_bytes(2, "big") + block[2:] for i in range(512))  # 512 MiB, each MiB different
    gen(repo, {"big.bin": big, "data/small.csv": "id,x\n1,10\n"})
    run(["add", "big.bin", "data/small.csv"], repo)
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "big"], repo)
    git(["tag", "v1"], repo)
    gen(repo, {"data/small.csv": "id,x\n1,11\n"})
    run(["add", "data/small.csv"], repo)
    git(["commit", "-q", "-am", "two"], repo)
    run(["push", "--all-commits"], repo)
    clone = _clone(repo, tmp_path / "fresh")
    assert api.read("data/small.csv", repo=str(clone), rev="v1") == b"id,x\n1,10\n"
    assert api.read("data/small.csv", repo=str(clone)) == b"id,x\n1,11\n"
    assert api.get_url("big.bin", repo=str(clone)).startswith(f"s3://{BUCKET}/store/files/xxh3-128/")

    proxy = CountingProxy(moto.port)
    try:
        with api.open("big.bin", repo=str(clone), rev="v1", remote_config={"endpoint_url": proxy.endpoint}) as f:
            f.seek(256 * MIB)
            middle = f.read(MIB)
        assert middle == big[256 * MIB:257 * MIB]
        assert 0 < proxy.served <= 16 * MIB, proxy.served
    finally:
        proxy.close()
    assert _cache_objects(clone) == []
    home = Path(os.environ["HOME"])
    written = [p for p in [*home.rglob("*"), *clone.rglob("*")] if p.is_file() and p.stat().st_size >= MIB]
    assert written == []  # the object was never written to disk
    assert api.read("big.bin", repo=str(clone), rev="v1") == big  # streamed whole, verified


def _parts(rev: int) -> dict[str, str | bytes]:
    return {f"data/parts/part-{i:02d}.csv": "a,b\n" + "".join(f"{i * rev + k},{(i + k) * rev}\n" for k in range(20))
            for i in range(50)}


def test_dask_workers_read_a_tracked_folder_from_s3_at_two_revisions(repo: Path, tmp_path: Path,
                                                                     moto: Moto) -> None:  # noqa: F811
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    s3_repo(repo, moto)
    for rev in (1, 2):
        gen(repo, _parts(rev))
        run(["add", "data/parts"], repo)
        git(["add", "-A"], repo)
        git(["commit", "-q", "-m", f"parts v{rev}"], repo)
        git(["tag", f"v{rev}"], repo)
    run(["push", "--all-commits"], repo)
    clone = _clone(repo, tmp_path / "fresh")

    expected = {}
    for tag in ("v1", "v2"):  # pandas on checked-out data
        git(["checkout", "-q", tag], repo)
        run(["checkout"], repo)
        frames = [pd.read_csv(p) for p in sorted((repo / "data/parts").glob("*.csv"))]
        expected[tag] = pd.concat(frames).sum().to_dict()
    assert expected["v1"] != expected["v2"]

    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        for tag in ("v1", "v2"):
            df = dd.read_csv("mlver://data/parts/*.csv", storage_options={"repo": str(clone), "rev": tag})
            assert df.npartitions == 50
            got = client.compute(df.sum()).result().to_dict()
            assert got == expected[tag]
        # the work ran in the workers' processes, not here
        pids = client.run(os.getpid)
        assert os.getpid() not in pids.values() and len(pids) == 2
    assert _cache_objects(clone) == []
