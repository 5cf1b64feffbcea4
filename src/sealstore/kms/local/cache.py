"""The key store document as last read: decrypted and parsed again only when it changed."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, final

import attrs

from sealstore._io import read_up_to
from sealstore.errors import KeystoreError
from sealstore.kms.local.document import Store, decode_document, encode_document
from sealstore.sealed import MAX_DOCUMENT_SIZE, SealedFile

_RACY_WINDOW_NS: Final = 3_000_000_000
"""A document modified this recently is read again (not parsed again) on every call: a file
system may give a rewrite within one timestamp tick (up to 2 s on some) the same mtime, size
and, reused, inode."""


@attrs.frozen
class _Cached:
    """The last document read: its file's signature, its sealed bytes and what they hold."""

    signature: tuple[int, int, int, int]
    sealed: bytes = attrs.field(repr=False)
    store: Store
    settled: bool
    """Whether the file is old enough for its signature alone to prove it unchanged."""


@final
class CachedDocument:
    """A sealed key store document, with the last version read kept to skip parsing it again."""

    __slots__ = ("_cache", "_document")

    def __init__(self, document: SealedFile) -> None:
        self._document = document
        self._cache: _Cached | None = None

    @property
    def path(self) -> Path:
        return self._document.path

    def snapshot(self) -> Store:
        """The document as it is on disk, decrypted and parsed again only when it changed."""
        path = self._document.path
        cached = self._cache
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return Store({}, {})
        except OSError as error:
            raise KeystoreError(f"cannot read {path}: {error.strerror}") from None
        try:
            # The descriptor pins one file: a writer replaces the file, never changes it, so
            # this signature and these bytes belong together.
            stat = os.fstat(fd)
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)
            if cached is not None and cached.settled and cached.signature == signature:
                return cached.store
            sealed = read_up_to(
                functools.partial(os.read, fd), min(stat.st_size, MAX_DOCUMENT_SIZE + 1)
            )
        except OSError as error:
            raise KeystoreError(f"cannot read {path}: {error.strerror}") from None
        finally:
            os.close(fd)
        if cached is not None and cached.sealed == sealed:
            store = cached.store  # every write draws a new nonce: same bytes, same document
        else:
            # May read a newer document than ``sealed``, never an older one.
            document = self._document.read()
            store = Store({}, {}) if document is None else decode_document(document, path)
        settled = time.time_ns() - stat.st_mtime_ns > _RACY_WINDOW_NS
        self._cache = _Cached(signature, sealed, store, settled)
        return store

    def update(self, change: Callable[[Store], Store | None]) -> Store:
        """Rewrite the document under its lock with what ``change`` makes of it (``None``
        leaves it as it is); returns the document as it stands afterwards. The next snapshot
        reads it again."""
        path = self._document.path
        outcome: list[Store] = []

        def apply(current: bytes | None) -> bytes | None:
            store = Store({}, {}) if current is None else decode_document(current, path)
            changed = change(store)
            outcome[:] = [store if changed is None else changed]
            return None if changed is None else encode_document(changed)

        try:
            self._document.update(apply)
        finally:
            self._cache = None
        return outcome[0]
