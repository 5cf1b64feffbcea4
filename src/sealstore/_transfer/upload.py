"""Concurrent multipart upload of a body sealed as it is read (boto3's transfer manager,
encrypting).

The plaintext is read one part at a time, in order, with one part of read-ahead so that the
last part is known when it is sealed; worker threads seal parts by chunk index and upload
them concurrently. The part layout is fixed, so any writer of the same body agrees on it:

- part 1 starts with ``lead`` (the body's 56-byte prefix, preceded by the header when the
  header is stored inline);
- part ``N`` of plaintext part size ``P`` (whole 16 KiB chunks) holds chunks
  ``(N - 1) * P / 16384`` to ``N * P / 16384 - 1``;
- the last part ends with the body's short final chunk (empty when the plaintext is a
  multiple of 16 KiB).

A body of one part or less is one ``put_whole`` request instead. Memory stays below
``concurrency + 3`` parts: three plaintext buffers (the part being read, the read-ahead, a
part waiting for a worker) and one sealed buffer per worker.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from sealstore import _aead
from sealstore._io import Readable
from sealstore._transfer.base import MAX_PARTS, PartTarget, Progress, check_concurrency
from sealstore.errors import BackendError, InvalidDataError

__all__ = ["upload_sealed"]


def upload_sealed(
    source: Readable,
    sealer: _aead.ChunkSealer,
    target: PartTarget,
    *,
    lead: bytes,
    part_size: int,
    concurrency: int,
    callback: Progress | None = None,
) -> tuple[Any, int]:
    """Seal everything ``source`` yields and store it through ``target``.

    Returns the storage's answer to the last request and the plaintext size. On any failure
    (the source's, a worker's, the storage's) the multipart upload is aborted, so nothing
    half-written becomes visible and the object previously stored under the name stays.
    ``callback`` gets the plaintext bytes of each part once it is stored, from any thread,
    one call at a time.
    """
    if part_size <= 0 or part_size % _aead.CHUNK_SIZE:
        raise ValueError("the part size must be a positive multiple of 16384")
    check_concurrency(concurrency)
    upload = _Upload(source, sealer, target, lead, part_size, concurrency, callback)
    return upload.run()


class _Upload:
    def __init__(  # noqa: PLR0917 - private, called once with every argument in order
        self,
        source: Readable,
        sealer: _aead.ChunkSealer,
        target: PartTarget,
        lead: bytes,
        part_size: int,
        concurrency: int,
        callback: Progress | None,
    ) -> None:
        self._source = source
        self._readinto = getattr(source, "readinto", None)
        self._sealer = sealer
        self._target = target
        self._lead = lead
        self._part_size = part_size
        self._chunks_per_part = part_size // _aead.CHUNK_SIZE
        self._concurrency = concurrency
        self._callback = callback
        self._reported = threading.Lock()
        # Plaintext buffers: the part being read, the read-ahead, and one part sealed and
        # ready for the next free thread (sealing is much faster than sending). More would
        # only hold memory while the threads are busy sending.
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._slots = threading.Semaphore(3)
        # Sealed buffers of the middle parts, which all have the same size.
        self._sealed_free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._failed = threading.Event()

    def run(self) -> tuple[Any, int]:
        first = self._read_part()
        if len(first[0]) and first[1] == self._part_size:
            ahead = self._read_part()
            if ahead[1]:
                return self._multipart(first, ahead)
            self._release(ahead[0])
        buffer, length = first
        body = bytearray(len(self._lead) + _aead.sealed_run_size(length, final=True))
        body[: len(self._lead)] = self._lead
        with memoryview(buffer) as plain, memoryview(body) as out:
            self._sealer.seal_run_into(0, plain[:length], out[len(self._lead) :], final=True)
        self._release(buffer)
        response = self._target.put_whole(body)
        self._report(length)
        return response, length

    # -- reading ----------------------------------------------------------------------------

    def _read_part(self) -> tuple[bytearray, int]:
        """The next part's plaintext in a pooled buffer, and its length (short at the end)."""
        self._slots.acquire()
        try:
            buffer = self._free.get_nowait()
        except queue.Empty:
            buffer = bytearray(self._part_size)
        try:
            return buffer, self._fill(buffer)
        except BaseException:
            self._release(buffer)
            raise

    def _fill(self, buffer: bytearray) -> int:
        filled = 0
        size = len(buffer)
        with memoryview(buffer) as view:
            while filled < size:
                if self._readinto is not None:
                    count = self._readinto(view[filled:])
                    if count is None:
                        raise _unready("readinto")
                else:
                    piece = self._source.read(size - filled)
                    if piece is None:
                        raise _unready("read")
                    count = len(piece)
                    view[filled : filled + count] = piece
                if not count:
                    break
                filled += count
        return filled

    def _release(self, buffer: bytearray) -> None:
        self._free.put(buffer)
        self._slots.release()

    # -- the multipart upload ---------------------------------------------------------------

    def _multipart(
        self, first: tuple[bytearray, int], ahead: tuple[bytearray, int]
    ) -> tuple[Any, int]:
        upload_id = self._target.create()
        futures: list[Future[Mapping[str, Any]]] = []
        size = 0
        try:
            with ThreadPoolExecutor(self._concurrency, "sealstore-upload") as pool:
                try:
                    number = 1
                    current: tuple[bytearray, int] | None = first
                    while current is not None and not self._failed.is_set():
                        buffer, length = current
                        if length < self._part_size:
                            last, current = True, None
                        else:
                            current = ahead if ahead[1] else None
                            if current is None:
                                self._release(ahead[0])
                            last = current is None
                        if number > MAX_PARTS:
                            self._release(buffer)
                            raise BackendError(
                                f"the object is larger than {MAX_PARTS} parts of "
                                f"{self._part_size} bytes: use a larger part size"
                            )
                        futures.append(
                            pool.submit(self._send, upload_id, number, buffer, length, last)
                        )
                        size += length
                        number += 1
                        if current is not None:
                            ahead = self._read_part()
                except BaseException:
                    self._failed.set()
                    for future in futures:
                        future.cancel()
                    raise
            wait(futures)
            parts = [future.result() for future in futures]
            response = self._target.complete(upload_id, parts)
        except BaseException:
            # Parts run in order of their numbers, so the first failed part in order holds the
            # first error (later ones may only have been cancelled because of it).
            self._failed.set()
            with contextlib.suppress(Exception):  # the upload's own error is the one to report
                self._target.abort(upload_id)
            raise
        return response, size

    def _send(
        self, upload_id: str, number: int, buffer: bytearray, length: int, last: bool
    ) -> Mapping[str, Any]:
        """Seal part ``number`` and upload it (in a worker thread)."""
        try:
            if self._failed.is_set():
                raise _Cancelled
            lead = self._lead if number == 1 else b""
            sealed = self._sealed_buffer(len(lead) + _aead.sealed_run_size(length, final=last))
            sealed[: len(lead)] = lead
            first_chunk = (number - 1) * self._chunks_per_part
            with memoryview(buffer) as plain, memoryview(sealed) as out:
                body = out[len(lead) :]
                self._sealer.seal_run_into(first_chunk, plain[:length], body, final=last)
        finally:
            self._release(buffer)
        try:
            entry = self._target.upload_part(upload_id, number, sealed)
        except BaseException:
            self._failed.set()
            raise
        if len(sealed) == self._middle_size:
            self._sealed_free.put(sealed)
        self._report(length)
        return entry

    @property
    def _middle_size(self) -> int:
        return _aead.sealed_run_size(self._part_size, final=False)

    def _sealed_buffer(self, size: int) -> bytearray:
        if size == self._middle_size:
            try:
                return self._sealed_free.get_nowait()
            except queue.Empty:
                pass
        return bytearray(size)

    def _report(self, length: int) -> None:
        if self._callback is not None and length:
            with self._reported:
                self._callback(length)


class _Cancelled(Exception):
    """A part not sent because another part failed first."""


def _unready(method: str) -> InvalidDataError:
    return InvalidDataError(
        f"the input stream's {method}() returned None, as a non-blocking stream does when no "
        "data is ready: give a blocking stream"
    )
