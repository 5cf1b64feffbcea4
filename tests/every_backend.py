"""Every backend a store runs on, for tests that run once per backend.

The S3 ones use the session's buckets on real servers (``moto_bucket`` and
``seaweedfs_bucket`` in ``conftest.py``), each test under a prefix of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import fsspec
import pytest

from sealstore.backends import Backend, FileSystemBackend, FsspecBackend, MemoryBackend, S3Backend

BACKEND_KINDS: Final = ("memory", "filesystem", "fsspec-memory", "s3-moto", "s3-seaweedfs")


def make_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, **s3_options: Any
) -> Backend:
    """A fresh, empty backend of ``kind``; ``s3_options`` go to :class:`S3Backend`."""
    if kind == "memory":
        return MemoryBackend()
    if kind == "filesystem":
        return FileSystemBackend(tmp_path / "store")
    if kind == "fsspec-memory":
        fs = fsspec.filesystem("memory", skip_instance_cache=True)
        return FsspecBackend(fs, f"/sealstore-test-{os.urandom(4).hex()}")
    client, bucket = request.getfixturevalue(
        "moto_bucket" if kind == "s3-moto" else "seaweedfs_bucket"
    )
    # SeaweedFS lists a directory before siblings that sort before "/".
    return S3Backend(
        client,
        bucket,
        f"t-{os.urandom(6).hex()}/",
        list_by_directory=kind == "s3-seaweedfs",
        **s3_options,
    )
