"""The ``Body`` of an answer: boto3's ``StreamingBody`` shape, decrypting as it is read.

The server's stream carries consecutive sealed chunks; each is read whole, authenticated by
its index, and only then released, trimmed to the plaintext range asked for. An altered,
reordered or truncated stream raises :class:`~sealstore.DecryptionError` from ``read`` before
any byte of the damaged chunk is released.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Final

from typing_extensions import Buffer

from sealstore import _aead
from sealstore._io import Readable, read_up_to
from sealstore.errors import DecryptionError

__all__ = ["DecryptingBody", "sealed_size"]

_BATCH: Final = 64
"""Chunks read from the server's stream at once (1 MiB): fewer, larger reads."""
_TRUNCATED: Final = "the object's stream ended early: it was truncated, or the connection broke"


def sealed_size(index: int, final_index: int, final_sealed: int) -> int:
    """Bytes of chunk ``index`` in a body whose final chunk ``final_index`` has ``final_sealed``."""
    return final_sealed if index == final_index else _aead.SEALED_CHUNK_SIZE


class DecryptingBody(io.RawIOBase):
    """Plaintext bytes ``[skip, skip + length)`` of the chunks ``first`` to ``last`` of a body.

    ``stream`` must be positioned at the start of chunk ``first``; ``final_index`` and
    ``final_sealed`` describe the body's final chunk (the stream's sizes are known from the
    stored size, which an altered stream cannot fake without failing authentication).
    """

    def __init__(
        self,
        stream: Any,
        opener: _aead.ChunkOpener,
        *,
        first: int,
        last: int,
        skip: int,
        length: int,
        final_index: int,
        final_sealed: int,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._opener = opener
        self._next = first
        self._last = last
        self._skip = skip
        self._left = length
        self._final_index = final_index
        self._final_sealed = final_sealed
        self._pending = memoryview(b"")
        self._failed = False

    def readable(self) -> bool:
        """True."""
        return True

    def readinto(self, buffer: Buffer, /) -> int:
        """Fill ``buffer`` with authenticated plaintext; 0 at the end."""
        target = memoryview(buffer).cast("B")
        if not self._pending:
            self._decrypt_next()
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _decrypt_next(self) -> None:
        while not self._pending and self._next <= self._last:
            if self._failed:
                raise DecryptionError(_TRUNCATED)
            first = self._next
            count = min(_BATCH, self._last - first + 1)
            sizes = [
                sealed_size(i, self._final_index, self._final_sealed)
                for i in range(first, first + count)
            ]
            data = memoryview(read_up_to(self._stream.read, sum(sizes)))
            opened: list[bytes] = []
            offset = 0
            try:
                for index, size in enumerate(sizes, first):
                    sealed = data[offset : offset + size]
                    if len(sealed) != size:
                        raise DecryptionError(_TRUNCATED)
                    opened.append(self._opener.open_chunk(index, sealed))
                    offset += size
                    self._next = index + 1
            except DecryptionError:
                self._fail()
                if not opened:
                    raise
                # The chunks before the damaged one authenticated: they go out first.
            if self._next > self._last:
                self._close_stream()  # bytes past the range (asked for to save a request)
            view = memoryview(b"".join(opened))[self._skip :][: self._left]
            self._skip = 0
            self._left -= len(view)
            self._pending = view

    def read(self, amt: int | None = None, /) -> bytes:
        """Up to ``amt`` bytes of plaintext (everything left when ``amt`` is ``None``)."""
        if amt is None or amt < 0:
            return self.readall()
        # As urllib3 (under boto3's StreamingBody) does: ``amt`` bytes unless the end comes.
        out = bytearray(amt)
        filled = 0
        with memoryview(out) as view:
            while filled < amt:
                count = self.readinto(view[filled:])
                if not count:
                    break
                filled += count
        del out[filled:]
        return bytes(out)

    def readall(self) -> bytes:
        """Everything left, chunk by chunk."""
        pieces: list[memoryview] = []
        while True:
            if not self._pending:
                self._decrypt_next()
                if not self._pending:
                    return b"".join(pieces)
            pieces.append(self._pending)
            self._pending = memoryview(b"")

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        """Plaintext in pieces of ``chunk_size`` bytes, as boto3's ``StreamingBody`` yields."""
        while piece := self.read(chunk_size):
            yield piece

    def __iter__(self) -> Iterator[bytes]:
        """Plaintext in pieces of 1 KiB, as boto3's ``StreamingBody`` iterates."""
        return self.iter_chunks()

    def iter_lines(self, chunk_size: int = 1024, keepends: bool = False) -> Iterator[bytes]:
        """Plaintext lines, as boto3's ``StreamingBody.iter_lines`` yields them."""
        pending = b""
        for piece in self.iter_chunks(chunk_size):
            lines = (pending + piece).splitlines(True)
            for line in lines[:-1]:
                yield line if keepends else line.splitlines()[0]
            pending = lines[-1]
        if pending:
            yield pending if keepends else pending.splitlines()[0]

    def close(self) -> None:
        """Close the server's stream."""
        if not self.closed:
            self._close_stream()
        super().close()

    def _fail(self) -> None:
        """Refuse every further read, and let the connection go."""
        self._failed = True
        self._close_stream()

    def _close_stream(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return "DecryptingBody(<plaintext hidden>)"


def discard(stream: Readable, size: int) -> None:
    """Read and drop ``size`` bytes of ``stream`` (a gap between a range's start and a chunk)."""
    while size > 0:
        piece = stream.read(min(size, 1 << 20))
        if not piece:
            raise DecryptionError(_TRUNCATED)
        size -= len(piece)
