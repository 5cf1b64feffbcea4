"""Concurrent ranged download of a sealed body, released in order and only once authentic.

The body is cut into parts of whole chunks; worker threads fetch parts with ranged reads
(conditional on the version the header was read from: the caller's ``fetch`` sees to it).
The caller's thread opens each part's chunks by index, in order, and writes the part's
plaintext to the sink once every chunk of it has authenticated (opening in the workers was
slower: one AES-GCM call per 16 KiB chunk, each needing the GIL back, beside fetches that
need it too). The last part holds the final chunk, so the end is never reported before the
length has been authenticated. At most ``concurrency`` parts are fetched or waiting to be
opened at any time, and one is being written: memory stays below ``2 * concurrency`` parts.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from sealstore import _aead
from sealstore._io import Readable, Writable, read_up_to, write_all
from sealstore._transfer.base import Fetch, Progress, check_concurrency
from sealstore.errors import DecryptionError

__all__ = ["download_sealed"]

_TRUNCATED = "the object failed authentication: it was modified, truncated, or the key is wrong"


def download_sealed(
    fetch: Fetch,
    opener: _aead.ChunkOpener,
    sink: Writable,
    *,
    body_start: int,
    body_size: int,
    first: bytes = b"",
    first_stream: tuple[Readable, int] | None = None,
    part_size: int,
    concurrency: int,
    callback: Progress | None = None,
) -> int:
    """Decrypt the body stored at ``[body_start, body_start + body_size)`` into ``sink``.

    ``opener`` was made from the body's prefix (its commitment checked); ``first`` is what
    the caller already holds of the stored object from ``body_start`` on (it saves the first
    request); ``first_stream`` is a stream of the body's next bytes, from ``len(first)`` up
    to the body offset it names, still arriving: the first part is read from it in a worker
    while the others are fetched. Returns the plaintext size.
    :class:`~sealstore.DecryptionError` for a body whose size no encryption gives or whose
    chunks fail; what was written then is a prefix of the plaintext and must be discarded.
    """
    if part_size <= 0 or part_size % _aead.CHUNK_SIZE:
        raise ValueError("the part size must be a positive multiple of 16384")
    check_concurrency(concurrency)
    parts = _Parts(fetch, opener, body_start, body_size, first, first_stream, part_size)
    written = 0
    pending: collections.deque[Future[tuple[int, bytes]]] = collections.deque()
    with ThreadPoolExecutor(concurrency, "sealstore-download") as pool:
        try:
            submitted = 0
            while submitted < parts.count or pending:
                while submitted < parts.count and len(pending) < concurrency:
                    pending.append(pool.submit(parts.fetch, submitted))
                    submitted += 1
                plain = parts.open(*pending.popleft().result())
                with memoryview(plain) as view:
                    write_all(sink, view)
                written += len(plain)
                if callback is not None and plain:
                    callback(len(plain))
                del plain
        except BaseException:
            parts.failed.set()
            for future in pending:
                future.cancel()
            raise
    return written


class _Parts:
    """The parts of one body: where each lies, and how to fetch and open it."""

    def __init__(  # noqa: PLR0917 - private, called once with every argument in order
        self,
        fetch: Fetch,
        opener: _aead.ChunkOpener,
        body_start: int,
        body_size: int,
        first: bytes,
        first_stream: tuple[Readable, int] | None,
        part_size: int,
    ) -> None:
        self._fetch = fetch
        self._opener = opener
        self._body_start = body_start
        self._body_size = body_size
        self._first = first
        self._first_stream = first_stream
        self._chunks = _aead.plaintext_size(body_size) // _aead.CHUNK_SIZE + 1
        self._per_part = part_size // _aead.CHUNK_SIZE
        # Parts as uploads lay them out: the last one also holds the final chunk, so a body
        # of whole parts does not end with a part of 16 bytes.
        self.count = max(1, -(-(self._chunks - 1) // self._per_part))
        self.failed = threading.Event()

    def _span(self, number: int) -> tuple[int, int, int]:
        """Part ``number``'s first chunk, its chunk count, and its body offsets."""
        first_chunk = number * self._per_part
        last = number == self.count - 1
        count = self._chunks - first_chunk if last else self._per_part
        start = _aead.BODY_PREFIX_SIZE + first_chunk * _aead.SEALED_CHUNK_SIZE
        return first_chunk, count, start

    def fetch(self, number: int) -> tuple[int, bytes]:
        """Part ``number``'s sealed bytes, whole (in a worker)."""
        if self.failed.is_set():
            raise DecryptionError(_TRUNCATED)  # never seen: the first failure is raised
        _, count, start = self._span(number)
        end = min(start + count * _aead.SEALED_CHUNK_SIZE, self._body_size)
        sealed = self._sealed(number, start, end)
        if len(sealed) != end - start:
            raise DecryptionError(_TRUNCATED)
        return number, sealed

    def open(self, number: int, sealed: bytes) -> bytearray:
        """Part ``number``'s plaintext, every chunk of it authenticated (in the caller's
        thread: AES-GCM calls of one chunk each do not gain from running beside the fetches,
        which need the GIL between their reads)."""
        first_chunk, count, _ = self._span(number)
        last = number == self.count - 1
        # Whole sealed chunks, then (in the last part) the short final one: each opens
        # straight into the part's plaintext buffer.
        plain = bytearray(max(0, len(sealed) - count * _aead.TAG_SIZE))
        with memoryview(sealed) as view:
            self._opener.open_run_into(first_chunk, view, plain, final=last)
        return plain

    def _sealed(self, number: int, start: int, end: int) -> bytes:
        """Body bytes ``[start, end)``: held, then from the first stream (part 0), then
        fetched."""
        data = self._first[start:end]
        reached = start + len(data)
        if number == 0 and self._first_stream is not None and reached < end:
            source, stream_end = self._first_stream
            if reached == len(self._first) and reached < stream_end:
                data += read_up_to(source.read, min(end, stream_end) - reached)
                reached = start + len(data)
        if reached < end:
            data += self._fetch(self._body_start + reached, self._body_start + end)
        return data
