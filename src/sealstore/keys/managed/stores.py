"""Where a managed keyring is kept: the ``KeyringStore`` protocol and its two stores.

:class:`FileKeyringStore` seals the document under a :class:`~sealstore.sealed.RootKey` in a
file replaced atomically under an exclusive lock; :class:`MemoryKeyringStore` keeps it in
memory for tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol, final

from sealstore.errors import KeystoreError
from sealstore.sealed import RootKey, SealedFile

__all__ = ["FileKeyringStore", "KeyringStore", "MemoryKeyringStore"]

_PURPOSE: Final = b"managed keyring"


class KeyringStore(Protocol):
    """Where a keyring document lives: read it, or change it under an exclusive lock.

    The document holds master keys in the clear: a store must keep it confidential (as
    :class:`FileKeyringStore` does by sealing it) and durable.
    """

    def load(self) -> bytes | None:
        """The document as last stored, or ``None`` if none was ever stored."""
        ...

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Store ``change(current)`` atomically, excluding every other update meanwhile.

        ``change`` returning ``None`` stores nothing; an exception from it stores nothing and
        propagates. A store may call ``change`` again (after a lost conditional write); the
        last call's result is what is stored. Returns the document as it stands afterwards.
        """
        ...


@final
class MemoryKeyringStore:
    """A keyring held in memory, for tests: gone when the object is.

    >>> from sealstore.keys.managed import ManagedKeys
    >>> keys = ManagedKeys(MemoryKeyringStore())
    >>> keys.rotate().state
    <VersionState.CURRENT: 'current'>
    """

    def __init__(self) -> None:
        self._document: bytes | None = None
        self._lock = threading.Lock()

    def load(self) -> bytes | None:
        """The document as last stored, or ``None``."""
        return self._document

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Replace the document with ``change(current)`` under a lock."""
        with self._lock:
            new = change(self._document)
            if new is not None:
                self._document = new
            return self._document

    def __repr__(self) -> str:
        return "MemoryKeyringStore()"


@final
class FileKeyringStore:
    """A keyring sealed under a root key in one file, replaced atomically under a lock.

    Every change is written to a temporary file, fsynced and renamed over the old one while
    holding an exclusive lock on ``<path>.lock``, so a crash leaves the old keyring or the new
    one, and concurrent processes never lose each other's versions. Back up the file and keep
    the root key apart from it: both are needed to decrypt anything.

    The file must exist unless ``create=True``: then the first change creates it (in a
    directory that must exist already). Without it, a mistyped path is a
    :class:`~sealstore.KeystoreError` at first use, never a second, empty keyring.

    >>> import pathlib, tempfile
    >>> root = RootKey.from_base64(RootKey.generate())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "keyring"
    >>> store = FileKeyringStore(path, root, create=True)
    >>> store.load() is None
    True
    >>> FileKeyringStore(path, root).load()
    Traceback (most recent call last):
    ...
    sealstore.errors.KeystoreError: there is no keyring at ...: pass create=True to ...
    """

    def __init__(
        self, path: str | os.PathLike[str], root_key: RootKey, *, create: bool = False
    ) -> None:
        self._file = SealedFile(path, root_key, _PURPOSE)
        self._create = create

    @property
    def path(self) -> Path:
        """Where the sealed keyring is."""
        return self._file.path

    def load(self) -> bytes | None:
        """The unsealed document, or ``None`` if the file does not exist yet (``create=True``).

        Raises :class:`~sealstore.RootKeyError` for a wrong root key (or an altered file) and
        :class:`~sealstore.KeystoreError` for a file that cannot be read, is not a keyring,
        or does not exist (without ``create=True``).
        """
        document = self._file.read()
        if document is None:
            self._missing()
        return document

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Replace the document with ``change(current)``, crash-safely, under the lock."""
        self._missing()  # before the lock, which would leave a lock file beside a wrong path

        def change_existing(current: bytes | None) -> bytes | None:
            if current is None:
                self._missing()  # removed since: checked again under the lock
            return change(current)

        return self._file.update(change_existing)

    def _missing(self) -> None:
        """Raise unless the file exists, or may be created (``create=True``, in a directory
        that exists)."""
        path = self._file.path
        try:
            path.stat()
            return
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as error:
            raise KeystoreError(f"cannot read {str(path)!r}: {error.strerror}") from None
        if not self._create:
            raise KeystoreError(
                f"there is no keyring at {str(path)!r}: pass create=True to "
                "FileKeyringStore to create one there (check the path first)"
            )
        if not path.parent.is_dir():
            raise KeystoreError(
                f"cannot create the keyring {str(path)!r}: the directory "
                f"{str(path.parent)!r} does not exist (it is not created for you)"
            )

    def __repr__(self) -> str:
        return f"FileKeyringStore({str(self._file.path)!r})"
