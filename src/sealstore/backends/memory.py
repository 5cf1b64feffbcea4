"""``MemoryBackend``: objects in a dict, for tests and for trying things out."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import final

import attrs

from sealstore._io import Readable, ReadableStream, pieces
from sealstore.backends._rules import (
    MAX_METADATA_SIZE,
    check_metadata,
    check_name,
    check_range,
    shown,
)
from sealstore.backends.base import ObjectInfo
from sealstore.clock import utc_now
from sealstore.errors import ObjectChangedError, ObjectNotFoundError

__all__ = ["MAX_METADATA_SIZE", "MemoryBackend"]


@attrs.frozen
class _Stored:
    data: bytes = attrs.field(repr=False)
    metadata: Mapping[str, str]
    etag: str
    last_modified: datetime

    def info(self, name: str) -> ObjectInfo:
        return ObjectInfo(
            name=name,
            size=len(self.data),
            metadata=dict(self.metadata),
            etag=self.etag,
            last_modified=self.last_modified,
        )


@final
class MemoryBackend:
    """Objects held in memory, with metadata; gone when the backend is.

    Thread-safe. Stored bytes are copied in and never handed out for mutation. The etag is
    the SHA-256 of the object's bytes, in hex. Metadata follows S3's portable rules (see
    :func:`check_metadata`), so code tested here keeps working on S3.

    >>> backend = MemoryBackend()
    >>> backend.put("notes/today.txt", b"hello", metadata={"lang": "en"}).size
    5
    >>> with backend.get("notes/today.txt", start=1, end=4) as stream:
    ...     stream.read()
    b'ell'
    >>> [info.name for info in backend.list("notes/")]
    ['notes/today.txt']
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._objects: dict[str, _Stored] = {}

    @property
    def keeps_metadata(self) -> bool:
        """True: metadata given to :meth:`put` and :meth:`copy` is kept."""
        return True

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes, a binary stream or an iterable of bytes) as ``name``."""
        check_name(name)
        kept = check_metadata(metadata)
        content = b"".join(pieces(data))
        stored = _Stored(
            data=content,
            metadata=kept,
            etag=hashlib.sha256(content).hexdigest(),
            last_modified=self._clock(),
        )
        with self._lock:
            if if_match is not None:
                current = self._objects.get(name)
                if current is None or current.info(name).etag != if_match:
                    raise ObjectChangedError(
                        f"{shown(name)} changed since its etag was read: nothing was written"
                    )
            self._objects[name] = stored
        return stored.info(name)

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        """A stream of the bytes ``[start, end)`` of ``name`` (with ``if_match``, only while
        its etag is that one)."""
        check_name(name)
        check_range(start, end)
        stored = self._find(name)
        if if_match is not None and stored.info(name).etag != if_match:
            raise ObjectChangedError(
                f"{shown(name)} changed since its etag was read: read it again"
            )
        return io.BytesIO(stored.data[start:end])

    def head(self, name: str) -> ObjectInfo:
        """Size, metadata, etag and time of last write of ``name``."""
        check_name(name)
        return self._find(name).info(name)

    def delete(self, name: str) -> None:
        """Remove ``name``; :class:`~sealstore.ObjectNotFoundError` if there is none."""
        check_name(name)
        with self._lock:
            if self._objects.pop(name, None) is None:
                raise self._missing(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``, in name order, as of this call."""
        with self._lock:
            found = [
                stored.info(name)
                for name, stored in self._objects.items()
                if name.startswith(prefix)
            ]
        return iter(sorted(found, key=lambda info: info.name))

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Copy ``source`` to ``destination``; ``metadata`` replaces the copy's when given.

        With ``if_match``, only while ``source``'s etag is still that one.
        """
        check_name(source)
        check_name(destination)
        kept = None if metadata is None else check_metadata(metadata)
        with self._lock:
            original = self._objects.get(source)
            if original is None:
                raise self._missing(source)
            if if_match is not None and original.info(source).etag != if_match:
                raise ObjectChangedError(
                    f"{shown(source)} changed since it was read; the copy was not made"
                )
            if source == destination and kept is None:
                return original.info(source)
            copied = attrs.evolve(
                original,
                metadata=original.metadata if kept is None else kept,
                last_modified=self._clock(),
            )
            self._objects[destination] = copied
        return copied.info(destination)

    def _find(self, name: str) -> _Stored:
        with self._lock:
            stored = self._objects.get(name)
        if stored is None:
            raise self._missing(name)
        return stored

    def _missing(self, name: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"no object named {shown(name)} in {self!r}")

    def __repr__(self) -> str:
        return "MemoryBackend()"
