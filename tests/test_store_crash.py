"""A writer killed during ``EncryptedStore.put`` on FileSystemBackend never leaves a partial object.

The child is this module run as a program (see the bottom): it puts successive versions of one
large object, each with content derived from its version number, until it is killed.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import sealstore
from sealstore.backends import FileSystemBackend

KILLS = 8
SIZE = 3 * 1024 * 1024
VERSIONS = 200
"""A bound on the child's loop, so a child nobody kills ends by itself."""


def _content(version: int) -> bytes:
    seed = hashlib.sha256(version.to_bytes(4, "big")).digest()
    return (seed * (SIZE // len(seed) + 1))[:SIZE]


def _store(directory: Path) -> sealstore.EncryptedStore:
    root = sealstore.RootKey.from_env()
    keys = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(directory / "keyring", root, create=True)
    )
    return sealstore.EncryptedStore(FileSystemBackend(directory / "objects"), keys)


def test_killed_put_leaves_no_partial_object(tmp_path: Path) -> None:
    """After each SIGKILL mid-put, the object is absent or some complete version, never a part."""
    rng = random.Random(11)
    env = {**os.environ, "SEALSTORE_ROOT_KEY": sealstore.RootKey.generate()}
    os.environ["SEALSTORE_ROOT_KEY"] = env["SEALSTORE_ROOT_KEY"]
    versions = {hashlib.sha256(_content(v)).hexdigest(): v for v in range(VERSIONS)}
    seen: set[int] = set()
    try:
        for _ in range(KILLS):
            child = subprocess.Popen(  # noqa: S603 - our interpreter running this module
                [sys.executable, "-m", "tests.test_store_crash", str(tmp_path)],
                cwd=Path(__file__).resolve().parent.parent,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            try:
                child.wait(timeout=rng.uniform(0.3, 1.2))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            store = _store(tmp_path)
            names = [head.name for head in store.list()]
            assert names in ([], ["big"])
            if names:
                digest = hashlib.sha256(store.get("big")).hexdigest()
                assert digest in versions
                seen.add(versions[digest])
    finally:
        del os.environ["SEALSTORE_ROOT_KEY"]
    assert seen  # the child got at least one version written


def _child(directory: Path) -> None:
    store = _store(directory)
    for version in range(VERSIONS):
        store.put("big", _content(version))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
