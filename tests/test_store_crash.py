"""A writer killed during ``EncryptedStore.put`` on FileSystemBackend never leaves a partial object.

The child is this module run as a program (see the bottom): it puts successive versions of one
large object, each with content derived from its version number, and acknowledges each put
once it has returned. Its keys rotate every two wraps, so the keyring is rewritten while it
works, and every use of a key is audited to a hash-chained log.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import sealstore
from sealstore.audit import JsonlAuditLog
from sealstore.backends import FileSystemBackend
from sealstore.keys.managed import RotationPolicy, VersionState
from tests.crashes import (
    Acknowledger,
    acknowledged,
    check_audit_log,
    crash_kills,
    kill_after,
    killed,
    report_survived,
    spawn,
)

SIZE = 3 * 1024 * 1024
VERSIONS = 200
"""A bound on the child's loop, so a child nobody kills ends by itself."""
CHILD_POLICY = RotationPolicy(max_wraps=2, reserve_block=1)
"""Rotations and keyring writes among the puts, so kills land in those too."""


def _content(version: int) -> bytes:
    seed = hashlib.sha256(version.to_bytes(4, "big")).digest()
    return (seed * (SIZE // len(seed) + 1))[:SIZE]


def _keys(directory: Path) -> sealstore.ManagedKeys:
    root = sealstore.RootKey.from_env()
    return sealstore.ManagedKeys(
        sealstore.FileKeyringStore(directory / "keyring", root, create=True),
        rotation=CHILD_POLICY,
        audit=JsonlAuditLog(directory / "audit.jsonl"),
    )


def _store(directory: Path, keys: sealstore.ManagedKeys) -> sealstore.EncryptedStore:
    return sealstore.EncryptedStore(FileSystemBackend(directory / "objects"), keys)


def test_killed_put_leaves_no_partial_object(tmp_path: Path) -> None:
    """After each SIGKILL mid-put, the object is the last acknowledged version or the one being
    written, never a part; no key version is lost and the audit log verifies."""
    rng = random.Random(11)
    root = sealstore.RootKey.generate()
    os.environ["SEALSTORE_ROOT_KEY"] = root
    visible = -1  # the version the object holds; -1 while there is none
    known_versions: set[str] = set()
    kills = crash_kills()
    mid_run = 0
    try:
        keys = _keys(tmp_path)
        store = _store(tmp_path, keys)
        for kill in range(kills):
            acks = tmp_path / f"acks-{kill}"
            child = spawn(
                __spec__.name,
                str(tmp_path),
                str(visible + 1),
                str(acks),
                env={"SEALSTORE_ROOT_KEY": root},
            )
            with kill_after(child, rng, 0.0, 0.6):
                pass
            mid_run += killed(child)
            # The object is the last version acknowledged (or, with none this round, the one
            # seen before), or the one the child was writing when it was killed.
            floor = max((int(words[0]) for words in acknowledged(acks)), default=visible)
            names = [head.name for head in store.list()]
            if floor < 0 and not names:
                continue
            assert names == ["big"]
            plaintext = store.get("big")
            assert plaintext in (_content(floor), _content(floor + 1)), kill
            visible = floor if plaintext == _content(floor) else floor + 1

            versions = keys.versions()
            ids = {version.id for version in versions}
            assert known_versions <= ids
            known_versions = ids
            assert [v.state for v in versions].count(VersionState.CURRENT) == 1
            check_audit_log(tmp_path / "audit.jsonl")
    finally:
        del os.environ["SEALSTORE_ROOT_KEY"]
    report_survived("put/overwrite", kills, mid_run)
    assert visible >= 0  # the children got versions written
    assert mid_run >= kills // 2  # most kills landed while the child was working
    assert len(known_versions) > 1


def _child(directory: str, start: str, acks: str) -> None:
    store = _store(Path(directory), _keys(Path(directory)))
    acknowledge = Acknowledger(acks)
    print("ready", flush=True)
    for version in range(int(start), int(start) + VERSIONS):
        store.put("big", _content(version))
        acknowledge(version)


if __name__ == "__main__":
    _child(*sys.argv[1:4])
