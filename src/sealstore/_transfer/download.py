"""Concurrent ranged download of a sealed body, released in order and only once authentic.

The body is cut into parts of whole chunks; worker threads fetch parts with ranged reads
(conditional on the version the header was read from: the caller's ``fetch`` sees to it) and
open their chunks by index. The caller's thread writes each part's plaintext to the sink in
order, after every chunk of it has authenticated; the last part holds the final chunk, so the
end is never reported before the length has been authenticated. At most ``concurrency``
parts are fetched or waiting to be written at any time: memory stays below
``2 * concurrency`` parts (sealed and opened).
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from sealstore import _aead
from sealstore._io import Writable, write_all
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
    part_size: int,
    concurrency: int,
    callback: Progress | None = None,
) -> int:
    """Decrypt the body stored at ``[body_start, body_start + body_size)`` into ``sink``.

    ``opener`` was made from the body's prefix (its commitment checked); ``first`` is what
    the caller already holds of the stored object from ``body_start`` on (it saves the first
    request). Returns the plaintext size. :class:`~sealstore.DecryptionError` for a body
    whose size no encryption gives or whose chunks fail; what was written then is a prefix
    of the plaintext and must be discarded.
    """
    if part_size <= 0 or part_size % _aead.CHUNK_SIZE:
        raise ValueError("the part size must be a positive multiple of 16384")
    check_concurrency(concurrency)
    size = _aead.plaintext_size(body_size)
    chunks = size // _aead.CHUNK_SIZE + 1
    per_part = part_size // _aead.CHUNK_SIZE
    parts = -(-chunks // per_part)
    failed = threading.Event()

    def fetch_part(number: int) -> bytearray:
        if failed.is_set():
            raise DecryptionError(_TRUNCATED)  # never seen: the first failure is raised
        first_chunk = number * per_part
        count = min(per_part, chunks - first_chunk)
        start = _aead.BODY_PREFIX_SIZE + first_chunk * _aead.SEALED_CHUNK_SIZE
        end = min(start + count * _aead.SEALED_CHUNK_SIZE, body_size)
        sealed = _sealed_range(fetch, first, body_start, start, end)
        if len(sealed) != end - start:
            raise DecryptionError(_TRUNCATED)
        last = first_chunk + count == chunks
        plain = bytearray(count * _aead.CHUNK_SIZE if not last else (count - 1) * _aead.CHUNK_SIZE)
        with memoryview(sealed) as view:
            for step in range(count):
                at = step * _aead.SEALED_CHUNK_SIZE
                piece = view[at : at + _aead.SEALED_CHUNK_SIZE]
                opened = opener.open_chunk(first_chunk + step, piece)
                if first_chunk + step == chunks - 1:
                    plain += opened  # the final chunk, shorter than the others
                else:
                    plain[step * _aead.CHUNK_SIZE : (step + 1) * _aead.CHUNK_SIZE] = opened
        return plain

    written = 0
    pending: collections.deque[Future[bytearray]] = collections.deque()
    with ThreadPoolExecutor(concurrency, "sealstore-download") as pool:
        try:
            submitted = 0
            while submitted < parts or pending:
                while submitted < parts and len(pending) < concurrency:
                    pending.append(pool.submit(fetch_part, submitted))
                    submitted += 1
                plain = pending.popleft().result()
                with memoryview(plain) as view:
                    write_all(sink, view)
                written += len(plain)
                if callback is not None and plain:
                    callback(len(plain))
                del plain
        except BaseException:
            failed.set()
            for future in pending:
                future.cancel()
            raise
    return written


def _sealed_range(fetch: Fetch, first: bytes, body_start: int, start: int, end: int) -> bytes:
    """Body bytes ``[start, end)``, from ``first`` as far as it reaches, then fetched."""
    held = len(first)
    if end <= held:
        return first[start:end]
    if start >= held:
        return fetch(body_start + start, body_start + end)
    return first[start:] + fetch(body_start + held, body_start + end)
