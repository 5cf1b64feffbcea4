"""``ManagedKeys``: a keyring of master keys managed by the library (like SSE-S3).

The keyring is a list of 256-bit master keys, each with a version id, a creation time, a
state and a count of the data keys reserved for wrapping under it. Exactly one version is
current: every new object's data key is wrapped under it, and the object's header names the
version (the key reference, 1..128 bytes of ``[A-Za-z0-9._-]``), so decryption finds its
master key without trying several.

The keyring is kept by a :class:`KeyringStore`, a two-method protocol over one document:
:class:`FileKeyringStore` seals it under a :class:`~sealstore.sealed.RootKey` in a file
replaced atomically under an exclusive lock; :class:`S3KeyringStore` seals it in one object of
a bucket that many hosts share, changed only by conditional writes; :class:`MemoryKeyringStore`
keeps it in memory for tests. :func:`migrate_keyring` moves a keyring from one store to another.

Modules: :mod:`~sealstore.keys.managed.provider` (:class:`ManagedKeys`, its wrap leases and
audit), :mod:`~sealstore.keys.managed.rotation` (:class:`RotationPolicy`),
:mod:`~sealstore.keys.managed.stores` (the store protocol, the memory and file stores),
:mod:`~sealstore.keys.managed.stores_s3` (the bucket store),
:mod:`~sealstore.keys.managed.migration` (:func:`migrate_keyring`) and
:mod:`~sealstore.keys.managed.keyring` (the keyring document: its model and JSON codec).
"""

from __future__ import annotations

from sealstore.keys.managed.keyring import MAX_VERSIONS, KeyVersion, VersionState
from sealstore.keys.managed.migration import migrate_keyring
from sealstore.keys.managed.provider import ManagedKeys
from sealstore.keys.managed.rotation import RotationPolicy
from sealstore.keys.managed.stores import FileKeyringStore, KeyringStore, MemoryKeyringStore
from sealstore.keys.managed.stores_s3 import S3KeyringStore

__all__ = [
    "MAX_VERSIONS",
    "FileKeyringStore",
    "KeyVersion",
    "KeyringStore",
    "ManagedKeys",
    "MemoryKeyringStore",
    "RotationPolicy",
    "S3KeyringStore",
    "VersionState",
    "migrate_keyring",
]
