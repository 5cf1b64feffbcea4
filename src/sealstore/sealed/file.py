"""``SealedFile``: a small document sealed under a root key, replaced atomically.

Keyrings and the embedded KMS keep their master keys in sealed files. Every change is a
read-modify-write under an exclusive lock on a sibling lock file, written to a temporary
file, fsynced, renamed over the old one and made durable with an fsync of the directory:
a crash at any moment leaves either the old document or the new one, never a mix.

The file holds exactly what :func:`~sealstore.sealed.codec.seal_document` returns; its
layout is described in :mod:`sealstore.sealed.codec`.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, final

from sealstore.errors import KeystoreError
from sealstore.sealed.codec import MAX_DOCUMENT_SIZE, open_document, seal_document
from sealstore.sealed.root import RootKey

__all__ = ["SealedFile"]

_TEMPORARY: Final = ".tmp-"
"""Temporary copies of ``name`` are ``.{name}.tmp-<random>``: exact enough that the cleanup
of one document never matches another's (``keyring`` and ``keyring.new`` side by side)."""


@final
class SealedFile:
    """One sealed document at ``path``; ``purpose`` separates the keys of different uses.

    >>> import tempfile, pathlib
    >>> root = RootKey.from_bytes(bytes(32))
    >>> doc = SealedFile(pathlib.Path(tempfile.mkdtemp()) / "ring", root, b"example")
    >>> doc.update(lambda old: b"hello")
    b'hello'
    >>> doc.read()
    b'hello'
    """

    def __init__(self, path: str | os.PathLike[str], root_key: RootKey, purpose: bytes) -> None:
        self.path = Path(path)
        self._root_key = root_key
        self._purpose = purpose
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> bytes | None:
        """The current document, or ``None`` if none was ever written."""
        data = self._read_raw()
        return None if data is None else self._open(data)[1]

    def _read_raw(self) -> bytes | None:
        try:
            with self.path.open("rb") as file:
                return file.read(MAX_DOCUMENT_SIZE + 1)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KeystoreError(f"cannot read {self.path}: {error.strerror}") from None

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Replace the document with ``change(current)`` under the exclusive lock.

        ``change`` returning ``None`` (or the same bytes) writes nothing. Returns the document
        as it stands afterwards. Concurrent updates, from threads or processes, serialize.
        """
        with self.locked():
            salt: bytes | None = None
            current: bytes | None = None
            data = self._read_raw()
            if data is not None:
                salt, current = self._open(data)
            new = change(current)
            if new is None or new == current:
                return current
            self._remove_stale_temporaries()
            self._write(seal_document(self._root_key, self._purpose, new, salt))
            return new

    def _remove_stale_temporaries(self) -> None:
        # Temporary files are only created under the lock, which this process now holds:
        # any that exist were left by a writer that died before renaming its file.
        for stale in self.path.parent.glob(f".{glob.escape(self.path.name)}{_TEMPORARY}*"):
            with contextlib.suppress(OSError):
                stale.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the document's exclusive lock (shared by every process using the path)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise KeystoreError(f"cannot lock {self.path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _open(self, data: bytes) -> tuple[bytes, bytes]:
        return open_document(self._root_key, self._purpose, data, str(self.path))

    def _write(self, data: bytes) -> None:
        directory = self.path.parent
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}{_TEMPORARY}", dir=directory)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            directory_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_fd)
            finally:
                os.close(directory_fd)
        except OSError as error:
            raise KeystoreError(f"cannot write {self.path}: {error.strerror}") from None

    def __repr__(self) -> str:
        return f"SealedFile({str(self.path)!r})"
