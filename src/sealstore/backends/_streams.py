"""Data in and out of backends: ``put`` data read in bounded pieces, ``get`` ranges as streams."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from typing_extensions import Buffer

from sealstore.backends import Readable, ReadableStream

__all__ = ["PIECE_SIZE", "RangeReader", "check_range", "pieces"]

PIECE_SIZE: Final = 1 << 20
"""The most a backend asks of a ``put`` stream in one ``read`` call (1 MiB)."""

_BYTES_LIKE: Final = (bytes, bytearray, memoryview)


def pieces(data: bytes | Readable | Iterable[bytes]) -> Iterator[Buffer]:
    """``put`` data as a sequence of bytes-like pieces; a stream is read ``PIECE_SIZE`` at a time.

    Bytes come out in slices of at most ``PIECE_SIZE`` without being copied; an iterable's
    pieces come out as they are. ``str`` data, and text streams, are refused with
    :class:`TypeError` here, before any storage is touched.

    >>> import io
    >>> [len(p) for p in pieces(io.BytesIO(bytes(PIECE_SIZE + 1)))]
    [1048576, 1]
    """
    given: object = data  # checked at run time: callers are not always type-checked
    if isinstance(given, str):
        raise TypeError("put data must be bytes, a binary file or an iterable of bytes, not str")
    if isinstance(given, _BYTES_LIKE):
        return _slices(memoryview(given).cast("B"))
    if hasattr(given, "read"):
        return _reads(given.read)
    if isinstance(given, Iterable):
        return _items(given)
    raise TypeError(
        f"put data must be bytes, a binary file or an iterable of bytes, not {type(given).__name__}"
    )


def _slices(view: memoryview) -> Iterator[Buffer]:
    for offset in range(0, len(view), PIECE_SIZE):
        yield view[offset : offset + PIECE_SIZE]


def _reads(read: Callable[[int], object]) -> Iterator[Buffer]:
    while True:
        piece = read(PIECE_SIZE)
        if piece is None:
            raise TypeError("put data stream returned None: non-blocking streams are not supported")
        if not isinstance(piece, _BYTES_LIKE):
            raise TypeError(
                f"put data stream returned {type(piece).__name__}: open files in binary mode"
            )
        if not piece:
            return
        yield piece


def _items(items: Iterable[object]) -> Iterator[Buffer]:
    for piece in items:
        if not isinstance(piece, _BYTES_LIKE):
            raise TypeError(
                f"put data iterable yielded {type(piece).__name__}: it must yield bytes"
            )
        if piece:
            yield piece


def check_range(start: int, end: int | None) -> None:
    """Refuse a byte range no object could have, with :class:`ValueError`.

    >>> check_range(10, 5)
    Traceback (most recent call last):
    ...
    ValueError: byte range end (5) is before its start (10)
    """
    if start < 0:
        raise ValueError(f"byte range start is {start}; it must be 0 or more")
    if end is not None and end < start:
        raise ValueError(f"byte range end ({end}) is before its start ({start})")


class RangeReader(io.RawIOBase):
    """A read-only stream over at most ``length`` bytes of ``source`` (all of it if ``None``).

    ``source`` is positioned at the range's start already. Storage errors met while reading
    go through ``translate``; closing the reader closes ``source``.

    >>> with RangeReader(io.BytesIO(b"abcdef"), 4, translate=lambda error: error) as stream:
    ...     stream.read()
    b'abcd'
    """

    def __init__(
        self,
        source: ReadableStream,
        length: int | None,
        *,
        translate: Callable[[OSError], Exception],
    ) -> None:
        super().__init__()
        self._source = source
        self._remaining = length
        self._translate = translate

    def readable(self) -> bool:
        """Always true: this is a read-only stream."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes of the range (all that is left if ``size`` is negative)."""
        if self.closed:
            raise ValueError("read from a closed stream")
        if size is None or size < 0:
            return self.readall()
        wanted = size if self._remaining is None else min(size, self._remaining)
        if wanted == 0:
            return b""
        try:
            data = self._source.read(wanted)[:wanted]
        except OSError as error:
            raise self._translate(error) from None
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def readinto(self, buffer: Buffer, /) -> int:
        """Read up to ``len(buffer)`` bytes of the range into ``buffer``; 0 at its end."""
        if self.closed:
            raise ValueError("read from a closed stream")
        view = memoryview(buffer).cast("B")
        wanted = len(view) if self._remaining is None else min(len(view), self._remaining)
        if wanted == 0:
            return 0
        try:
            data = self._source.read(wanted)
        except OSError as error:
            raise self._translate(error) from None
        count = len(data)
        view[:count] = data
        if self._remaining is not None:
            self._remaining -= count
        return count

    def close(self) -> None:
        """Close the stream and the storage handle behind it."""
        if not self.closed:
            try:
                self._source.close()
            except OSError as error:
                raise self._translate(error) from None
            finally:
                super().close()
