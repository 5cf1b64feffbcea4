"""What the transfer engine asks of the storage it moves bodies to and from.

The engine seals and opens chunks; the storage side only moves bytes. A multipart target
(:class:`PartTarget`) and a ranged reader (``fetch``) are all it needs, so the store's S3
backend and an S3 client wrapper can both drive it without the engine knowing either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from sealstore import _aead
from sealstore._io import ReadableStream
from sealstore.backends.base import ObjectInfo

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "MAX_PARTS",
    "Fetch",
    "PartTarget",
    "Progress",
    "TransferBackend",
    "check_concurrency",
    "plaintext_part_size",
]

DEFAULT_CONCURRENCY: Final = 4
"""Parts in flight at once by default: both cores busy sealing while parts are on the wire."""
MAX_CONCURRENCY: Final = 64
MAX_PARTS: Final = 10_000
"""The most parts one S3 multipart upload may have."""
MIN_PART_SIZE: Final = 5 << 20
"""S3's smallest part but the last (5 MiB), a multiple of the chunk size."""

Progress = Callable[[int], None]
"""Called with the plaintext bytes transferred since its previous call (boto3's convention)."""

Fetch = Callable[[int, int], bytes]
"""``fetch(start, end)``: the stored bytes ``[start, end)`` of the object being read, all of
them unless the object ends first; conditional on the version the transfer started with."""


class PartTarget(Protocol):
    """Where a sealed body goes: one request for a small body, a multipart upload otherwise.

    Errors raised here are the storage's own, already translated; the engine aborts the
    upload on any of them and re-raises.
    """

    def put_whole(self, body: bytearray) -> Any:
        """Store ``body`` as the whole object in one request; return the storage's answer."""
        ...

    def create(self) -> str:
        """Start a multipart upload; return its id."""
        ...

    def upload_part(self, upload_id: str, number: int, body: bytearray) -> Mapping[str, Any]:
        """Upload part ``number`` (from 1); return its entry for :meth:`complete`."""
        ...

    def complete(self, upload_id: str, parts: Sequence[Mapping[str, Any]]) -> Any:
        """Complete the upload from its parts in order; return the storage's answer."""
        ...

    def abort(self, upload_id: str) -> None:
        """Abort the upload (best effort: it is called while another error is raised)."""
        ...


@runtime_checkable
class TransferBackend(Protocol):
    """A backend the store moves large bodies through in concurrent parts (S3).

    ``part_size`` and ``concurrency`` are its settings; ``fetch`` is a ranged read that also
    returns what a head would (whole size, metadata, etag), ``open_range`` the same with the
    bytes as a stream still arriving, ``uploads`` a :class:`PartTarget` for one object.
    """

    @property
    def part_size(self) -> int: ...
    @property
    def concurrency(self) -> int: ...

    def fetch(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, bytes]: ...

    def open_range(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, ReadableStream]: ...

    def uploads(
        self, name: str, *, metadata: Mapping[str, str] | None = None, if_match: str | None = None
    ) -> PartTarget: ...


def plaintext_part_size(part_size: int, size: int | None = None) -> int:
    """The plaintext bytes per part for a requested ``part_size``: whole 16 KiB chunks.

    Rounded down to whole chunks, at least S3's 5 MiB; when the plaintext ``size`` is known,
    grown so that the object fits in :data:`MAX_PARTS` parts (as boto3 grows its parts).
    """
    chunks = max(part_size, MIN_PART_SIZE) // _aead.CHUNK_SIZE
    if size is not None:
        chunks = max(chunks, -(-size // (MAX_PARTS * _aead.CHUNK_SIZE)))
    return chunks * _aead.CHUNK_SIZE


def check_concurrency(concurrency: object) -> int:
    """``concurrency`` if it is an int from 1 to :data:`MAX_CONCURRENCY`."""
    if (
        not isinstance(concurrency, int)
        or isinstance(concurrency, bool)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ValueError(
            f"concurrency must be an int from 1 to {MAX_CONCURRENCY}, not {concurrency!r}"
        )
    return concurrency
