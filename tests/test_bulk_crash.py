"""Bulk operations killed at random moments on FileSystemBackend lose and corrupt no object.

The children are this module run as a program (see the bottom): one runs
``EncryptedStore.rewrap_all`` after the parent rotated the keyring, the other
``encrypt_existing`` over plaintext objects. Each acknowledges every object its bulk
operation reported progress on. After each kill every object must read back its content,
under the version it had or the new one (rewrap), plaintext or encrypted once
(``encrypt_existing``), and every acknowledged object must be done.
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
from sealstore.keys.managed import VersionState
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

OBJECTS = 200
SIZE = 8 * 1024


def _content(name: str, version: int = 0) -> bytes:
    """The plaintext of version ``version`` of ``name``: it names both, so it never starts
    like a sealstore header."""
    label = f"{name}@{version}:".encode()
    seed = hashlib.sha256(label).digest()
    return label + (seed * (SIZE // len(seed)))


def _keys(directory: Path, *, audited: bool) -> sealstore.ManagedKeys:
    root = sealstore.RootKey.from_env()
    return sealstore.ManagedKeys(
        sealstore.FileKeyringStore(directory / "keyring", root, create=True),
        audit=JsonlAuditLog(directory / "audit.jsonl") if audited else None,
    )


def _store(directory: Path, *, audited: bool) -> sealstore.EncryptedStore:
    return sealstore.EncryptedStore(
        FileSystemBackend(directory / "objects"),
        _keys(directory, audited=audited),
        allow_plaintext_reads=True,
    )


def _names(prefix: str) -> list[str]:
    return [f"{prefix}{number:03d}" for number in range(OBJECTS)]


class _KeyringWatch:
    """Every version seen so far must stay in the keyring, exactly one of them current."""

    def __init__(self, keys: sealstore.ManagedKeys) -> None:
        self.keys = keys
        self.seen: set[str] = set()

    def check(self) -> None:
        versions = self.keys.versions()
        ids = {version.id for version in versions}
        assert self.seen <= ids
        assert [v.state for v in versions].count(VersionState.CURRENT) == 1
        self.seen = ids


def test_killed_rewrap_all_loses_no_object(tmp_path: Path) -> None:
    """After each SIGKILL of a rewrap_all that follows a rotation, every object decrypts and
    is under its version from before or the new one; those acknowledged, under the new one."""
    rng = random.Random(17)
    root = sealstore.RootKey.generate()
    os.environ["SEALSTORE_ROOT_KEY"] = root
    names = _names("r/")
    kills = crash_kills()
    mid_run = 0
    try:
        store = _store(tmp_path, audited=False)
        keys = store.keys
        assert isinstance(keys, sealstore.ManagedKeys)
        watch = _KeyringWatch(keys)
        for name in names:
            store.put(name, _content(name))
        for kill in range(kills):
            before = {head.name: head.key_version for head in store.list("r/")}
            new = keys.rotate().id
            acks = tmp_path / f"acks-{kill}"
            child = spawn(
                __spec__.name, "rewrap", str(tmp_path), str(acks), env={"SEALSTORE_ROOT_KEY": root}
            )
            with kill_after(child, rng, 0.0, 0.6):
                pass
            mid_run += killed(child)
            heads = {head.name: head for head in store.list("r/")}
            assert sorted(heads) == names
            for name, head in heads.items():
                assert head.key_version in (before[name], new), name
                assert store.get(name) == _content(name)
            done = [words[0] for words in acknowledged(acks) if words[0] != "finished"]
            assert all(heads[name].key_version == new for name in done)
            watch.check()
            check_audit_log(tmp_path / "audit.jsonl")
    finally:
        del os.environ["SEALSTORE_ROOT_KEY"]
    report_survived("rewrap_all", kills, mid_run)
    assert mid_run >= kills // 2  # most kills landed while the child was rewrapping


def test_killed_encrypt_existing_encrypts_each_object_once(tmp_path: Path) -> None:
    """After each SIGKILL of encrypt_existing, every object reads back its plaintext, and an
    encrypted one decrypts to it (never to a ciphertext: nothing is encrypted twice); those
    acknowledged are encrypted."""
    rng = random.Random(23)
    root = sealstore.RootKey.generate()
    os.environ["SEALSTORE_ROOT_KEY"] = root
    names = _names("e/")
    kills = crash_kills()
    mid_run = 0
    try:
        store = _store(tmp_path, audited=False)
        assert isinstance(store.keys, sealstore.ManagedKeys)
        watch = _KeyringWatch(store.keys)
        expected = {name: _content(name) for name in names}
        for name, content in expected.items():
            store.backend.put(name, content)
        for kill in range(kills):
            acks = tmp_path / f"acks-{kill}"
            child = spawn(
                __spec__.name, "encrypt", str(tmp_path), str(acks), env={"SEALSTORE_ROOT_KEY": root}
            )
            with kill_after(child, rng, 0.0, 0.6):
                pass
            mid_run += killed(child)
            heads = {head.name: head for head in store.list("e/")}
            assert sorted(heads) == names
            for name, head in heads.items():
                assert head.problem is None, name
                assert store.get(name) == expected[name], name
            done = [words[0] for words in acknowledged(acks) if words[0] != "finished"]
            assert all(heads[name].encrypted for name in done)
            watch.check()
            check_audit_log(tmp_path / "audit.jsonl")
            # The objects encrypted are written again in plaintext for the next child.
            for name, head in heads.items():
                if head.encrypted:
                    expected[name] = _content(name, kill + 1)
                    store.backend.put(name, expected[name])
    finally:
        del os.environ["SEALSTORE_ROOT_KEY"]
    report_survived("encrypt_existing", kills, mid_run)
    assert mid_run >= kills // 2  # most kills landed while the child was encrypting


def _child(operation: str, directory: str, acks: str) -> None:
    store = _store(Path(directory), audited=True)
    acknowledge = Acknowledger(acks)

    def progress(_done: int, _total: int, name: str) -> None:
        acknowledge(name)

    print("ready", flush=True)
    if operation == "rewrap":
        report = store.rewrap_all("r/", progress=progress)
    else:
        report = store.encrypt_existing("e/", progress=progress)
    assert report.ok, report.failed
    acknowledge("finished")


if __name__ == "__main__":
    _child(*sys.argv[1:4])
