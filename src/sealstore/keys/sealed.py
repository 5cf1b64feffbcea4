"""``SealedFile``: a small document sealed under a root key, replaced atomically.

Keyrings and the embedded KMS keep their master keys in sealed files. Every change is a
read-modify-write under an exclusive lock on a sibling lock file, written to a temporary
file, fsynced, renamed over the old one and made durable with an fsync of the directory:
a crash at any moment leaves either the old document or the new one, never a mix.

File layout (integers big-endian)::

    magic "SLKS" (4) | version 1 (1) | scrypt log2 N, r, p (3; zeros for a raw root key)
    | salt (16) | nonce (12) | AES-256-GCM ciphertext and tag of the document

The sealing key is HKDF-SHA256 of the root key (or of its scrypt stretch) with the salt and
a purpose label; the associated data is the purpose label followed by the first 24 bytes.
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

from sealstore import _aead
from sealstore.errors import DecryptionError, KeystoreError, RootKeyError
from sealstore.keys.root import RootKey

__all__ = ["SealedFile"]

_MAGIC: Final = b"SLKS"
_VERSION: Final = 1
_SALT_SIZE: Final = 16
_PREFIX_SIZE: Final = 4 + 1 + 3 + _SALT_SIZE
_TEMPORARY: Final = ".tmp-"
"""Temporary copies of ``name`` are ``.{name}.tmp-<random>``: exact enough that the cleanup
of one document never matches another's (``keyring`` and ``keyring.new`` side by side)."""
MAX_DOCUMENT_SIZE: Final = 64 << 20
"""A sealed document larger than this is refused as corrupt rather than read."""


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
            self._write(self._seal(new, salt or os.urandom(_SALT_SIZE)))
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

    def _seal(self, document: bytes, salt: bytes) -> bytes:
        log2_n, r, p = self._root_key.kdf_parameters
        prefix = _MAGIC + bytes((_VERSION, log2_n, r, p)) + salt
        key = self._root_key.derive(self._purpose, salt, (log2_n, r, p))
        return prefix + _aead.seal_blob(key, document, self._purpose + prefix)

    def _open(self, data: bytes) -> tuple[bytes, bytes]:
        if len(data) > MAX_DOCUMENT_SIZE or len(data) < _PREFIX_SIZE or data[:4] != _MAGIC:
            raise KeystoreError(f"{self.path} is not a sealed sealstore key file")
        if data[4] != _VERSION:
            raise KeystoreError(
                f"{self.path} has sealed-file version {data[4]}; upgrade sealstore to read it"
            )
        prefix, salt = data[:_PREFIX_SIZE], data[8:_PREFIX_SIZE]
        key = self._root_key.derive(self._purpose, salt, (data[5], data[6], data[7]))
        try:
            return salt, _aead.open_blob(key, data[_PREFIX_SIZE:], self._purpose + prefix)
        except DecryptionError:
            raise RootKeyError(
                f"the root key does not open {self.path}: it is not the key the file was "
                "sealed with, or the file was altered"
            ) from None

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
