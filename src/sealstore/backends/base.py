"""The backend contract: :class:`Backend` and what it says about objects, :class:`ObjectInfo`.

Adapters implement :class:`Backend` structurally (no inheritance); the stream protocols they
hand out and read from are sealstore's own (:mod:`sealstore._io`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Protocol

import attrs

from sealstore._io import Readable, ReadableStream

__all__ = ["Backend", "ObjectInfo"]


@attrs.frozen
class ObjectInfo:
    """What a backend knows about one stored object, without reading it.

    ``size`` is the stored size in bytes. ``metadata`` is empty on backends that keep none.
    ``etag`` and ``version_id`` are given where the backend has them.
    """

    name: str
    size: int
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    etag: str | None = None
    version_id: str | None = None
    last_modified: datetime | None = None


class Backend(Protocol):
    """The storage operations sealstore needs.

    Names are ``/``-separated strings; each backend documents which names it refuses.
    ``data`` for :meth:`put` is bytes, a binary file object, or an iterable of bytes; a
    backend reads it in bounded pieces. A write replaces the object atomically: readers see
    the old object or the new one, never a part.
    """

    @property
    def keeps_metadata(self) -> bool:
        """Whether :meth:`put` metadata is stored and returned by :meth:`head`.

        :meth:`list` may return it empty (S3 listings carry no user metadata).
        """
        ...

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Store ``data`` as ``name`` (replacing any object of that name).

        With ``if_match`` (an etag from :meth:`head`), the write happens only if ``name``
        still has that etag, else :class:`~sealstore.ObjectChangedError` and nothing is
        replaced; a backend without etags refuses it.
        """
        ...

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        """A stream of the bytes ``[start, end)`` of ``name`` (to the end when ``end`` is None).

        A range past the end of the object is cut at the end. With ``if_match`` (an etag from
        :meth:`head`), the bytes come only from the object that still has that etag, else
        :class:`~sealstore.ObjectChangedError`; a backend without etags refuses it.
        """
        ...

    def head(self, name: str) -> ObjectInfo:
        """Size, metadata and version information of ``name``."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; :class:`~sealstore.ObjectNotFoundError` if there is none."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``, in name order."""
        ...

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Copy ``source`` to ``destination`` inside the storage (server-side where it can).

        ``metadata`` replaces the copy's metadata when given; ``source`` and ``destination``
        may be the same name, which rewrites only the metadata. With ``if_match`` (an etag
        from :meth:`head`), the copy happens only if ``source`` still has that etag, else
        :class:`~sealstore.ObjectChangedError`; a backend without etags refuses it.
        """
        ...
