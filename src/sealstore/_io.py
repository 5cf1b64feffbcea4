"""Streams: the protocols sealstore reads and writes through, and the loops over them.

One set of stream protocols serves every layer: the envelope reads a :class:`Readable` and
writes a :class:`Writable`, the reader seeks a :class:`SeekableReadable`, and backends hand
out :class:`ReadableStream`. The read loops here are the only ones: a short read is never
mistaken for the end of a stream by one layer and handled by another.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Protocol, TypeVar

from typing_extensions import Buffer

from sealstore.errors import InvalidDataError

__all__ = [
    "PIECE_SIZE",
    "Chain",
    "GuardedStream",
    "Readable",
    "ReadableStream",
    "SeekableReadable",
    "Writable",
    "as_readable",
    "pieces",
    "read_up_to",
    "readinto_up_to",
    "stream_pieces",
    "write_all",
]

PIECE_SIZE: Final = 1 << 20
"""The most read from a stream in one call by the loops here (1 MiB): memory stays bounded."""

_BYTES_LIKE: Final = (bytes, bytearray, memoryview)
_T = TypeVar("_T")


class Readable(Protocol):
    """A binary stream to read from: ``read(n)`` returns at most ``n`` bytes, ``b""`` at end.

    The stream must block: ``None`` (no data ready yet) is refused, never taken as the end.
    """

    def read(self, size: int = -1, /) -> bytes: ...


class ReadableStream(Readable, Protocol):
    """A stream handed out by a backend; close it (or use ``with``) when done."""

    def close(self) -> None: ...


class SeekableReadable(Readable, Protocol):
    """A binary file that can also seek: what random-access decryption reads from."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class Writable(Protocol):
    """A binary stream to write to. It must not keep the buffers it is handed.

    ``write`` returns how many bytes it took: a short write is called again with the rest,
    and ``None`` (a non-blocking stream that would block) is refused, never taken as "all".
    """

    def write(self, data: Buffer, /) -> int | None: ...


def read_up_to(read: Callable[[int], bytes], size: int) -> bytes:
    """``size`` bytes from successive ``read(n)`` calls, fewer only if the stream ends first.

    >>> read_up_to(io.BytesIO(b"abcdef").read, 4)
    b'abcd'
    >>> read_up_to(io.BytesIO(b"ab").read, 4)
    b'ab'
    """
    parts = []
    while size > 0:
        part = read(size)
        if part is None:
            raise _unready_input("read")
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def readinto_up_to(src: Readable, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``src``; fewer bytes only if the stream ends first. The count.

    Streams with ``readinto`` fill the buffer in place; others are read and copied.
    """
    readinto = getattr(src, "readinto", None)
    filled, size = 0, len(buffer)
    while filled < size:
        if readinto is not None:
            count = readinto(buffer[filled:])
            if count is None:
                raise _unready_input("readinto")
        else:
            part = src.read(size - filled)
            if part is None:
                raise _unready_input("read")
            count = len(part)
            buffer[filled : filled + count] = part
        if not count:
            break
        filled += count
    return filled


def write_all(dst: Writable, data: memoryview) -> None:
    """Write every byte of ``data``, however many calls ``dst`` needs to take them.

    A raw stream (:class:`io.RawIOBase`) returning ``None`` would block: non-blocking streams
    are refused with :class:`~sealstore.InvalidDataError`, as is a write that takes 0 bytes,
    since the bytes would otherwise be lost. Any other object returning ``None`` from
    ``write`` is taken to have written everything, as :func:`shutil.copyfileobj` takes it
    (many file-like objects, web responses among them, return nothing).
    """
    while data:
        count = dst.write(data)
        if count is None and not isinstance(dst, io.RawIOBase):
            return
        if not count:
            raise _unready_output(count)
        data = data[count:]


def stream_pieces(src: Readable) -> Iterator[memoryview | bytes]:
    """Successive non-empty pieces of ``src`` until end of file, reusing one buffer."""
    readinto = getattr(src, "readinto", None)
    if readinto is None:
        while True:
            piece = src.read(PIECE_SIZE)
            if piece is None:
                raise _unready_input("read")
            if not piece:
                return
            yield piece
    buffer = bytearray(PIECE_SIZE)
    with memoryview(buffer) as view:
        while True:
            count = readinto(view)
            if count is None:
                raise _unready_input("readinto")
            if not count:
                return
            yield view[:count]


def _unready_input(method: str) -> InvalidDataError:
    return InvalidDataError(
        f"the input stream's {method}() returned None, as a non-blocking stream does when no "
        "data is ready: non-blocking streams are not supported; pass a blocking binary stream"
    )


def _unready_output(returned: int | None) -> InvalidDataError:
    return InvalidDataError(
        f"the output stream's write() returned {returned!r}, as a non-blocking stream does when "
        "it cannot take more: non-blocking streams are not supported; pass a blocking binary "
        "stream whose write() returns how many bytes it took"
    )


def pieces(data: bytes | Readable | Iterable[bytes]) -> Iterator[Buffer]:
    """Data as a sequence of bytes-like pieces; a stream is read ``PIECE_SIZE`` at a time.

    Bytes come out in slices of at most ``PIECE_SIZE`` without being copied; an iterable's
    pieces come out as they are. ``str`` data, and text streams, are refused with
    :class:`~sealstore.InvalidDataError` (a :class:`TypeError`) here, before any storage is
    touched.

    >>> [len(p) for p in pieces(io.BytesIO(bytes(PIECE_SIZE + 1)))]
    [1048576, 1]
    """
    given = _check_data(data)
    if isinstance(given, _BYTES_LIKE):
        return _slices(memoryview(given).cast("B"))
    if hasattr(given, "read"):
        return _reads(given.read)
    return _items(given)  # type: ignore[arg-type]


def _check_data(data: object) -> object:
    """``data`` itself if it is bytes, a binary file or an iterable of bytes (its pieces are
    checked as they come); :class:`~sealstore.InvalidDataError` otherwise. Callers are not
    always type-checked, so this runs before any storage is touched."""
    if isinstance(data, str) or not (
        isinstance(data, (*_BYTES_LIKE, Iterable)) or hasattr(data, "read")
    ):
        raise InvalidDataError(
            f"put data must be bytes, a binary file or an iterable of bytes, not "
            f"{type(data).__name__}: encode text first (for example text.encode())"
        )
    return data


def _slices(view: memoryview) -> Iterator[Buffer]:
    for offset in range(0, len(view), PIECE_SIZE):
        yield view[offset : offset + PIECE_SIZE]


def _reads(read: Callable[[int], object]) -> Iterator[Buffer]:
    while True:
        piece = read(PIECE_SIZE)
        if piece is None:
            raise _unready_input("read")
        if not isinstance(piece, _BYTES_LIKE):
            raise InvalidDataError(
                f"put data stream returned {type(piece).__name__}: open files in binary mode"
            )
        if not piece:
            return
        yield piece


def _items(items: Iterable[object]) -> Iterator[Buffer]:
    for piece in items:
        if not isinstance(piece, _BYTES_LIKE):
            raise InvalidDataError(
                f"put data iterable yielded {type(piece).__name__}: it must yield bytes"
            )
        if piece:
            yield piece


class GuardedStream(io.RawIOBase):
    """A read-only stream over at most ``length`` bytes of ``source`` (all of it if ``None``),
    whose errors are translated at the seam.

    ``source`` is positioned at the range's start already. An error raised by ``source``
    goes through ``translate``, which returns the error to raise instead (chained to the
    original) or ``None`` to let it through unchanged. Closing the stream closes ``source``.

    >>> with GuardedStream(io.BytesIO(b"abcdef"), 4, translate=lambda error: None) as stream:
    ...     stream.read()
    b'abcd'
    """

    def __init__(
        self,
        source: ReadableStream,
        length: int | None = None,
        *,
        translate: Callable[[Exception], Exception | None],
    ) -> None:
        super().__init__()
        self._source = source
        self._remaining = length
        self._translate = translate

    def readable(self) -> bool:
        """Always true: this is a read-only stream."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (everything left if ``size`` is negative or None)."""
        if self.closed:
            raise ValueError("read from a closed stream")
        wanted = self._remaining if size is None or size < 0 else size
        if wanted is not None and self._remaining is not None:
            wanted = min(wanted, self._remaining)
        if wanted == 0:
            return b""
        source = self._source
        data = self._guarded(source.read if wanted is None else lambda: source.read(wanted))
        if wanted is not None and len(data) > wanted:
            data = data[:wanted]
        if self._remaining is not None:
            self._remaining -= len(data)
        return bytes(data)

    def readall(self) -> bytes:
        """Everything left in the stream."""
        return self.read(-1)

    def readinto(self, buffer: Buffer, /) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the stream and the storage handle behind it."""
        if not self.closed:
            try:
                self._guarded(self._source.close)
            finally:
                super().close()

    def _guarded(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except Exception as error:
            translated = self._translate(error)
            if translated is None:
                raise
            raise translated from error


def as_readable(data: Buffer | Readable | Iterable[bytes]) -> Readable:
    """``data`` (bytes, a binary stream or an iterable of bytes) as one stream to read.

    ``str`` data, and an iterable yielding anything but bytes-like pieces, are refused with
    :class:`~sealstore.InvalidDataError` (an ``int`` piece would otherwise become that many
    zero bytes).

    >>> stream = as_readable([b"ab", b"cd"])
    >>> stream.read(3), stream.read()
    (b'abc', b'd')
    """
    given = _check_data(data)
    if isinstance(given, _BYTES_LIKE):
        return io.BytesIO(given)
    if hasattr(given, "read"):
        return given
    return _IterableReader(_items(given))  # type: ignore[arg-type]


class _IterableReader:
    """A Readable over pieces of bytes, gathered into one buffer that reads consume from the
    front, so each byte is copied a bounded number of times however small the pieces."""

    def __init__(self, parts: Iterator[Buffer]) -> None:
        self._parts = parts
        self._buffer = bytearray()

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (everything left if ``size`` is negative)."""
        buffer = self._buffer
        everything = size is None or size < 0
        while everything or len(buffer) < size:
            part = next(self._parts, None)
            if part is None:
                break
            buffer += part
        if everything or len(buffer) <= size:
            out = bytes(buffer)
            buffer.clear()
            return out
        with memoryview(buffer) as view:
            out = bytes(view[:size])
        del buffer[:size]  # CPython moves the start of a bytearray rather than its contents
        return out


class Chain:
    """A stream of fixed leading bytes followed by another stream (a header, then a body).

    >>> Chain(b"head:", io.BytesIO(b"body")).read()
    b'head:body'
    """

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (everything left if ``size`` is negative)."""
        if self._head:
            if size is None or size < 0:
                out, self._head = self._head + self._rest.read(), b""
                return out
            out, self._head = self._head[:size], self._head[size:]
            return out
        return self._rest.read(size)
