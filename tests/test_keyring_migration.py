"""Moving a single host's keyring into a bucket with ``migrate_keyring`` (the command,
``sealstore keys migrate``, is tested in ``test_cli.py``). Nothing is ever overwritten, and
objects written before keep decrypting."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import sealstore
from sealstore import FileKeyringStore, KeystoreError, ManagedKeys, RootKey, S3KeyringStore
from sealstore.keys.managed import MemoryKeyringStore, migrate_keyring

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def root_key() -> RootKey:
    """A random root key."""
    return RootKey.from_bytes(os.urandom(32))


def _bucket_store(
    bucket: tuple[S3Client, str], root_key: RootKey, key: str | None = None
) -> S3KeyringStore:
    client, name = bucket
    return S3KeyringStore(
        client, name, key or f"fleet/{uuid.uuid4().hex[:12]}", root_key, create=True
    )


def test_a_file_keyring_moves_to_the_bucket_and_its_objects_follow(
    tmp_path: Path, seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """After the migration the bucket keyring holds the same versions, decrypts what the file
    keyring encrypted, and a second run copies nothing."""
    source = FileKeyringStore(tmp_path / "keyring", root_key, create=True)
    old_keys = ManagedKeys(source)
    blob = sealstore.encrypt(b"written on one host", old_keys)
    old_keys.rotate()
    target = _bucket_store(seaweedfs_bucket, RootKey.from_bytes(os.urandom(32)))
    assert migrate_keyring(source, target) is True
    shared = ManagedKeys(target)
    assert [v.id for v in shared.versions()] == [v.id for v in old_keys.versions()]
    assert shared.revision() == old_keys.revision()
    assert sealstore.decrypt(blob, shared) == b"written on one host"
    assert migrate_keyring(source, target) is False
    assert shared.revision() == old_keys.revision()


def test_a_target_holding_another_keyring_is_left_alone(root_key: RootKey) -> None:
    """A target with another keyring, or another revision of this one, is refused and kept."""
    source, target = MemoryKeyringStore(), MemoryKeyringStore()
    ManagedKeys(source).rotate()
    ManagedKeys(target).rotate()
    held = target.load()
    with pytest.raises(KeystoreError, match=r"already holds another keyring \(kr-"):
        migrate_keyring(source, target)
    assert target.load() == held
    copy = MemoryKeyringStore()
    migrate_keyring(source, copy)
    ManagedKeys(copy).rotate()  # the copy moved on: the source is now an older revision
    moved_on = copy.load()
    with pytest.raises(KeystoreError, match="at revision 2, not 1"):
        migrate_keyring(source, copy)
    assert copy.load() == moved_on


def test_an_empty_or_malformed_source_is_refused() -> None:
    """No keyring in the source: nothing to migrate. A document that is not a keyring is
    refused before anything is written."""
    target = MemoryKeyringStore()
    with pytest.raises(KeystoreError, match="nothing to migrate"):
        migrate_keyring(MemoryKeyringStore(), target)
    junk = MemoryKeyringStore()
    junk.update(lambda _current: b"{}")
    with pytest.raises(KeystoreError, match="malformed"):
        migrate_keyring(junk, target)
    assert target.load() is None
