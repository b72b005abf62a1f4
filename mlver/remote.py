"""Remotes: fsspec filesystems named by URL, and batched transfers of objects by digest."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Backend:
    protocol: str
    module: str | None  # the Python package that provides it (None: built in)
    extra: str | None  # the mlver extra that installs it


BACKENDS = {
    "file": Backend("file", None, None),
    "s3": Backend("s3", "s3fs", "s3"),
    "gs": Backend("gs", "gcsfs", "gs"),
    "gcs": Backend("gcs", "gcsfs", "gs"),
    "az": Backend("az", "adlfs", "azure"),
    "abfs": Backend("abfs", "adlfs", "azure"),
    "ssh": Backend("ssh", "sshfs", "ssh"),
    "sftp": Backend("ssh", "sshfs", "ssh"),
    "http": Backend("http", "aiohttp", None),
    "https": Backend("https", "aiohttp", None),
}


def backend_for(url: str) -> Backend:
    scheme = urlparse(url).scheme.lower() if "://" in url else "file"
    return BACKENDS.get(scheme, Backend(scheme, None, None))
