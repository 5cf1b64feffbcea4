"""Bulk data on every core: large bodies and streams sealed and opened by a small thread pool.

The chunks of a body are independent (chunk ``k`` is sealed under ``base nonce XOR k``), and
``cryptography``'s AES-GCM releases the GIL while it works, so a few threads can each seal or
open a batch of consecutive chunks at once (:class:`~sealstore._aead.ChunkSealer`,
:class:`~sealstore._aead.ChunkOpener`). A stream goes through a fixed set of reused buffers:
the calling thread reads a batch, a worker seals or opens it, and the calling thread writes
results in order, so memory stays at about ``(threads + 2) x 2 MiB`` whatever the stream's
size, and a stream being decrypted reaches its sink only as authenticated batches, in order.

Small inputs stay on the calling thread, on the single-pass chunked encryptor: a pool costs
more to start than it saves below a couple of megabytes.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeAlias

from sealstore import _aead
from sealstore._io import Readable, Writable, readinto_up_to, write_all

__all__ = [
    "PARALLEL_THRESHOLD",
    "THREADS_VARIABLE",
    "open_body_into",
    "open_stream",
    "seal_body_into",
    "seal_stream",
    "thread_count",
]

_Callback: TypeAlias = "Callable[[int], None] | None"

THREADS_VARIABLE: Final = "SEALSTORE_THREADS"
"""The environment variable that sets the default thread count (read at each call)."""
BATCH_CHUNKS: Final = 64
BATCH_SIZE: Final = BATCH_CHUNKS * _aead.CHUNK_SIZE
"""Plaintext bytes a stream hands to one task (1 MiB)."""
PARALLEL_THRESHOLD: Final = 2 * BATCH_SIZE
"""In-memory plaintexts from this size on are split between threads."""
_SPANS_PER_THREAD: Final = 4
"""In-memory work is cut into this many spans per thread, so a thread slowed by other load
on the machine leaves its share to the others."""


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


MAX_DEFAULT_THREADS: Final = 4
DEFAULT_THREADS: Final = 1
"""Threads used when neither ``threads=`` nor ``SEALSTORE_THREADS`` says otherwise.

One: every chunk is its own AES-GCM call of 16 KiB, and between two calls a thread needs the
GIL back. On the 2-core machine of docs/benchmarks.md, ``nox -s bench-peers`` measured
chunked GCM (16 KiB ``encrypt_into`` calls) on two threads at 0.64x one thread, while the
one-thread path runs the chunk loop natively. Where threads pay off (more cores, less
contention), ``threads=`` or ``SEALSTORE_THREADS`` turns them on; ``usable_cpus()`` (at most
:data:`MAX_DEFAULT_THREADS`) is a reasonable value to measure first."""


def usable_cpus() -> int:
    """CPUs this process may run on, at most :data:`MAX_DEFAULT_THREADS`."""
    return max(1, min(MAX_DEFAULT_THREADS, _usable_cpus()))


def thread_count(threads: int | None) -> int:
    """The threads to use: ``threads`` if given, else ``SEALSTORE_THREADS``, else the default.

    Raises :class:`ValueError` for anything but a whole number of threads, 1 or more.
    """
    if threads is None:
        configured = os.environ.get(THREADS_VARIABLE, "").strip()
        if not configured:
            return DEFAULT_THREADS
        try:
            threads = int(configured)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(
                f"{THREADS_VARIABLE} must be a whole number of threads, 1 or more, "
                f"not {configured!r}"
            )
        return threads
    if type(threads) is not int or threads < 1:
        raise ValueError(f"threads must be a whole number, 1 or more, not {threads!r}")
    return threads


def _sealed_offset(plaintext_offset: int) -> int:
    """Where the chunk starting at plaintext offset ``plaintext_offset`` starts in a body
    after its 56-byte prefix (the offset is a multiple of the chunk size)."""
    return plaintext_offset + plaintext_offset // _aead.CHUNK_SIZE * _aead.TAG_SIZE


def _spans(size: int, threads: int, batch_chunks: int) -> list[tuple[int, int]]:
    """Plaintext ``[start, end)`` spans of whole chunks covering ``size`` bytes, each at least
    ``batch_chunks`` chunks long but the last."""
    chunks = -(-size // (_aead.CHUNK_SIZE * threads * _SPANS_PER_THREAD))
    step = max(chunks, batch_chunks) * _aead.CHUNK_SIZE
    return [(start, min(start + step, size)) for start in range(0, max(size, 1), step)]


def _run_all(threads: int, jobs: list[tuple[int, int]], job: Callable[[int, int], None]) -> None:
    """Run ``job(start, end)`` for every span on ``threads`` threads, the calling thread
    one of them; the first error is raised once every thread has stopped.

    The threads take spans from one shared iterator (taking the next item of a list
    iterator is atomic), so a thread slowed by the machine's other work takes fewer.
    """
    spans = iter(jobs)

    def work() -> None:
        try:
            for start, end in spans:
                job(start, end)
        except BaseException:
            for _ in spans:  # leave nothing for the other threads
                pass
            raise

    if threads == 1:
        work()
        return
    pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="sealstore")
    try:
        helpers = [pool.submit(work) for _ in range(threads - 1)]
        work()
        for helper in helpers:
            helper.result()
    finally:
        pool.shutdown(wait=True)


def seal_body_into(
    key: bytes,
    context: bytes,
    plaintext: bytes | memoryview,
    out: memoryview,
    *,
    threads: int,
    batch_chunks: int = BATCH_CHUNKS,
) -> None:
    """Encrypt a whole message into ``out`` (exactly ``body_size(len)`` bytes) on ``threads``
    threads; the same body :func:`~sealstore._aead.encrypt_body_into` writes, another salt."""
    sealer = _aead.ChunkSealer.new(key, context)
    out[: _aead.BODY_PREFIX_SIZE] = sealer.prefix
    data = memoryview(plaintext)
    body = out[_aead.BODY_PREFIX_SIZE :]
    size = len(data)

    def seal(start: int, end: int) -> None:
        final = end == size
        stop = len(body) if final else _sealed_offset(end)
        sealer.seal_run_into(
            start // _aead.CHUNK_SIZE,
            data[start:end],
            body[_sealed_offset(start) : stop],
            final=final,
        )

    _run_all(threads, _spans(size, threads, batch_chunks), seal)


def open_body_into(
    key: bytes,
    context: bytes,
    body: bytes | memoryview,
    out: memoryview,
    *,
    threads: int,
    batch_chunks: int = BATCH_CHUNKS,
) -> None:
    """Decrypt a whole body into ``out`` (exactly ``plaintext_size(len)`` bytes) on
    ``threads`` threads, or raise :class:`DecryptionError`."""
    view = memoryview(body)
    opener = _aead.ChunkOpener(key, context, bytes(view[: _aead.BODY_PREFIX_SIZE]))
    sealed = view[_aead.BODY_PREFIX_SIZE :]
    size = len(out)

    def open_span(start: int, end: int) -> None:
        final = end == size
        stop = len(sealed) if final else _sealed_offset(end)
        opener.open_run_into(
            start // _aead.CHUNK_SIZE,
            sealed[_sealed_offset(start) : stop],
            out[start:end],
            final=final,
        )

    # The span that ends the plaintext also takes the final chunk, empty or not.
    _run_all(threads, _spans(size, threads, batch_chunks), open_span)


class _Slot:
    """One batch's reused buffers: what is read, and what is written."""

    __slots__ = ("incoming", "outgoing")

    def __init__(self, incoming: memoryview, outgoing_size: int) -> None:
        self.incoming = incoming
        self.outgoing = memoryview(bytearray(outgoing_size))


class _Pipeline:
    """Batches sealed or opened in order of submission, their results written in order.

    ``threads - 1`` workers take most batches; every ``threads``-th batch is done by the
    calling thread itself between its reads and writes, so ``threads`` threads in all
    compete for the GIL, never more.
    """

    def __init__(self, dst: Writable, threads: int, callback: _Callback) -> None:
        self._dst = dst
        self._callback = callback
        self._threads = threads
        self._submitted = 0
        self._pool = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="sealstore") if threads > 1 else None
        )
        self._pending: deque[tuple[Future[int], _Slot, int]] = deque()
        self.free: deque[_Slot] = deque()
        self.written = 0

    def submit(
        self, slot: _Slot, counted: int, function: Callable[..., int], *args: object, final: bool
    ) -> None:
        """Run ``function(*args, final=final)`` for ``slot``, whose result is the bytes to
        write from ``slot.outgoing``. The callback gets ``counted`` (plaintext bytes) when the
        batch is written, or that result if ``counted`` is -1."""
        self._submitted += 1
        if self._pool is not None and self._submitted % self._threads:
            future = self._pool.submit(function, *args, final=final)
        else:
            # Done here and now; an error waits in the future, so that the batches before
            # this one are still written first.
            future = Future()
            try:
                future.set_result(function(*args, final=final))
            except Exception as error:  # re-raised in order by drain_one
                future.set_exception(error)
        self._pending.append((future, slot, counted))

    def drain_one(self) -> None:
        future, slot, counted = self._pending.popleft()
        count = future.result()
        write_all(self._dst, slot.outgoing[:count])
        self.written += count
        progress = count if counted < 0 else counted
        if self._callback is not None and progress:
            self._callback(progress)
        self.free.append(slot)

    def next_slot(self) -> _Slot:
        if not self.free:
            self.drain_one()
        return self.free.popleft()

    def finish(self) -> int:
        while self._pending:
            self.drain_one()
        return self.written

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class _Source:
    """Successive batches of a stream, each read into a buffer the caller reuses.

    An :class:`io.BytesIO` already holds its bytes: its batches are views of them, and its
    position is moved past what was taken when done. Copying them batch by batch would
    hold the GIL for as long as sealing them takes, so the workers would wait for it.
    ``getvalue`` hands out the BytesIO's own bytes object without copying it, unless
    someone holds a view of its buffer (then it copies once).
    """

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._memory: memoryview | None = None
        self._start = self._taken = 0
        if type(src) is io.BytesIO:
            self._start = src.tell()
            self._memory = memoryview(src.getvalue())[self._start :]

    def fill(self, buffer: memoryview) -> memoryview:
        """The next batch, as long as ``buffer`` unless the stream ends first."""
        if self._memory is None:
            return buffer[: readinto_up_to(self._src, buffer)]
        piece = self._memory[self._taken : self._taken + len(buffer)]
        self._taken += len(piece)
        return piece

    def close(self) -> None:
        """Leave an in-memory source positioned after what was taken."""
        if self._memory is not None:
            self._memory = None
            self._src.seek(self._start + self._taken)  # type: ignore[attr-defined]


def seal_stream(
    key: bytes,
    context: bytes,
    src: Readable,
    dst: Writable,
    *,
    threads: int,
    callback: _Callback,
    batch_chunks: int = BATCH_CHUNKS,
) -> tuple[int, int]:
    """Encrypt everything ``src`` yields into ``dst`` as one body: (bytes written, plaintext
    bytes read). A stream shorter than one batch is encrypted on the calling thread."""
    source = _Source(src)
    try:
        return _seal_batches(key, context, source, dst, threads, callback, batch_chunks)
    finally:
        source.close()


def _seal_batches(  # noqa: PLR0917 - the private half of seal_stream
    key: bytes,
    context: bytes,
    source: _Source,
    dst: Writable,
    threads: int,
    callback: _Callback,
    batch_chunks: int,
) -> tuple[int, int]:
    batch = batch_chunks * _aead.CHUNK_SIZE
    first = memoryview(bytearray(batch))
    data = source.fill(first)
    if len(data) < batch:
        body = memoryview(bytearray(_aead.body_size(len(data))))
        _aead.encrypt_body_into(key, context, data, body)
        write_all(dst, body)
        if callback is not None and data:
            callback(len(data))
        return len(body), len(data)
    sealer = _aead.ChunkSealer.new(key, context)
    write_all(dst, memoryview(sealer.prefix))
    pipeline = _Pipeline(dst, threads, callback)
    outgoing = _aead.sealed_run_size(batch, final=True)
    pipeline.free.extend(_Slot(memoryview(bytearray(batch)), outgoing) for _ in range(threads))
    slot = _Slot(first, outgoing)
    consumed, index = 0, 0
    try:
        while True:
            final = len(data) < batch
            pipeline.submit(
                slot, len(data), sealer.seal_run_into, index, data, slot.outgoing, final=final
            )
            consumed += len(data)
            index += batch_chunks
            if final:
                break
            slot = pipeline.next_slot()
            data = source.fill(slot.incoming)
        return _aead.BODY_PREFIX_SIZE + pipeline.finish(), consumed
    finally:
        pipeline.close()


def open_stream(
    key: bytes,
    context: bytes,
    src: Readable,
    dst: Writable,
    *,
    threads: int,
    callback: _Callback,
    batch_chunks: int = BATCH_CHUNKS,
) -> int:
    """Decrypt the body ``src`` yields into ``dst``; the plaintext bytes written.

    Only authenticated batches reach ``dst``, in order; a damaged body raises
    :class:`DecryptionError` after a prefix of the plaintext, possibly empty, was written.
    A body shorter than one batch is decrypted on the calling thread.
    """
    source = _Source(src)
    try:
        return _open_batches(key, context, source, dst, threads, callback, batch_chunks)
    finally:
        source.close()


def _open_batches(  # noqa: PLR0917 - the private half of open_stream
    key: bytes,
    context: bytes,
    source: _Source,
    dst: Writable,
    threads: int,
    callback: _Callback,
    batch_chunks: int,
) -> int:
    batch = batch_chunks * _aead.SEALED_CHUNK_SIZE
    first = memoryview(bytearray(_aead.BODY_PREFIX_SIZE + batch))
    head = source.fill(first)
    if len(head) < _aead.BODY_PREFIX_SIZE + batch:
        out = memoryview(bytearray(_aead.plaintext_size(len(head))))
        _aead.decrypt_body_into(key, context, head, out)
        write_all(dst, out)
        if callback is not None and out:
            callback(len(out))
        return len(out)
    opener = _aead.ChunkOpener(key, context, bytes(head[: _aead.BODY_PREFIX_SIZE]))
    pipeline = _Pipeline(dst, threads, callback)
    outgoing = batch_chunks * _aead.CHUNK_SIZE
    pipeline.free.extend(_Slot(memoryview(bytearray(batch)), outgoing) for _ in range(threads + 1))
    slot = _Slot(first[_aead.BODY_PREFIX_SIZE :], outgoing)
    data = head[_aead.BODY_PREFIX_SIZE :]
    index = 0
    try:
        while True:
            # A batch is the last one when the stream ends within it or right after it:
            # read one batch ahead to know.
            following, ahead = None, data[:0]
            if len(data) == batch:
                following = pipeline.next_slot()
                ahead = source.fill(following.incoming)
                if not ahead:
                    pipeline.free.append(following)
                    following = None
            pipeline.submit(
                slot, -1, opener.open_run_into, index, data, slot.outgoing, final=following is None
            )
            index += batch_chunks
            if following is None:
                break
            slot, data = following, ahead
        return pipeline.finish()
    finally:
        pipeline.close()
