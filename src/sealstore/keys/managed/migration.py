"""Moving a managed keyring from one store to another: a single host's file to a bucket.

The keyring is copied as it is (its id, versions, keys and revision), so every object
written under it keeps decrypting through the new store; only the sealing changes (the
target seals it under its own root key).
"""

from __future__ import annotations

from sealstore.errors import KeystoreError
from sealstore.keys.managed.keyring import decode_keyring
from sealstore.keys.managed.stores import KeyringStore

__all__ = ["migrate_keyring"]


def migrate_keyring(source: KeyringStore, target: KeyringStore) -> bool:
    """Copy the keyring in ``source`` into ``target``; ``True`` if it was copied.

    ``target`` must hold no keyring, or this very keyring already (then nothing is written,
    and ``False`` is returned: running a migration twice is harmless). A target holding
    another keyring, or an older or newer copy of this one, is refused with
    :class:`~sealstore.KeystoreError` and left as it is: nothing is ever overwritten.

    Stop every writer of ``source`` first, and point them at ``target`` afterwards: a
    change made to ``source`` after the copy is not in ``target``. Keep ``source`` as a
    backup until the hosts run on ``target``.

    >>> from sealstore.keys.managed import ManagedKeys, MemoryKeyringStore
    >>> old, new = MemoryKeyringStore(), MemoryKeyringStore()
    >>> version = ManagedKeys(old).rotate()
    >>> migrate_keyring(old, new), migrate_keyring(old, new)
    (True, False)
    >>> [v.id for v in ManagedKeys(new).versions()] == [version.id]
    True
    """
    document = source.load()
    if document is None:
        raise KeystoreError(f"{source!r} holds no keyring: there is nothing to migrate")
    ring = decode_keyring(document)
    copied = False

    def change(current: bytes | None) -> bytes | None:
        nonlocal copied
        copied = False
        if current is None:
            copied = True
            return document
        if current == document:
            return None
        there = decode_keyring(current)
        if there.keyring_id != ring.keyring_id:
            held = f"another keyring ({there.keyring_id})"
        else:
            held = (
                f"keyring {ring.keyring_id} at revision {there.revision}, not "
                f"{ring.revision} as in {source!r}"
            )
        raise KeystoreError(
            f"{target!r} already holds {held}: the migration overwrites nothing. Migrate "
            "to an empty place, or remove what is there after checking nothing needs it"
        )

    target.update(change)
    return copied
