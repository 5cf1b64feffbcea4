"""The key store document as last read: decrypted and parsed again only when it changed."""

from __future__ import annotations

import functools
import os
import threading
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
    """A sealed key store document, with the last version read kept to skip parsing it again.

    It refuses a document whose sequence number is lower than ``min_sequence`` or than that
    of any document it read or wrote before: an older copy put back in place.
    """

    __slots__ = ("_cache", "_document", "_highest", "_lock", "_min_sequence")

    def __init__(self, document: SealedFile, min_sequence: int = 0) -> None:
        self._document = document
        self._cache: _Cached | None = None
        self._min_sequence = min_sequence
        self._highest = min_sequence
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._document.path

    def snapshot(self) -> Store:
        """The document as it is on disk, decrypted and parsed again only when it changed."""
        # Only documents replaced before this read began must be seen: a slower read in
        # another thread may still meet an older file.
        floor = self._highest
        store = self._read()
        self._check(store, floor)
        return store

    def _read(self) -> Store:
        path = self._document.path
        cached = self._cache
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _missing(path) from None
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
            if document is None:
                raise _missing(path)
            store = decode_document(document, path)
        settled = time.time_ns() - stat.st_mtime_ns > _RACY_WINDOW_NS
        self._cache = _Cached(signature, sealed, store, settled)
        return store

    def update(self, change: Callable[[Store], Store | None]) -> Store:
        """Rewrite the document under its lock with what ``change`` makes of it (``None``
        leaves it as it is), one sequence number higher; returns the document as it stands
        afterwards. The next snapshot reads it again."""
        path = self._document.path
        floor = self._highest
        outcome: list[Store] = []

        def apply(current: bytes | None) -> bytes | None:
            if current is None:
                raise _missing(path)
            store = decode_document(current, path)
            self._check(store, floor)
            changed = change(store)
            outcome[:] = [store]
            if changed is None or encode_document(changed.numbered(store.sequence)) == current:
                return None  # nothing changed: nothing to write
            outcome[:] = [changed.numbered(store.sequence + 1)]
            return encode_document(outcome[0])

        try:
            self._document.update(apply)
        finally:
            self._cache = None
        self._see(outcome[0].sequence)
        return outcome[0]

    def create(self) -> None:
        """Write an empty document, sequence 1, unless there is one already."""
        path = self._document.path
        floor = self._highest

        def apply(current: bytes | None) -> bytes | None:
            if current is not None:
                return None
            if floor > 0:  # an anchored store that vanished is not made anew
                raise KeystoreError(
                    f"{path} does not exist, but min_sequence={floor} says the key store was "
                    "there: it was deleted or moved; put it back rather than create a new one"
                )
            return encode_document(Store({}, {}, sequence=1))

        try:
            self._document.update(apply)
        finally:
            self._cache = None

    def _check(self, store: Store, floor: int) -> None:
        if store.sequence < floor:
            given = (
                f"the min_sequence={floor} this LocalKms was given"
                if floor == self._min_sequence
                else f"sequence {floor}, which this LocalKms has already read"
            )
            raise KeystoreError(
                f"{self._document.path} is at sequence {store.sequence}, older than {given}: "
                "an older copy of the key store was put back, which would bring back deleted "
                "keys, old material and old policies; put the latest copy back"
            )
        self._see(store.sequence)

    def _see(self, sequence: int) -> None:
        with self._lock:
            self._highest = max(self._highest, sequence)


def _missing(path: Path) -> KeystoreError:
    return KeystoreError(
        f"{path} does not exist: the key store document was deleted or moved while in use; "
        "put it back"
    )
